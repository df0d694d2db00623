"""Reconstruction adversaries f_b: they rebuild the input x from the release z (CPGAN's threat,
Tseng & Wu, TIFS 2020).

Registered (``budget.names`` of a CPGAN config): ``decoder`` (:class:`CodeDecoder`, an MLP trained by
gradient descent) and two closed-form regressors fitted on (z, x) pairs, ``ridge``
(:class:`LinearRidgeReconstructor`) and ``rff_ridge`` (:class:`RFFKernelRidgeReconstructor`). The exact
:class:`KernelRidgeReconstructor` is used by the audit (its size grows with the data). Closed-form models
keep everything in buffers (no trainable parameters) and are differentiable with respect to the code,
so f_d can be trained against them.

Every factory takes ``in_dim`` (numbers per code, per frame for clips) and ``out_shape`` (one image,
``(C, H, W)``); codes of clips (``[B, C, T, h, w]``) are reconstructed frame by frame.
"""

from __future__ import annotations

import logging
import math
from typing import Sequence

import torch
from torch import nn

from ..registry import register_reconstructor
from .common import fold_frames, unfold_frames

log = logging.getLogger(__name__)


class _Reconstructor(nn.Module):
    """Maps a code (``[N, *code_shape]``, or clips ``[B, C, T, h, w]`` frame by frame) to an image of
    ``out_shape``; subclasses implement ``_predict(flat_codes) -> flat_images``."""

    def __init__(self, in_dim: int, out_shape: Sequence[int]):
        super().__init__()
        self.in_dim = int(in_dim)
        self.out_shape = tuple(int(s) for s in out_shape)
        self.out_dim = int(math.prod(self.out_shape))

    def _predict(self, z: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        f, t = fold_frames(z) if z.dim() == 5 else (z, 0)
        y = self._predict(f.reshape(f.shape[0], -1)).reshape(f.shape[0], *self.out_shape)
        return unfold_frames(y, t)


def _pairs(z: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Flatten (code, image) pairs to float64 matrices; clip pairs become frame pairs."""
    if z.dim() == 5 and x.dim() == 5:
        z, _ = fold_frames(z)
        x, _ = fold_frames(x)
    return z.reshape(z.shape[0], -1).double(), x.reshape(x.shape[0], -1).double()


def _ridge_solve(a: torch.Tensor, y: torch.Tensor, alpha: float) -> torch.Tensor:
    """W minimising ``|aW - y|^2 + alpha |W|^2``: primal ``(AᵀA + αI)⁻¹Aᵀy`` when A has fewer columns than
    rows, else the dual ``Aᵀ(AAᵀ + αI)⁻¹y`` (same solution, smaller system)."""
    n, d = a.shape
    if d <= n:
        g = a.T @ a + alpha * torch.eye(d, dtype=a.dtype, device=a.device)
        return torch.linalg.solve(g, a.T @ y)
    k = a @ a.T + alpha * torch.eye(n, dtype=a.dtype, device=a.device)
    return a.T @ torch.linalg.solve(k, y)


class LinearRidgeReconstructor(_Reconstructor):
    """Closed-form linear f_b: ``x ≈ ((z - μ_z) / s_z) W + μ_x`` with W from ridge regression.

    ``fit`` solves ``(ZᵀZ + αI) W = ZᵀX`` on centred (and, with ``standardize``, unit-variance) codes in
    float64. Standardising makes the adversary invariant to the code's scale, so f_d cannot escape a
    fixed ``alpha`` by shrinking its code. Without it, predictions equal scikit-learn's ``Ridge(alpha)``.

    Args:
        in_dim: numbers per code (per frame for clips).
        out_shape: shape of one reconstructed image ``(C, H, W)``.
        alpha: ridge penalty α.
        standardize: divide each code entry by its training standard deviation.
    """

    def __init__(self, in_dim: int, out_shape: Sequence[int], alpha: float = 1.0, standardize: bool = True):
        super().__init__(in_dim, out_shape)
        self.alpha, self.standardize = float(alpha), standardize
        self.register_buffer("z_mean", torch.zeros(self.in_dim))
        self.register_buffer("z_scale", torch.ones(self.in_dim))
        self.register_buffer("x_mean", torch.zeros(self.out_dim))
        self.register_buffer("weight", torch.zeros(self.in_dim, self.out_dim))

    def reset_parameters(self) -> None:
        for b in (self.z_mean, self.x_mean, self.weight):
            b.zero_()
        self.z_scale.fill_(1.0)

    @torch.no_grad()
    def fit(self, z: torch.Tensor, x: torch.Tensor) -> "LinearRidgeReconstructor":
        """Fit on pairs ``z [N, ...]`` (codes) and ``x [N, ...]`` (the images they came from)."""
        zz, xx = _pairs(z, x)
        zm, xm = zz.mean(0), xx.mean(0)
        zc = zz - zm
        scale = zc.std(0).clamp_min(1e-8) if self.standardize and len(zz) > 1 else torch.ones_like(zm)
        w = _ridge_solve(zc / scale, xx - xm, self.alpha)
        for buf, val in ((self.z_mean, zm), (self.z_scale, scale), (self.x_mean, xm), (self.weight, w)):
            buf.copy_(val.to(buf.dtype))
        return self

    def _predict(self, z: torch.Tensor) -> torch.Tensor:
        return ((z - self.z_mean) / self.z_scale) @ self.weight + self.x_mean


def median_distance(z: torch.Tensor, max_points: int = 1000) -> float:
    """Median pairwise Euclidean distance of the rows of ``z`` (the RBF bandwidth heuristic)."""
    z = z[:max_points].double()
    d = torch.cdist(z, z)
    iu = torch.triu_indices(len(z), len(z), offset=1)
    vals = d[iu[0], iu[1]]
    return float(vals.median()) if vals.numel() else 1.0


class RFFKernelRidgeReconstructor(_Reconstructor):
    """Closed-form kernel f_b: ridge regression on random Fourier features of the code.

    ``φ(z) = sqrt(2/D) cos(Ω z / σ + b)`` with ``Ω ~ N(0, I)`` and ``b ~ U[0, 2π)`` drawn from ``seed``
    approximates the RBF kernel ``exp(-|z - z'|² / (2σ²))`` (Rahimi & Recht); ``fit`` then solves
    ridge on ``φ`` in float64. ``sigma=None`` takes the median pairwise distance of the (standardised)
    training codes at every fit. With ``center=False, standardize=False`` it approaches scikit-learn's
    ``KernelRidge(kernel="rbf", gamma=1/(2σ²), alpha)`` as ``num_features`` grows.

    Args:
        in_dim, out_shape: as :class:`LinearRidgeReconstructor`.
        num_features: D, the number of random features.
        sigma: RBF bandwidth σ (None: median heuristic).
        alpha: ridge penalty.
        standardize: standardise codes before the features.
        center: fit an unpenalised intercept (centre features and targets).
        seed: seeds Ω and b.
    """

    def __init__(self, in_dim: int, out_shape: Sequence[int], num_features: int = 512, sigma: float | None = None,
                 alpha: float = 1e-2, standardize: bool = True, center: bool = True, seed: int = 0):
        super().__init__(in_dim, out_shape)
        self.num_features, self.alpha = int(num_features), float(alpha)
        self.fixed_sigma = sigma
        self.standardize, self.center, self.seed = standardize, center, seed
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("omega", torch.randn(self.in_dim, self.num_features, generator=g))
        self.register_buffer("phase", torch.rand(self.num_features, generator=g) * 2 * math.pi)
        self.register_buffer("sigma", torch.tensor(float(sigma) if sigma else 1.0))
        self.register_buffer("z_mean", torch.zeros(self.in_dim))
        self.register_buffer("z_scale", torch.ones(self.in_dim))
        self.register_buffer("f_mean", torch.zeros(self.num_features))
        self.register_buffer("x_mean", torch.zeros(self.out_dim))
        self.register_buffer("weight", torch.zeros(self.num_features, self.out_dim))

    def reset_parameters(self) -> None:
        for b in (self.z_mean, self.f_mean, self.x_mean, self.weight):
            b.zero_()
        self.z_scale.fill_(1.0)

    def _standard(self, z: torch.Tensor) -> torch.Tensor:
        return (z - self.z_mean.to(z.dtype)) / self.z_scale.to(z.dtype)

    def features(self, z: torch.Tensor) -> torch.Tensor:
        """φ(z) for flat codes ``[N, in_dim]`` (standardised first when fitted that way)."""
        s = self._standard(z)
        proj = s @ self.omega.to(z.dtype) / self.sigma.to(z.dtype) + self.phase.to(z.dtype)
        return math.sqrt(2.0 / self.num_features) * torch.cos(proj)

    @torch.no_grad()
    def fit(self, z: torch.Tensor, x: torch.Tensor) -> "RFFKernelRidgeReconstructor":
        """Fit on pairs ``z [N, ...]`` and ``x [N, ...]``."""
        zz, xx = _pairs(z, x)
        if self.standardize and len(zz) > 1:
            self.z_mean.copy_(zz.mean(0).float())
            self.z_scale.copy_(zz.std(0).clamp_min(1e-8).float())
        else:
            self.z_mean.zero_()
            self.z_scale.fill_(1.0)
        if not self.fixed_sigma:
            self.sigma.fill_(max(median_distance(self._standard(zz)), 1e-6))
        phi = self.features(zz)
        fm = phi.mean(0) if self.center else torch.zeros(phi.shape[1], dtype=phi.dtype, device=phi.device)
        xm = xx.mean(0) if self.center else torch.zeros(xx.shape[1], dtype=xx.dtype, device=xx.device)
        w = _ridge_solve(phi - fm, xx - xm, self.alpha)
        for buf, val in ((self.f_mean, fm), (self.x_mean, xm), (self.weight, w)):
            buf.copy_(val.to(buf.dtype))
        return self

    def _predict(self, z: torch.Tensor) -> torch.Tensor:
        return (self.features(z) - self.f_mean) @ self.weight + self.x_mean


class KernelRidgeReconstructor(_Reconstructor):
    """Exact RBF kernel ridge regression (dual form, float64), for the audit: stores the N training
    codes, so its size depends on the data it was fitted on (not meant for checkpoints).

    ``x ≈ μ_x + k(z, Z) (K + αI)⁻¹ (X - μ_x)`` with ``k(a, b) = exp(-|a - b|² / (2σ²))`` on standardised
    codes; ``sigma=None`` uses the median heuristic.
    """

    def __init__(self, in_dim: int, out_shape: Sequence[int], sigma: float | None = None, alpha: float = 1e-2,
                 standardize: bool = True):
        super().__init__(in_dim, out_shape)
        self.fixed_sigma, self.alpha, self.standardize = sigma, float(alpha), standardize
        self.sigma = float(sigma) if sigma else 1.0
        self.register_buffer("z_mean", torch.zeros(self.in_dim, dtype=torch.float64))
        self.register_buffer("z_scale", torch.ones(self.in_dim, dtype=torch.float64))
        self.register_buffer("x_mean", torch.zeros(self.out_dim, dtype=torch.float64))
        self.register_buffer("train_z", torch.zeros(0, self.in_dim, dtype=torch.float64))
        self.register_buffer("dual", torch.zeros(0, self.out_dim, dtype=torch.float64))

    def _kernel(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.exp(-torch.cdist(a, b).pow(2) / (2 * self.sigma**2))

    @torch.no_grad()
    def fit(self, z: torch.Tensor, x: torch.Tensor) -> "KernelRidgeReconstructor":
        zz, xx = _pairs(z, x)
        if self.standardize and len(zz) > 1:
            self.z_mean, self.z_scale = zz.mean(0), zz.std(0).clamp_min(1e-8)
        s = (zz - self.z_mean) / self.z_scale
        if not self.fixed_sigma:
            self.sigma = max(median_distance(s), 1e-6)
        self.x_mean = xx.mean(0)
        k = self._kernel(s, s) + self.alpha * torch.eye(len(s), dtype=s.dtype, device=s.device)
        self.train_z, self.dual = s, torch.linalg.solve(k, xx - self.x_mean)
        return self

    def _predict(self, z: torch.Tensor) -> torch.Tensor:
        s = (z.double() - self.z_mean) / self.z_scale
        return (self._kernel(s, self.train_z) @ self.dual + self.x_mean).to(z.dtype)


class CodeDecoder(_Reconstructor):
    """Neural f_b: flatten the code -> ``depth`` hidden layers of ``hidden`` units -> image.

    ``out_act="sigmoid"`` keeps the reconstruction in [0, 1] (images); ``"none"`` for unbounded data.
    """

    def __init__(self, in_dim: int, out_shape: Sequence[int], hidden: int = 256, depth: int = 1, out_act: str = "none"):
        super().__init__(in_dim, out_shape)
        layers: list[nn.Module] = []
        d = self.in_dim
        for _ in range(depth):
            layers += [nn.Linear(d, hidden), nn.ReLU(inplace=True)]
            d = hidden
        layers.append(nn.Linear(d, self.out_dim))
        if out_act == "sigmoid":
            layers.append(nn.Sigmoid())
        elif out_act != "none":
            raise ValueError(f"unknown decoder output {out_act!r}; valid: none, sigmoid")
        self.net = nn.Sequential(*layers)

    def _predict(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def is_closed_form(model: nn.Module) -> bool:
    """Closed-form adversaries are fitted (``fit(z, x)``) rather than trained by gradient steps."""
    return callable(getattr(model, "fit", None)) and not any(True for _ in model.parameters())


@register_reconstructor("decoder")
def decoder(in_dim: int, out_shape: Sequence[int], hidden: int = 256, depth: int = 1, out_act: str = "none") -> nn.Module:
    """Neural f_b: an MLP from the flattened code to the image (``out_act``: none | sigmoid)."""
    return CodeDecoder(in_dim, out_shape, hidden=int(hidden), depth=int(depth), out_act=str(out_act))


@register_reconstructor("ridge")
def ridge(in_dim: int, out_shape: Sequence[int], alpha: float = 1.0, standardize: bool = True) -> nn.Module:
    """Closed-form linear f_b: ridge regression from the (standardised) code to the image."""
    return LinearRidgeReconstructor(in_dim, out_shape, alpha=float(alpha), standardize=bool(standardize))


@register_reconstructor("rff_ridge")
def rff_ridge(in_dim: int, out_shape: Sequence[int], rff_features: int = 512, rff_sigma: float | None = None,
              rff_alpha: float = 1e-2, standardize: bool = True, seed: int = 0) -> nn.Module:
    """Closed-form kernel f_b: ridge regression on ``rff_features`` random Fourier features of the code
    (RBF bandwidth ``rff_sigma``, None: median heuristic; penalty ``rff_alpha``)."""
    return RFFKernelRidgeReconstructor(in_dim, out_shape, num_features=int(rff_features), sigma=rff_sigma,
                                       alpha=float(rff_alpha), standardize=bool(standardize), seed=int(seed))


__all__ = ["CodeDecoder", "LinearRidgeReconstructor", "RFFKernelRidgeReconstructor", "KernelRidgeReconstructor",
           "median_distance", "is_closed_form"]
