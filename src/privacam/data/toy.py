"""Toy and vector datasets, released as ``[D, 1, 1]`` "images": D channels of a 1x1 picture, so that
image-sized players (``size = 1``) and the code encoders (which flatten) take them unchanged
(``data.size`` is then ignored).

- ``gaussian_mixture``: CPGAN's synthetic two-class Gaussian mixture with an analytic utility /
  reconstruction trade-off (:func:`gaussian_mixture_optimum`).
- ``uci_har``: the UCI smartphone human-activity features (``train/X_train.txt``, ...); the private
  label can be the ``subject``.

Labels and params as in :mod:`privacam.data.images` (``params.private``: ``utility``, ``none``, and
``subject`` for UCI HAR).
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch

from ..errors import DataError
from ..registry import register_dataset
from .base import Splits, dataset_root
from .images import _find, _holdout, _private_labels, _tensor_splits

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------ Gaussian mixture
def _phi(t: float) -> float:
    return math.exp(-0.5 * t * t) / math.sqrt(2 * math.pi)


def _Phi(t: float) -> float:
    return 0.5 * (1.0 + math.erf(t / math.sqrt(2.0)))


def gaussian_mixture_optimum(dim: int = 8, separation: float = 3.0, sigma: float = 1.0, points: int = 101) -> dict:
    """Analytic trade-off of the ``gaussian_mixture`` data (MSE per coordinate, accuracy as fraction).

    The data: ``y ~ Bernoulli(1/2)``, ``x = (2y - 1) a e_1 + sigma * n``, ``n ~ N(0, I_dim)``, ``a = separation/2``.
    Its covariance is ``C = sigma² I + a² e_1 e_1ᵀ``.

    Returns a dict with
      - ``bayes_accuracy`` = Φ(a / sigma), the best possible utility;
      - ``pca_mse[k]``: MSE of the best rank-k linear reconstruction of x (the smallest ``dim - k``
        eigenvalues of C, per coordinate), k = 0..dim; ``pca_mse[0]`` is the total variance;
      - ``linear_frontier``: the optimal (accuracy, MSE) pairs of *linear* codes ``z = Wx`` against the
        best *linear* reconstructor. Extra code dimensions only help reconstruction, so the optimum is a
        rank-1 code ``w = cos θ e_1 + sin θ e_2`` (all directions orthogonal to e_1 are alike): accuracy
        ``Φ(a cos θ / sigma)``, MSE ``(tr C - wᵀC²w / wᵀCw) / dim``, θ from 0 to π/2;
      - ``bit_code``: the optimum over *all* codes at Bayes accuracy — releasing only the Bayes decision
        ``1[x_1 > 0]``; any code that attains Bayes accuracy determines that bit, so its MMSE is at most
        this one. MSE ``((dim - 1) sigma² + Var(x_1 | sign x_1)) / dim``.
    """
    a, s2 = separation / 2.0, sigma**2
    c1 = s2 + a * a
    trace = dim * s2 + a * a
    eig = sorted([c1] + [s2] * (dim - 1))  # ascending
    pca = [float(sum(eig[: dim - k]) / dim) for k in range(dim + 1)]
    frontier = []
    for th in np.linspace(0.0, math.pi / 2, points):
        c, s = math.cos(th) ** 2, math.sin(th) ** 2
        explained = (c1 * c1 * c + s2 * s2 * s) / (c1 * c + s2 * s)
        frontier.append({"accuracy": _Phi(a * math.sqrt(c) / sigma), "mse": (trace - explained) / dim})
    cond_mean = a * (2 * _Phi(a / sigma) - 1) + 2 * sigma * _phi(a / sigma)
    var1 = a * a + s2 - cond_mean**2
    return {
        "dim": dim, "separation": separation, "sigma": sigma,
        "bayes_accuracy": _Phi(a / sigma), "pca_mse": pca, "total_mse": pca[0],
        "linear_frontier": frontier,
        "bit_code": {"accuracy": _Phi(a / sigma), "mse": ((dim - 1) * s2 + var1) / dim},
    }


@register_dataset("gaussian_mixture")
def gaussian_mixture(data_cfg, seed: int = 0) -> Splits:
    """CPGAN's synthetic two-class Gaussian mixture, released as [dim, 1, 1]; analytic optimum in
    ``meta["optimum"]`` (params: dim, separation, sigma, n, test_fraction)."""
    p = dict(data_cfg.params or {})
    dim, sep, sigma = int(p.get("dim", 8)), float(p.get("separation", 3.0)), float(p.get("sigma", 1.0))
    n = int(p.get("n", 3000))
    rng = np.random.default_rng(int(p.get("data_seed", 0)))
    y = rng.integers(0, 2, n).astype(np.int64)
    x = sigma * rng.standard_normal((n, dim))
    x[:, 0] += (2 * y - 1) * sep / 2.0
    xt = torch.as_tensor(x, dtype=torch.float32)[:, :, None, None]
    classes = ["class0", "class1"]
    priv, pcls = _private_labels(str(p.get("private", "utility")), y, classes)
    return _holdout("gaussian_mixture", xt, y, priv, data_cfg, seed, utility_classes=classes, private_classes=pcls,
                    meta={"optimum": gaussian_mixture_optimum(dim, sep, sigma)})


# ------------------------------------------------------------------------------------------ UCI HAR
HAR_ACTIVITIES = ["WALKING", "WALKING_UPSTAIRS", "WALKING_DOWNSTAIRS", "SITTING", "STANDING", "LAYING"]


@register_dataset("uci_har")
def uci_har(data_cfg, seed: int = 0) -> Splits:
    """UCI HAR smartphone features (561 in [-1, 1], scaled to [0, 1], released as [561, 1, 1]):
    utility = activity; ``params.private=subject`` (default) re-splits train+test so test subjects are
    also in train (the official split has disjoint subjects)."""
    root = dataset_root(data_cfg, "uci_har")
    parts = {}
    for split in ("train", "test"):
        d = _find(root, [split], f"the {split}/ folder")
        x = np.loadtxt(d / f"X_{split}.txt", dtype=np.float32, ndmin=2)
        y = np.loadtxt(d / f"y_{split}.txt", dtype=np.int64, ndmin=1) - 1
        s = np.loadtxt(d / f"subject_{split}.txt", dtype=np.int64, ndmin=1)
        if not (len(x) == len(y) == len(s)):
            raise DataError(f"uci_har: {split} files differ in length ({len(x)}, {len(y)}, {len(s)})")
        parts[split] = ((np.clip(x, -1, 1) + 1) / 2, y, s)
    kind = str((data_cfg.params or {}).get("private", "subject"))
    to_t = lambda a: torch.as_tensor(a)[:, :, None, None]  # noqa: E731
    if kind == "subject":
        x = np.concatenate([parts["train"][0], parts["test"][0]])
        y = np.concatenate([parts["train"][1], parts["test"][1]])
        subj = np.concatenate([parts["train"][2], parts["test"][2]])
        subjects = sorted(set(subj.tolist()))
        p = np.asarray([subjects.index(v) for v in subj], dtype=np.int64)
        return _holdout("uci_har", to_t(x), y, p, data_cfg, seed, utility_classes=HAR_ACTIVITIES,
                        private_classes=[f"subject{v}" for v in subjects])
    (ptr, pcls), (pte, _) = (_private_labels(kind, parts[s][1], HAR_ACTIVITIES) for s in ("train", "test"))
    return _tensor_splits("uci_har", to_t(parts["train"][0]), parts["train"][1], ptr, to_t(parts["test"][0]),
                          parts["test"][1], pte, data_cfg=data_cfg, seed=seed, utility_classes=HAR_ACTIVITIES,
                          private_classes=pcls)
