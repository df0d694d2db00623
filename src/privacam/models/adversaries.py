"""Budget models f_b: the adversaries the encoder is trained against.

Frame-wise image classifiers whose logits are averaged over the clip's frames, as in Wu et al.
(MobileNet per frame): ``mobilenet_v2`` at any width multiplier (the paper's ensemble uses
``0.60 - 0.02 * i``), ``resnet18``, ``small_cnn``. They output logits; whether they are read as a
softmax (single label) or per-attribute sigmoids (multi-label) is the loss's business.
"""

from __future__ import annotations

from torch import nn
from torchvision.models import mobilenet_v2 as tv_mobilenet_v2

from ..registry import register_adversary
from .common import FrameClassifier
from .utility import SmallCNN, small_resnet18


def _mobilenet(in_channels: int, num_classes: int, size: int, width: float) -> nn.Module:
    net = tv_mobilenet_v2(weights=None, num_classes=num_classes, width_mult=width)
    first = net.features[0][0]
    stride = 2 if size >= 96 else 1
    net.features[0][0] = nn.Conv2d(in_channels, first.out_channels, 3, stride, 1, bias=False)
    if size < 64:  # keep a few pixels of spatial extent at 32x32: drop the stride of the 2nd stage
        net.features[2].conv[1][0].stride = (1, 1)
    return net


@register_adversary("mobilenet_v2")
def mobilenet_v2(in_channels: int = 3, num_classes: int = 2, size: int = 32, width: float = 0.6) -> nn.Module:
    """The paper's f_b: MobileNetV2 per frame at width multiplier ``width``, logits averaged over the clip."""
    return FrameClassifier(_mobilenet(in_channels, num_classes, size, width))


@register_adversary("resnet18")
def resnet18(in_channels: int = 3, num_classes: int = 2, size: int = 32) -> nn.Module:
    """ResNet-18 per frame (from scratch, stem adapted to small inputs), logits averaged over the clip."""
    return FrameClassifier(small_resnet18(in_channels, num_classes, size))


@register_adversary("small_cnn")
def small_cnn(in_channels: int = 3, num_classes: int = 2, size: int = 32, width: int = 16) -> nn.Module:
    """A small CNN per frame (three conv blocks), logits averaged over the clip."""
    return FrameClassifier(SmallCNN(in_channels, num_classes, width))


class _PooledLinear(nn.Module):
    """Linear budget model on the clip-mean frame and the motion-energy image, pooled to ``p x p``.

    A cheap probe inside the game: FINDINGS showed such probes are often the strongest attacker.
    """

    def __init__(self, in_channels: int, num_classes: int, pool: int = 8):
        super().__init__()
        self.pool = pool
        self.norm = nn.BatchNorm1d(2 * in_channels * pool * pool, affine=False)
        self.fc = nn.Linear(2 * in_channels * pool * pool, num_classes)

    def forward(self, x):
        import torch
        import torch.nn.functional as F

        if x.dim() == 5:
            mean = x.mean(2)
            motion = (x[:, :, 1:] - x[:, :, :-1]).abs().mean(2) if x.shape[2] > 1 else mean
        else:
            mean = motion = x
        f = torch.cat([F.adaptive_avg_pool2d(mean, self.pool).flatten(1), F.adaptive_avg_pool2d(motion, self.pool).flatten(1)], 1)
        return self.fc(self.norm(f))


@register_adversary("clip3d")
def clip3d(in_channels: int = 3, num_classes: int = 2, size: int = 32, width: int = 16) -> nn.Module:
    """A clip-level budget model (small 3D CNN over the whole clip)."""
    from .utility import Small3D, _AsClip

    return _AsClip(Small3D(in_channels, num_classes, width))


@register_adversary("probe")
def probe(in_channels: int = 3, num_classes: int = 2, size: int = 32, pool: int = 8) -> nn.Module:
    """A linear budget model on pooled clip summaries (mean frame, motion energy)."""
    return _PooledLinear(in_channels, num_classes, min(pool, size))
