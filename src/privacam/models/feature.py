"""Feature-level privacy (Li & Cavallaro, ICASSP 2022): one network split at a named tap layer.

The threat: an adversary reads the intermediate feature map of a deployed network (for example
the backbone output, when only the last layers run in a trusted enclave) and predicts private
attributes the network was never trained for. In the game, the released tensor is that feature
map:

- f_d = ``tap`` encoder: the network from its input up to the tap layer (``releases = "feature"``);
- f_T = ``tap_rest`` utility model: the rest of the same network, from the tap to the logits;
- f_b = adversaries predicting the private attribute from the tap: ``feature_head`` (conv layers,
  pooling, an MLP), ``feature_linear`` and ``feature_mlp`` (probes on the pooled map, optionally on
  whitened features: :class:`RunningWhitening`);
- L_priv = ``confusion`` (cross-entropy to uniform), so f_d is penalised when a head is confident.

The encoder and the utility model are built separately (:mod:`privacam.players`: the encoder
first, then the utility with ``in_channels`` = the tap's channels), from the same stage list, so
that together they are exactly the full network: their parameter names are the full network's.

Backbones (``BACKBONES``) and their taps:

- ``resnet18``: torchvision's ResNet-18 from scratch; a 3x3 stride-1 stem without max-pool when
  ``input_size < 96`` (as :func:`privacam.models.utility.small_resnet18`); ``width`` scales the
  stage widths (64 = torchvision's). Taps ``layer1``..``layer4`` (``layer4`` = the backbone output
  before pooling, Li & Cavallaro's tap). Frame-wise on clips.
- ``small_cnn``: privacam's :class:`~privacam.models.utility.SmallCNN` blocks (conv-BN-ReLU and
  its pooling); taps ``block1``..``block3``. Frame-wise on clips.
- ``small3d``: privacam's :class:`~privacam.models.utility.Small3D` blocks for clips
  ``[B,C,T,H,W]``; taps ``block1``..``block4``. Images are one-frame clips.

Every backbone also has the tap ``pool``: the globally average-pooled feature vector (``[B,C,1,1]``,
``[B,C,T,1,1]`` for 2D backbones on clips), i.e. the input of the final linear classifier; the rest
of the network is then that classifier alone.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock

from ..config import Range
from ..errors import ConfigError
from ..registry import register_adversary, register_encoder, register_utility
from .common import Encoder, FrameClassifier, fold_frames, unfold_frames
from .utility import Small3D, SmallCNN, small_resnet18

log = logging.getLogger(__name__)

#: backbone -> (dims, default width, tap names, channel multiple of the width at each tap)
BACKBONES: dict[str, tuple[int, int, tuple[str, ...], tuple[int, ...]]] = {
    "resnet18": (2, 64, ("layer1", "layer2", "layer3", "layer4", "pool"), (1, 2, 4, 8, 8)),
    "small_cnn": (2, 16, ("block1", "block2", "block3", "pool"), (1, 2, 4, 4)),
    "small3d": (3, 16, ("block1", "block2", "block3", "block4", "pool"), (1, 2, 4, 4, 4)),
}


def list_taps(backbone: str) -> tuple[str, ...]:
    """The tap names of ``backbone`` (a one-line error lists the backbones if unknown)."""
    return _spec(backbone)[2]


def _spec(backbone: str):
    if backbone not in BACKBONES:
        raise ConfigError(f"unknown feature backbone {backbone!r}; valid: {', '.join(BACKBONES)}")
    return BACKBONES[backbone]


def _check_tap(backbone: str, layer: str) -> int:
    taps = _spec(backbone)[2]
    if layer not in taps:
        raise ConfigError(f"backbone {backbone!r} has no tap {layer!r}; valid taps: {', '.join(taps)}")
    return taps.index(layer)


def tap_channels(backbone: str, layer: str, width: int | None = None) -> int:
    """Channels of the feature map released at ``layer`` of ``backbone``."""
    dims, w0, _, mult = _spec(backbone)
    return int((width or w0) * mult[_check_tap(backbone, layer)])


def _resnet18_stages(in_channels: int, num_classes: int, input_size: int, width: int) -> list[tuple[str, nn.Module]]:
    net = small_resnet18(in_channels, num_classes, input_size)
    if width != 64:  # same layout as torchvision's, stage widths w, 2w, 4w, 8w
        c1 = net.conv1
        net.inplanes = width
        net.conv1 = nn.Conv2d(in_channels, width, c1.kernel_size, c1.stride, c1.padding, bias=False)
        net.bn1 = nn.BatchNorm2d(width)
        net.layer1 = net._make_layer(BasicBlock, width, 2)
        net.layer2 = net._make_layer(BasicBlock, 2 * width, 2, stride=2)
        net.layer3 = net._make_layer(BasicBlock, 4 * width, 2, stride=2)
        net.layer4 = net._make_layer(BasicBlock, 8 * width, 2, stride=2)
        net.fc = nn.Linear(8 * width, num_classes)
        for m in net.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
    return [
        ("stem", nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)),
        ("layer1", net.layer1), ("layer2", net.layer2), ("layer3", net.layer3), ("layer4", net.layer4),
        ("pool", net.avgpool), ("head", nn.Sequential(nn.Flatten(), net.fc)),
    ]


def _small_cnn_stages(in_channels: int, num_classes: int, width: int) -> list[tuple[str, nn.Module]]:
    f = SmallCNN(in_channels, num_classes, width)
    return [
        ("block1", nn.Sequential(f.features[0], f.features[1])),
        ("block2", nn.Sequential(f.features[2], f.features[3])),
        ("block3", f.features[4]),
        ("pool", f.features[5]),
        ("head", nn.Sequential(*f.head)),
    ]


def _small3d_stages(in_channels: int, num_classes: int, width: int) -> list[tuple[str, nn.Module]]:
    f = Small3D(in_channels, num_classes, width)
    return [
        ("block1", nn.Sequential(f.features[0], f.features[1])),
        ("block2", nn.Sequential(f.features[2], f.features[3])),
        ("block3", nn.Sequential(f.features[4], f.features[5])),
        ("block4", f.features[6]),
        ("pool", f.features[7]),
        ("head", nn.Sequential(*f.head)),
    ]


def backbone_stages(backbone: str, *, in_channels: int = 3, num_classes: int = 2, input_size: int = 32,
                    width: int | None = None) -> OrderedDict[str, nn.Module]:
    """The full network as named stages: (``stem``), the taps in order (the last, ``pool``, being the
    global average pooling), ``head`` (the classifier).

    Args:
        backbone: a key of :data:`BACKBONES`.
        in_channels: input channels.
        num_classes: classes of the head.
        input_size: input height/width; picks the ResNet stem (< 96: no early 4x reduction).
        width: base width (default: the backbone's own).
    """
    _, w0, _, _ = _spec(backbone)
    w = int(width or w0)
    if backbone == "resnet18":
        stages = _resnet18_stages(in_channels, num_classes, input_size, w)
    elif backbone == "small_cnn":
        stages = _small_cnn_stages(in_channels, num_classes, w)
    else:
        stages = _small3d_stages(in_channels, num_classes, w)
    return OrderedDict(stages)


def split_network(backbone: str, layer: str, *, in_channels: int = 3, num_classes: int = 2, input_size: int = 32,
                  width: int | None = None) -> tuple[nn.Sequential, nn.Sequential]:
    """Split the full network at ``layer``: ``(front, rest)`` with ``rest(front(x))`` = the network.

    Both parts keep the stage names, so their state dicts together are the full network's.
    """
    k = _check_tap(backbone, layer)
    stages = backbone_stages(backbone, in_channels=in_channels, num_classes=num_classes, input_size=input_size, width=width)
    names = list(stages)
    cut = names.index(list_taps(backbone)[k]) + 1
    front = nn.Sequential(OrderedDict((n, stages[n]) for n in names[:cut]))
    rest = nn.Sequential(OrderedDict((n, stages[n]) for n in names[cut:]))
    return front, rest


class TapEncoder(Encoder):
    """f_d of Li & Cavallaro: the network up to a tap layer; releases its feature map.

    Images ``[B,C,H,W]`` give ``[B,C',h,w]``. 2D backbones run frame-wise on clips
    (``[B,C,T,H,W] -> [B,C',T,h,w]``); the 3D backbone takes clips whole (its time axis may shrink)
    and images as one-frame clips.

    Args:
        in_channels: input channels.
        backbone: ``resnet18`` | ``small_cnn`` | ``small3d``.
        layer: tap name (see :func:`list_taps`).
        input_size: input height/width (picks the ResNet stem).
        width: base width of the backbone (default: its own).
    """

    releases = "feature"
    trainable = True

    def __init__(self, in_channels: int = 3, backbone: str = "resnet18", layer: str = "layer3", input_size: int = 32,
                 width: int | None = None):
        super().__init__(in_channels, grey=False)
        self.backbone, self.layer = backbone, layer
        self.dims = _spec(backbone)[0]
        self.net, _ = split_network(backbone, layer, in_channels=in_channels, input_size=input_size, width=width)
        self.out_channels = tap_channels(backbone, layer, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.dims == 3:
            return self.net(x.unsqueeze(2)).squeeze(2) if x.dim() == 4 else self.net(x)
        f, t = fold_frames(x)
        return unfold_frames(self.net(f), t)


class TapRest(nn.Module):
    """f_T of Li & Cavallaro: the rest of the network, from the tap to the logits.

    After the ``pool`` tap the rest is the global pooling (a no-op on the pooled features) and the
    classifier, so that it also takes maps of any size (the audit's raw-data reference retrains it
    on images).

    2D backbones on clip features ``[B,C',T,h,w]`` run frame-wise and average the logits over
    frames; the 3D backbone takes image-shaped features as one-frame clips.
    """

    def __init__(self, in_channels: int, num_classes: int, backbone: str = "resnet18", layer: str = "layer3",
                 width: int | None = None):
        super().__init__()
        dims, w0, _, mult = _spec(backbone)
        k = _check_tap(backbone, layer)
        if width is None and in_channels % mult[k] == 0:  # follow the encoder's width
            width = in_channels // mult[k]
        self.backbone, self.layer, self.dims = backbone, layer, dims
        _, self.net = split_network(backbone, layer, num_classes=num_classes, width=width)
        if layer == "pool":  # pool first (a no-op on the pooled tap), so that a map of any size fits
            pool = nn.AdaptiveAvgPool2d(1) if dims == 2 else nn.AdaptiveAvgPool3d(1)
            self.net = nn.Sequential(OrderedDict([("pool", pool), *self.net.named_children()]))
        expected = tap_channels(backbone, layer, width)
        self.adapter: nn.Module = nn.Identity()
        if in_channels != expected:
            log.warning("tap_rest: %d input channels, but %s at %s gives %d; a 1x1 conv adapts them, so f_d and f_T "
                        "are not one network. Give encoder and utility the same backbone, layer and width.",
                        in_channels, backbone, layer, expected)
            conv = nn.Conv2d if dims == 2 else nn.Conv3d
            self.adapter = conv(in_channels, expected, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.dims == 3:
            return self.net(self.adapter(z.unsqueeze(2) if z.dim() == 4 else z))
        f, t = fold_frames(z)
        y = self.net(self.adapter(f))
        return y.reshape(-1, t, y.shape[-1]).mean(1) if t else y


class FeatureHead(nn.Module):
    """f_b on a feature map: ``depth`` conv-BN-ReLU layers, adaptive pooling to ``pool`` squared, an MLP.

    Args:
        in_channels: channels of the feature map.
        num_classes: private classes.
        hidden: conv width and hidden units of the MLP.
        depth: conv layers before pooling (0: an MLP on the pooled map).
        pool: spatial cells kept by the pooling (1 = global average).
    """

    def __init__(self, in_channels: int, num_classes: int, hidden: int = 64, depth: int = 1, pool: int = 2):
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for _ in range(depth):
            layers += [nn.Conv2d(c, hidden, 3, 1, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True)]
            c = hidden
        self.body = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(pool)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(c * pool * pool, hidden), nn.ReLU(inplace=True),
                                  nn.Linear(hidden, num_classes))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.body(z)))


class RunningWhitening(nn.Module):
    """Whitens vectors ``[B, D]`` with a running estimate of their mean and covariance.

    Training mode updates the estimate from the batch (a cumulative average over the first
    ``1 / momentum`` batches after a reset, an exponential one after) and recomputes the whitening
    matrix ``W = (C + eps * mean(diag C) * I)^(-1/2)``; both modes apply ``(x - mean) @ W`` with the
    stored estimate, so gradients reach ``x`` but not the statistics. A batch smaller than ``D``
    cannot estimate a ``D x D`` covariance; the running average over batches can.

    Why: a network trained for another task concentrates its feature variance in a few directions;
    what it carries about anything else sits in directions of tiny variance, where a probe on merely
    standardised features needs thousands of steps to find it. A retrained attacker has those steps;
    an adversary inside the game does not, unless it sees whitened features.
    """

    def __init__(self, dim: int, momentum: float = 0.1, eps: float = 1e-3):
        super().__init__()
        self.dim, self.momentum, self.eps = dim, momentum, eps
        self.register_buffer("running_mean", torch.zeros(dim))
        self.register_buffer("running_cov", torch.eye(dim))
        self.register_buffer("weight", torch.eye(dim))
        self.register_buffer("num_batches_tracked", torch.zeros((), dtype=torch.long))

    def reset_parameters(self) -> None:
        """Forget the statistics (budget restarting calls this)."""
        self.running_mean.zero_()
        self.running_cov.copy_(torch.eye(self.dim))
        self.weight.copy_(torch.eye(self.dim))
        self.num_batches_tracked.zero_()

    @torch.no_grad()
    def _update(self, x: torch.Tensor) -> None:
        x = x.detach().double()
        mean = x.mean(0)
        xc = x - mean
        cov = xc.t() @ xc / max(1, x.shape[0])
        n = int(self.num_batches_tracked)
        m = max(self.momentum, 1.0 / (n + 1))
        rm = (1 - m) * self.running_mean.double() + m * mean
        # the covariance about the new running mean (the batch's spread plus its offset)
        d = (mean - rm)[:, None]
        rc = (1 - m) * self.running_cov.double() + m * (cov + d @ d.t())
        self.running_mean.copy_(rm.float())
        self.running_cov.copy_(rc.float())
        self.num_batches_tracked += 1
        rc = 0.5 * (rc + rc.t())
        shrink = self.eps * float(rc.diagonal().mean().clamp_min(1e-12))
        evals, evecs = torch.linalg.eigh(rc + shrink * torch.eye(self.dim, dtype=rc.dtype, device=rc.device))
        self.weight.copy_((evecs * evals.clamp_min(shrink).rsqrt()) @ evecs.t())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] > 1:
            self._update(x)
        return (x - self.running_mean) @ self.weight


class FeatureProbe(nn.Module):
    """f_b as a probe: the feature map average-pooled to ``pool`` squared and flattened, normalised,
    then one linear layer (``hidden = 0``, the in-loop twin of the audit's ``linear_probe``) or an
    MLP with ``layers`` hidden layers of ``hidden`` units.

    ``whiten``: normalise with :class:`RunningWhitening` (covariance shrinkage ``shrink``) instead
    of a per-dimension (non-affine batch norm) standardisation.
    """

    def __init__(self, in_channels: int, num_classes: int, pool: int = 2, hidden: int = 0, whiten: bool = False,
                 shrink: float = 1e-2, layers: int = 1):
        super().__init__()
        d = in_channels * pool * pool
        self.pool = nn.AdaptiveAvgPool2d(pool)
        self.norm: nn.Module = RunningWhitening(d, eps=shrink) if whiten else nn.BatchNorm1d(d, affine=False)
        mlp: list[nn.Module] = []
        for _ in range(max(1, layers) if hidden else 0):
            mlp += [nn.Linear(d, hidden), nn.ReLU(inplace=True)]
            d = hidden
        self.head = nn.Sequential(*mlp, nn.Linear(d, num_classes))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.pool(z).flatten(1)))


@register_encoder("tap", rules={"input_size": Range(8, integer=True), "width": Range(1, integer=True)})
def tap(in_channels: int = 3, grey: bool = False, backbone: str = "resnet18", layer: str = "layer3",
        input_size: int = 32, width: int | None = None) -> Encoder:
    """The network up to ``layer`` (f_d releasing features); see :class:`TapEncoder`."""
    if grey:
        raise ConfigError("encoder.grey averages an image over RGB; it has no meaning for a feature tap: set encoder.grey=false")
    return TapEncoder(in_channels, backbone, layer, input_size, width)


@register_utility("tap_rest")
def tap_rest(in_channels: int = 3, num_classes: int = 2, size: int = 8, clip_len: int = 0, backbone: str = "resnet18",
             layer: str = "layer3", width: int | None = None) -> nn.Module:
    """The rest of the network after ``layer`` (f_T); ``width`` defaults to the one ``in_channels`` implies."""
    return TapRest(in_channels, num_classes, backbone, layer, width)


@register_adversary("feature_head")
def feature_head(in_channels: int = 3, num_classes: int = 2, size: int = 8, hidden: int = 64, depth: int = 1,
                 pool: int = 2) -> nn.Module:
    """f_b on the tapped features; clips frame-wise with logits averaged (see :class:`FeatureHead`)."""
    return FrameClassifier(FeatureHead(in_channels, num_classes, hidden, depth, max(1, min(pool, size))))


@register_adversary("feature_linear")
def feature_linear(in_channels: int = 3, num_classes: int = 2, size: int = 8, pool: int = 2, whiten: bool = False,
                   shrink: float = 1e-2) -> nn.Module:
    """A linear f_b on the pooled tapped features (:class:`FeatureProbe` with ``hidden = 0``).

    The models of ``budget.names`` share one ``budget.params``: each gets the keys it takes."""
    return FrameClassifier(FeatureProbe(in_channels, num_classes, max(1, min(pool, size)), 0, whiten, shrink))


@register_adversary("feature_mlp")
def feature_mlp(in_channels: int = 3, num_classes: int = 2, size: int = 8, pool: int = 2, hidden: int = 64,
                whiten: bool = False, shrink: float = 1e-2, layers: int = 1) -> nn.Module:
    """An MLP f_b (``layers`` hidden layers of ``hidden`` units) on the pooled tapped features
    (:class:`FeatureProbe`)."""
    probe = FeatureProbe(in_channels, num_classes, max(1, min(pool, size)), max(1, hidden), whiten, shrink, layers)
    return FrameClassifier(probe)


__all__ = ["BACKBONES", "FeatureHead", "FeatureProbe", "RunningWhitening", "TapEncoder", "TapRest", "backbone_stages",
           "list_taps", "split_network", "tap_channels"]
