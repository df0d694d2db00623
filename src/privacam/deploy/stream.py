"""Running f_d over a stream of frames with bounded memory: PyTorch or onnxruntime runners, and
:func:`stream_encode` (frame-wise batches, or a sliding window for clip-level encoders; see
:mod:`privacam.deploy`)."""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn

from ..data.video import resize_frames
from ..utils import onnx_session


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
    f = resize_frames(frame[None], size, resize)[0]
    if in_channels == 1:
        import cv2

        f = cv2.cvtColor(f, cv2.COLOR_RGB2GRAY)[None]
    else:
        f = f.transpose(2, 0, 1)
    return f.astype(np.float32) / 255.0


def _to_frame(y: np.ndarray, keep: tuple[int, int] | None) -> np.ndarray:
    """A release ``[C, H, W]`` in [0, 1] as a uint8 frame, upsampled to ``keep`` (height, width) by
    nearest neighbour: each released pixel is repeated, no value is interpolated, so the upsampled
    frame carries exactly the information of the small one."""
    a = (np.clip(y, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    a = a[0] if a.shape[0] == 1 else a[:3].transpose(1, 2, 0)
    if keep is not None and a.shape[:2] != tuple(keep):
        import cv2

        a = cv2.resize(np.ascontiguousarray(a), (int(keep[1]), int(keep[0])), interpolation=cv2.INTER_NEAREST)
    return np.ascontiguousarray(a)
