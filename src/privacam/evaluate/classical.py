"""Classical attackers: hand-made features of the release with a linear or a boosted model.

On Weizmann, a logistic regression on the time-averaged motion-energy image, per-frame amount
statistics and row/column profiles of a binary motion release beat every CNN attacker of the pool
(FINDINGS.md). Such attackers are cheap, so every audit runs them. Feature families, each
with two models:

- ``mhi``: the mean frame, the motion-energy image (mean absolute temporal difference) and the
  motion-history image (the same, weighted towards the end of the clip), average-pooled to
  ``probe_size x probe_size`` per channel;
- ``profile``: silhouette amount and shape over time: per-frame amount, centroid and spread of the
  released mass, the row and column profiles (mean and spread over time) and the spectrum of the
  amount (the rhythm of the motion, whatever the clip's offset);
- ``hog``: a histogram of oriented gradients of the mean frame (9 unsigned orientations, 4x4
  cells, 2x2-cell blocks, L2-Hys);
- ``combo``: all three together;
- ``tempo``: how much and how fast the release moves, nothing of where: the level of its motion and
  its lag profile (how it differs from itself 1, 2, ... frames later; a periodic motion dips at its
  period, whatever the phase);
- ``shape``: where the figure is and how tall and wide: row and column profiles (with centroid and
  spread) of the mean frame's distance from its row medians and of the motion-energy image.
  ``tempo`` and ``shape`` serve the task pool (:mod:`privacam.evaluate.tasks`): tasks such as the
  speed or the size of a person, which the other families keep poorly.

Models: ``logistic`` (standardised features, multinomial logistic regression; the inverse
regularisation C is selected on validation) and ``boosted`` (histogram gradient boosting on the
first 48 principal components of the standardised features; the number of boosting rounds is
selected on validation). Registered like every attacker
(``<features>_<model>``, tag ``classical``). They are not trained by gradient steps on batches, but
they have the interface of every attacker (:class:`~privacam.evaluate.fitting.Attacker`): ``fit``
(fit on train, select on validation), ``refit`` (fit again on train + validation with the selected
setting) and ``scores``; the test split never reaches the fit.
"""

from __future__ import annotations

import logging
import time
import warnings
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..registry import register_attacker
from . import metrics
from .fitting import Attacker

log = logging.getLogger(__name__)

#: the inverse regularisation strengths the logistic model selects from
C_GRID = (0.01, 0.1, 1.0, 10.0)


# ---------------------------------------------------------------------------------------- features
def _clips(x: torch.Tensor) -> torch.Tensor:
    return x.unsqueeze(2) if x.dim() == 4 else x


def _maps(x: torch.Tensor, channels: int) -> torch.Tensor:
    """The first ``channels`` channels; feature maps with many channels are averaged to one."""
    return x[:, :channels] if channels <= 4 else x.mean(1, keepdim=True)


def _pool(m: torch.Tensor, p: int) -> torch.Tensor:
    return F.adaptive_avg_pool2d(m, min(p, m.shape[-1])).flatten(1)


def mhi_features(x: torch.Tensor, channels: int = 3, probe_size: int = 8) -> torch.Tensor:
    """Mean frame, motion-energy image and motion-history image, pooled to ``probe_size`` squared.

    Args:
        x: released clips ``[B,C,T,H,W]`` (images ``[B,C,H,W]``) in their released value range.
        channels: distinct channels of the release (a replicated grey map has 1).
    Returns:
        ``[B, 3 * c * p * p]`` (+ ``C`` per-channel means for releases with many channels).
    """
    x = _clips(x)
    m = _maps(x, channels)
    t = m.shape[2]
    mean = m.mean(2)
    if t >= 2:
        act = (m[:, :, 1:] - m[:, :, :-1]).abs()
        w = torch.arange(1, t, dtype=act.dtype, device=act.device)
        mei = act.mean(2)
        mhi = (act * (w / w.sum()).reshape(1, 1, -1, 1, 1)).sum(2)
    else:
        mei = mhi = torch.zeros_like(mean)
    out = [_pool(mean, probe_size), _pool(mei, probe_size), _pool(mhi, probe_size)]
    if channels > 4:
        out.append(x.mean((2, 3, 4)))
    return torch.cat(out, 1)


def profile_features(x: torch.Tensor, channels: int = 3, bins: int = 16) -> torch.Tensor:
    """Silhouette amount and shape profiles over time of the (channel-averaged) release.

    Per frame: the amount (mean value), the centroid and spread of the released mass, the row and
    column profiles; summarised over time by their mean and spread (order-free, so a clip offset
    does not move them), plus the spectrum of the amount and of its frame-to-frame change.

    Returns:
        ``[B, D]`` with ``D = 14 + 4 * bins + 2 * (T // 2)``.
    """
    x = _clips(x)
    g = _maps(x, channels).mean(1)  # [B,T,H,W]
    b, t, h, w = g.shape
    amount = g.mean((2, 3))  # [B,T]
    mass = g.sum((2, 3)).clamp_min(1e-6)
    ys = torch.linspace(0, 1, h, dtype=g.dtype, device=g.device).reshape(1, 1, h)
    xs = torch.linspace(0, 1, w, dtype=g.dtype, device=g.device).reshape(1, 1, w)
    rows, cols = g.mean(3), g.mean(2)  # [B,T,H], [B,T,W]
    cy = (rows * h * ys).sum(2) / mass
    cx = (cols * w * xs).sum(2) / mass
    sy = ((rows * h * (ys - cy.unsqueeze(2)) ** 2).sum(2) / mass).sqrt()
    sx = ((cols * w * (xs - cx.unsqueeze(2)) ** 2).sum(2) / mass).sqrt()
    series = torch.stack([amount, cx, cy, sx, sy], 2)  # [B,T,5]
    stats = [series.mean(1), series.std(1, unbiased=False), amount.amin(1, keepdim=True), amount.amax(1, keepdim=True),
             (amount[:, 1:] - amount[:, :-1]).abs().mean(1, keepdim=True) if t >= 2 else torch.zeros(b, 1)]

    def prof(p: torch.Tensor) -> list[torch.Tensor]:
        r = F.adaptive_avg_pool1d(p, min(bins, p.shape[-1]))  # [B,T,bins]
        if r.shape[-1] < bins:
            r = F.pad(r, (0, bins - r.shape[-1]))
        return [r.mean(1), r.std(1, unbiased=False)]

    half = t // 2
    spec = []
    for s in (amount, torch.cat([torch.zeros(b, 1), amount[:, 1:] - amount[:, :-1]], 1) if t >= 2 else amount):
        f = torch.fft.rfft(s - s.mean(1, keepdim=True), dim=1).abs()[:, 1:half + 1] if half else torch.zeros(b, 0)
        spec.append(f / (s.abs().mean(1, keepdim=True) + 1e-6))
    return torch.cat(stats + prof(rows) + prof(cols) + spec, 1)


def hog_features(x: torch.Tensor, channels: int = 3, orientations: int = 9, cells: int = 4) -> torch.Tensor:
    """Histogram of oriented gradients of the mean frame (channel-averaged).

    Central-difference gradients, ``orientations`` unsigned bins with linear interpolation between
    neighbouring bins, ``cells x cells`` cells, blocks of 2x2 cells normalised with L2-Hys (clip at 0.2).

    Returns:
        ``[B, (cells - 1)^2 * 4 * orientations]``.
    """
    x = _clips(x)
    g = _maps(x, channels).mean((1, 2))  # [B,H,W]
    gp = F.pad(g.unsqueeze(1), (1, 1, 1, 1), mode="replicate").squeeze(1)
    gx = gp[:, 1:-1, 2:] - gp[:, 1:-1, :-2]
    gy = gp[:, 2:, 1:-1] - gp[:, :-2, 1:-1]
    mag = (gx * gx + gy * gy).sqrt()
    ang = torch.remainder(torch.atan2(gy, gx), torch.pi) / torch.pi * orientations  # [0, n)
    lo = torch.floor(ang).long() % orientations
    hi = (lo + 1) % orientations
    frac = ang - torch.floor(ang)
    b, h, w = g.shape
    hist = torch.zeros(b, orientations, h, w, dtype=g.dtype)
    hist.scatter_add_(1, lo.unsqueeze(1), (mag * (1 - frac)).unsqueeze(1))
    hist.scatter_add_(1, hi.unsqueeze(1), (mag * frac).unsqueeze(1))
    c = max(2, min(cells, h, w))
    cellh = F.adaptive_avg_pool2d(hist, c)  # [B,n,c,c]
    blocks = []
    for i in range(c - 1):
        for j in range(c - 1):
            v = cellh[:, :, i:i + 2, j:j + 2].flatten(1)
            v = v / (v.norm(dim=1, keepdim=True) + 1e-6)
            v = v.clamp_max(0.2)
            blocks.append(v / (v.norm(dim=1, keepdim=True) + 1e-6))
    return torch.cat(blocks, 1)


def lag_profile(x: torch.Tensor, bands: int = 16) -> torch.Tensor:
    """How a clip differs from itself ``l`` frames later, for every lag ``l = 1 .. T-1``: the mean
    absolute difference ``|x_{t+l} - x_t|`` per channel, divided by its mean over the lags, pooled to
    ``bands`` values ``[B, C * bands]``. A periodic motion comes back to itself one period later, so
    the profile dips at the period: the tempo, whatever the phase and the amount of motion. Images and
    one-frame clips give zeros."""
    x = _clips(x)
    b, c, t = x.shape[:3]
    if t < 2:
        return x.new_zeros(b, c * bands)
    prof = torch.stack([(x[:, :, lag:] - x[:, :, :-lag]).abs().mean((2, 3, 4)) for lag in range(1, t)], 2)
    prof = prof / (prof.mean(2, keepdim=True) + 1e-6)
    return F.adaptive_avg_pool1d(prof, bands).flatten(1)


def motion_level(x: torch.Tensor) -> torch.Tensor:
    """The log of the mean absolute temporal difference per channel ``[B, C]`` (how much the clip
    moves; images: log of a small constant)."""
    x = _clips(x)
    if x.shape[2] < 2:
        return torch.full(x.shape[:2], float(np.log(1e-4)), dtype=x.dtype, device=x.device)
    return torch.log((x[:, :, 1:] - x[:, :, :-1]).abs().mean((2, 3, 4)) + 1e-4)


def silhouette_profiles(x: torch.Tensor, bins: int = 32) -> torch.Tensor:
    """Where the figure is and how tall and wide it is, from two maps of the clip: its mean frame's
    distance from each row's median colour (a background even along rows drops out) and its
    motion-energy image. For each map, its row and column profiles (each summing to 1, pooled to
    ``bins``) and the centroid and spread of each. Returns ``[B, 2 * (2 * bins + 4)]``."""
    x = _clips(x)
    mean = x.mean(2)
    still = (mean - mean.median(3, keepdim=True).values).abs().sum(1)  # [B,H,W]
    moving = (x[:, :, 1:] - x[:, :, :-1]).abs().mean(2).sum(1) if x.shape[2] >= 2 else torch.zeros_like(still)
    out = []
    for m in (still, moving):
        for prof in (m.mean(2), m.mean(1)):  # rows (over height), columns (over width)
            prof = prof / (prof.sum(1, keepdim=True) + 1e-6)
            pos = torch.linspace(0, 1, prof.shape[1], dtype=prof.dtype, device=prof.device)
            centre = (prof * pos).sum(1, keepdim=True)
            spread = ((prof * (pos - centre) ** 2).sum(1, keepdim=True) + 1e-8).sqrt()
            out += [F.adaptive_avg_pool1d(prof.unsqueeze(1), bins).flatten(1), centre, spread]
    return torch.cat(out, 1)


def tempo_features(x: torch.Tensor, channels: int = 3, bands: int = 16) -> torch.Tensor:
    """How much and how fast the release moves, nothing of where: :func:`motion_level` and
    :func:`lag_profile` of its channels, ``[B, c * (1 + bands)]``."""
    m = _maps(_clips(x), channels)
    return torch.cat([motion_level(m), lag_profile(m, bands)], 1)


def shape_features(x: torch.Tensor, channels: int = 3, bins: int = 32) -> torch.Tensor:
    """Where the figure is and how tall and wide: :func:`silhouette_profiles` of the release."""
    return silhouette_profiles(_maps(_clips(x), channels), bins)


def combo_features(x: torch.Tensor, channels: int = 3) -> torch.Tensor:
    """The three families side by side."""
    return torch.cat([mhi_features(x, channels), profile_features(x, channels), hog_features(x, channels)], 1)


FEATURES: dict[str, Callable[..., torch.Tensor]] = {
    "mhi": mhi_features, "profile": profile_features, "hog": hog_features, "combo": combo_features,
    "tempo": tempo_features, "shape": shape_features,
}


# ---------------------------------------------------------------------------------------- models
def _distinct_channels(data) -> int:
    store = data.x
    return int(store.shape[1]) // int(getattr(store, "repeat", 1) or 1)


class ClassicalAttacker(Attacker):
    """f_b as a classical model on hand-made features of the release (non-gradient attacker).

    Args:
        features: a key of :data:`FEATURES`.
        model: ``logistic`` or ``boosted``.
        num_classes: private classes (attributes when multi-label).
        boost_rounds: most boosting rounds (the number used is selected on validation).
        components: principal components of the standardised features the boosted model sees.
        seed: seed of the models.
    """

    level = "classical"

    def __init__(self, features: str, model: str, num_classes: int, boost_rounds: int = 60, components: int = 48,
                 seed: int = 0):
        if features not in FEATURES or model not in ("logistic", "boosted"):
            raise ValueError(f"classical attacker: unknown features {features!r} or model {model!r}")
        self.features, self.model, self.num_classes = features, model, int(num_classes)
        self.boost_rounds, self.components, self.seed = int(boost_rounds), int(components), int(seed)
        self._pre = None
        self.channels: int | None = None
        self.chosen: dict = {}
        self._est = None

    # -- features
    def featurize(self, data) -> np.ndarray:
        """Features of every entry of an encoded split (computed once per store and feature family)."""
        if self.channels is None:
            self.channels = _distinct_channels(data)
        ch = self.channels
        fn = FEATURES[self.features]
        return data.features(f"{self.features}/c{ch}", lambda x: fn(x, ch))

    # -- estimators
    def _make(self, multilabel: bool, c: float | None = None, rounds: int | None = None):
        from sklearn.ensemble import HistGradientBoostingClassifier
        from sklearn.linear_model import LogisticRegression
        from sklearn.multiclass import OneVsRestClassifier

        if self.model == "logistic":
            est = LogisticRegression(C=c, max_iter=1000)
        else:  # small trees, coarse bins: a few seconds on a CPU for thousands of releases
            est = HistGradientBoostingClassifier(max_iter=rounds or self.boost_rounds, learning_rate=0.2,
                                                 max_leaf_nodes=8, min_samples_leaf=10, max_bins=32,
                                                 l2_regularization=1.0, early_stopping=False, random_state=self.seed)
        return OneVsRestClassifier(est) if multilabel else est

    def _prepare(self, x: np.ndarray, fit: bool) -> np.ndarray:
        """Standardise (both models); the boosted model works on the first principal components
        (trees on hundreds of raw features cost minutes, on 48 components seconds)."""
        from sklearn.decomposition import PCA
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        if fit:
            steps = [StandardScaler()]
            if self.model == "boosted" and x.shape[1] > self.components:
                steps.append(PCA(n_components=min(self.components, len(x) - 1), random_state=self.seed))
            self._pre = make_pipeline(*steps).fit(x)
        return self._pre.transform(x)

    def _fit(self, est, x: np.ndarray, y: np.ndarray):
        from threadpoolctl import threadpool_limits

        with warnings.catch_warnings(), threadpool_limits(1 if x.size < 2_000_000 else torch.get_num_threads()):
            warnings.simplefilter("ignore")  # convergence chatter of lbfgs on separable data
            est.fit(x, y)
        return est

    def _scores(self, est, x: np.ndarray, multilabel: bool, rounds: int | None = None) -> np.ndarray:
        if multilabel:
            return np.asarray(est.decision_function(x), dtype=np.float64).reshape(len(x), -1)
        if rounds is not None and self.model == "boosted":
            proba = None
            for i, p in enumerate(est.staged_predict_proba(x)):
                proba = p
                if i + 1 >= rounds:
                    break
        else:
            proba = est.predict_proba(x)
        out = np.full((len(x), self.num_classes), np.log(1e-12))
        out[:, est.classes_.astype(int)] = np.log(np.clip(proba, 1e-12, 1.0))
        return out

    @staticmethod
    def _labels(data, labels: str) -> np.ndarray:
        return data.label(labels).numpy()

    def _val_score(self, s: np.ndarray, y: np.ndarray, multilabel: bool) -> float:
        return metrics.cmap(s, y) if multilabel else metrics.accuracy(s, y)

    # -- the interface of every attacker
    def fit(self, train, val, labels: str = "private", *, multilabel: bool = False) -> dict:
        """Fit on ``train`` (every probing view) and select the setting on ``val``.

        Returns:
            the selection record: the chosen setting, its validation score, the validation score
            of every setting tried (``curve``) and seconds.
        """
        t0 = time.time()
        xtr, ytr = self._prepare(self.featurize(train), True), self._labels(train, labels)
        xva, yva = self._prepare(self.featurize(val), False), self._labels(val, labels)
        curve = []
        if self.model == "logistic":
            best = (-1.0, None, None)
            for c in C_GRID:
                est = self._fit(self._make(multilabel, c=c), xtr, ytr)
                v = self._val_score(self._scores(est, xva, multilabel), yva, multilabel)
                curve.append({"C": c, "val": round(v, 5)})
                if v > best[0] + 1e-6:
                    best = (v, c, est)
            score, c, self._est = best
            self.chosen = {"C": c}
        else:
            est = self._fit(self._make(multilabel), xtr, ytr)
            if multilabel:
                score = self._val_score(self._scores(est, xva, True), yva, True)
                self.chosen = {"rounds": self.boost_rounds}
                curve.append({"rounds": self.boost_rounds, "val": round(score, 5)})
            else:
                score, best_r = -1.0, 1
                for i, p in enumerate(est.staged_predict_proba(xva)):
                    v = metrics.accuracy(est.classes_[p.argmax(1)], yva)
                    if (i + 1) % 5 == 0 or i == 0:
                        curve.append({"rounds": i + 1, "val": round(v, 5)})
                    if v > score + 1e-6:
                        score, best_r = v, i + 1
                self.chosen = {"rounds": best_r}
            self._est = est
        last = curve[-1]["val"] if curve else score
        return {"chosen": dict(self.chosen), "val": float(score), "curve": curve, "seconds": round(time.time() - t0, 2),
                "still_rising": bool(self.model == "boosted" and self.chosen.get("rounds") == self.boost_rounds
                                     and last >= score - 1e-6),
                "train_samples": int(len(xtr)), "features": int(xtr.shape[1])}

    def refit(self, pool, labels: str = "private", *, multilabel: bool = False, selection: dict | None = None) -> dict:
        """Fit again on train + validation with the setting selected by :meth:`fit`."""
        t0 = time.time()
        est = self._make(multilabel, c=self.chosen.get("C"), rounds=self.chosen.get("rounds"))
        self._est = self._fit(est, self._prepare(self.featurize(pool), True), self._labels(pool, labels))
        if self.model == "boosted":
            self.chosen = {**self.chosen, "refit": True}
        return {"seconds": round(time.time() - t0, 2), "samples": len(pool)}

    def scores(self, data, *, multilabel: bool = False) -> np.ndarray:
        """Per-clip log-probabilities ``[N,K]`` (attribute scores when multi-label)."""
        rounds = None if self.chosen.get("refit") else self.chosen.get("rounds")
        return self._scores(self._est, self._prepare(self.featurize(data), False), multilabel, rounds)


def _factory(features: str, model: str):
    def make(in_channels: int, num_classes: int, size: int = 32, clip_len: int = 16, boost_rounds: int = 60,
             components: int = 48, seed: int = 0) -> ClassicalAttacker:
        return ClassicalAttacker(features, model, num_classes, boost_rounds=boost_rounds, components=components,
                                 seed=seed)

    what = {"mhi": "mean-frame, motion-energy and motion-history images",
            "profile": "silhouette amount and shape profiles over time", "hog": "HOG of the mean frame",
            "combo": "motion images, silhouette profiles and HOG together",
            "tempo": "the amount and the lag profile of the motion (its tempo)",
            "shape": "row and column profiles of the figure and of its motion"}[features]
    how = ("standardised multinomial logistic regression, C selected on validation" if model == "logistic"
           else "histogram gradient boosting, rounds selected on validation")
    make.__doc__ = f"Classical attacker: {what}; {how}."
    make.__name__ = f"{features}_{model}"
    return make


for _f in FEATURES:
    for _m in ("logistic", "boosted"):
        register_attacker(f"{_f}_{_m}", tags=("classical",))(_factory(_f, _m))

__all__ = ["ClassicalAttacker", "FEATURES", "combo_features", "hog_features", "lag_profile", "mhi_features",
           "motion_level", "profile_features", "shape_features", "silhouette_profiles", "tempo_features"]
