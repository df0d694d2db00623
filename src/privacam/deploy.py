"""Deployment: only the encoder f_d runs on the camera.

- :func:`export_onnx` / ``privacam export RUN -o encoder.onnx``: f_d as ONNX with dynamic batch,
  spatial (and, for clip-level encoders, time) axes, checked against PyTorch with onnxruntime.
- :func:`anonymize` / ``privacam anonymize RUN INPUT -o OUTPUT``: stream a video file, an image, a
  folder of images or a camera through f_d, frame by frame with bounded memory, and write the
  released frames (mp4 through PyAV, or images).

Frame-wise encoders (``small_conv``, ``transform_net``, blur, ...) see a few frames at a time.
Clip-level encoders (``st_conv``, ``bdq``, temporal difference: anything that mixes neighbouring
frames) see a sliding window of ``clip_len`` frames, the length they were trained on: a window
is encoded every ``clip_len - 2m`` frames (``m = clip_len // 4``) and each output frame is taken
from a window in which it has ``m`` frames of context on both sides (fewer only at the ends of the
stream), so each frame is emitted once its context has arrived and at most ``clip_len`` frames are
held in memory.
"""

from __future__ import annotations

import argparse
import logging
import re
import tempfile
import warnings
from collections import deque
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn

from .cli import Command
from .errors import PrivacamError

log = logging.getLogger(__name__)

DEFAULT_FPS = 25.0


# ---------------------------------------------------------------------------------------- encoders
def is_clip_level(encoder: nn.Module) -> bool:
    """True when f_d mixes neighbouring frames (it overrides the frame-wise ``Encoder.forward``;
    ``FixedEncoder.forward``, the frame-wise forward plus a clamp of downsampling, blur, pixelation
    and greyscale, is frame-wise too)."""
    from .models.baselines import FixedEncoder
    from .models.common import Encoder
    from .models.encoders import IdentityEncoder

    if isinstance(encoder, IdentityEncoder):
        return False
    if isinstance(encoder, Encoder):
        return type(encoder).forward not in (Encoder.forward, FixedEncoder.forward)
    return True


def _example_input(in_channels: int, size: int, clip_len: int, clip: bool, batch: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    if clip:
        return torch.rand(batch, in_channels, max(clip_len, 2), size, size, generator=g)
    return torch.rand(batch, in_channels, size, size, generator=g)


def export_onnx(encoder: nn.Module, path: str | Path, *, in_channels: int, size: int, clip_len: int = 0,
                opset: int = 17, tolerance: float = 1e-4) -> float:
    """Export f_d to ONNX and check it against PyTorch with onnxruntime.

    Frame-wise encoders take ``[N, C, H, W]`` (N, H, W dynamic); clip-level ones ``[N, C, T, H, W]``
    (N, T, H, W dynamic). The check runs random inputs at the run's shape and at another batch,
    length and size.

    Args:
        encoder: the frozen f_d.
        path: where to write the ``.onnx`` file.
        in_channels, size, clip_len: the run's input shape (``run.json`` -> ``shapes``).
        opset: ONNX opset.
        tolerance: largest allowed absolute difference to PyTorch.

    Returns:
        The largest absolute difference between onnxruntime and PyTorch outputs.

    Raises:
        PrivacamError: the export does not match PyTorch within ``tolerance``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    encoder = encoder.eval().cpu()
    clip = clip_len > 0 and is_clip_level(encoder)
    x = _example_input(in_channels, size, clip_len, clip)
    axes = {0: "batch", 2: "time", 3: "height", 4: "width"} if clip else {0: "batch", 2: "height", 3: "width"}
    with torch.no_grad():
        z = encoder(x)
    out_axes = {0: "batch"}
    if z.dim() == x.dim() and z.shape[-2:] == x.shape[-2:]:
        out_axes = dict(axes)
    elif z.dim() == x.dim():
        out_axes.update({z.dim() - 2: "out_height", z.dim() - 1: "out_width"})
    tmp = path.with_name(f".{path.name}.tmp")
    _export(encoder, x, tmp, {"input": axes, "output": out_axes}, opset)
    tmp.replace(path)
    inputs = [x, _example_input(in_channels, size + 8 if size % 8 == 0 else size, clip_len + 2 if clip else 0, clip, batch=3)]
    randomised = getattr(encoder, "randomised", False)
    if randomised:
        # the release draws per-clip randomness (RandomUniformLike ops in the graph), which no
        # parity check can match: check every other op on the same encoder without its draws
        det = encoder.deterministic()
        _export(det, x, tmp, {"input": axes, "output": out_axes}, opset)
        try:
            diff = onnx_parity(det, tmp, inputs)
        finally:
            tmp.unlink(missing_ok=True)
    else:
        diff = onnx_parity(encoder, path, inputs)
    log.info("exported %s: max |onnx - torch| = %.3g%s", path, diff,
             " (without the per-clip random draws)" if randomised else "")
    if not diff <= tolerance:
        raise PrivacamError(f"{path}: onnxruntime differs from PyTorch by {diff:.3g} (> {tolerance:g}); "
                            f"report the encoder and use --backend torch meanwhile")
    return diff


def _export(encoder: nn.Module, x: torch.Tensor, path: Path, axes: dict, opset: int) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # the TorchScript exporter: the dynamo one needs onnxscript, which a camera build may lack
        torch.onnx.export(encoder, (x,), str(path), dynamo=False, input_names=["input"], output_names=["output"],
                          dynamic_axes=axes, opset_version=opset)


def onnx_session(path: str | Path, device: str = "cpu"):
    """An onnxruntime session (CUDA provider first when asked for and available)."""
    import onnxruntime as ort

    providers = ["CPUExecutionProvider"]
    if str(device).startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=opts, providers=providers)


def onnx_parity(encoder: nn.Module, path: str | Path, inputs: list[torch.Tensor]) -> float:
    """Largest absolute difference between ``encoder`` and the ONNX file on ``inputs``."""
    sess = onnx_session(path)
    worst = 0.0
    for x in inputs:
        with torch.no_grad():
            ref = encoder(x).numpy()
        got = sess.run(None, {"input": x.numpy()})[0]
        if got.shape != ref.shape:
            raise PrivacamError(f"{path}: ONNX output shape {got.shape} != PyTorch {ref.shape} for input {tuple(x.shape)}")
        worst = max(worst, float(np.abs(got - ref).max()))
    return worst


def torch_runner(encoder: nn.Module, device: str | torch.device = "cpu") -> Callable[[np.ndarray], np.ndarray]:
    """``float32 array -> float32 array`` through f_d in PyTorch (no gradients)."""
    device = torch.device(device)
    encoder = encoder.to(device).eval()

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return encoder(torch.from_numpy(x).to(device)).float().cpu().numpy()

    return run


def onnx_runner(path: str | Path, device: str = "cpu") -> Callable[[np.ndarray], np.ndarray]:
    sess = onnx_session(path, device)
    return lambda x: sess.run(None, {"input": np.ascontiguousarray(x, dtype=np.float32)})[0]


# ---------------------------------------------------------------------------------------- sources
class FrameSource:
    """Frames of a video file, an image, a folder of images or a camera, as uint8 RGB ``[H, W, 3]``.

    Attributes:
        fps: frame rate (``DEFAULT_FPS`` for images).
        total: number of frames when known (else None).
        names: output file names for image inputs (else None).
    """

    def __init__(self, spec: str, max_frames: int | None = None, fps: float | None = None):
        from .data.video import IMAGE_EXTS, list_frame_files

        self.spec, self.max_frames = str(spec), max_frames
        self.fps, self.total, self.names = fps or DEFAULT_FPS, None, None
        self.kind = "video"
        p = Path(self.spec)
        if re.fullmatch(r"\d+", self.spec) or self.spec.startswith("/dev/video"):
            self.kind = "camera"
        elif p.is_dir():
            self.kind = "folder"
            self._files = list_frame_files(p)
            if not self._files:
                raise PrivacamError(f"{p}: folder has no image files (png/jpg/...); give a video, an image or a folder of images")
            self.total, self.names = len(self._files), [f.stem for f in self._files]
        elif not p.exists():
            raise PrivacamError(f"{p}: no such file; give a video file, an image, a folder of images or a camera (/dev/videoN or N)")
        elif p.suffix.lower() in IMAGE_EXTS:
            self.kind, self._files, self.total, self.names = "image", [p], 1, [p.stem]
        else:
            self._probe_video(p, fps)
        if self.total is not None and max_frames is not None:
            self.total = min(self.total, max_frames)

    def _probe_video(self, p: Path, fps: float | None) -> None:
        import av

        try:
            with av.open(str(p)) as c:
                if not c.streams.video:
                    raise ValueError("no video stream")
                s = c.streams.video[0]
                rate = s.average_rate or s.guessed_rate
                self.fps = fps or (float(rate) if rate else DEFAULT_FPS)
                self.total = int(s.frames) or None
        except Exception as e:  # noqa: BLE001 - PyAV raises many types for unreadable files
            raise PrivacamError(f"{p}: cannot read as video or image ({type(e).__name__}: {e}); "
                                f"re-encode it (e.g. ffmpeg -i IN -c:v libx264 OUT.mp4) or give frames as images") from None

    def __iter__(self) -> Iterator[np.ndarray]:
        n = 0
        for frame in self._frames():
            if self.max_frames is not None and n >= self.max_frames:
                return
            n += 1
            yield frame
        if n == 0:
            raise PrivacamError(f"{self.spec}: no frames could be read; check the input")

    def _frames(self) -> Iterator[np.ndarray]:
        if self.kind in ("folder", "image"):
            from .data.video import _load_frame

            for f in self._files:
                yield _load_frame(f)
        elif self.kind == "camera":
            yield from self._camera()
        else:
            import av

            try:
                with av.open(self.spec) as c:
                    s = c.streams.video[0]
                    s.thread_type = "AUTO"
                    for fr in c.decode(s):
                        yield fr.to_ndarray(format="rgb24")
            except av.FFmpegError as e:
                raise PrivacamError(f"{self.spec}: decoding failed ({e}); re-encode the file") from None

    def _camera(self) -> Iterator[np.ndarray]:
        import cv2

        dev = int(self.spec) if self.spec.isdigit() else self.spec
        cap = cv2.VideoCapture(dev)
        if not cap.isOpened():
            raise PrivacamError(f"camera {self.spec}: cannot open it; check the device exists and is not in use")
        try:
            rate = cap.get(cv2.CAP_PROP_FPS)
            if rate and rate > 0 and self.fps == DEFAULT_FPS:
                self.fps = float(rate)
            while True:
                ok, bgr = cap.read()
                if not ok:
                    return
                yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        finally:
            cap.release()


# ---------------------------------------------------------------------------------------- sinks
class VideoSink:
    """Write uint8 frames (``[H, W, 3]`` RGB or ``[H, W]`` grey) to a video through PyAV.

    The codec is the first available of ``libx264``, ``h264``, ``mpeg4``; a grey release is written
    as grey video (neutral chroma). Odd sizes are padded by one pixel (4:2:0 needs even sizes).
    """

    CODECS = ("libx264", "h264", "mpeg4")

    def __init__(self, path: str | Path, fps: float):
        self.path, self.fps = Path(path), fps
        self.container = self.stream = None
        self.count = 0
        self.codec = None

    def _open(self, h: int, w: int) -> None:
        import av

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.container = av.open(str(self.path), "w")
        rate = Fraction(self.fps).limit_denominator(1001)
        for codec in self.CODECS:
            try:
                av.codec.Codec(codec, "w")
            except Exception:  # noqa: BLE001 - codec missing in this FFmpeg build
                continue
            self.stream = self.container.add_stream(codec, rate=rate)
            self.codec = codec
            break
        if self.stream is None:
            raise PrivacamError(f"{self.path}: this FFmpeg build has none of the encoders {', '.join(self.CODECS)}; write images instead (-o FOLDER)")
        self.stream.width, self.stream.height = w + w % 2, h + h % 2
        self.stream.pix_fmt = "yuv420p"
        if self.codec != "mpeg4":
            self.stream.options = {"crf": "18"}
        else:
            self.stream.bit_rate = 4_000_000

    def write(self, frame: np.ndarray) -> None:
        import av

        if self.container is None:
            self._open(*frame.shape[:2])
        h, w = frame.shape[:2]
        if (h % 2) or (w % 2):
            pad = ((0, h % 2), (0, w % 2)) + (((0, 0),) if frame.ndim == 3 else ())
            frame = np.pad(frame, pad, mode="edge")
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="gray" if frame.ndim == 2 else "rgb24")
        vf.pts = self.count
        for packet in self.stream.encode(vf):
            self.container.mux(packet)
        self.count += 1

    def close(self) -> None:
        if self.container is None:
            return
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()
        self.container = None


class ImageSink:
    """Write frames as images: ``path`` itself for a single image, else ``path/<name>.png``."""

    def __init__(self, path: str | Path, names: list[str] | None, single: bool):
        self.path, self.names, self.single = Path(path), names, single
        self.count = 0

    def write(self, frame: np.ndarray) -> None:
        import cv2

        if self.single:
            target = self.path
        else:
            name = self.names[self.count] if self.names and self.count < len(self.names) else f"frame_{self.count:06d}"
            target = self.path / f"{name}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        img = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
        if not cv2.imwrite(str(target), img):
            raise PrivacamError(f"{target}: cannot write the image; check the folder and the file extension")
        self.count += 1

    def close(self) -> None:
        pass


def _sink_for(output: Path, source: FrameSource):
    from .data.video import IMAGE_EXTS, VIDEO_EXTS

    ext = output.suffix.lower()
    if ext in VIDEO_EXTS:
        return VideoSink(output, source.fps)
    if ext in IMAGE_EXTS:
        if source.kind != "image":
            raise PrivacamError(f"{output}: one image cannot hold {source.spec}'s frames; give a .mp4 file or a folder")
        return ImageSink(output, None, single=True)
    return ImageSink(output, source.names, single=False)


# ---------------------------------------------------------------------------------------- streaming
def stream_encode(frames: Iterator[np.ndarray], run: Callable[[np.ndarray], np.ndarray], *, clip_len: int = 0,
                  batch_size: int = 8) -> Iterator[np.ndarray]:
    """Encode a stream of float32 ``[C, H, W]`` frames; yields one ``[C', H', W']`` output per frame.

    ``clip_len > 0``: a clip-level f_d on a sliding window (see the module docstring); else
    frame-wise in batches of ``batch_size``. Memory is bounded by ``max(clip_len, batch_size)`` frames.
    """
    if clip_len <= 0:
        buf: list[np.ndarray] = []
        for f in frames:
            buf.append(f)
            if len(buf) == batch_size:
                yield from run(np.stack(buf))
                buf = []
        if buf:
            yield from run(np.stack(buf))
        return
    L, m = clip_len, clip_len // 4
    hop = L - 2 * m
    window: deque = deque(maxlen=L)  # the last L frames
    next_out, i = 0, -1

    def encode(win) -> np.ndarray:  # [T, C, H, W] -> [T, C', H', W']
        clip = np.stack(win, axis=1)[None]  # [1, C, T, H, W]
        return np.moveaxis(run(clip)[0], 1, 0)

    for i, f in enumerate(frames):
        window.append(f)
        start = i - len(window) + 1
        # every hop frames the window [start, i] is encoded; frames up to i - m have m frames of
        # future context in it, and (after the first window) m frames of past context
        if len(window) == L and (i == L - 1 or i - m + 1 - next_out >= hop):
            y = encode(window)
            for j in range(next_out, i - m + 1):
                yield y[j - start]
            next_out = i - m + 1
    if i >= next_out:  # the tail: the last (up to L) frames
        start = i - len(window) + 1
        y = encode(window)
        for j in range(next_out, i + 1):
            yield y[j - start]


def _to_input(frame: np.ndarray, size: int, in_channels: int, resize: str) -> np.ndarray:
    from .data.video import resize_frames

    f = resize_frames(frame[None], size, resize)[0]
    if in_channels == 1:
        import cv2

        f = cv2.cvtColor(f, cv2.COLOR_RGB2GRAY)[None]
    else:
        f = f.transpose(2, 0, 1)
    return f.astype(np.float32) / 255.0


def _to_frame(y: np.ndarray, keep: tuple[int, int] | None) -> np.ndarray:
    a = (np.clip(y, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    a = a[0] if a.shape[0] == 1 else a[:3].transpose(1, 2, 0)
    if keep is not None and a.shape[:2] != keep:
        import cv2

        a = cv2.resize(np.ascontiguousarray(a), (keep[1], keep[0]), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(a)


def anonymize(run_dir: str | Path, input: str, output: str | Path, *, backend: str = "torch", device: str = "cpu",
              keep_size: bool = False, max_frames: int | None = None, batch_size: int = 8, fps: float | None = None,
              onnx_path: str | Path | None = None) -> dict:
    """Stream ``input`` through a run's f_d and write the released frames to ``output``.

    Args:
        run_dir: a trained run (``encoder.pt``, ``run.json``).
        input: video file, image, folder of images, or camera (``/dev/videoN`` or ``N``).
        output: ``.mp4`` (or another video suffix), an image file (image input), or a folder.
        backend: ``torch`` or ``onnx`` (the run's ``encoder.onnx``, exported when missing or stale).
        device: PyTorch device / onnxruntime provider.
        keep_size: upsample the release back to the input resolution (else the run's size).
        max_frames: stop after this many frames (cameras).
        batch_size: frames per call for frame-wise encoders.
        fps: frame rate for image inputs (videos keep theirs).
        onnx_path: ONNX file to use instead of the run's.

    Returns:
        ``{"frames": n, "output": path, "fps": fps, "size": [h, w]}``.
    """
    from tqdm.auto import tqdm

    from .train import load_encoder
    from .utils import resolve_device

    dev = resolve_device(device)
    encoder, cfg, meta = load_encoder(run_dir, "cpu")
    releases = getattr(encoder, "releases", "image")
    if releases != "image":
        raise PrivacamError(f"{run_dir}: encoder {cfg.encoder.name!r} releases a {releases}, not viewable frames; "
                            f"use `privacam export` to deploy it or `privacam evaluate` to audit it")
    shapes = meta["shapes"]
    size, in_ch, clip_len = int(shapes["size"]), int(shapes["in_channels"]), int(shapes.get("clip_len") or 0)
    clip = clip_len > 0 and is_clip_level(encoder)
    if backend == "torch":
        run = torch_runner(encoder, dev)
    elif backend == "onnx":
        run = onnx_runner(_ensure_onnx(run_dir, encoder, shapes, onnx_path), str(dev))
    else:
        raise PrivacamError(f"unknown backend {backend!r}; valid: torch, onnx")
    source = FrameSource(input, max_frames=max_frames, fps=fps)
    output = Path(output)
    sink = _sink_for(output, source)
    resize = (cfg.data.params or {}).get("resize", "resize")
    in_size: list = []

    def inputs():
        for f in source:
            if not in_size:
                in_size.append(f.shape[:2])
            yield _to_input(f, size, in_ch, resize)

    bar = tqdm(total=source.total, desc=f"anonymize {Path(str(input)).name}", unit="frame", disable=None, dynamic_ncols=True)
    n, out_hw = 0, None
    try:
        for y in stream_encode(inputs(), run, clip_len=clip_len if clip else 0, batch_size=batch_size):
            frame = _to_frame(y, tuple(in_size[0]) if keep_size else None)
            out_hw = frame.shape[:2]
            sink.write(frame)
            n += 1
            bar.update(1)
    finally:
        bar.close()
        sink.close()
    log.info("anonymized %d frames of %s into %s", n, input, output)
    return {"frames": n, "output": str(output), "fps": source.fps, "size": list(out_hw or ())}


def _ensure_onnx(run_dir, encoder: nn.Module, shapes: dict, onnx_path=None) -> Path:
    if onnx_path:
        p = Path(onnx_path)
        if not p.exists():
            raise PrivacamError(f"{p}: no such ONNX file; create it with `privacam export {run_dir} -o {p}`")
        return p
    run_dir = Path(run_dir)
    p = run_dir / "encoder.onnx"
    if p.exists() and p.stat().st_mtime >= (run_dir / "encoder.pt").stat().st_mtime:
        return p
    try:
        p.touch()
    except OSError:  # read-only run directory
        p = Path(tempfile.mkdtemp(prefix="privacam-onnx-")) / "encoder.onnx"
    export_onnx(encoder, p, in_channels=int(shapes["in_channels"]), size=int(shapes["size"]),
                clip_len=int(shapes.get("clip_len") or 0))
    return p


# ---------------------------------------------------------------------------------------- commands
class Anonymize(Command):
    name = "anonymize"
    help = "run a trained encoder f_d over a video, image(s) or camera and write the anonymized output"

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("run_dir", help="run directory of a trained encoder")
        p.add_argument("input", help="video file, image, folder of images, or camera (/dev/videoN or N)")
        p.add_argument("-o", "--output", required=True, help="output .mp4, image file, or folder for images")
        p.add_argument("--backend", choices=("torch", "onnx"), default="torch", help="inference engine (default torch)")
        p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")
        p.add_argument("--keep-size", action="store_true", help="upsample the output to the input resolution")
        p.add_argument("--max-frames", type=int, help="stop after this many frames (needed for endless cameras)")
        p.add_argument("--batch-size", type=int, default=8, help="frames per call for frame-wise encoders")
        p.add_argument("--fps", type=float, help="frame rate of the output for image inputs (default 25)")
        p.add_argument("--onnx", help="ONNX file for --backend onnx (default RUN_DIR/encoder.onnx, exported if needed)")

    def run(self, args) -> int:
        res = anonymize(args.run_dir, args.input, args.output, backend=args.backend, device=args.device,
                        keep_size=args.keep_size, max_frames=args.max_frames, batch_size=args.batch_size,
                        fps=args.fps, onnx_path=args.onnx)
        print(f"wrote {res['frames']} frames to {res['output']}")
        return 0


class Export(Command):
    name = "export"
    help = "export a run's encoder f_d to ONNX (checked against PyTorch with onnxruntime)"

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("run_dir", help="run directory of a trained encoder")
        p.add_argument("-o", "--output", help="ONNX file (default RUN_DIR/encoder.onnx)")
        p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
        p.add_argument("--tolerance", type=float, default=1e-4, help="largest allowed |onnx - torch| (default 1e-4)")

    def run(self, args) -> int:
        from .train import load_encoder

        encoder, cfg, meta = load_encoder(args.run_dir, "cpu")
        s = meta["shapes"]
        out = Path(args.output or Path(args.run_dir) / "encoder.onnx")
        diff = export_onnx(encoder, out, in_channels=int(s["in_channels"]), size=int(s["size"]),
                           clip_len=int(s.get("clip_len") or 0), opset=args.opset, tolerance=args.tolerance)
        draws = ""
        if getattr(encoder, "randomised", False):
            draws = " (every op but the release's per-clip random draws, which the file keeps)"
        print(f"exported {out}; max |onnx - torch| = {diff:.3g}{draws}")
        return 0
