"""Unseen attackers of the audit: models retrained from scratch on E(X_train) to predict the
private labels, none of them a training adversary f_b (``small_cnn``, ``mobilenet_v2*``,
``resnet18`` in the adversary registry).

Three levels, given by the registry tag and by the module's ``level`` attribute:

- ``frame``: an image classifier applied to every frame, logits averaged over the clip
  (:class:`FrameAttacker`; ``frame_logits`` gives ``[B,T,K]`` for per-frame scoring).
- ``clip``: a small 3D CNN over the whole clip; an image is a clip with T = 1.
- ``probe``: linear / MLP classifiers on cheap clip summaries (mean frame, motion-energy image).
  The motion probe was the strongest attacker on frame-difference releases (FINDINGS.md).

Most models pool over space and time, which is enough to name a person or an action but keeps
little of *where* and *when* things happen, or how fast. Models for tasks of that kind (the task
pool, :mod:`privacam.evaluate.tasks`): ``c3d_grid`` (a 3D CNN that pools to a 4x4x4 grid, not to one
cell), ``grid_probe`` (a linear model on the clip pooled to 4 time steps of 8x8), ``energy_probe``
(motion energy over time: where and when the clip moves, how much, and its lag profile, which gives
the tempo whatever the phase); the classical ``tempo_*`` and ``shape_*`` attackers
(:mod:`privacam.evaluate.classical`) add the tempo alone and the figure's place and size.

Every factory has the signature ``fn(in_channels, num_classes, size=32, clip_len=16, ...,
weights=None)``; inputs may have any channel count (released feature maps included) and any
spatial size (``size`` only picks the stem: small inputs keep their resolution longer so that the
networks do not collapse to 1x1 early). ``weights`` loads a user-supplied state dict.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..models.common import FrameClassifier, load_weights
from ..registry import register_attacker
from .classical import lag_profile, motion_level

log = logging.getLogger(__name__)

#: A pool that trains in seconds per attacker at 32x32 on a CPU (the protocol's default choice).
DEFAULT_POOL = (
    "small_cnn_a",
    "resnet_tiny",
    "mobilenet_v3_a",
    "shufflenet_a",
    "densenet_a",
    "c3d_tiny",
    "r3d_tiny",
    "linear_probe",
    "motion_probe",
    "mlp_probe",
)


# ----------------------------------------------------------------------------------------------
# helpers


def _finish(model: nn.Module, level: str, weights: str | None) -> nn.Module:
    model.level = level
    if weights:  # another head (class count) or stem (channel count) than the file's: skipped, logged
        load_weights(model, weights, what="attacker weights", keep="fitting")
    return model


def _replace_conv(conv: nn.Conv2d, in_channels: int, stride: int | None = None,
                  kernel: int | None = None) -> nn.Conv2d:
    """A fresh copy of ``conv`` with another input channel count, stride or kernel size."""
    k = kernel or conv.kernel_size[0]
    s = stride if stride is not None else conv.stride[0]
    return nn.Conv2d(in_channels, conv.out_channels, k, s, k // 2, bias=conv.bias is not None)


def _to_clip(x: torch.Tensor) -> torch.Tensor:
    """Images ``[B,C,H,W]`` become clips with T = 1."""
    return x.unsqueeze(2) if x.dim() == 4 else x


class FrameAttacker(FrameClassifier):
    """Frame-level attacker: an image classifier per frame, logits averaged over the clip.

    Args:
        net: image classifier ``[N,C,H,W] -> [N,K]``.
        train_frames: if set, training batches use this many frames per clip (a random sorted
            subset, TSN-style sparse sampling) to save time; evaluation always uses every frame.
            The factories default to 4 (None: every frame, four times the cost at T = 16).
    """

    level = "frame"

    def __init__(self, net: nn.Module, train_frames: int | None = None, min_size: int = 1):
        super().__init__(net)
        self.train_frames = train_frames
        self.min_size = int(min_size)

    def frame_logits(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and self.train_frames and x.dim() == 5 and x.shape[2] > self.train_frames:
            idx = torch.randperm(x.shape[2], device=x.device)[: self.train_frames].sort().values
            x = x.index_select(2, idx)
        if min(x.shape[-2:]) < self.min_size:  # a release smaller than the network's pooling needs (a code, a
            # decision): repeat its pixels (nearest neighbour), which adds no information
            size = (max(self.min_size, x.shape[-2]), max(self.min_size, x.shape[-1]))
            x = F.interpolate(x, size=(x.shape[2], *size) if x.dim() == 5 else size, mode="nearest")
        return super().frame_logits(x)


# ----------------------------------------------------------------------------------------------
# frame level: hand-written small networks


class _SmallCNN(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, width: int, dropout: float):
        super().__init__()
        w = width

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout),
                                 nn.ReLU(inplace=True))

        self.b1, self.b2, self.b3 = block(in_channels, w), block(w, 2 * w), block(2 * w, 4 * w)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(4 * w, num_classes))

    @staticmethod
    def _pool(x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(x, 2) if min(x.shape[-2:]) >= 2 else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._pool(self.b1(x))
        x = self._pool(self.b2(x))
        x = self.b3(x)
        return self.head(F.adaptive_avg_pool2d(x, 1))


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, dims: int = 2):
        super().__init__()
        conv = nn.Conv2d if dims == 2 else nn.Conv3d
        bn = nn.BatchNorm2d if dims == 2 else nn.BatchNorm3d
        self.c1, self.n1 = conv(cin, cout, 3, stride, 1, bias=False), bn(cout)
        self.c2, self.n2 = conv(cout, cout, 3, 1, 1, bias=False), bn(cout)
        self.short = (nn.Sequential(conv(cin, cout, 1, stride, bias=False), bn(cout))
                      if stride != 1 or cin != cout else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.n1(self.c1(x)), inplace=True)
        return F.relu(self.n2(self.c2(y)) + self.short(x), inplace=True)


class _ResNetTiny(nn.Module):
    """CIFAR-style ResNet-8 (three stages of one basic block, widths w, 2w, 4w)."""

    def __init__(self, in_channels: int, num_classes: int, width: int, size: int):
        super().__init__()
        stem_stride = 1 if size <= 16 else 2
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, stem_stride, 1, bias=False),
                                  nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        self.layers = nn.Sequential(_BasicBlock(width, width, 1), _BasicBlock(width, 2 * width, 2),
                                    _BasicBlock(2 * width, 4 * width, 2))
        self.fc = nn.Linear(4 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


@register_attacker("small_cnn_a", tags=("frame",))
def small_cnn_a(in_channels: int, num_classes: int, size: int = 32, clip_len: int = 16,
                width: int = 16, dropout: float = 0.2, train_frames: int | None = 4,
                weights: str | None = None) -> nn.Module:
    """Three conv-BN-ReLU blocks (widths 16-32-64) with max-pooling, global average pool, linear."""
    net = _SmallCNN(in_channels, num_classes, width, dropout)
    return _finish(FrameAttacker(net, train_frames), "frame", weights)


@register_attacker("resnet_tiny", tags=("frame",))
def resnet_tiny(in_channels: int, num_classes: int, size: int = 32, clip_len: int = 16,
                width: int = 16, train_frames: int | None = 4,
                weights: str | None = None) -> nn.Module:
    """CIFAR-style ResNet-8, widths 16-32-64 by default; stem stride 1 up to 16x16 inputs, 2 above
    (total stride 8: 4x4 at the last stage for 32x32)."""
    net = _ResNetTiny(in_channels, num_classes, width, size)
    return _finish(FrameAttacker(net, train_frames), "frame", weights)


# ----------------------------------------------------------------------------------------------
# frame level: torchvision architectures built fresh (no downloaded weights)


@register_attacker("resnet18_a", tags=("frame",))
def resnet18_a(in_channels: int, num_classes: int, size: int = 32, clip_len: int = 16,
               train_frames: int | None = 4, weights: str | None = None) -> nn.Module:
    """torchvision ResNet-18 from scratch. Up to 64x64 inputs the 7x7 stem becomes 3x3 stride 2
    and the max-pool is removed (total stride 16: 2x2 at layer 4 for 32x32). 11 M parameters: the
    heaviest of the pool, left out of :data:`DEFAULT_POOL`."""
    from torchvision.models import resnet18

    net = resnet18(weights=None, num_classes=num_classes)
    if size <= 64:
        net.conv1 = _replace_conv(net.conv1, in_channels, stride=2, kernel=3)
        net.maxpool = nn.Identity()
    else:
        net.conv1 = _replace_conv(net.conv1, in_channels)
    return _finish(FrameAttacker(net, train_frames), "frame", weights)


@register_attacker("mobilenet_v3_a", tags=("frame",))
def mobilenet_v3_a(in_channels: int, num_classes: int, size: int = 32, clip_len: int = 16,
                   width_mult: float = 0.5, train_frames: int | None = 4,
                   weights: str | None = None) -> nn.Module:
    """torchvision MobileNetV3-Small (width 0.5) from scratch; stem stride 1 up to 64x64 inputs
    (total stride 16)."""
    from torchvision.models import mobilenet_v3_small

    net = mobilenet_v3_small(weights=None, num_classes=num_classes, width_mult=width_mult)
    stem = net.features[0][0]
    net.features[0][0] = _replace_conv(stem, in_channels, stride=1 if size <= 64 else 2)
    return _finish(FrameAttacker(net, train_frames), "frame", weights)


@register_attacker("shufflenet_a", tags=("frame",))
def shufflenet_a(in_channels: int, num_classes: int, size: int = 32, clip_len: int = 16,
                 train_frames: int | None = 4, weights: str | None = None) -> nn.Module:
    """torchvision ShuffleNetV2 x0.5 from scratch; up to 64x64 inputs the max-pool is removed
    (total stride 16: 2x2 at the last stage for 32x32) and up to 16x16 the stem has stride 1."""
    from torchvision.models import shufflenet_v2_x0_5

    net = shufflenet_v2_x0_5(weights=None, num_classes=num_classes)
    conv = net.conv1[0]
    if size <= 64:
        net.conv1[0] = _replace_conv(conv, in_channels, stride=1 if size <= 16 else 2)
        net.maxpool = nn.Identity()
    else:
        net.conv1[0] = _replace_conv(conv, in_channels)
    return _finish(FrameAttacker(net, train_frames), "frame", weights)


@register_attacker("regnet_a", tags=("frame",))
def regnet_a(in_channels: int, num_classes: int, size: int = 32, clip_len: int = 16,
             train_frames: int | None = 4, weights: str | None = None) -> nn.Module:
    """torchvision RegNet with the published RegNetX-200MF design (depth 13, w0 24, wa 36.44,
    wm 2.49, group width 8) from scratch; stem stride 1 up to 64x64 inputs (total stride 16)."""
    from torchvision.models.regnet import BlockParams, RegNet

    params = BlockParams.from_init_params(depth=13, w_0=24, w_a=36.44, w_m=2.49, group_width=8)
    net = RegNet(params, num_classes=num_classes)
    net.stem[0] = _replace_conv(net.stem[0], in_channels, stride=1 if size <= 64 else 2)
    return _finish(FrameAttacker(net, train_frames), "frame", weights)


@register_attacker("densenet_a", tags=("frame",))
def densenet_a(in_channels: int, num_classes: int, size: int = 32, clip_len: int = 16,
               growth_rate: int = 12, block_config: tuple[int, ...] = (4, 4, 4),
               train_frames: int | None = 4, weights: str | None = None) -> nn.Module:
    """A small torchvision DenseNet (growth 12, blocks 4-4-4, 24 initial features) from scratch.
    Up to 64x64 inputs the stem is a 3x3 conv without max-pool, stride 1 up to 16x16 and stride 2
    above (dense blocks at full 32x32 resolution cost seconds per batch on a CPU)."""
    from torchvision.models import DenseNet

    net = DenseNet(growth_rate=growth_rate, block_config=tuple(block_config), num_init_features=24,
                   num_classes=num_classes)
    if size <= 64:
        net.features.conv0 = _replace_conv(net.features.conv0, in_channels, stride=1 if size <= 16 else 2,
                                           kernel=3)
        net.features.pool0 = nn.Identity()
    else:
        net.features.conv0 = _replace_conv(net.features.conv0, in_channels)
    return _finish(FrameAttacker(net, train_frames, min_size=4), "frame", weights)  # two 2x2 average pools


# ----------------------------------------------------------------------------------------------
# clip level: small 3D CNNs (images are clips with T = 1)


def _pool3d(x: torch.Tensor, time: bool = True) -> torch.Tensor:
    """2x max-pooling that never pools a dimension that is already 1."""
    k = (2 if time and x.shape[2] >= 2 else 1, 2 if x.shape[3] >= 2 else 1, 2 if x.shape[4] >= 2 else 1)
    return F.max_pool3d(x, k) if max(k) > 1 else x


class ClipAttacker(nn.Module):
    """Base of clip-level attackers: accepts clips ``[B,C,T,H,W]`` and images (T = 1)."""

    level = "clip"

    def features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(torch.flatten(F.adaptive_avg_pool3d(self.features(_to_clip(x)), 1), 1)))


class _C3DGrid(ClipAttacker):
    """A 3D CNN without global pooling: conv-BN-ReLU layers, then an average pool to a fixed
    ``grid`` (time x height x width) whose cells keep their place in the linear head."""

    def __init__(self, in_channels: int, num_classes: int, width: int, size: int, dropout: float,
                 grid: tuple[int, int, int]):
        super().__init__()
        w = width
        s = 2 if size >= 32 else 1
        self.c1 = nn.Sequential(nn.Conv3d(in_channels, w, 3, (1, s, s), 1, bias=False), nn.BatchNorm3d(w),
                                nn.ReLU(inplace=True))
        self.c2 = nn.Sequential(nn.Conv3d(w, 2 * w, 3, 1, 1, bias=False), nn.BatchNorm3d(2 * w), nn.ReLU(inplace=True))
        self.c3 = nn.Sequential(nn.Conv3d(2 * w, 2 * w, 3, 1, 1, bias=False), nn.BatchNorm3d(2 * w),
                                nn.ReLU(inplace=True))
        self.grid = tuple(int(g) for g in grid)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(2 * w * self.grid[0] * self.grid[1] * self.grid[2], num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = _pool3d(self.c1(x), time=False)
        x = _pool3d(self.c2(x), time=False)
        return self.c3(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(torch.flatten(F.adaptive_avg_pool3d(self.features(_to_clip(x)), self.grid), 1)))


class _C3DTiny(ClipAttacker):
    def __init__(self, in_channels: int, num_classes: int, width: int, size: int, dropout: float):
        super().__init__()
        w = width
        # at 32x32 and above the first conv already halves the frame: keeps 3D convs cheap on CPU
        s = 2 if size >= 32 else 1
        self.c1 = nn.Sequential(nn.Conv3d(in_channels, w, 3, (1, s, s), 1, bias=False),
                                nn.BatchNorm3d(w), nn.ReLU(inplace=True))
        self.c2 = nn.Sequential(nn.Conv3d(w, 2 * w, 3, 1, 1, bias=False), nn.BatchNorm3d(2 * w),
                                nn.ReLU(inplace=True))
        self.c3 = nn.Sequential(nn.Conv3d(2 * w, 4 * w, 3, 1, 1, bias=False), nn.BatchNorm3d(4 * w),
                                nn.ReLU(inplace=True))
        self.c4 = nn.Sequential(nn.Conv3d(4 * w, 4 * w, 3, 1, 1, bias=False), nn.BatchNorm3d(4 * w),
                                nn.ReLU(inplace=True))
        self.drop, self.fc = nn.Dropout(dropout), nn.Linear(4 * w, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = _pool3d(self.c1(x), time=False)
        x = _pool3d(self.c2(x))
        x = _pool3d(self.c3(x))
        return self.c4(x)


class _R3DTiny(ClipAttacker):
    def __init__(self, in_channels: int, num_classes: int, width: int, size: int, dropout: float):
        super().__init__()
        w = width
        s = 2 if size >= 32 else 1
        self.stem = nn.Sequential(nn.Conv3d(in_channels, w, (3, 5, 5), (1, s, s), (1, 2, 2), bias=False),
                                  nn.BatchNorm3d(w), nn.ReLU(inplace=True))
        self.layers = nn.Sequential(_BasicBlock(w, w, 1, dims=3), _BasicBlock(w, 2 * w, 2, dims=3),
                                    _BasicBlock(2 * w, 4 * w, 2, dims=3))
        self.drop, self.fc = nn.Dropout(dropout), nn.Linear(4 * w, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(self.stem(x))


@register_attacker("c3d_tiny", tags=("clip",))
def c3d_tiny(in_channels: int, num_classes: int, size: int = 32, clip_len: int = 16,
             width: int = 16, dropout: float = 0.2, weights: str | None = None) -> nn.Module:
    """C3D-style 3D CNN: four 3x3x3 conv-BN-ReLU layers (widths 16-32-64-64), max-pooling, global
    pool, linear. Pools never shrink a dimension below 1 (so T = 1 images and 4-frame clips work)."""
    return _finish(_C3DTiny(in_channels, num_classes, width, size, dropout), "clip", weights)


@register_attacker("r3d_tiny", tags=("clip",))
def r3d_tiny(in_channels: int, num_classes: int, size: int = 32, clip_len: int = 16,
             width: int = 16, dropout: float = 0.2, weights: str | None = None) -> nn.Module:
    """3D ResNet: a 3x5x5 stem and three residual stages of one 3D basic block (16-32-64),
    the last two with stride 2 in time and space."""
    return _finish(_R3DTiny(in_channels, num_classes, width, size, dropout), "clip", weights)


@register_attacker("c3d_grid", tags=("clip",))
def c3d_grid(in_channels: int, num_classes: int, size: int = 32, clip_len: int = 16,
             width: int = 16, dropout: float = 0.2, grid: tuple[int, int, int] = (4, 4, 4),
             weights: str | None = None) -> nn.Module:
    """3D CNN without global pooling: three 3x3x3 conv-BN-ReLU layers (widths 16-32-32, space halved
    twice, time kept), average-pooled to a 4x4x4 grid (time x height x width) read by a linear
    layer, so it keeps where and when things happen (a globally pooled network cannot tell left
    from right)."""
    return _finish(_C3DGrid(in_channels, num_classes, width, size, dropout, grid), "clip", weights)


# ----------------------------------------------------------------------------------------------
# probes: linear / MLP classifiers on cheap clip summaries


def mean_frame(x: torch.Tensor) -> torch.Tensor:
    """Clip-averaged frame ``[B,C,H,W]`` (images as they are)."""
    return x.mean(dim=2) if x.dim() == 5 else x


def motion_energy(x: torch.Tensor) -> torch.Tensor:
    """Motion-energy image: clip average of ``|x_{t+1} - x_t|`` (time order discarded), ``[B,C,H,W]``.
    Images and single-frame clips have no motion: the frame itself is returned."""
    if x.dim() == 5 and x.shape[2] >= 2:
        return (x[:, :, 1:] - x[:, :, :-1]).abs().mean(dim=2)
    return mean_frame(x)


class Probe(nn.Module):
    """Linear or MLP classifier on summaries of the clip pooled to ``probe_size x probe_size``.

    The summaries are standardised by a non-affine batch norm (fixed statistics at evaluation, so
    the linear probe stays linear: logistic regression on standardised features).
    """

    level = "probe"

    def __init__(self, summaries: tuple[Callable[[torch.Tensor], torch.Tensor], ...], in_channels: int,
                 num_classes: int, probe_size: int, hidden: int = 0, dropout: float = 0.0):
        super().__init__()
        self.summaries = summaries
        self.probe_size = probe_size
        d = len(summaries) * in_channels * probe_size * probe_size
        self.norm = nn.BatchNorm1d(d, affine=False)
        if hidden:
            self.head = nn.Sequential(nn.Linear(d, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
                                      nn.Linear(hidden, num_classes))
        else:
            self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(d, num_classes))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        p = self.probe_size
        return torch.cat([F.adaptive_avg_pool2d(s(x), p).flatten(1) for s in self.summaries], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.embed(x)))


@register_attacker("linear_probe", tags=("probe",))
def linear_probe(in_channels: int, num_classes: int, size: int = 32, clip_len: int = 16,
                 probe_size: int = 8, weights: str | None = None) -> nn.Module:
    """Linear classifier on the clip-averaged frame, average-pooled to ``probe_size`` squared."""
    return _finish(Probe((mean_frame,), in_channels, num_classes, probe_size), "probe", weights)


@register_attacker("motion_probe", tags=("probe",))
def motion_probe(in_channels: int, num_classes: int, size: int = 32, clip_len: int = 16,
                 probe_size: int = 8, weights: str | None = None) -> nn.Module:
    """Linear classifier on the motion-energy image (clip mean of absolute temporal differences)
    pooled to ``probe_size`` squared; on images, on the frame itself."""
    return _finish(Probe((motion_energy,), in_channels, num_classes, probe_size), "probe", weights)


class FeatureProbe(nn.Module):
    """Linear classifier on a fixed-length feature vector of the clip (``featurize``: ``[B,...] ->
    [B,D]``), standardised by a non-affine batch norm as in :class:`Probe`."""

    level = "probe"

    def __init__(self, featurize: Callable[[torch.Tensor], torch.Tensor], dim: int, num_classes: int):
        super().__init__()
        self.featurize = featurize
        self.norm = nn.BatchNorm1d(dim, affine=False)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.featurize(x)))


def clip_grid(x: torch.Tensor, steps: int = 4, cells: int = 8) -> torch.Tensor:
    """The clip average-pooled to ``steps`` time steps of ``cells x cells`` (images: one step,
    repeated), flattened: ``[B, C * steps * cells^2]``."""
    x = _to_clip(x)
    return F.adaptive_avg_pool3d(x, (steps, cells, cells)).flatten(1)


def energy_over_time(x: torch.Tensor, steps: int = 4, cells: int = 4, bands: int = 16) -> torch.Tensor:
    """Where and when a clip moves, how much and at what tempo: the absolute temporal differences
    ``|x_{t+1} - x_t|`` pooled to ``steps x cells x cells`` per channel, their level
    (:func:`motion_level`) and the :func:`lag_profile`. Images have no motion (zeros).
    Returns ``[B, C * (steps * cells^2 + 1 + bands)]``."""
    x = _to_clip(x)
    b, c = x.shape[:2]
    if x.shape[2] < 2:
        grid = x.new_zeros(b, c * steps * cells * cells)
    else:
        grid = F.adaptive_avg_pool3d((x[:, :, 1:] - x[:, :, :-1]).abs(), (steps, cells, cells)).flatten(1)
    return torch.cat([grid, motion_level(x), lag_profile(x, bands)], 1)


@register_attacker("grid_probe", tags=("probe",))
def grid_probe(in_channels: int, num_classes: int, size: int = 32, clip_len: int = 16,
               steps: int = 4, cells: int = 8, weights: str | None = None) -> nn.Module:
    """Linear classifier on the clip average-pooled to ``steps`` time steps of ``cells`` squared
    pixels: where and when the release shows what."""
    probe = FeatureProbe(partial(clip_grid, steps=steps, cells=cells), in_channels * steps * cells * cells, num_classes)
    return _finish(probe, "probe", weights)


@register_attacker("energy_probe", tags=("probe",))
def energy_probe(in_channels: int, num_classes: int, size: int = 32, clip_len: int = 16,
                 steps: int = 4, cells: int = 4, bands: int = 16, weights: str | None = None) -> nn.Module:
    """Linear classifier on motion energy over time (:func:`energy_over_time`): where and when the
    clip moves, how much, and its tempo."""
    dim = in_channels * (steps * cells * cells + 1 + bands)
    probe = FeatureProbe(partial(energy_over_time, steps=steps, cells=cells, bands=bands), dim, num_classes)
    return _finish(probe, "probe", weights)


@register_attacker("mlp_probe", tags=("probe",))
def mlp_probe(in_channels: int, num_classes: int, size: int = 32, clip_len: int = 16,
              probe_size: int = 8, hidden: int = 256, dropout: float = 0.3,
              weights: str | None = None) -> nn.Module:
    """One-hidden-layer MLP on the mean frame and the motion-energy image, both pooled to
    ``probe_size`` squared."""
    probe = Probe((mean_frame, motion_energy), in_channels, num_classes, probe_size, hidden, dropout)
    return _finish(probe, "probe", weights)


__all__ = [
    "DEFAULT_POOL",
    "FrameAttacker",
    "ClipAttacker",
    "FeatureProbe",
    "Probe",
    "clip_grid",
    "energy_over_time",
    "mean_frame",
    "motion_energy",
]
