"""Clip sampling: which frames of a video make clip ``k`` of ``K``, by a strategy chosen by name
(``random``, ``sbu``, ``uniform``, ``dense``, ``center``), deterministic given ``(seed, epoch, index)``;
clips shorter than ``clip_len`` are looped (default) or padded with their last frame.
"""

from __future__ import annotations

import numpy as np

from ...errors import ConfigError, DataError

STRATEGIES = ("random", "sbu", "uniform", "dense", "center")
SHORT_MODES = ("loop", "pad")


def clip_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The random generator of one clip: a pure function of (seed, epoch, index)."""
    return np.random.default_rng([abs(int(seed)), abs(int(epoch)), abs(int(index))])


def _fit_short(idx: np.ndarray, n: int, clip_len: int, short: str) -> np.ndarray:
    if len(idx) >= clip_len:
        return idx[:clip_len]
    if short == "pad":
        return np.concatenate([idx, np.full(clip_len - len(idx), idx[-1])])
    reps = -(-clip_len // len(idx))
    return np.tile(idx, reps)[:clip_len]


def sample_indices(
    num_frames: int,
    clip_len: int,
    strategy: str = "random",
    *,
    rng: np.random.Generator | None = None,
    clip: int = 0,
    num_clips: int = 1,
    stride: int = 1,
    short: str = "loop",
) -> np.ndarray:
    """Frame indices (within ``[0, num_frames)``) of clip ``clip`` of ``num_clips`` of one video.

    Strategies:
      - ``random``: a contiguous window (step ``stride``) at a random start; with several clips per
        video, clip k starts at random inside the k-th of ``num_clips`` equal ranges of starts.
      - ``sbu``: ``clip_len`` distinct random indices over the whole video, sorted (Wu et al., SBU).
      - ``uniform``: ``clip_len`` indices evenly spaced over the whole video; clip k is shifted by
        k/num_clips of a step.
      - ``dense``: contiguous windows whose starts are evenly spaced from the first to the last
        possible start (deterministic multi-clip evaluation covering the video).
      - ``center``: the contiguous window in the middle.
    A video shorter than the clip is looped (``short="loop"``) or padded with its last frame
    (``short="pad"``); ``random``/``sbu`` need ``rng``.
    """
    if num_frames < 1:
        raise DataError("clip with zero frames")
    if strategy not in STRATEGIES:
        raise ConfigError(f"clip sampling strategy {strategy!r} is not one of {', '.join(STRATEGIES)}")
    if short not in SHORT_MODES:
        raise ConfigError(f"data.params.short {short!r} is not one of {', '.join(SHORT_MODES)}")
    n, T, K = int(num_frames), int(clip_len), max(1, int(num_clips))
    k = int(clip) % K
    if strategy in ("random", "sbu") and rng is None:
        raise ValueError(f"strategy {strategy!r} needs an rng")
    if strategy in ("sbu", "uniform"):
        if n <= T:
            return _fit_short(np.arange(n), n, T, short)
        if strategy == "sbu":
            return np.sort(rng.choice(n, size=T, replace=False))
        step = n / T
        return np.minimum((np.arange(T) * step + step * (k + 0.5) / K).astype(np.int64), n - 1)
    span = (T - 1) * stride + 1
    s = max(1, min(stride, (n - 1) // max(T - 1, 1))) if span > n else stride
    span = (T - 1) * s + 1
    if span > n:  # shorter than one clip even at step 1
        return _fit_short(np.arange(n), n, T, short)
    last_start = n - span
    if strategy == "center":
        start = last_start // 2
    elif strategy == "dense":
        start = 0 if K == 1 and last_start == 0 else round(k * last_start / (K - 1)) if K > 1 else last_start // 2
    else:  # random, stratified over the K clips of the video
        lo = (k * (last_start + 1)) // K
        hi = max(lo + 1, ((k + 1) * (last_start + 1)) // K)
        start = int(rng.integers(lo, hi))
    return start + np.arange(T) * s
