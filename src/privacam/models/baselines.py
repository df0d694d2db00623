"""Baseline encoders f_d: hand-made degradations and BDQ, evaluated exactly like learned ones.

Every baseline takes clips ``[B,C,T,H,W]`` and images ``[B,C,H,W]`` in [0, 1] and releases the
same shape (``grey=True``: one channel) in [0, 1] on the input's device and dtype. Spatial size
is preserved: downsampling releases the low-resolution image upsampled back with nearest
(``upsample=False`` releases the small image itself).

- ``downsample`` (``factor``), ``pixelate`` (``block``), ``blur`` / ``blur_weak`` / ``blur_strong``
  (Gaussian ``sigma`` 2 / 1 / 3), ``greyscale``, ``temporal_diff``: pure torch (differentiable).
- ``blacken``: blacks out the moving person: pixels differing from the clip's temporal median
  background by more than ``threshold`` (grey level), dilated by ``dilate`` pixels. Images have
  no background model: the OpenCV HOG people detector is tried (on a copy upscaled to at least
  128 pixels high), and where it finds nobody a centre box (middle half of the width, middle 80 %
  of the height) is blacked out.
- ``face_blur`` / ``face_crop``: OpenCV's Haar cascade ``haarcascade_frontalface_default.xml`` on
  every frame (upscaled so that the shorter side is at least ``detect_size``); ``face_crop``
  removes the faces (blackens the boxes, the paper's "detect and crop out faces"), ``face_blur``
  Gaussian-blurs them (sigma = box side / 4).
- ``body_crop``: OpenCV's HOG people detector; detected bodies are blackened ("crop out whole
  bodies"), on a copy upscaled so that the shorter side is at least ``detect_size`` (256: at
  128 HOG found nobody in 32x32 synthetic frames, at 256 about a third of them). Every clip frame
  where HOG finds nobody falls back to the ``blacken`` motion mask of its clip, an image to the
  centre box (``fallback="none"`` leaves them unchanged).
- ``bdq``: Blur (learnable sigma per channel), Difference of consecutive frames, Quantisation
  into learnable bins (soft staircase), trainable by the same game (BDQ, ECCV 2022).

OpenCV baselines are not differentiable: they run on uint8 NumPy copies under ``no_grad``.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import OneOf, Range
from ..registry import register_encoder
from .common import Encoder, fold_frames, frame_difference, luminance, unfold_frames

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------
# shared helpers


class FixedEncoder(Encoder):
    """A baseline f_d without parameters: ``trainable = False`` (the game skips its update).

    ``out_channels`` equals ``in_channels`` (1 with ``grey``).
    """

    trainable = False
    releases = "image"

    def __init__(self, in_channels: int = 3, grey: bool = False):
        super().__init__(in_channels, grey)
        self.out_channels = 1 if grey else in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x).clamp(0.0, 1.0)


def gaussian_kernel1d(sigma: torch.Tensor | float, radius: int, device=None, dtype=None) -> torch.Tensor:
    """Normalised 1-D Gaussian taps ``[..., 2*radius+1]`` (differentiable in ``sigma``)."""
    sigma = torch.as_tensor(sigma, device=device, dtype=dtype or torch.float32)
    d = torch.arange(-radius, radius + 1, device=sigma.device, dtype=sigma.dtype)
    g = torch.exp(-0.5 * (d / sigma.unsqueeze(-1)) ** 2)
    return g / g.sum(-1, keepdim=True)


def separable_blur(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Depthwise separable blur of ``[N,C,H,W]`` with taps ``[K]`` or per channel ``[C,K]``;
    borders reflect (replicate when the image is smaller than the kernel radius)."""
    n, c, h, w = x.shape
    if kernel.dim() == 1:
        kernel = kernel.expand(c, -1)
    k = kernel.shape[-1]
    r = k // 2
    mode = "reflect" if r < min(h, w) else "replicate"
    y = F.pad(x, (r, r, r, r), mode=mode)
    y = F.conv2d(y, kernel.reshape(c, 1, 1, k).to(x.dtype), groups=c)
    return F.conv2d(y, kernel.reshape(c, 1, k, 1).to(x.dtype), groups=c)


# Export-friendly (traceable) forms of the fixed degradations. The TorchScript ONNX exporter traces
# the encoder once; with dynamic batch and spatial axes every size is a tensor in the trace, so ops
# whose shapes are computed from Python ints (adaptive pooling to ``h // factor``, a blur kernel
# expanded to ``x.shape[1]`` channels) either fail to export or would be frozen at the example
# size. These helpers build the same results from shape tensors (arange, comparisons, gathers,
# matrix products), which export with dynamic axes; under tracing the encoders below switch to
# them, while eager PyTorch keeps the original (bit-identical) ops. They accept ``int`` or 0-dim
# integer tensors for sizes, so they can be tested without tracing.


def _size(x: torch.Tensor, dim: int) -> torch.Tensor:
    """``x.shape[dim]`` as a 0-dim int64 tensor (a traced value under ``torch.jit.trace``)."""
    return torch.as_tensor(x.shape[dim], dtype=torch.long)


def _area_matrix(n_in: torch.Tensor, n_out: torch.Tensor, dtype: torch.dtype, device) -> torch.Tensor:
    """``[n_out, n_in]`` averaging matrix of adaptive average pooling along one axis: output ``i``
    averages inputs ``[floor(i n_in / n_out), ceil((i + 1) n_in / n_out))`` (PyTorch's bins)."""
    i = torch.arange(n_out, device=device)
    start = torch.div(i * n_in, n_out, rounding_mode="floor")
    end = torch.div((i + 1) * n_in + n_out - 1, n_out, rounding_mode="floor")
    j = torch.arange(n_in, device=device).unsqueeze(0)
    inside = (j >= start.unsqueeze(1)) & (j < end.unsqueeze(1))
    return inside.to(dtype) / (end - start).unsqueeze(1).to(dtype)


def _nearest_index(n_in: torch.Tensor, n_out: torch.Tensor, device) -> torch.Tensor:
    """Source indices of ``F.interpolate(mode="nearest")`` from ``n_in`` to ``n_out`` samples,
    computed as PyTorch does: ``min(floor(dst * float32(n_in / n_out)), n_in - 1)``."""
    scale = n_in.to(torch.float32) / n_out.to(torch.float32)
    idx = torch.floor(torch.arange(n_out, device=device).to(torch.float32) * scale).to(torch.long)
    return torch.minimum(idx, n_in - 1)


def _pad_index(n: torch.Tensor, r: int, reflect: torch.Tensor, device) -> torch.Tensor:
    """Indices ``[n + 2r]`` of an axis of length ``n`` padded by ``r`` on both sides: reflected
    (``F.pad(mode="reflect")``) where ``reflect``, else replicated."""
    i = torch.arange(n + 2 * r, device=device) - r
    last = n - 1
    mirrored = last - (last - i.abs()).abs()
    replicated = torch.minimum(i.clamp_min(0), last)
    return torch.where(reflect, torch.minimum(mirrored.clamp_min(0), last), replicated)


def traceable_area_resize(x: torch.Tensor, factor: int, upsample: bool) -> torch.Tensor:
    """``adaptive_avg_pool2d`` to ``max(1, size // factor)`` (then nearest back to the input size
    with ``upsample``) of ``[N,C,H,W]`` in export-friendly ops; equals the eager ops up to float
    rounding of the averages (the nearest indices are exact)."""
    h, w = _size(x, -2), _size(x, -1)
    oh = torch.clamp(torch.div(h, factor, rounding_mode="floor"), min=1)
    ow = torch.clamp(torch.div(w, factor, rounding_mode="floor"), min=1)
    ah = _area_matrix(h, oh, x.dtype, x.device)
    aw = _area_matrix(w, ow, x.dtype, x.device)
    small = torch.matmul(torch.matmul(ah, x), aw.transpose(0, 1))
    if not upsample:
        return small
    return small.index_select(-2, _nearest_index(oh, h, x.device)).index_select(-1, _nearest_index(ow, w, x.device))


def traceable_separable_blur(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """:func:`separable_blur` of ``[N,C,H,W]`` with per-channel taps ``[C,K]`` in export-friendly ops:
    the border (reflect, or replicate when the image is not larger than the radius) is gathered
    with computed indices, so one graph serves every size."""
    c, k = taps.shape
    r = k // 2
    h, w = _size(x, -2), _size(x, -1)
    reflect = torch.minimum(h, w) > r
    y = x.index_select(-2, _pad_index(h, r, reflect, x.device)).index_select(-1, _pad_index(w, r, reflect, x.device))
    y = F.conv2d(y, taps.reshape(c, 1, 1, k).to(x.dtype), groups=c)
    return F.conv2d(y, taps.reshape(c, 1, k, 1).to(x.dtype), groups=c)


def motion_mask(x: torch.Tensor, threshold: float = 0.1, dilate: int = 3) -> torch.Tensor:
    """Person mask of a clip ``[B,C,T,H,W]`` -> ``[B,1,T,H,W]`` in {0, 1}: grey pixels further than
    ``threshold`` from the clip's per-pixel temporal median (the static background), dilated."""
    g = luminance(x)
    bg = g.median(dim=2, keepdim=True).values
    m = ((g - bg).abs() > threshold).to(x.dtype)
    if dilate > 0:
        f, t = fold_frames(m)
        f = F.max_pool2d(f, 2 * dilate + 1, stride=1, padding=dilate)
        m = unfold_frames(f, t)
    return m


def _to_uint8(frames: torch.Tensor) -> np.ndarray:
    """``[N,C,H,W]`` in [0,1] -> ``[N,H,W,C]`` uint8."""
    a = (frames.detach().float().clamp(0, 1) * 255.0 + 0.5).to(torch.uint8)
    return a.permute(0, 2, 3, 1).cpu().numpy()


def _grey_u8(img: np.ndarray) -> np.ndarray:
    import cv2

    if img.shape[2] == 3:
        return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    return img.mean(axis=2).astype(np.uint8) if img.shape[2] > 1 else img[:, :, 0]


def _upscale(grey: np.ndarray, min_side: int) -> tuple[np.ndarray, float]:
    import cv2

    h, w = grey.shape
    s = max(1.0, min_side / min(h, w))
    if s > 1.0:
        grey = cv2.resize(grey, (int(round(w * s)), int(round(h * s))), interpolation=cv2.INTER_LINEAR)
    return grey, s


def _boxes_to_mask(boxes: list[tuple[int, int, int, int]], h: int, w: int) -> np.ndarray:
    m = np.zeros((h, w), dtype=bool)
    for x0, y0, bw, bh in boxes:
        m[max(0, y0): min(h, y0 + bh), max(0, x0): min(w, x0 + bw)] = True
    return m


def centre_box_mask(h: int, w: int) -> np.ndarray:
    """Fallback person region of an image: middle half of the width, middle 80 % of the height."""
    m = np.zeros((h, w), dtype=bool)
    m[int(0.1 * h): int(math.ceil(0.9 * h)), int(0.25 * w): int(math.ceil(0.75 * w))] = True
    return m


class _Detector:
    """Lazily built OpenCV detector returning boxes ``(x, y, w, h)`` in original pixel units."""

    def __init__(self, kind: str, detect_size: int):
        self.kind, self.detect_size, self._impl = kind, detect_size, None

    def _build(self):
        import cv2

        if self.kind == "face":
            path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
            det = cv2.CascadeClassifier(path)
            if det.empty():
                raise RuntimeError(f"OpenCV Haar cascade not found at {path}")
        else:
            det = cv2.HOGDescriptor()
            det.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        return det

    def __call__(self, grey: np.ndarray) -> list[tuple[int, int, int, int]]:
        if self._impl is None:
            self._impl = self._build()
        big, s = _upscale(grey, self.detect_size)
        if self.kind == "face":
            found = self._impl.detectMultiScale(big, scaleFactor=1.1, minNeighbors=4)
        else:
            if big.shape[0] < 128 or big.shape[1] < 64:
                return []
            found, _ = self._impl.detectMultiScale(big, winStride=(8, 8), padding=(8, 8), scale=1.05)
        out = []
        for x0, y0, bw, bh in (found if len(found) else []):
            out.append((int(x0 / s), int(y0 / s), int(math.ceil(bw / s)), int(math.ceil(bh / s))))
        return out


def _detect_masks(frames: torch.Tensor, detector: _Detector, t: int, every: int) -> np.ndarray:
    """Boolean masks ``[N,H,W]`` of detected boxes for frames ``[N,C,H,W]`` (clips folded with
    ``t`` frames each); detection on every ``every``-th frame of a clip, boxes held in between."""
    imgs = _to_uint8(frames)
    n, h, w, _ = imgs.shape
    masks = np.zeros((n, h, w), dtype=bool)
    boxes: list = []
    per = t if t else 1
    for i in range(n):
        if (i % per) % max(1, every) == 0:
            boxes = detector(_grey_u8(imgs[i]))
        masks[i] = _boxes_to_mask(boxes, h, w)
    return masks


# ----------------------------------------------------------------------------------------------
# differentiable hand-made degradations


class Downsample(FixedEncoder):
    """Area-average downsampling by ``factor`` (Wu et al.'s "Method 1"), upsampled back with
    nearest so the release keeps the input size (constant on ``factor x factor`` blocks)."""

    def __init__(self, in_channels: int = 3, grey: bool = False, factor: int = 4, upsample: bool = True):
        super().__init__(in_channels, grey)
        if factor < 1:
            raise ValueError(f"downsample factor must be >= 1, got {factor}")
        self.factor, self.upsample = int(factor), upsample

    def encode_frames(self, x: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_tracing():  # ONNX export: the output size is a traced value, see traceable_area_resize
            return traceable_area_resize(x, self.factor, self.upsample)
        h, w = x.shape[-2:]
        small = F.adaptive_avg_pool2d(x, (max(1, h // self.factor), max(1, w // self.factor)))
        return F.interpolate(small, size=(h, w), mode="nearest") if self.upsample else small


class Pixelate(FixedEncoder):
    """Mosaic: every ``block x block`` tile (aligned at the top left; partial tiles at the borders
    are averaged over their own pixels) is replaced by its mean; optional colour quantisation to
    ``levels`` grey levels per channel."""

    def __init__(self, in_channels: int = 3, grey: bool = False, block: int = 8, levels: int | None = None):
        super().__init__(in_channels, grey)
        self.block, self.levels = int(block), levels

    def encode_frames(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        b = self.block
        tiles = F.avg_pool2d(x, b, stride=b, ceil_mode=True, count_include_pad=False)
        y = tiles.repeat_interleave(b, dim=-2).repeat_interleave(b, dim=-1)[..., :h, :w]
        if self.levels:
            q = self.levels - 1
            y = torch.round(y * q) / q
        return y


class GaussianBlur(FixedEncoder):
    """Gaussian blur with standard deviation ``sigma`` pixels (kernel radius ``ceil(3 sigma)``)."""

    def __init__(self, in_channels: int = 3, grey: bool = False, sigma: float = 2.0):
        super().__init__(in_channels, grey)
        self.sigma = float(sigma)
        self.radius = int(math.ceil(3 * self.sigma)) if self.sigma > 0 else 0
        # the taps of every channel, fixed: a kernel of known shape for the ONNX exporter (not saved
        # in the state dict, which stays empty)
        taps = gaussian_kernel1d(self.sigma, self.radius) if self.sigma > 0 else torch.ones(1)
        self.register_buffer("taps", taps.expand(in_channels, -1).contiguous(), persistent=False)

    def encode_frames(self, x: torch.Tensor) -> torch.Tensor:
        if self.sigma <= 0:
            return x
        if torch.jit.is_tracing():  # ONNX export, see traceable_separable_blur
            return traceable_separable_blur(x, self.taps)
        k = gaussian_kernel1d(self.sigma, self.radius, device=x.device, dtype=x.dtype)
        return separable_blur(x, k)


class Greyscale(FixedEncoder):
    """Luminance replicated over the input's channels (one channel with ``grey``)."""

    def encode_frames(self, x: torch.Tensor) -> torch.Tensor:
        return luminance(x).expand(-1, x.shape[1], -1, -1)


class TemporalDiff(FixedEncoder):
    """Absolute difference of consecutive grey frames, times ``gain``, clamped to [0, 1]
    (``normalize``: divided by each clip's maximum instead). Frame 0 repeats frame 1's difference
    so that T is kept; the grey result is replicated over the input's channels. Images (and T = 1
    clips) carry no motion: they release zeros."""

    def __init__(self, in_channels: int = 3, grey: bool = False, gain: float = 1.0, normalize: bool = False):
        super().__init__(in_channels, grey)
        self.gain, self.normalize = float(gain), normalize

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.out_channels
        if x.dim() == 4 or x.shape[2] < 2:
            return torch.zeros_like(x[:, :1]).expand(*x[:, :1].shape[:1], c, *x.shape[2:]).contiguous()
        d = frame_difference(luminance(x)).abs()
        if self.normalize:
            d = d / d.flatten(1).amax(1).clamp_min(1e-6).reshape(-1, 1, 1, 1, 1)
        else:
            d = d * self.gain
        return d.clamp(0, 1).expand(-1, c, -1, -1, -1).contiguous()


# ----------------------------------------------------------------------------------------------
# region removal (motion mask / OpenCV detectors)


class Blacken(FixedEncoder):
    """Black out the person region (``fill`` value) found by background subtraction on clips; on
    images by the HOG people detector, else a centre box (see the module docstring)."""

    def __init__(self, in_channels: int = 3, grey: bool = False, threshold: float = 0.1, dilate: int = 3,
                 fill: float = 0.0, detect_size: int = 128):
        super().__init__(in_channels, grey)
        self.threshold, self.dilate, self.fill = threshold, dilate, fill
        self._hog = _Detector("body", detect_size)

    def _image_mask(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            masks = _detect_masks(x, self._hog, 0, 1)
        h, w = x.shape[-2:]
        masks = np.stack([m if m.any() else centre_box_mask(h, w) for m in masks])
        return torch.from_numpy(masks).to(device=x.device, dtype=x.dtype).unsqueeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            m = self._image_mask(x)
        else:
            with torch.no_grad():
                m = motion_mask(x, self.threshold, self.dilate)
        return self._grey((x * (1 - m) + self.fill * m).clamp(0, 1))


class FaceObfuscation(FixedEncoder):
    """Detect frontal faces with OpenCV's Haar cascade and blacken (``mode="crop"``) or blur
    (``mode="blur"``) them, frame by frame."""

    def __init__(self, in_channels: int = 3, grey: bool = False, mode: str = "crop", detect_size: int = 128,
                 detect_every: int = 1, margin: float = 0.1):
        super().__init__(in_channels, grey)
        if mode not in ("crop", "blur"):
            raise ValueError(f"face obfuscation mode must be 'crop' or 'blur', got {mode!r}")
        self.mode, self.detect_every, self.margin = mode, detect_every, margin
        self._det = _Detector("face", detect_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import cv2

        f, t = fold_frames(x)
        with torch.no_grad():
            imgs = _to_uint8(f)
            out = imgs.copy()
            n, h, w, _ = imgs.shape
            boxes: list = []
            changed = False
            for i in range(n):
                if ((i % t) if t else 0) % max(1, self.detect_every) == 0:
                    boxes = self._det(_grey_u8(imgs[i]))
                for x0, y0, bw, bh in boxes:
                    mx, my = int(self.margin * bw), int(self.margin * bh)
                    xa, ya = max(0, x0 - mx), max(0, y0 - my)
                    xb, yb = min(w, x0 + bw + mx), min(h, y0 + bh + my)
                    if xb <= xa or yb <= ya:
                        continue
                    changed = True
                    if self.mode == "crop":
                        out[i, ya:yb, xa:xb] = 0
                    else:
                        roi = np.ascontiguousarray(imgs[i, ya:yb, xa:xb])
                        sig = max(1.0, max(xb - xa, yb - ya) / 4.0)
                        blurred = cv2.GaussianBlur(roi, (0, 0), sig, borderType=cv2.BORDER_REPLICATE)
                        out[i, ya:yb, xa:xb] = blurred.reshape(roi.shape)
            if not changed:  # nothing detected: release the input exactly (no uint8 rounding)
                return self._grey(x.clamp(0, 1))
            y = torch.from_numpy(out).permute(0, 3, 1, 2).to(device=x.device, dtype=x.dtype) / 255.0
            # keep the exact input where nothing was changed
            keep = torch.from_numpy((out == imgs).all(axis=3)).to(x.device).unsqueeze(1)
            y = torch.where(keep, f, y)
        return self._grey(unfold_frames(y, t).clamp(0, 1))


class BodyCrop(FixedEncoder):
    """Blacken the people found by OpenCV's HOG detector; clip frames without a detection fall back
    to the motion mask, images to the centre box (``fallback="none"``: unchanged)."""

    def __init__(self, in_channels: int = 3, grey: bool = False, detect_size: int = 256, detect_every: int = 1,
                 fallback: str = "motion", threshold: float = 0.1, dilate: int = 3):
        super().__init__(in_channels, grey)
        if fallback not in ("motion", "none"):
            raise ValueError(f"body_crop fallback must be 'motion' or 'none', got {fallback!r}")
        self.detect_every, self.fallback = detect_every, fallback
        self.threshold, self.dilate = threshold, dilate
        self._hog = _Detector("body", detect_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f, t = fold_frames(x)
        h, w = f.shape[-2:]
        with torch.no_grad():
            masks = torch.from_numpy(_detect_masks(f, self._hog, t, self.detect_every))
            masks = masks.to(device=x.device, dtype=x.dtype).unsqueeze(1)  # [N,1,H,W]
            if t:
                m = unfold_frames(masks, t)  # [B,1,T,H,W]
                if self.fallback == "motion":
                    empty = m.flatten(3).amax(3) == 0  # [B,1,T]: frames where HOG found nobody
                    if bool(empty.any()):
                        log.debug("body_crop: HOG found nobody in %d of %d frames; using the motion mask",
                                  int(empty.sum()), empty.numel())
                        m = torch.where(empty[..., None, None], motion_mask(x, self.threshold, self.dilate), m)
            else:
                m = masks
                if self.fallback == "motion":
                    empty = m.flatten(1).amax(1) == 0
                    if bool(empty.any()):
                        box = torch.from_numpy(centre_box_mask(h, w)).to(device=x.device, dtype=x.dtype)
                        m[empty] = box
        return self._grey((x * (1 - m)).clamp(0, 1))


# ----------------------------------------------------------------------------------------------
# BDQ: blur, difference, quantise (learnable)


class BDQ(Encoder):
    """BDQ encoder f_d (ECCV 2022): Gaussian blur with a learnable sigma per channel, difference of
    consecutive blurred frames, and a differentiable quantiser with learnable bin thresholds.

    The signed difference ``d`` in [-1, 1] is mapped to ``u = (d + 1) / 2``; the quantiser is the
    soft staircase ``q(u) = mean_i sigmoid((u - b_i) / temperature)`` over ``levels - 1`` thresholds
    ``b_i`` (initialised uniformly in (0, 1)), so the release lies in [0, 1] (``hard=True``: a hard
    staircase in the forward pass with the soft gradient, straight-through). Frame 0 repeats frame
    1's difference so that T is kept. Images (and T = 1 clips) skip the difference and quantise
    the blurred frame itself.

    Args:
        sigma_init: initial blur sigma (pixels) of every channel.
        kernel_size: blur taps (odd).
        levels: quantisation levels.
        temperature: softness of each step of the staircase.
    """

    trainable = True
    releases = "image"

    def __init__(self, in_channels: int = 3, grey: bool = False, sigma_init: float = 1.0, kernel_size: int = 5,
                 levels: int = 16, temperature: float = 0.02, hard: bool = False):
        super().__init__(in_channels, grey)
        self.out_channels = 1 if grey else in_channels
        if kernel_size % 2 == 0:
            raise ValueError(f"bdq kernel_size must be odd, got {kernel_size}")
        self.kernel_size, self.temperature, self.hard = kernel_size, temperature, hard
        self.sigma = nn.Parameter(torch.full((in_channels,), float(sigma_init)))
        self.bins = nn.Parameter((torch.arange(1, levels, dtype=torch.float32) - 0.5) / (levels - 1))

    def blur(self, f: torch.Tensor) -> torch.Tensor:
        k = gaussian_kernel1d(self.sigma.clamp_min(0.1), self.kernel_size // 2)
        return separable_blur(f, k.to(f.dtype))

    def quantise(self, u: torch.Tensor) -> torch.Tensor:
        shape = [1] * u.dim() + [-1]
        steps = torch.sigmoid((u.unsqueeze(-1) - self.bins.reshape(shape).to(u.dtype)) / self.temperature)
        soft = steps.mean(-1)
        if not self.hard:
            return soft
        hard = (u.unsqueeze(-1) >= self.bins.reshape(shape)).to(u.dtype).mean(-1)
        return soft + (hard - soft).detach()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f, t = fold_frames(x)
        b = unfold_frames(self.blur(f), t)
        if t >= 2:
            u = (frame_difference(b) + 1) / 2
        else:
            u = b
        return self._grey(self.quantise(u.clamp(0, 1)))


# ----------------------------------------------------------------------------------------------
# registration


def _maybe_load(enc: Encoder, weights: str | None) -> Encoder:
    if weights:
        from .common import load_weights

        load_weights(enc, weights, what="encoder weights", keep="strict")
    return enc


#: what the fixed baselines' parameters may be (checked by the registry before one is built: one line,
#: never a traceback or a blur kernel that fills the memory); sigma above 64 pixels blurs any frame flat
_BLUR_RULES = {"sigma": Range(0, 64)}
_DETECT_SIZE = Range(16, 4096, integer=True)
_FACE_RULES = {"detect_size": _DETECT_SIZE, "detect_every": Range(1, integer=True), "margin": Range(0, 1)}


@register_encoder("downsample", rules={"factor": Range(1, integer=True)})
def downsample(in_channels: int = 3, grey: bool = False, factor: int = 4, upsample: bool = True) -> Encoder:
    """Area downsampling by ``factor``, nearest-upsampled back to the input size."""
    return Downsample(in_channels, grey, factor, upsample)


@register_encoder("pixelate", rules={"block": Range(1, integer=True), "levels": Range(2, integer=True)})
def pixelate(in_channels: int = 3, grey: bool = False, block: int = 8, levels: int | None = None) -> Encoder:
    """Mosaic of ``block x block`` tiles (optionally ``levels`` colour levels)."""
    return Pixelate(in_channels, grey, block, levels)


@register_encoder("blur", rules=_BLUR_RULES)
def blur(in_channels: int = 3, grey: bool = False, sigma: float = 2.0) -> Encoder:
    """Gaussian blur, standard deviation ``sigma`` pixels."""
    return GaussianBlur(in_channels, grey, sigma)


@register_encoder("blur_weak", rules=_BLUR_RULES)
def blur_weak(in_channels: int = 3, grey: bool = False, sigma: float = 1.0) -> Encoder:
    """Gaussian blur with sigma 1."""
    return GaussianBlur(in_channels, grey, sigma)


@register_encoder("blur_strong", rules=_BLUR_RULES)
def blur_strong(in_channels: int = 3, grey: bool = False, sigma: float = 3.0) -> Encoder:
    """Gaussian blur with sigma 3."""
    return GaussianBlur(in_channels, grey, sigma)


@register_encoder("greyscale")
def greyscale(in_channels: int = 3, grey: bool = False) -> Encoder:
    """Luminance only (replicated over channels unless ``grey``)."""
    return Greyscale(in_channels, grey)


@register_encoder("temporal_diff", rules={"gain": Range(0)})
def temporal_diff(in_channels: int = 3, grey: bool = False, gain: float = 1.0, normalize: bool = False) -> Encoder:
    """Absolute difference of consecutive grey frames (zeros for images)."""
    return TemporalDiff(in_channels, grey, gain, normalize)


@register_encoder("blacken", rules={"threshold": Range(0, 1), "dilate": Range(0, integer=True), "fill": Range(0, 1), "detect_size": _DETECT_SIZE})
def blacken(in_channels: int = 3, grey: bool = False, threshold: float = 0.1, dilate: int = 3,
            fill: float = 0.0, detect_size: int = 128) -> Encoder:
    """Black out the moving person (temporal-median background subtraction; images: HOG / centre box)."""
    return Blacken(in_channels, grey, threshold, dilate, fill, detect_size)


@register_encoder("face_crop", rules=_FACE_RULES)
def face_crop(in_channels: int = 3, grey: bool = False, detect_size: int = 128, detect_every: int = 1,
              margin: float = 0.1) -> Encoder:
    """Blacken the faces found by OpenCV's frontal-face Haar cascade."""
    return FaceObfuscation(in_channels, grey, "crop", detect_size, detect_every, margin)


@register_encoder("face_blur", rules=_FACE_RULES)
def face_blur(in_channels: int = 3, grey: bool = False, detect_size: int = 128, detect_every: int = 1,
              margin: float = 0.1) -> Encoder:
    """Blur the faces found by OpenCV's frontal-face Haar cascade."""
    return FaceObfuscation(in_channels, grey, "blur", detect_size, detect_every, margin)


@register_encoder("body_crop", rules={"detect_size": _DETECT_SIZE, "detect_every": Range(1, integer=True), "fallback": OneOf(("motion", "none")), "threshold": Range(0, 1), "dilate": Range(0, integer=True)})
def body_crop(in_channels: int = 3, grey: bool = False, detect_size: int = 256, detect_every: int = 1,
              fallback: str = "motion", threshold: float = 0.1, dilate: int = 3) -> Encoder:
    """Blacken the people found by OpenCV's HOG detector (fallback: motion mask / centre box)."""
    return BodyCrop(in_channels, grey, detect_size, detect_every, fallback, threshold, dilate)


@register_encoder("bdq", rules={"sigma_init": Range(0, lo_open=True), "kernel_size": Range(1, integer=True), "levels": Range(2, integer=True), "temperature": Range(0, lo_open=True)})
def bdq(in_channels: int = 3, grey: bool = False, sigma_init: float = 1.0, kernel_size: int = 5,
        levels: int = 16, temperature: float = 0.02, hard: bool = False, weights: str | None = None) -> Encoder:
    """Learnable Blur-Difference-Quantisation encoder (BDQ)."""
    return _maybe_load(BDQ(in_channels, grey, sigma_init, kernel_size, levels, temperature, hard), weights)


BASELINES = ("downsample", "pixelate", "blur", "blur_weak", "blur_strong", "greyscale", "temporal_diff",
             "blacken", "face_crop", "face_blur", "body_crop", "bdq")
