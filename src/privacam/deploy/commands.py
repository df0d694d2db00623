"""What ``privacam anonymize`` and ``privacam export`` do, on a run directory read through
:mod:`privacam.runs` (never the trainer): stream footage through a run's f_d, or export it to ONNX."""

from __future__ import annotations

import logging
import math
import os
import tempfile
from pathlib import Path

from torch import nn

from .. import runs
from ..errors import PrivacamError
from ..utils import claim_output, resolve_device
from .export import export_onnx, is_clip_level
from .io import DEFAULT_FPS, FrameSource, _sink_for, check_output_spares_input
from .stream import _to_frame, _to_input, onnx_runner, stream_encode, torch_runner

log = logging.getLogger(__name__)


def anonymize(run_dir: str | Path, input: str, output: str | Path, *, backend: str = "torch", device: str = "cpu",
              keep_size: bool = True, max_frames: int | None = None, batch_size: int = 8, fps: float | None = None,
              onnx_path: str | Path | None = None, overwrite: bool = False) -> dict:
    """Stream ``input`` through a run's f_d and write the released frames to ``output``.

    Args:
        run_dir: a trained run (``encoder.pt``, ``run.json``).
        input: video file, image, folder of images, or camera (``/dev/videoN`` or ``N``).
        output: ``.mp4`` (or another video suffix), an image file (image input), or a folder.
        backend: ``torch`` or ``onnx`` (the run's ``encoder.onnx``, exported when missing or stale).
        device: PyTorch device / onnxruntime provider.
        keep_size: write the release at the input's size (the default: what the camera's viewer
            expects), upsampled by nearest neighbour, which repeats released pixels and adds no
            information; False writes it at the run's training size (``--release-size``). Either
            way the frame rate and the frame count are the input's.
        max_frames: stop after this many frames (cameras).
        batch_size: frames per call for frame-wise encoders.
        fps: frame rate for image inputs (videos keep theirs).
        onnx_path: ONNX file to use instead of the run's.
        overwrite: ``output`` may exist: it is moved aside (:func:`~privacam.utils.claim_output`);
            without it an existing output is refused. The output never is, nor overwrites, the input.

    The output is written to a temporary file (a video, an image) or folder beside it and renamed
    into place when every frame is written: an error or Ctrl-C leaves nothing half-written.

    Returns:
        ``{"frames": n, "output": path, "fps": fps, "size": [h, w] written, "release_size": [h, w] of
        the encoder's output, "input_size": [h, w], "replaced": where the earlier output was moved, or None}``.
    """
    from tqdm.auto import tqdm

    check_options(max_frames=max_frames, batch_size=batch_size, fps=fps)
    dev = resolve_device(device, option="--device")
    encoder, cfg, meta = runs.load_encoder(run_dir, "cpu")
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
    check_output_spares_input(output, source)
    output = Path(output)
    sink = _sink_for(output, source)
    replaced = claim_output(output, overwrite=overwrite)
    resize = (cfg.data.params or {}).get("resize", "resize")
    in_size: list = []

    def inputs():
        for f in source:
            if not in_size:
                in_size.append(f.shape[:2])
            yield _to_input(f, size, in_ch, resize)

    bar = tqdm(total=source.total, desc=f"anonymize {Path(str(input)).name}", unit="frame", disable=None, dynamic_ncols=True)
    n, out_hw, rel_hw = 0, None, None
    try:
        for y in stream_encode(inputs(), run, clip_len=clip_len if clip else 0, batch_size=batch_size):
            rel_hw = tuple(y.shape[-2:])
            frame = _to_frame(y, tuple(in_size[0]) if keep_size else None)
            out_hw = frame.shape[:2]
            sink.write(frame)
            n += 1
            bar.update(1)
        sink.close()
    except BaseException:
        sink.abort()
        raise
    finally:
        bar.close()
    log.info("anonymized %d frames of %s into %s", n, input, output)
    return {"frames": n, "output": str(output), "fps": source.fps, "size": list(out_hw or ()),
            "release_size": list(rel_hw or ()), "input_size": list(in_size[0]) if in_size else [],
            "replaced": str(replaced) if replaced else None}


def check_options(*, max_frames: int | None = None, batch_size: int = 8, fps: float | None = None) -> None:
    """Refuse, in one line naming the option, a value of ``anonymize``'s options that would write
    nothing or fail deep inside a codec."""
    if max_frames is not None and (isinstance(max_frames, bool) or int(max_frames) != max_frames or max_frames < 1):
        raise PrivacamError(f"--max-frames is {max_frames}; it must be a whole number >= 1 (leave it out to read every frame)")
    if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
        raise PrivacamError(f"--batch-size is {batch_size}; it must be a whole number >= 1 (default 8)")
    if fps is not None and not (math.isfinite(fps) and fps > 0):
        raise PrivacamError(f"--fps is {fps}; it must be a number > 0 (frames per second of an image input; default {DEFAULT_FPS:g})")


def _ensure_onnx(run_dir, encoder: nn.Module, shapes: dict, onnx_path=None) -> Path:
    if onnx_path:
        p = Path(onnx_path)
        if not p.exists():
            raise PrivacamError(f"{p}: no such ONNX file; create it with `privacam export {run_dir} -o {p}`")
        return p
    run_dir = Path(run_dir)
    p = run_dir / "encoder.onnx"
    if p.exists() and p.stat().st_mtime >= (run_dir / runs.ENCODER).stat().st_mtime:
        return p
    if not os.access(run_dir, os.W_OK):  # read-only run directory
        p = Path(tempfile.mkdtemp(prefix="privacam-onnx-")) / "encoder.onnx"
    export_onnx(encoder, p, in_channels=int(shapes["in_channels"]), size=int(shapes["size"]),
                clip_len=int(shapes.get("clip_len") or 0))
    return p


def export_run(run_dir: str | Path, output: str | Path | None = None, *, opset: int = 17, tolerance: float = 1e-4,
               overwrite: bool = False) -> dict:
    """Export a run's f_d to ONNX (default ``RUN/encoder.onnx``), checked against PyTorch.

    An existing ``output`` is refused unless ``overwrite``, which moves it aside; a file of the run
    (its weights, config or ``run.json``) is never the output. The file is written to a temporary
    name and renamed into place once it matches PyTorch.

    Returns:
        ``{"output": path, "diff": max |onnx - torch|, "randomised": the release draws per clip,
        "replaced": where the earlier file was moved (or None)}``.
    """
    if isinstance(opset, bool) or int(opset) != opset or opset < 1:
        raise PrivacamError(f"--opset is {opset}; it must be a whole number (an ONNX opset; default 17)")
    if not (math.isfinite(tolerance) and tolerance >= 0):
        raise PrivacamError(f"--tolerance is {tolerance}; it must be a number >= 0 (largest |onnx - torch|; default 1e-4)")
    encoder, cfg, meta = runs.load_encoder(run_dir, "cpu")
    s = meta["shapes"]
    out = Path(output or Path(run_dir) / "encoder.onnx")
    if out.is_dir() and not out.is_symlink():
        raise PrivacamError(f"-o {out} is a folder; give the ONNX file to write (e.g. {out / 'encoder.onnx'})")
    inputs = [Path(run_dir) / f for f in (runs.ENCODER, runs.CONFIG, runs.META)]
    replaced = claim_output(out, overwrite=overwrite, inputs=tuple(f for f in inputs if f.exists()))
    diff = export_onnx(encoder, out, in_channels=int(s["in_channels"]), size=int(s["size"]),
                       clip_len=int(s.get("clip_len") or 0), opset=opset, tolerance=tolerance)
    return {"output": out, "diff": diff, "randomised": bool(getattr(encoder, "randomised", False)), "replaced": replaced}
