"""ONNX export of the encoder f_d (dynamic batch, spatial and, for clip-level encoders, time axes),
checked against PyTorch with onnxruntime."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import PrivacamError
from ..models.baselines import FixedEncoder
from ..models.common import Encoder
from ..models.encoders import IdentityEncoder
from ..utils import atomic_path, onnx_session

log = logging.getLogger(__name__)


def is_clip_level(encoder: nn.Module) -> bool:
    """True when f_d mixes neighbouring frames (it overrides the frame-wise ``Encoder.forward``;
    ``FixedEncoder.forward``, the frame-wise forward plus a clamp of downsampling, blur, pixelation
    and greyscale, is frame-wise too)."""
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
        PrivacamError: the export does not match PyTorch within ``tolerance`` (nothing is written: the
            file is checked under a temporary name and renamed into place once it matches).
    """
    path = Path(path)
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
    inputs = [x, _example_input(in_channels, size + 8 if size % 8 == 0 else size, clip_len + 2 if clip else 0, clip, batch=3)]
    randomised = getattr(encoder, "randomised", False)
    with atomic_path(path) as tmp:  # renamed onto path only once it matches PyTorch
        _export(encoder, x, tmp, {"input": axes, "output": out_axes}, opset)
        parity = getattr(encoder, "parity_module", None)
        if parity is not None or randomised:
            # the release draws per-clip randomness (RandomUniformLike ops in the graph), which no parity
            # check can match, or picks a discrete item that float rounding may flip at a near-tie: check
            # every other op (a substitution encoder: every op up to the bank's log-probabilities)
            det = parity() if parity is not None else encoder.deterministic()
            scratch = tmp.with_name(f"{tmp.name}.deterministic.onnx")
            try:
                _export(det, x, scratch, {"input": axes, "output": {0: "batch"} if parity is not None else out_axes}, opset)
                diff = _checked_parity(det, scratch, inputs, opset)
            finally:
                scratch.unlink(missing_ok=True)
            if parity is not None:  # the release graph itself runs and gives the release's shape
                _checked_shapes(encoder, tmp, inputs)
        else:
            diff = _checked_parity(encoder, tmp, inputs, opset)
        log.info("exported %s: max |onnx - torch| = %.3g%s", path, diff,
                 " (up to the draw)" if parity is not None else " (without the per-clip random draws)" if randomised else "")
        if not diff <= tolerance:
            raise PrivacamError(f"{path}: onnxruntime differs from PyTorch by {diff:.3g} (> {tolerance:g}); "
                                f"report the encoder and use --backend torch meanwhile (nothing was written)")
    return diff


def _checked_shapes(encoder: nn.Module, path: Path, inputs: list[torch.Tensor]) -> None:
    """The ONNX file runs on ``inputs`` and gives the shapes and dtypes PyTorch gives."""
    sess = onnx_session(path)
    for x in inputs:
        with torch.no_grad():
            ref = encoder(x).numpy()
        got = sess.run(None, {"input": x.numpy()})[0]
        if got.shape != ref.shape or got.dtype != ref.dtype:
            raise PrivacamError(f"{path}: ONNX output {got.shape} {got.dtype} != PyTorch {ref.shape} {ref.dtype} for input "
                                f"{tuple(x.shape)} (nothing was written)")


def _checked_parity(encoder: nn.Module, path: Path, inputs: list[torch.Tensor], opset: int) -> float:
    """:func:`onnx_parity`, with onnxruntime's refusal of the file (an opset it cannot run) as one line."""
    try:
        return onnx_parity(encoder, path, inputs)
    except Exception as e:  # noqa: BLE001 - onnxruntime's errors derive from Exception only
        if not type(e).__module__.startswith("onnxruntime"):
            raise
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise PrivacamError(f"onnxruntime cannot run the file exported at opset {opset} ({first}); use the default "
                            f"--opset 17 (nothing was written)") from None


def _export(encoder: nn.Module, x: torch.Tensor, path: Path, axes: dict, opset: int) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # the TorchScript exporter: the dynamo one needs onnxscript, which a camera build may lack
        try:
            torch.onnx.export(encoder, (x,), str(path), dynamo=False, input_names=["input"], output_names=["output"],
                              dynamic_axes=axes, opset_version=opset)
        except (RuntimeError, ValueError) as e:
            if "opset" not in str(e).lower():
                raise
            raise PrivacamError(f"--opset {opset}: {str(e).strip().splitlines()[0]}; use the default 17") from None


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
