"""Identification over several clips, and how sure the audit is of each score.

A camera sees a person for seconds to minutes, not for one clip. An attacker f_b that scores the
clips of one person can add its log-probabilities over them (the clips' evidence multiplies) and
name the person far more often than from one clip. The audit therefore scores every attacker at
several *levels*:

- ``clip``: each test clip on its own, every test video weighing the same (the mean over videos of
  the share of its clips named right): a long recording does not count more than a short one;
- ``video``: log-probabilities summed over every clip of one test video;
- ``person@k``: log-probabilities summed over ``k`` clips of one person drawn at random from all of
  that person's test clips (many trials; persons with fewer than ``k`` clips are skipped for that
  ``k`` and listed), and ``person@all``: over all of them. The person is the private class.

Every score gets a 95 % interval from a bootstrap over test *videos* (clips of one video are not
independent: resampling clips would make the interval too narrow). The replicates are shared by
all attackers, so the interval of the best-of-N score is the bootstrap of the maximum, which
accounts for picking the best attacker on the same test data.

Pure NumPy on precomputed scores: nothing here trains or reads data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..errors import ConfigError
from . import metrics

CLIP, VIDEO = "clip", "video"


def person_level(k: int | str) -> str:
    """The level name of ``k`` clips of one person (``"person@5"``, ``"person@all"``)."""
    return f"person@{k}"


def parse_level(level: str) -> tuple[str, int | None]:
    """``"person@5"`` -> ``("person", 5)``, ``"person@all"`` -> ``("person", None)``, ``"video"`` -> ``("video", None)``."""
    kind, _, k = level.partition("@")
    if kind in (CLIP, VIDEO) and not k:
        return kind, None
    if kind == "person":
        if k == "all":
            return kind, None
        if k.isdigit() and int(k) >= 1:
            return kind, int(k)
    raise ConfigError(f"eval.pool {level!r} is not a level; use clip, video, person@K (K >= 1) or person@all")


@dataclass
class TestIndex:
    """Who and what every test clip is: the grouping the levels pool over.

    Attributes:
        labels: private labels ``[N]`` (ints) or ``[N,K]`` multi-hot.
        videos: video index of every clip ``[N]`` (0..V-1); without video ids every clip is its own
            unit (``has_videos`` False).
        has_videos: whether ``videos`` came from the data (else one unit per clip).
        names: the video names (for the record of skipped persons).
    """

    labels: np.ndarray
    videos: np.ndarray
    has_videos: bool
    names: list = field(default_factory=list)

    @classmethod
    def build(cls, labels, videos: Sequence[str] | None) -> "TestIndex":
        labels = np.asarray(labels)
        if videos is None:
            return cls(labels, np.arange(len(labels)), False, [str(i) for i in range(len(labels))])
        names, inv = np.unique(np.asarray(list(videos), dtype=object).astype(str), return_inverse=True)
        return cls(labels, inv.astype(np.int64), True, list(names))

    @property
    def multilabel(self) -> bool:
        return self.labels.ndim > 1

    @property
    def num_videos(self) -> int:
        return int(self.videos.max()) + 1 if len(self.videos) else 0


def available_levels(index: TestIndex, person_k: Sequence[int]) -> list[str]:
    """The levels this test split supports: ``video`` needs video ids (else it equals ``clip``),
    ``person@k`` needs single-label private classes (the person is the private class)."""
    out = [CLIP]
    if index.has_videos:
        out.append(VIDEO)
    if not index.multilabel:
        out += [person_level(k) for k in sorted(set(int(k) for k in person_k))] + [person_level("all")]
    return out


def headline_level(pool: str, has_videos: bool, multilabel: bool, person_k: Sequence[int]) -> str:
    """The level ``eval.pool`` asks for. ``auto``: per video, per clip where the data has no video ids.

    Checked before any attacker is fitted, from the training split (the test split is sealed).

    Raises:
        ConfigError: a level the data cannot give (``video`` without video ids, ``person@k`` with
            multi-label private attributes), in one line naming the setting and the fix.
    """
    if pool == "auto":
        return VIDEO if has_videos else CLIP
    kind, k = parse_level(pool)
    if kind == VIDEO and not has_videos:
        raise ConfigError("eval.pool: video needs video ids, and this dataset has none (images, or samples without "
                          "a 'video' key); use eval.pool=clip or eval.pool=auto")
    if kind == "person" and multilabel:
        raise ConfigError(f"eval.pool: {pool} needs one private class per person, and the private labels are "
                          "multi-label attributes; use eval.pool=clip, video or auto")
    if kind == "person" and k is not None and k not in set(int(j) for j in person_k):
        raise ConfigError(f"eval.pool: {pool} is not among eval.person_k {list(person_k)}; add {k} to eval.person_k")
    return pool


# ---------------------------------------------------------------------------------------- plans
@dataclass
class _PersonPlan:
    label: int
    rows: np.ndarray  # test rows of this person's clips
    vids: np.ndarray  # their video index
    trials: np.ndarray | None  # [T, k] rows for the point estimate (None: all clips)


@dataclass
class _PersonBoot:
    """Every bootstrap draw of one ``person@k`` level, flattened so that one attacker is scored with
    a handful of array operations: trial ``r`` pools rows ``idx[r]`` of person ``who[r]`` in
    replicate ``rep[r]`` (for ``person@all``: ``weights[p]`` ``[B, n_p]`` multiplies each clip)."""

    idx: np.ndarray | None = None  # [R, k]
    rep: np.ndarray | None = None  # [R]
    who: np.ndarray | None = None  # [R]
    weights: list = field(default_factory=list)  # person@all: per person [B, n_p]


@dataclass
class Plan:
    """The draws shared by every attacker: bootstrap weights over videos, per-person trials.

    Built once per test split by :func:`make_plan`; :func:`score` applies it to one attacker.
    """

    index: TestIndex
    levels: list[str]
    counts: np.ndarray  # [B, V] how often each video is drawn in each bootstrap replicate
    persons: dict[str, list[_PersonPlan]]  # level -> persons with enough clips
    skipped: dict[str, dict[str, int]]  # level -> {person label: its clip count}
    person_boot: dict[str, _PersonBoot]
    seed: int


def make_plan(index: TestIndex, levels: Sequence[str], *, trials: int = 200, bootstrap: int = 1000,
              person_bootstrap: int = 300, boot_trials: int = 20, seed: int = 0) -> Plan:
    """Draw the bootstrap replicates (over videos) and the per-person trials once.

    Args:
        index: the test split's labels and videos.
        levels: level names (see :func:`available_levels`).
        trials: random draws of ``k`` clips per person for the point estimate of ``person@k``.
        bootstrap: bootstrap replicates for the intervals (clip and video levels).
        person_bootstrap: the first this many replicates serve the ``person@k`` levels (each
            replicate re-draws ``boot_trials`` trials per person: the costly part).
        boot_trials: draws of ``k`` clips per person within each replicate.
        seed: seed of every draw (the same for every attacker).
    """
    rng = np.random.default_rng([int(seed), 13])
    v = max(index.num_videos, 1)
    counts = rng.multinomial(v, np.full(v, 1.0 / v), size=max(1, int(bootstrap))).astype(np.int64)
    nb = min(len(counts), max(1, int(person_bootstrap)))
    persons: dict[str, list[_PersonPlan]] = {}
    skipped: dict[str, dict[str, int]] = {}
    boots: dict[str, _PersonBoot] = {}
    for level in levels:
        kind, k = parse_level(level)
        if kind != "person":
            continue
        plans, skip = [], {}
        for lab in np.unique(index.labels):
            rows = np.flatnonzero(index.labels == lab)
            n = len(rows)
            if k is not None and n < k:
                skip[str(int(lab))] = int(n)
                continue
            tr = None
            if k is not None:
                tr = rows[np.argsort(rng.random((trials, n)), axis=1)[:, :k]]
            plans.append(_PersonPlan(int(lab), rows, index.videos[rows], tr))
        persons[level], skipped[level] = plans, skip
        pb = _PersonBoot()
        if k is None:
            pb.weights = [counts[:nb][:, p.vids].astype(np.float64) for p in plans]
        else:
            idx, rep, who = [], [], []
            for b in range(nb):
                for j, p in enumerate(plans):
                    pool = np.repeat(p.rows, counts[b, p.vids])  # a video drawn twice gives its clips twice
                    if len(pool) < k:
                        continue
                    idx.append(pool[np.argsort(rng.random((boot_trials, len(pool))), axis=1)[:, :k]])
                    rep.append(np.full(boot_trials, b))
                    who.append(np.full(boot_trials, j))
            if idx:
                pb.idx, pb.rep, pb.who = np.concatenate(idx), np.concatenate(rep), np.concatenate(who)
        boots[level] = pb
    return Plan(index, list(levels), counts.astype(np.float64), persons, skipped, boots, int(seed))


# ---------------------------------------------------------------------------------------- scoring
def _argmax_correct(pooled: np.ndarray, label: np.ndarray | int) -> np.ndarray:
    return pooled.argmax(-1) == label


def _percentile(values: np.ndarray, point: float) -> list[float]:
    """95 % percentile interval, widened to include the point estimate (random trials can put a
    point a hair outside the resampled ones)."""
    values = values[np.isfinite(values)]
    if values.size == 0:
        return [float(point), float(point)]
    lo, hi = np.percentile(values, [2.5, 97.5])
    return [float(min(lo, point)), float(max(hi, point))]


def _clip_video(scores: np.ndarray, plan: Plan, level: str) -> tuple[float, np.ndarray, int]:
    ix = plan.index
    v = max(ix.num_videos, 1)
    if ix.multilabel:
        return _multilabel(scores, plan, level)
    if level == CLIP:  # the mean over videos of each video's share of clips named right
        correct = _argmax_correct(scores, ix.labels).astype(np.float64)
        n = np.bincount(ix.videos, minlength=v).astype(np.float64)
        share = np.bincount(ix.videos, correct, minlength=v) / np.maximum(n, 1)
        has = (n > 0).astype(np.float64)
        point = float(share[n > 0].mean()) if len(correct) else float("nan")
        return point, (plan.counts @ share) / np.maximum(plan.counts @ has, 1e-12), len(correct)
    pooled = np.zeros((v, scores.shape[1]))
    np.add.at(pooled, ix.videos, scores)
    lab = np.zeros(v, np.int64)
    lab[ix.videos] = ix.labels
    correct = _argmax_correct(pooled, lab).astype(np.float64)
    return float(correct.mean()), (plan.counts @ correct) / v, v


def _multilabel(scores: np.ndarray, plan: Plan, level: str) -> tuple[float, np.ndarray, int]:
    """cMAP per clip or per video (mean score over the video's clips; a video has an attribute when
    any of its clips has it); bootstrap over videos by expanding the drawn videos."""
    ix = plan.index
    v = max(ix.num_videos, 1)
    if level == CLIP:
        units_s, units_t, unit_vid = scores, ix.labels, ix.videos
    else:
        n = np.bincount(ix.videos, minlength=v).astype(np.float64)[:, None]
        units_s = np.zeros((v, scores.shape[1]))
        np.add.at(units_s, ix.videos, scores)
        units_s /= np.maximum(n, 1)
        units_t = np.zeros((v, ix.labels.shape[1]))
        np.maximum.at(units_t, ix.videos, ix.labels.astype(np.float64))
        unit_vid = np.arange(v)
    point = metrics.cmap(units_s, units_t)
    rows_of = [np.flatnonzero(unit_vid == j) for j in range(v)]
    boot = []
    for c in plan.counts[: min(len(plan.counts), 200)]:  # cMAP is costly: at most 200 replicates
        idx = np.concatenate([np.repeat(rows_of[j], int(c[j])) for j in np.flatnonzero(c)])
        boot.append(metrics.cmap(units_s[idx], units_t[idx]))
    return point, np.asarray(boot, dtype=np.float64), len(units_s)


def _person(scores: np.ndarray, plan: Plan, level: str) -> tuple[float, np.ndarray, int]:
    people = plan.persons[level]
    pb = plan.person_boot[level]
    nb = len(pb.weights[0]) if pb.weights else (int(pb.rep.max()) + 1 if pb.rep is not None else 1)
    if not people:
        return float("nan"), np.full(nb, np.nan), 0
    labels = np.array([p.label for p in people])
    if people[0].trials is None:  # person@all
        point = [float(_argmax_correct(scores[p.rows].sum(0), p.label)) for p in people]
        hit = np.stack([_argmax_correct(w @ scores[p.rows], p.label) for p, w in zip(people, pb.weights)], 1)
        present = np.stack([w.sum(1) > 0 for w in pb.weights], 1)  # [B, P]: some clip of the person drawn
        with np.errstate(invalid="ignore"):
            boot = (hit & present).sum(1) / present.sum(1)
        return float(np.mean(point)), boot.astype(np.float64), len(people)
    point = [float(_argmax_correct(scores[p.trials].sum(1), p.label).mean()) for p in people]
    boot = np.full(nb, np.nan)
    if pb.idx is not None:
        hit = _argmax_correct(scores[pb.idx].sum(1), labels[pb.who]).astype(np.float64)
        cell = pb.rep * len(people) + pb.who  # (replicate, person)
        n = np.bincount(cell, minlength=nb * len(people)).reshape(nb, -1)
        h = np.bincount(cell, hit, minlength=nb * len(people)).reshape(nb, -1)
        valid = n > 0  # False where the person had too few clips drawn in that replicate
        per_person = np.where(valid, h / np.maximum(n, 1), 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            boot = np.where(valid.any(1), per_person.sum(1) / valid.sum(1), np.nan)
    return float(np.mean(point)), boot, len(people)


def score(scores, plan: Plan) -> dict[str, dict]:
    """Score one attacker at every level of ``plan``.

    Args:
        scores: per-clip log-probabilities ``[N,K]`` (single-label; summed when pooling) or
            real-valued attribute scores (multi-label; averaged when pooling).
        plan: the shared draws (:func:`make_plan`).
    Returns:
        ``{level: {"value", "interval": [lo, hi], "units", "boot": replicate scores}}``; ``boot`` is
        for :func:`best_of` and is dropped before writing.
    """
    s = np.asarray(scores, dtype=np.float64)
    out = {}
    for level in plan.levels:
        kind, _ = parse_level(level)
        value, boot, units = (_person if kind == "person" else _clip_video)(s, plan, level)
        out[level] = {"value": value, "interval": _percentile(boot, value), "units": units, "boot": boot}
    return out


def best_of(per_attacker: dict[str, dict[str, dict]], level: str) -> dict:
    """The best-of-N score at ``level``: the attacker with the highest value, and the interval of
    the maximum over attackers recomputed in every bootstrap replicate."""
    vals = {a: r[level]["value"] for a, r in per_attacker.items() if np.isfinite(r[level]["value"])}
    if not vals:
        return {"value": float("nan"), "attacker": None, "interval": [float("nan")] * 2}
    name = max(vals, key=vals.get)
    boots = np.stack([per_attacker[a][level]["boot"] for a in vals])
    with np.errstate(all="ignore"):
        mx = np.where(np.isfinite(boots), boots, -np.inf).max(0)
    mx[~np.isfinite(mx)] = np.nan
    return {"value": vals[name], "attacker": name, "interval": _percentile(mx, vals[name])}


def chance(plan: Plan, train_labels, level: str) -> float:
    """Chance at ``level``: the score of always answering the majority class of the *training*
    labels (MaSS / PASS), over the level's units (clips, videos or persons); for multi-label
    attributes the mean prevalence over the units (see :func:`metrics.chance_cmap`)."""
    ix = plan.index
    kind, _ = parse_level(level)
    if ix.multilabel:
        if kind == CLIP:
            return metrics.chance_cmap(ix.labels)
        v = max(ix.num_videos, 1)
        t = np.zeros((v, ix.labels.shape[1]))
        np.maximum.at(t, ix.videos, ix.labels.astype(np.float64))
        return metrics.chance_cmap(t)
    if kind == CLIP:  # every video weighs the same, as in the score
        n = np.bincount(ix.videos, minlength=max(ix.num_videos, 1)).astype(np.float64)
        return metrics.chance_accuracy(train_labels, ix.labels, weights=1.0 / n[ix.videos]) if len(ix.labels) else float("nan")
    if kind == VIDEO:
        units = np.zeros(max(ix.num_videos, 1), np.int64)
        units[ix.videos] = ix.labels
    else:
        units = np.array([p.label for p in plan.persons[level]], np.int64)
    return metrics.chance_accuracy(train_labels, units) if len(units) else float("nan")


def strip_boot(levels: dict[str, dict]) -> dict[str, dict]:
    """The per-level record without the bootstrap replicates (what goes into the JSON files)."""
    return {lv: {k: v for k, v in r.items() if k != "boot"} for lv, r in levels.items()}


__all__ = [
    "CLIP", "VIDEO", "TestIndex", "Plan", "available_levels", "best_of", "chance", "headline_level",
    "make_plan", "parse_level", "person_level", "score", "strip_boot",
]
