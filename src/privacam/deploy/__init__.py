"""Deployment: only the encoder f_d runs on the camera. Rooms: :mod:`.export` (ONNX), :mod:`.io`
(frame sources and sinks), :mod:`.stream` (runners and the streaming encoder), :mod:`.commands`
(what ``privacam anonymize`` / ``privacam export`` do on a run directory).

- :func:`export_onnx` / ``privacam export RUN -o encoder.onnx``: f_d as ONNX with dynamic batch,
  spatial (and, for clip-level encoders, time) axes, checked against PyTorch with onnxruntime.
- :func:`anonymize` / ``privacam anonymize RUN INPUT -o OUTPUT``: stream a video file, an image, a
  folder of images or a camera through f_d, frame by frame with bounded memory, and write the
  released frames (mp4 through PyAV, or images) at the input's size, the release upsampled by
  nearest neighbour (which adds no information), with the input's frame rate and frame count;
  ``--release-size`` writes the encoder's own size.

Frame-wise encoders (``small_conv``, ``transform_net``, blur, ...) see a few frames at a time.
Clip-level encoders (``st_conv``, ``bdq``, temporal difference: anything that mixes neighbouring
frames) see a sliding window of ``clip_len`` frames, the length they were trained on: a window
is encoded every ``clip_len - 2m`` frames (``m = clip_len // 4``) and each output frame is taken
from a window in which it has ``m`` frames of context on both sides (fewer only at the ends of the
stream), so each frame is emitted once its context has arrived and at most ``clip_len`` frames are
held in memory.
"""

from .commands import anonymize, export_run  # noqa: F401
from ..utils import onnx_session  # noqa: F401  (the one session builder, with the thread budget)
from .export import export_onnx, is_clip_level, onnx_parity  # noqa: F401
from .io import DEFAULT_FPS, FrameSource, ImageSink, VideoSink  # noqa: F401
from .stream import onnx_runner, stream_encode, torch_runner  # noqa: F401
