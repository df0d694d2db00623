"""Building blocks shared by the players: frame-wise application to clips, output heads.

Players know nothing of the game or of datasets: they take tensors. Clips are ``[B,C,T,H,W]``,
images ``[B,C,H,W]``, values in [0, 1].
"""

from __future__ import annotations

import torch
from torch import nn


def fold_frames(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """``[B,C,T,H,W] -> [B*T,C,H,W]`` (returns T; images pass through with T = 0)."""
    if x.dim() == 5:
        b, c, t, h, w = x.shape
        return x.transpose(1, 2).reshape(b * t, c, h, w), t
    return x, 0


def unfold_frames(y: torch.Tensor, t: int) -> torch.Tensor:
    """Inverse of :func:`fold_frames` for image-shaped outputs ``[B*T,C,H,W] -> [B,C,T,H,W]``."""
    if t == 0:
        return y
    bt, c, h, w = y.shape
    return y.reshape(bt // t, t, c, h, w).transpose(1, 2)


def luminance(x: torch.Tensor) -> torch.Tensor:
    """Grey level ``[N,1,...]`` (ITU-R BT.601 weights for RGB, channel mean otherwise)."""
    if x.shape[1] == 3:
        w = torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype)
        return (x * w.reshape(1, 3, *([1] * (x.dim() - 2)))).sum(1, keepdim=True)
    return x.mean(1, keepdim=True)


def frame_difference(x: torch.Tensor) -> torch.Tensor:
    """Signed difference of consecutive frames of clips ``[N,C,T,H,W]`` (T >= 2), same shape:
    frame 0 repeats frame 1's difference, so every frame of the clip has one."""
    d = x[:, :, 1:] - x[:, :, :-1]
    return torch.cat([d[:, :, :1], d], dim=2)


def standardise_channels(z: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Per-channel standardisation over the batch and every non-channel axis (differentiable).

    Budget models that see ``standardise_channels(f_d(x))`` (``game.standardise_budget``) cannot be
    fooled by a release that merely shrinks its contrast, as the audit's retrained attackers cannot.
    """
    dims = [0] + list(range(2, z.dim()))
    zf = z.float()
    mean = zf.mean(dim=dims, keepdim=True)
    std = zf.var(dim=dims, keepdim=True, unbiased=False).add(eps * eps).sqrt()
    return ((zf - mean) / std).to(z.dtype)


class Standardised(nn.Module):
    """``model(standardise_channels(z))``: a budget model f_b as the game ran it with ``standardise_budget``."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.model(standardise_channels(z))


class Encoder(nn.Module):
    """Base class of every f_d (learned or baseline): releases a transformed input.

    Subclasses implement :meth:`encode_frames` (``[N,C,H,W] -> [N,C',H',W']``) for frame-wise
    encoders, or override :meth:`forward` for clip-level ones. ``grey`` averages the output over
    channels (the original code fed grey output to f_T and f_b), giving one channel.

    Attributes:
        out_channels: channels of the released tensor.
        trainable: False for fixed baselines (the game then skips the f_d update).
        releases: "image" (a viewable frame in [0,1]), "feature" or "code".
    """

    out_channels: int = 3
    trainable: bool = True
    releases: str = "image"

    def __init__(self, in_channels: int = 3, grey: bool = False):
        super().__init__()
        self.in_channels = in_channels
        self.grey = grey
        if grey:
            self.out_channels = 1

    def encode_frames(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _grey(self, y: torch.Tensor) -> torch.Tensor:
        return y.mean(dim=1, keepdim=True) if self.grey and y.shape[1] != 1 else y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f, t = fold_frames(x)
        return self._grey(unfold_frames(self.encode_frames(f), t))


class FrameClassifier(nn.Module):
    """Apply an image classifier to every frame of a clip and average the logits over time.

    This is how the paper's budget models f_b (MobileNet per frame) see clips. Images pass
    straight through. ``frame_logits`` gives the per-frame logits ``[B,T,K]`` for per-frame scoring.
    """

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def frame_logits(self, x: torch.Tensor) -> torch.Tensor:
        f, t = fold_frames(x)
        y = self.net(f)
        return y.reshape(-1, t, y.shape[-1]) if t else y.unsqueeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.frame_logits(x).mean(dim=1)


def conv_bn_relu(cin: int, cout: int, k: int = 3, s: int = 1, dims: int = 2) -> nn.Sequential:
    conv = nn.Conv2d if dims == 2 else nn.Conv3d
    bn = nn.BatchNorm2d if dims == 2 else nn.BatchNorm3d
    return nn.Sequential(conv(cin, cout, k, s, k // 2, bias=False), bn(cout), nn.ReLU(inplace=True))


def reset_parameters(module: nn.Module, generator: torch.Generator | None = None) -> None:
    """Re-initialise every sub-module that has ``reset_parameters`` (used by budget restarting).

    With ``generator`` the draw is reproducible independently of the global RNG.
    """
    if generator is not None:
        state = torch.random.get_rng_state()
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
    try:
        for m in module.modules():
            if m is not module and hasattr(m, "reset_parameters"):
                m.reset_parameters()
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)):
                m.reset_running_stats()
    finally:
        if generator is not None:
            torch.random.set_rng_state(state)


def load_weights(module: nn.Module, path: str, *, what: str = "weights", keep: str = "strict") -> nn.Module:
    """Load a user's weights file into ``module``: the one loader of every player's and attacker's
    ``weights`` (``torch.load(weights_only=True)``, :func:`privacam.utils.load_checkpoint`). A checkpoint
    holding its tensors under ``state_dict`` or ``model`` is unwrapped.

    Args:
        path: the file (a state dict saved with ``torch.save``).
        what: what the file is, for the messages (``utility.weights``, ``attacker weights``, ...).
        keep: which tensors are loaded:

            - ``strict``: every key, every shape must match (a baseline's own weights);
            - ``fitting``: tensors whose shape differs (a head for another class count, a stem for
              another channel count) are skipped and logged; every other key must match;
            - ``matching``: only the tensors whose name and shape match (partial weights), counted in the log.

    Raises:
        CheckpointError: one line naming the file: unreadable, or keys that do not fit ``module``.
    """
    import logging

    from ..errors import CheckpointError
    from ..utils import load_checkpoint

    log = logging.getLogger(__name__)
    fix = "give a state_dict saved with torch.save"
    state = load_checkpoint(path, what=what, fix=fix)
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise CheckpointError(f"{what} {path} holds a {type(state).__name__}, not a state dict; {fix}")
    own = module.state_dict()
    fits = lambda k: k in own and tuple(state[k].shape) == tuple(own[k].shape)  # noqa: E731
    if keep == "matching":
        kept = {k: v for k, v in state.items() if fits(k)}
        module.load_state_dict(kept, strict=False)
        log.info("%s: loaded %d/%d tensors from %s", what, len(kept), len(own), path)
        return module
    skipped = [k for k in state if k in own and not fits(k)] if keep == "fitting" else []
    for k in skipped:
        log.info("%s %s: skipping %s (shape %s, model has %s)", what, path, k, tuple(state[k].shape), tuple(own[k].shape))
    missing = [k for k in own if k not in state and k not in skipped]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in state if k in own and not fits(k) and k not in skipped]
    if missing or unexpected or wrong:
        raise CheckpointError(f"{what} {path} do not fit {type(module).__name__}: missing {missing[:5]}, unexpected "
                              f"{unexpected[:5]}, other shapes {wrong[:5]}; {fix} for this model")
    module.load_state_dict({k: v for k, v in state.items() if k not in skipped}, strict=False)
    return module
