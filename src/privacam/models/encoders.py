"""Learned encoders f_d: what leaves the camera.

- ``transform_net``: the Johnson-style image transformation network of Wu et al. (conv 9x9/32,
  two stride-2 convs, residual blocks, two stride-2 transposed convs, conv 9x9/3; instance norm,
  ReLU, output ``tanh * 0.5 + 0.5``), width and block count configurable, frame by frame.
- ``small_conv``: a small, fast frame-wise residual conv encoder for CPUs and cameras.
- ``st_conv``: a spatio-temporal encoder that sees neighbouring frames (temporal-difference stem
  plus 3D convolutions), so it can tell the static background and clothing from the moving person.
- ``motion``: releases only what moves, as a binary (or few-level) mask: grey temporal
  differences, a small 3D conv net, a hard straight-through quantiser. Static appearance
  (background, clothing colour, skin tone) has no path to the output, and the quantiser leaves
  no contrast for the person's colours to hide in; the game then removes what the shape of the
  motion still gives away.
- ``identity``: releases the input unchanged (the raw-data reference).
- ``cpgan_mlp``, ``cpgan_conv``: CPGAN's compressing privatizers (Tseng & Wu, TIFS 2020), which
  release a code (``releases = "code"``), not an image: flatten -> MLP -> ``[B, D, 1, 1]``, or
  strided convolutions -> ``[B, C, h, w]``. Codes are always 4-D (5-D for clips, one code per
  frame) so attackers and the audit can treat them like feature maps.
- ``decision``: releases only the task decision (one-hot of a camera-sized classifier's argmax,
  ``releases = "decision"``), read by the parameter-free ``decision_readout`` f_T.
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import OneOf, Range
from ..errors import ConfigError
from ..registry import register_encoder
from .common import Encoder, fold_frames, frame_difference, luminance, unfold_frames


def _to_unit(y: torch.Tensor) -> torch.Tensor:
    return torch.tanh(y) * 0.5 + 0.5


class _ResBlock(nn.Module):
    def __init__(self, ch: int, norm: type[nn.Module] = nn.InstanceNorm2d):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(ch, ch, 3, 1, 1), norm(ch, affine=True), nn.ReLU(inplace=True),
            nn.Conv2d(ch, ch, 3, 1, 1), norm(ch, affine=True),
        )

    def forward(self, x):
        return x + self.body(x)


class TransformNet(Encoder):
    """Johnson-style f_d of Wu et al. (ECCV 2018), applied frame by frame.

    Args:
        in_channels: input channels.
        width: channels of the first conv (paper: 32; then 2x and 4x).
        blocks: residual blocks (paper: 5).
        grey: average the output over RGB (the original code's grey f_d output).
    """

    def __init__(self, in_channels: int = 3, width: int = 32, blocks: int = 5, grey: bool = False):
        super().__init__(in_channels, grey)
        w = width
        norm = lambda c: nn.InstanceNorm2d(c, affine=True)  # noqa: E731
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, w, 9, 1, 4), norm(w), nn.ReLU(inplace=True),
            nn.Conv2d(w, 2 * w, 3, 2, 1), norm(2 * w), nn.ReLU(inplace=True),
            nn.Conv2d(2 * w, 4 * w, 3, 2, 1), norm(4 * w), nn.ReLU(inplace=True),
            *[_ResBlock(4 * w) for _ in range(blocks)],
            nn.ConvTranspose2d(4 * w, 2 * w, 3, 2, 1, output_padding=1), norm(2 * w), nn.ReLU(inplace=True),
            nn.ConvTranspose2d(2 * w, w, 3, 2, 1, output_padding=1), norm(w), nn.ReLU(inplace=True),
            nn.Conv2d(w, in_channels, 9, 1, 4),
        )

    def encode_frames(self, x):
        return _to_unit(self.net(x))


class SmallConvEncoder(Encoder):
    """A small frame-wise f_d: a few 3x3 convs with a residual path to the input.

    The residual form (``out = tanh(atanh-ish(x) + delta)``) starts near the identity, which is what
    the paper's identity pretraining aims for, at a fraction of the cost.
    """

    def __init__(self, in_channels: int = 3, width: int = 16, depth: int = 3, grey: bool = False):
        super().__init__(in_channels, grey)
        layers: list[nn.Module] = [nn.Conv2d(in_channels, width, 3, 1, 1), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(width, width, 3, 1, 1), nn.ReLU(inplace=True)]
        layers += [nn.Conv2d(width, in_channels, 3, 1, 1)]
        self.net = nn.Sequential(*layers)

    def encode_frames(self, x):
        return straight_through_clamp(x + self.net(x))


def straight_through_clamp(y: torch.Tensor) -> torch.Tensor:
    """Forward: clamp to [0, 1]; backward: identity, so saturated pixels still get gradients."""
    return y + (y.clamp(0.0, 1.0) - y).detach()


class SpatioTemporalEncoder(Encoder):
    """f_d that sees neighbouring frames: a temporal-difference stem plus 3D convolutions.

    The stem feeds each frame together with its difference to the previous frame, so the network
    can separate what moves (the person) from what is static (background, clothing texture).
    Output: one frame per input frame, in [0, 1].

    Args:
        width: channels of the 3D convs.
        depth: number of 3D conv layers (kernel 3x3x3).
        out_channels: released channels (1 = grey, 3 = colour).
    """

    def __init__(self, in_channels: int = 3, width: int = 16, depth: int = 3, out_channels: int = 3, grey: bool = False):
        super().__init__(in_channels, grey)
        self.out_channels = 1 if grey else out_channels
        layers: list[nn.Module] = []
        cin = 2 * in_channels
        for _ in range(depth - 1):
            layers += [nn.Conv3d(cin, width, 3, 1, 1), nn.GroupNorm(min(4, width), width), nn.ReLU(inplace=True)]
            cin = width
        layers += [nn.Conv3d(cin, out_channels, 3, 1, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        if x.dim() == 4:  # images: a clip of one frame
            return self.forward(x.unsqueeze(2)).squeeze(2)
        diff = torch.cat([torch.zeros_like(x[:, :, :1]), x[:, :, 1:] - x[:, :, :-1]], dim=2)
        y = _to_unit(self.net(torch.cat([x, diff], dim=1)))
        return self._grey(y)


class MotionEncoder(Encoder):
    """f_d that releases a quantised motion map: ``q(sigmoid(prior + net(d) / temperature))``.

    ``d`` is the signed difference of consecutive grey frames (frame 0 repeats frame 1's), fed to
    a small 3D conv net together with ``|d|``. The prior ``(|d| - threshold) * sharpness`` makes the
    untrained encoder a thresholded motion detector (a strong starting point: the net's last layer
    starts at zero); the game then learns what to keep. The quantiser is a hard staircase with
    ``levels`` levels in the forward pass and the sigmoid's gradient in the backward pass
    (straight-through), so what f_T and f_b see in training is exactly what is released.

    Args:
        width, depth: channels and number of 3x3x3 conv layers of the net on ``[d, |d|]``.
        levels: quantisation levels of the release (2 = a binary mask; 0 = no quantiser).
        threshold: the motion level at which the untrained encoder switches on.
        sharpness: slope of the prior (per unit of grey-level difference).
        out_channels: released channels (the map is replicated; 3 keeps video viewers happy).
        colour: measure motion as the largest change over the colour channels instead of the grey
            change, so a person whose clothes match the background in brightness still shows (how
            much of a person shows then depends less on their colours).
        cell: release the map on a grid of ``cell x cell`` blocks (a block is on when the map is on
            anywhere in it): limb thickness and outline detail below the block size do not leave.
        jitter: randomise the release per clip: the threshold is drawn from
            ``threshold * U(1 - jitter, 1 + jitter)`` (how much of a low-contrast person shows, and
            how thick moving edges are, then varies from clip to clip, not only from person to person).
        dilate: randomise the release per clip: the mask is dilated by a radius drawn uniformly from
            ``0..dilate`` pixels (build and limb thickness are masked by a random thickening).
        seed: seed of the release's random draws (``jitter``, ``dilate``).
    """

    def __init__(self, in_channels: int = 3, width: int = 8, depth: int = 3, levels: int = 2,
                 threshold: float = 0.12, sharpness: float = 40.0, out_channels: int = 3, grey: bool = False,
                 colour: bool = False, cell: int = 1, jitter: float = 0.0, dilate: int = 0, seed: int = 0):
        super().__init__(in_channels, grey)
        self.out_channels = 1 if grey else out_channels
        self.levels, self.threshold, self.sharpness = int(levels), float(threshold), float(sharpness)
        self.colour, self.cell = bool(colour) and in_channels > 1, max(1, int(cell))
        if not 0.0 <= jitter < 1.0 or dilate < 0:
            raise ConfigError(f"encoder.params: motion needs 0 <= jitter < 1 and dilate >= 0 (got jitter={jitter}, "
                              f"dilate={dilate})")
        self.jitter, self.dilate = float(jitter), int(dilate)
        self.generator = torch.Generator().manual_seed(int(seed))
        layers: list[nn.Module] = []
        cin = 2 * in_channels if self.colour else 2
        for _ in range(max(0, depth - 1)):
            layers += [nn.Conv3d(cin, width, 3, 1, 1), nn.ReLU(inplace=True)]
            cin = width
        last = nn.Conv3d(cin, 1, 3, 1, 1)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.net = nn.Sequential(*layers, last)
        self.last = last

    def soft(self, x: torch.Tensor) -> torch.Tensor:
        """The map before quantisation, in (0, 1)."""
        g = x if self.colour else luminance(x)
        if g.shape[2] < 2:  # a single frame carries no motion
            d = torch.zeros_like(g)
        else:
            d = frame_difference(g)
        threshold = self.threshold
        if self.jitter > 0:
            u = self._uniform(d.shape[0], d)
            threshold = threshold * (1 + self.jitter * (2 * u - 1))
        prior = (d.abs().amax(1, keepdim=True) - threshold) * self.sharpness
        s = torch.sigmoid(prior + self.net(torch.cat([d, d.abs()], dim=1)))
        if self.cell > 1:
            h, w, k = s.shape[3], s.shape[4], self.cell
            s = torch.nn.functional.max_pool3d(s, (1, k, k), ceil_mode=True)
            s = torch.nn.functional.interpolate(s, scale_factor=(1, k, k), mode="nearest")[..., :h, :w]
        return s

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:  # images: a one-frame clip, no motion
            return self.forward(x.unsqueeze(2)).squeeze(2)
        s = self.soft(x)
        if self.levels >= 2:
            k = self.levels - 1
            hard = torch.floor(s.detach() * k + 0.5) / k
            s = s + (hard - s).detach()
        if self.dilate > 0:
            s = self._random_dilation(s)
        return s.expand(-1, self.out_channels, -1, -1, -1)

    @property
    def randomised(self) -> bool:
        """Whether the release draws per-clip randomness (``jitter``, ``dilate``)."""
        return self.jitter > 0 or self.dilate > 0

    def deterministic(self) -> "MotionEncoder":
        """A copy that releases without the per-clip draws (threshold at its centre, no dilation)."""
        import copy

        det = copy.deepcopy(self)
        det.jitter, det.dilate = 0.0, 0
        return det

    def _uniform(self, n: int, like: torch.Tensor) -> torch.Tensor:
        """``n`` draws from U(0, 1), shaped ``[n, 1, 1, 1, 1]``; an ONNX export gets a RandomUniform op."""
        if torch.onnx.is_in_onnx_export():
            return torch.rand_like(like[:, :1, :1, :1, :1])
        return torch.rand(n, 1, 1, 1, 1, generator=self.generator).to(like)

    def _random_dilation(self, s: torch.Tensor) -> torch.Tensor:
        """Dilate each clip's map by a radius drawn uniformly from 0..dilate (max filter)."""
        radius = torch.floor(self._uniform(s.shape[0], s) * (self.dilate + 1)).clamp_max(self.dilate)
        out = s
        for r in range(1, self.dilate + 1):
            grown = torch.nn.functional.max_pool3d(s, (1, 2 * r + 1, 2 * r + 1), 1, (0, r, r))
            pick = (radius == r).to(s.dtype)
            out = out + pick * (grown - s)
        return out


class IdentityEncoder(Encoder):
    """E = identity: the raw-data reference of the evaluation."""

    trainable = False

    def __init__(self, in_channels: int = 3, grey: bool = False):
        super().__init__(in_channels, grey)
        self.out_channels = 1 if grey else in_channels

    def forward(self, x):
        return self._grey(x)


# ---------------------------------------------------------------------------------------------- codes (CPGAN)
class _CodeEncoder(Encoder):
    """Base of the compressing privatizers: ``grey`` converts the *input* to one channel (averaging
    the code's channels would destroy it), and the release is a code, not an image."""

    releases = "code"

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=1, keepdim=True) if self.grey and x.shape[1] != 1 else x

    def _grey(self, y: torch.Tensor) -> torch.Tensor:
        return y


class CpganMLP(_CodeEncoder):
    """f_d = flatten -> ``depth`` hidden layers of ``hidden`` units -> code of ``code_dim`` numbers.

    The first layer is lazy (sized on the first batch), so the encoder needs no image size.
    ``bound="tanh"`` keeps the code in [-1, 1]; ``"none"`` (default) leaves it free.
    """

    def __init__(self, in_channels: int = 3, grey: bool = False, code_dim: int = 16, hidden: int = 128,
                 depth: int = 1, bound: str = "none"):
        super().__init__(in_channels, grey)
        self.out_channels = code_dim
        layers: list[nn.Module] = [nn.Flatten()]
        for i in range(depth):
            layers += [nn.LazyLinear(hidden) if i == 0 else nn.Linear(hidden, hidden), nn.ReLU(inplace=True)]
        layers.append(nn.LazyLinear(code_dim) if depth == 0 else nn.Linear(hidden, code_dim))
        self.net = nn.Sequential(*layers)
        self.bound = _bound(bound)

    def encode_frames(self, x: torch.Tensor) -> torch.Tensor:
        z = self.bound(self.net(self._input(x)))
        return z[:, :, None, None]


class CpganConv(_CodeEncoder):
    """f_d = ``depth`` stride-2 3x3 convolutions of ``width`` channels -> 1x1 convolution to
    ``code_channels``: a code of ``code_channels x H/2^depth x W/2^depth`` numbers.

    No batch normalisation: the closed-form adversaries are fitted on codes computed in eval mode and
    must see the same function the encoder step trains.
    """

    def __init__(self, in_channels: int = 3, grey: bool = False, width: int = 16, depth: int = 2,
                 code_channels: int = 4, bound: str = "none"):
        super().__init__(in_channels, grey)
        self.out_channels = code_channels
        cin = 1 if grey else in_channels
        layers: list[nn.Module] = []
        for _ in range(depth):
            layers += [nn.Conv2d(cin, width, 3, 2, 1), nn.ReLU(inplace=True)]
            cin = width
        layers.append(nn.Conv2d(cin, code_channels, 1))
        self.net = nn.Sequential(*layers)
        self.bound = _bound(bound)

    def encode_frames(self, x: torch.Tensor) -> torch.Tensor:
        return self.bound(self.net(self._input(x)))


def _bound(name: str) -> nn.Module:
    if name == "none":
        return nn.Identity()
    if name == "tanh":
        return nn.Tanh()
    if name == "sigmoid":
        return nn.Sigmoid()
    raise ValueError(f"unknown code bound {name!r}; valid: none, tanh, sigmoid")


#: what the learned encoders' parameters may be (checked by the registry before one is built)
_POS, _COUNT = Range(1, integer=True), Range(0, integer=True)
_BOUNDS = OneOf(("none", "tanh", "sigmoid"))


@register_encoder("cpgan_mlp", rules={"code_dim": _POS, "hidden": _POS, "depth": _COUNT, "bound": _BOUNDS})
def cpgan_mlp(in_channels: int = 3, grey: bool = False, code_dim: int = 16, hidden: int = 128, depth: int = 1,
              bound: str = "none") -> Encoder:
    """CPGAN privatizer f_d: flatten -> MLP -> code ``[B, code_dim, 1, 1]``."""
    return CpganMLP(in_channels, grey, code_dim, hidden, depth, bound)


@register_encoder("cpgan_conv", rules={"width": _POS, "depth": _COUNT, "code_channels": _POS, "bound": _BOUNDS})
def cpgan_conv(in_channels: int = 3, grey: bool = False, width: int = 16, depth: int = 2, code_channels: int = 4,
               bound: str = "none") -> Encoder:
    """CPGAN privatizer f_d: strided convolutions -> code ``[B, code_channels, H/2^depth, W/2^depth]``."""
    return CpganConv(in_channels, grey, width, depth, code_channels, bound)


@register_encoder("transform_net", rules={"width": _POS, "blocks": _COUNT})
def transform_net(in_channels: int = 3, width: int = 32, blocks: int = 5, grey: bool = False) -> Encoder:
    """Wu et al.'s f_d: the Johnson-style image transformation network, frame by frame (output in [0, 1])."""
    return TransformNet(in_channels, width, blocks, grey)


@register_encoder("small_conv", rules={"width": _POS, "depth": _POS})
def small_conv(in_channels: int = 3, width: int = 16, depth: int = 3, grey: bool = False) -> Encoder:
    """A small frame-wise residual conv f_d for CPUs and cameras (output in [0, 1])."""
    return SmallConvEncoder(in_channels, width, depth, grey)


@register_encoder("st_conv", rules={"width": _POS, "depth": _POS, "out_channels": _POS})
def st_conv(in_channels: int = 3, width: int = 16, depth: int = 3, out_channels: int = 3, grey: bool = False) -> Encoder:
    """A spatio-temporal f_d: temporal-difference stem plus 3D convolutions over neighbouring frames."""
    return SpatioTemporalEncoder(in_channels, width, depth, out_channels, grey)


@register_encoder("motion", rules={"width": _POS, "depth": _POS, "levels": _COUNT, "threshold": Range(0, 1), "sharpness": Range(0, lo_open=True), "out_channels": _POS, "cell": _POS, "jitter": Range(0, 1, hi_open=True), "dilate": _COUNT})
def motion(in_channels: int = 3, width: int = 8, depth: int = 3, levels: int = 2, threshold: float = 0.12,
           sharpness: float = 40.0, out_channels: int = 3, grey: bool = False, colour: bool = False,
           cell: int = 1, jitter: float = 0.0, dilate: int = 0, seed: int = 0) -> Encoder:
    """f_d that releases only what moves, as a quantised motion mask (see :class:`MotionEncoder`)."""
    return MotionEncoder(in_channels, width, depth, levels, threshold, sharpness, out_channels, grey, colour, cell,
                         jitter, dilate, seed)


@register_encoder("identity")
def identity(in_channels: int = 3, grey: bool = False) -> Encoder:
    """E = identity: releases the input unchanged (the audit's raw-data reference)."""
    return IdentityEncoder(in_channels, grey)




# ---------------------------------------------------------------------------------------------- decisions
class DecisionEncoder(Encoder):
    """f_d that releases only the task decision: a camera-sized classifier whose one-hot argmax leaves.

    The network is a strided 3D CNN on the grey frame and its signed and absolute frame differences
    (``[g, 4 d, 4 |d|]``; a 2D CNN on the grey frame for images), globally pooled, with one logit per
    utility class. What leaves the camera is ``one_hot(argmax)``: a clip's release is one of
    ``num_classes`` symbols, so no appearance, build or motion style can ride along except through the
    decision itself (on data whose actions are balanced over people, identity is then at chance).

    In training mode the release is the softmax (f_T's readout, ``decision_readout``, reads its log as
    logits, so L_T is the classifier's cross-entropy); in eval mode, in the audit and in an ONNX export
    it is the one-hot of the argmax. The release is ``[B, K, 1, 1, 1]`` for clips and ``[B, K, 1, 1]``
    for images (a code, ``releases = "decision"``).

    Args:
        num_classes: utility classes K (filled in from the data by :func:`privacam.players.build_encoder`).
        clip_len: frames per clip (0 = images: the 2D network). Filled in from the data.
        width: channels of the first layer (then 2x, 2x).
    """

    releases = "decision"

    def __init__(self, in_channels: int = 3, num_classes: int = 2, clip_len: int = 16, width: int = 16,
                 grey: bool = False):
        super().__init__(in_channels, grey)
        if num_classes < 2 or width < 1:
            raise ConfigError(f"encoder.params: decision needs num_classes >= 2 and width >= 1 (got "
                              f"num_classes={num_classes}, width={width})")
        self.out_channels = int(num_classes)
        self.video = int(clip_len) > 0
        w = int(width)
        if self.video:
            self.net = nn.Sequential(
                nn.Conv3d(3, w, 3, (1, 2, 2), 1), nn.ReLU(inplace=True),
                nn.Conv3d(w, 2 * w, 3, 2, 1), nn.ReLU(inplace=True),
                nn.Conv3d(2 * w, 2 * w, 3, 2, 1), nn.ReLU(inplace=True),
            )
        else:
            self.net = nn.Sequential(
                nn.Conv2d(1, w, 3, 2, 1), nn.ReLU(inplace=True),
                nn.Conv2d(w, 2 * w, 3, 2, 1), nn.ReLU(inplace=True),
                nn.Conv2d(2 * w, 2 * w, 3, 2, 1), nn.ReLU(inplace=True),
            )
        self.head = nn.Linear(2 * w, self.out_channels)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The classifier's logits ``[B, K]``."""
        g = luminance(x)
        if self.video:
            if g.dim() == 4:  # an image given to a video decision: a one-frame clip, no motion
                g = g.unsqueeze(2)
            d = frame_difference(g) if g.shape[2] >= 2 else torch.zeros_like(g)
            h = self.net(torch.cat([g, 4 * d, 4 * d.abs()], dim=1)).mean(dim=(2, 3, 4))
        else:
            if g.dim() == 5:
                raise ValueError("a 2D decision encoder (trained on images) got a clip; train it on clips")
            h = self.net(g).mean(dim=(2, 3))
        return self.head(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.logits(x)
        if self.training:
            z = torch.softmax(s, dim=1)
        else:  # only the decision leaves: one-hot of the argmax (ArgMax + ScatterElements in ONNX)
            z = torch.zeros_like(s).scatter(1, s.argmax(dim=1, keepdim=True), 1.0)
        return z.reshape(*z.shape, *([1] * (3 if x.dim() == 5 else 2)))


@register_encoder("decision", rules={"clip_len": _COUNT, "width": _POS})  # clip_len 0: images
def decision(in_channels: int = 3, num_classes: int = 2, clip_len: int = 16, width: int = 16,
             grey: bool = False) -> Encoder:
    """f_d that releases only the one-hot task decision of a camera-sized classifier (see :class:`DecisionEncoder`)."""
    return DecisionEncoder(in_channels, num_classes, clip_len, width, grey)


__all__ = ["TransformNet", "SmallConvEncoder", "SpatioTemporalEncoder", "MotionEncoder", "IdentityEncoder", "CpganMLP",
           "CpganConv", "DecisionEncoder", "fold_frames", "unfold_frames"]
