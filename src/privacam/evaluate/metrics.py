"""Scores of the audit: utility and privacy accuracy, class-mean average precision (cMAP) for
multi-label private attributes, chance levels, normalised leakage (NAG) and reconstruction quality
(PSNR / SSIM).

Pure functions on tensors or arrays; every function returns plain Python floats (or a NumPy
array for per-attribute scores) so the results go straight into ``eval/summary.json``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F


def _np(a: Any) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def _labels(logits_or_pred: Any) -> np.ndarray:
    a = _np(logits_or_pred)
    return a.argmax(axis=-1) if a.ndim >= 2 else a.astype(np.int64)


def accuracy(logits_or_pred: Any, y: Any) -> float:
    """Top-1 accuracy of f_T or of an attacker f_b.

    Args:
        logits_or_pred: logits ``[N,K]`` (arg-maxed) or predicted labels ``[N]``.
        y: true labels ``[N]``.

    Returns:
        Fraction of correct predictions (0.0 for an empty set).
    """
    pred, y = _labels(logits_or_pred), _np(y).astype(np.int64).reshape(-1)
    if pred.shape != y.shape:
        raise ValueError(f"accuracy: {pred.shape[0]} predictions for {y.shape[0]} labels")
    return float((pred == y).mean()) if y.size else 0.0


def clip_accuracy(logits: Any, y: Any) -> float:
    """Per-clip accuracy: frame logits ``[B,T,K]`` are averaged over time first (``[B,K]`` as is).

    This is the number the audit claims: averaging over a clip recovers identity from repeated
    coarse cues, so it is never lower-bounded by the per-frame score.
    """
    a = _np(logits)
    return accuracy(a.mean(axis=1) if a.ndim == 3 else a, y)


def frame_accuracy(frame_logits: Any, y: Any) -> float:
    """Per-frame accuracy: argmax of every frame of ``[B,T,K]`` against its clip's label ``y [B]``."""
    a = _np(frame_logits)
    if a.ndim == 2:
        return accuracy(a, y)
    pred = a.argmax(axis=-1)  # [B,T]
    y = _np(y).astype(np.int64).reshape(-1, 1)
    return float((pred == y).mean()) if pred.size else 0.0


def average_precision(scores: Any, targets: Any) -> float:
    """Average precision of one class (same definition as scikit-learn: sum over distinct score
    thresholds of (R_n - R_{n-1}) * P_n; ties in score form one threshold). NaN without positives."""
    s = _np(scores).astype(np.float64).reshape(-1)
    t = _np(targets).astype(np.float64).reshape(-1) > 0.5
    npos = int(t.sum())
    if npos == 0:
        return float("nan")
    order = np.argsort(-s, kind="mergesort")
    s, t = s[order], t[order]
    last = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]  # last index of each distinct score
    tps = np.cumsum(t)[last]
    fps = (last + 1) - tps
    precision = tps / (tps + fps)
    recall = tps / npos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def cmap(scores: Any, targets: Any) -> float:
    """Class-mean average precision of multi-label private attributes (VISPR, PA-HMDB51).

    Args:
        scores: real-valued scores ``[N,K]`` (logits or probabilities; only the order matters).
        targets: multi-hot ``[N,K]``.

    Returns:
        Macro average of the per-class AP over the classes with at least one positive; equal to
        ``sklearn.metrics.average_precision_score(targets, scores, average="macro")`` on such data.
    """
    s, t = _np(scores), _np(targets)
    if s.ndim == 1:
        s, t = s[:, None], t[:, None]
    aps = [average_precision(s[:, k], t[:, k]) for k in range(s.shape[1]) if (t[:, k] > 0.5).any()]
    return float(np.mean(aps)) if aps else float("nan")


def per_attribute_f1(scores: Any, targets: Any, threshold: float = 0.5) -> np.ndarray:
    """F1 of every attribute, predicting positive where ``sigmoid(score) >= threshold``.

    Returns:
        ``[K]`` array; an attribute with no positive and no predicted positive scores 0.0.
    """
    s, t = _np(scores).astype(np.float64), _np(targets) > 0.5
    if s.ndim == 1:
        s, t = s[:, None], t[:, None]
    pred = 1.0 / (1.0 + np.exp(-s)) >= threshold
    tp = (pred & t).sum(0)
    fp = (pred & ~t).sum(0)
    fn = (~pred & t).sum(0)
    denom = 2 * tp + fp + fn
    return np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)


def chance_accuracy(train_labels: Any, test_labels: Any, weights: Any = None) -> float:
    """Test accuracy of always predicting the majority class of the *training* labels (ties: the
    smallest label). This is the chance level of the audit, never fitted on test. ``weights``: one
    per test label (a weighted mean, e.g. every test video weighing the same)."""
    tr = _np(train_labels).astype(np.int64).reshape(-1)
    te = _np(test_labels).astype(np.int64).reshape(-1)
    if tr.size == 0 or te.size == 0:
        return 0.0
    values, counts = np.unique(tr, return_counts=True)
    majority = values[np.argmax(counts)]
    if weights is None:
        return float((te == majority).mean())
    w = _np(weights).astype(np.float64).reshape(-1)
    return float((w * (te == majority)).sum() / w.sum())


def chance_cmap(targets: Any) -> float:
    """Chance cMAP: the AP of an uninformed scorer is the class prevalence, so chance cMAP is the
    mean prevalence over the classes that :func:`cmap` averages (those with a positive)."""
    t = _np(targets) > 0.5
    if t.ndim == 1:
        t = t[:, None]
    prev = t.mean(0)
    prev = prev[t.any(0)]
    return float(prev.mean()) if prev.size else float("nan")


def nag(value: float, raw: float, chance: float, eps: float = 1e-12) -> float:
    """Normalised attacker gain (leakage): ``max(0, (value - chance) / (raw - chance))``.

    0 means the release leaks nothing beyond chance, 1 as much as the raw data; values above 1
    (the release leaks more than raw data, e.g. an attacker trained better) are not clipped.
    When the raw data itself is at or below chance (``raw - chance <= eps``) the ratio is
    undefined: returns 1.0 if ``value`` is above chance (any leak counts as full leakage) and 0.0
    otherwise.
    """
    if raw - chance <= eps:
        return 1.0 if value - chance > eps else 0.0
    return max(0.0, (value - chance) / (raw - chance))


def nag_floor(value: float, raw: float, floor: float | None, eps: float = 1e-12) -> float | None:
    """Leakage beyond the task-label floor: ``max(0, (value - floor) / (raw - floor))``, where ``floor``
    is what an attacker that knows only each clip's trained-task label identifies
    (:mod:`privacam.evaluate.floor`). 0: the release reveals nothing about the person beyond what its
    task does; 1: as much as the raw data. None where it is undefined: no floor, or the raw data
    identify no better than the floor (``raw - floor <= eps``)."""
    if floor is None or not np.isfinite(floor) or not np.isfinite(raw) or raw - floor <= eps:
        return None
    return max(0.0, (value - floor) / (raw - floor))


def _as_batch(x: Any) -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    t = t.detach().to(torch.float64)
    if t.dim() == 2:
        t = t[None, None]
    elif t.dim() == 3:
        t = t[None]
    elif t.dim() == 5:  # clips [B,C,T,H,W] -> frames
        b, c, n, h, w = t.shape
        t = t.transpose(1, 2).reshape(b * n, c, h, w)
    if t.dim() != 4:
        raise ValueError(f"expected images [N,C,H,W] (or [C,H,W], [H,W], clips), got shape {tuple(t.shape)}")
    return t


def psnr(x: Any, y: Any, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio (dB) of a reconstruction ``x`` of ``y`` (order irrelevant), in
    float64, per image (MSE over all its pixels and channels), then averaged over images; matches
    ``skimage.metrics.peak_signal_noise_ratio`` per image. Identical images give ``inf``."""
    a, b = _as_batch(x), _as_batch(y)
    if a.shape != b.shape:
        raise ValueError(f"psnr: shapes differ {tuple(a.shape)} vs {tuple(b.shape)}")
    mse = ((a - b) ** 2).flatten(1).mean(1)
    vals = 10.0 * torch.log10(data_range**2 / mse)  # mse = 0 gives inf, as scikit-image
    return float(vals.mean())


def ssim(x: Any, y: Any, data_range: float = 1.0, win_size: int = 7) -> float:
    """Structural similarity of ``x`` and ``y`` (batches ``[N,C,H,W]``), averaged over channels and
    images; matches ``skimage.metrics.structural_similarity(a, b, data_range=1, channel_axis=0)``
    (uniform ``win_size`` window, sample covariance, K1 = 0.01, K2 = 0.03, borders cropped).

    Runs in float64 with ``avg_pool2d`` so it handles batches on any device. Images smaller than
    the window use the largest odd window that fits (scikit-image would refuse them).
    """
    a, b = _as_batch(x), _as_batch(y)
    if a.shape != b.shape:
        raise ValueError(f"ssim: shapes differ {tuple(a.shape)} vs {tuple(b.shape)}")
    n, c, h, w = a.shape
    win = min(win_size, h, w)
    win -= 1 - win % 2
    if win < 1:
        raise ValueError("ssim: empty images")
    a, b = a.reshape(n * c, 1, h, w), b.reshape(n * c, 1, h, w)
    pool = lambda z: F.avg_pool2d(z, win, stride=1)  # noqa: E731 - the valid part of uniform_filter
    np_ = win * win
    cov_norm = np_ / (np_ - 1) if np_ > 1 else 1.0
    ux, uy = pool(a), pool(b)
    vx = cov_norm * (pool(a * a) - ux * ux)
    vy = cov_norm * (pool(b * b) - uy * uy)
    vxy = cov_norm * (pool(a * b) - ux * uy)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    per_image = s.reshape(n, -1).mean(1)
    return float(per_image.mean())


__all__ = [
    "accuracy",
    "clip_accuracy",
    "frame_accuracy",
    "average_precision",
    "cmap",
    "per_attribute_f1",
    "chance_accuracy",
    "chance_cmap",
    "nag",
    "nag_floor",
    "psnr",
    "ssim",
]
