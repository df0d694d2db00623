"""Utility models f_T: the task the released data must still serve.

Video: ``c3d`` (the paper's C3D: 8 conv3d layers 64-128-256-256-512-512-512-512, fc 4096-4096, for
16x112x112), ``small3d`` (a 4-layer 3D CNN for CPUs), torchvision's ``r3d_18``, ``r2plus1d_18`` and
``mc3_18`` built from scratch. Images: ``small_cnn_image``, ``resnet18_image``. Codes (CPGAN):
``code_mlp``. Decisions: ``decision_readout`` (no parameters). All map a batch to logits ``[B, num_classes]``; video models accept images as
one-frame clips.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import resnet18
from torchvision.models.video import mc3_18, r2plus1d_18, r3d_18

from ..registry import register_utility
from .common import conv_bn_relu, fold_frames


class _AsClip(nn.Module):
    """Let a video model take images ([B,C,H,W] -> [B,C,1,H,W]) and any channel count."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x.unsqueeze(2) if x.dim() == 4 else x)


class C3D(nn.Module):
    """C3D (Tran et al.), as used for f_T by Wu et al.; ``width`` scales every layer."""

    def __init__(self, in_channels: int, num_classes: int, width: float = 1.0, fc: int = 4096, dropout: float = 0.5):
        super().__init__()
        c = [max(8, int(v * width)) for v in (64, 128, 256, 256, 512, 512, 512, 512)]
        def conv(i, o):
            return [nn.Conv3d(i, o, 3, 1, 1), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(
            *conv(in_channels, c[0]), nn.MaxPool3d((1, 2, 2), ceil_mode=True),
            *conv(c[0], c[1]), nn.MaxPool3d(2, ceil_mode=True),
            *conv(c[1], c[2]), *conv(c[2], c[3]), nn.MaxPool3d(2, ceil_mode=True),
            *conv(c[3], c[4]), *conv(c[4], c[5]), nn.MaxPool3d(2, ceil_mode=True),
            *conv(c[5], c[6]), *conv(c[6], c[7]), nn.MaxPool3d(2, ceil_mode=True),
        )
        self.pool = nn.AdaptiveAvgPool3d((1, 3, 3))
        fcw = max(32, int(fc * width))
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(c[7] * 9, fcw), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(fcw, fcw), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(fcw, num_classes),
        )

    def forward(self, x):
        return self.head(self.pool(self.features(x)))


class Small3D(nn.Module):
    """A 4-layer 3D CNN: fast enough for CPU training at 32x32-64x64."""

    def __init__(self, in_channels: int, num_classes: int, width: int = 16, dropout: float = 0.2):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            conv_bn_relu(in_channels, w, dims=3), nn.MaxPool3d((1, 2, 2), ceil_mode=True),  # a 1x1 release stays 1x1
            conv_bn_relu(w, 2 * w, dims=3), nn.MaxPool3d(2, ceil_mode=True),
            conv_bn_relu(2 * w, 4 * w, dims=3), nn.MaxPool3d(2, ceil_mode=True),
            conv_bn_relu(4 * w, 4 * w, dims=3), nn.AdaptiveAvgPool3d(1),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(4 * w, num_classes))

    def forward(self, x):
        return self.head(self.features(x))


def _video_resnet(ctor, in_channels: int, num_classes: int, size: int) -> nn.Module:
    net = ctor(weights=None, num_classes=num_classes)
    stem = net.stem[0]
    stride = stem.stride if size >= 64 else (1, 1, 1)
    net.stem[0] = nn.Conv3d(in_channels, stem.out_channels, stem.kernel_size, stride, stem.padding, bias=False)
    return net


@register_utility("c3d")
def c3d(in_channels: int = 3, num_classes: int = 2, size: int = 112, clip_len: int = 16, width: float = 1.0, fc: int = 4096) -> nn.Module:
    """The paper's f_T: C3D (Tran et al.); ``width`` scales every layer (1.0 = 64-...-512, fc 4096)."""
    return _AsClip(C3D(in_channels, num_classes, width, fc))


@register_utility("small3d")
def small3d(in_channels: int = 3, num_classes: int = 2, size: int = 32, clip_len: int = 16, width: int = 16) -> nn.Module:
    """A 4-layer 3D CNN f_T, fast enough for CPU training at 32x32-64x64."""
    return _AsClip(Small3D(in_channels, num_classes, width))


@register_utility("r3d_18")
def r3d18(in_channels: int = 3, num_classes: int = 2, size: int = 112, clip_len: int = 16) -> nn.Module:
    """torchvision's R3D-18 f_T, from scratch (stem without stride below 64 px)."""
    return _AsClip(_video_resnet(r3d_18, in_channels, num_classes, size))


@register_utility("r2plus1d_18")
def r2plus1d18(in_channels: int = 3, num_classes: int = 2, size: int = 112, clip_len: int = 16) -> nn.Module:
    """torchvision's R(2+1)D-18 f_T, from scratch (stem without stride below 64 px)."""
    return _AsClip(_video_resnet(r2plus1d_18, in_channels, num_classes, size))


@register_utility("mc3_18")
def mc318(in_channels: int = 3, num_classes: int = 2, size: int = 112, clip_len: int = 16) -> nn.Module:
    """torchvision's MC3-18 f_T, from scratch (stem without stride below 64 px)."""
    return _AsClip(_video_resnet(mc3_18, in_channels, num_classes, size))


class SmallCNN(nn.Module):
    """Three conv blocks and a linear head; the image classifier used across privacam."""

    def __init__(self, in_channels: int, num_classes: int, width: int = 16, dropout: float = 0.1):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            conv_bn_relu(in_channels, w), nn.MaxPool2d(2, ceil_mode=True),
            conv_bn_relu(w, 2 * w), nn.MaxPool2d(2, ceil_mode=True),
            conv_bn_relu(2 * w, 4 * w), nn.AdaptiveAvgPool2d(1),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(4 * w, num_classes))

    def forward(self, x):
        return self.head(self.features(x))


def small_resnet18(in_channels: int, num_classes: int, size: int) -> nn.Module:
    """torchvision ResNet-18 from scratch, stem adapted to small inputs (no early 4x reduction)."""
    net = resnet18(weights=None, num_classes=num_classes)
    if size < 96:
        net.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        net.maxpool = nn.Identity()
    elif in_channels != 3:
        net.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
    return net


class _AsImages(nn.Module):
    """Let an image model take clips by averaging its logits over frames."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):
        if x.dim() == 5:
            b, c, t, h, w = x.shape
            return self.net(x.transpose(1, 2).reshape(b * t, c, h, w)).reshape(b, t, -1).mean(1)
        return self.net(x)


@register_utility("small_cnn_image")
def small_cnn_image(in_channels: int = 3, num_classes: int = 2, size: int = 32, clip_len: int = 1, width: int = 16) -> nn.Module:
    """An image f_T (three conv blocks); clips: logits averaged over frames."""
    return _AsImages(SmallCNN(in_channels, num_classes, width))


@register_utility("resnet18_image")
def resnet18_image(in_channels: int = 3, num_classes: int = 2, size: int = 32, clip_len: int = 1) -> nn.Module:
    """ResNet-18 image f_T from scratch, stem adapted to small inputs; clips: logits averaged over frames."""
    return _AsImages(small_resnet18(in_channels, num_classes, size))


# ---------------------------------------------------------------------------------------------- codes (CPGAN)
class CodeMLP(nn.Module):
    """f_T on codes: flatten -> MLP -> logits; clips give per-frame logits averaged over time."""

    def __init__(self, in_dim: int, num_classes: int, hidden: int = 64):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, num_classes))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        f, t = fold_frames(z)
        y = self.net(f)
        return y.reshape(-1, t, y.shape[-1]).mean(1) if t else y


@register_utility("code_mlp")
def code_mlp(in_channels: int = 3, num_classes: int = 2, size: int = 1, clip_len: int = 0, hidden: int = 64) -> nn.Module:
    """CPGAN utility classifier f_T on a code of ``in_channels x size x size`` numbers per frame."""
    return CodeMLP(in_channels * size * size, num_classes, hidden)


# ---------------------------------------------------------------------------------------------- decisions
class DecisionReadout(nn.Module):
    """f_T of a decision release: no parameters; the logits are the log of the released vector.

    On the training-time softmax of a ``decision`` encoder this makes L_T the classifier's own
    cross-entropy; on the one-hot release its argmax is the released decision.
    """

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        z = z.flatten(2).mean(2) if z.dim() > 2 else z
        return torch.log(z.clamp_min(1e-6))


@register_utility("decision_readout")
def decision_readout(in_channels: int = 2, num_classes: int = 2, size: int = 1, clip_len: int = 0) -> nn.Module:
    """Parameter-free f_T of a ``decision`` release: the released decision itself (log of the vector as logits)."""
    if in_channels != num_classes:
        from ..errors import ConfigError

        raise ConfigError(f"utility decision_readout reads a release of {num_classes} decisions but the encoder "
                          f"releases {in_channels} numbers; use it with encoder.name=decision")
    return DecisionReadout()


__all__ = ["C3D", "Small3D", "SmallCNN", "CodeMLP", "DecisionReadout", "small_resnet18"]
