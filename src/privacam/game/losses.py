"""Privacy losses L_priv, minimised by the encoder f_d, and the adversaries' own loss L_B.

Each privacy loss maps adversary outputs to a **per-sample** loss ``[B]`` so that the ensemble can
take the per-sample max over its M models before averaging over the batch (Wu et al.).

- ``neg_entropy``: negative entropy of the softmax (the paper); for multi-label, of each sigmoid.
- ``ce_uniform``: cross-entropy to the uniform distribution (the released code; Li & Cavallaro's
  confusion loss is the same objective, also registered as ``confusion``).
- ``bce_half``: multi-label: binary cross-entropy of every attribute's sigmoid to 0.5.
- ``neg_ce``: minus the cross-entropy to the true private label (gradient-reversal objective).
- ``neg_mse``: minus the reconstruction error (CPGAN), the output being a reconstruction of the input.

Each loss is tagged with the kind of adversary it scores: ``classification`` (logits of private
labels) or ``reconstruction`` (an image); the game refuses a loss that does not fit its adversaries.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..registry import PRIVACY_LOSSES, register_privacy_loss


def _fit_target(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Bring a reconstruction target to the adversary output's shape (for neg_mse / MSE)."""
    if out.shape != target.shape and target.dim() == out.dim():
        target = F.interpolate(target.float(), size=out.shape[2:], mode="area")
    return target


@register_privacy_loss("neg_entropy", tags=("classification",))
def neg_entropy(out: torch.Tensor, target: torch.Tensor | None = None, multilabel: bool = False) -> torch.Tensor:
    """Negative entropy of f_b's softmax (Wu et al.), per sample; multi-label: mean over attributes' sigmoids."""
    if multilabel:
        p = torch.sigmoid(out)
        ent = -(p * F.logsigmoid(out) + (1 - p) * F.logsigmoid(-out))
        return -ent.mean(dim=1)
    logp = F.log_softmax(out, dim=1)
    return (logp.exp() * logp).sum(dim=1)


@register_privacy_loss("ce_uniform", tags=("classification",))
def ce_uniform(out: torch.Tensor, target: torch.Tensor | None = None, multilabel: bool = False) -> torch.Tensor:
    """Cross-entropy of f_b's softmax to the uniform distribution, minus its minimum log K (0 at uniform)."""
    if multilabel:
        return bce_half(out, target, True)
    return -F.log_softmax(out, dim=1).mean(dim=1) - math.log(out.shape[1])


@register_privacy_loss("confusion", tags=("classification",))
def confusion(out: torch.Tensor, target: torch.Tensor | None = None, multilabel: bool = False) -> torch.Tensor:
    """Li & Cavallaro's confusion loss: the same objective as ``ce_uniform``."""
    return ce_uniform(out, target, multilabel)


@register_privacy_loss("bce_half", tags=("classification",))
def bce_half(out: torch.Tensor, target: torch.Tensor | None = None, multilabel: bool = True) -> torch.Tensor:
    """Multi-label: binary cross-entropy of every attribute's sigmoid to 0.5, minus log 2 (0 at 0.5)."""
    half = torch.full_like(out, 0.5)
    return F.binary_cross_entropy_with_logits(out, half, reduction="none").mean(dim=1) - math.log(2)


@register_privacy_loss("neg_ce", tags=("classification",))
def neg_ce(out: torch.Tensor, target: torch.Tensor, multilabel: bool = False) -> torch.Tensor:
    """Minus f_b's cross-entropy to the true private label (gradient reversal, K-beam)."""
    return -adversary_loss(out, target, multilabel)


@register_privacy_loss("neg_mse", tags=("reconstruction",))
def neg_mse(out: torch.Tensor, target: torch.Tensor, multilabel: bool = False) -> torch.Tensor:
    """Minus the reconstruction error of f_b's rebuilt input (CPGAN)."""
    target = _fit_target(out, target)
    return -((out.float() - target.float()) ** 2).flatten(1).mean(dim=1)


def adversary_loss(out: torch.Tensor, target: torch.Tensor, multilabel: bool = False, reconstruction: bool = False) -> torch.Tensor:
    """L_B per sample: CE on private labels (BCE for multi-label; MSE for reconstructions)."""
    if reconstruction:
        target = _fit_target(out, target)
        return ((out.float() - target.float()) ** 2).flatten(1).mean(dim=1)
    if multilabel:
        return F.binary_cross_entropy_with_logits(out, target.float(), reduction="none").mean(dim=1)
    return F.cross_entropy(out, target, reduction="none")


def pool_logits(out: torch.Tensor, k: int) -> torch.Tensor:
    """A pooled adversary's logits: the log-probabilities of each group of ``k`` consecutive samples
    (``k`` clips of one identity) summed, repeated for each of the group's samples (``[B, K]``)."""
    b = out.shape[0]
    if k < 2 or b % k:
        raise ValueError(f"pooled adversaries need batches of whole groups of k={k} clips (got a batch of {b})")
    lp = F.log_softmax(out.float(), dim=1)
    return lp.reshape(b // k, k, -1).sum(1).repeat_interleave(k, dim=0)


def check_groups(target: torch.Tensor, k: int) -> None:
    """Raise unless every group of ``k`` consecutive samples shares one private label."""
    t = target.reshape(target.shape[0] // k, k, *target.shape[1:]) if target.shape[0] % k == 0 else None
    if t is None or not bool((t == t[:, :1]).all()):
        raise ValueError(f"game.pool_k={k}: a batch does not hold groups of {k} clips of one identity; "
                         f"train with the trainer's grouped batches (privacam.train.GroupedBatchStream)")


def privacy_loss(name: str):
    """The registered privacy loss ``name`` (one-line error listing the valid ones if unknown)."""
    return PRIVACY_LOSSES.get(name)


def correct(out: torch.Tensor, target: torch.Tensor, multilabel: bool = False) -> torch.Tensor:
    """Per-sample correctness in [0, 1] (multi-label: fraction of attributes right at 0.5)."""
    if multilabel:
        return ((out > 0).float() == (target > 0.5).float()).float().mean(dim=1)
    return (out.argmax(dim=1) == target).float()
