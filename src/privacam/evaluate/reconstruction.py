"""Reconstruction attacks on a frozen encoder's release (the CPGAN threat), for any encoder.

:func:`reconstruction_attack` trains fresh attackers that rebuild the input x from the release z on
(train) pairs, selects each attacker's hyper-parameters and the best attacker on validation (never on
test) and reports MSE, PSNR and SSIM on test, computed in float64 on images in [0, 1]:

- ``ridge``: closed-form linear ridge regression (penalty chosen on validation);
- ``kernel_ridge``: RBF kernel ridge regression — exact (dual) up to ``max_exact`` training pairs, random
  Fourier features beyond (bandwidth and penalty chosen on validation);
- ``decoder``: an MLP decoder trained with Adam and early stopping on validation MSE.

Shapes: ``z`` may be any ``[N, ...]`` (images, feature maps, codes), ``x`` is ``[N, C, H, W]`` or clips
``[N, C, T, H, W]``. Every attacker maps the flattened z to the flattened x. Callers that have per-frame
releases of clips should pass frame pairs (``[N*T, ...]``) instead, as ``protocol.reconstruction_audit``
does; whole clips are scored frame by frame by PSNR/SSIM.

Also :func:`face_detected_fraction`: how often OpenCV's frontal-face Haar cascade fires on images.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ..models.reconstructors import KernelRidgeReconstructor, LinearRidgeReconstructor, RFFKernelRidgeReconstructor

log = logging.getLogger(__name__)

ATTACKERS = ("ridge", "kernel_ridge", "decoder")

try:  # the shared metrics module (float64, matches scikit-image)
    from .metrics import psnr as _psnr, ssim as _ssim
except ImportError:  # pragma: no cover - fallback while metrics is being built
    _psnr = _ssim = None


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> float:
    """Mean per-image PSNR (dB) of ``x`` against ``y``."""
    if _psnr is not None:
        return float(_psnr(x, y, data_range=data_range))
    a, b = _frames(x), _frames(y)
    mse = ((a - b) ** 2).flatten(1).mean(1)
    return float((10 * torch.log10(data_range**2 / mse)).mean())


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> float:
    """Mean SSIM of ``x`` and ``y`` (uniform 7x7 window, as scikit-image)."""
    if _ssim is not None:
        return float(_ssim(x, y, data_range=data_range))
    import torch.nn.functional as F

    a, b = _frames(x), _frames(y)
    n, c, h, w = a.shape
    win = min(7, h, w)
    win -= 1 - win % 2
    a, b = a.reshape(n * c, 1, h, w), b.reshape(n * c, 1, h, w)
    pool = lambda t: F.avg_pool2d(t, win, stride=1)  # noqa: E731
    cn = win * win / max(win * win - 1, 1)
    ux, uy = pool(a), pool(b)
    vx, vy, vxy = cn * (pool(a * a) - ux**2), cn * (pool(b * b) - uy**2), cn * (pool(a * b) - ux * uy)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    return float(s.reshape(n, -1).mean(1).mean())


def _frames(x: torch.Tensor) -> torch.Tensor:
    x = x.detach().double()
    if x.dim() == 5:
        x = x.transpose(1, 2).flatten(0, 1)
    return x


def _mse(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a.double() - b.double()) ** 2).mean())


def _scores(pred: torch.Tensor, x: torch.Tensor) -> dict:
    """MSE / PSNR / SSIM of a reconstruction; PSNR/SSIM only for image-shaped data in [0, 1]."""
    out: dict[str, Any] = {"mse": _mse(pred, x)}
    if x.dim() in (4, 5) and x.shape[-1] > 1 and x.shape[-2] > 1:
        p = pred.double().clamp(0.0, 1.0)
        out["psnr"] = psnr(p, x.double())
        out["ssim"] = ssim(p, x.double())
    return out


# ------------------------------------------------------------------------------------------ attackers
def _flat(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], -1).float()


def _fit_ridge(trz, trx, vz, vx, alphas: Sequence[float]):
    best = None
    for a in alphas:
        m = LinearRidgeReconstructor(trz.shape[1], (trx.shape[1],), alpha=a).fit(trz, trx)
        err = _mse(m(vz), vx)
        if best is None or err < best[0]:
            best = (err, m, {"alpha": a})
    return best


def _fit_kernel(trz, trx, vz, vx, alphas, sigma_factors, seed: int, max_exact: int, rff_features: int):
    from ..models.reconstructors import median_distance

    z_std = (trz - trz.mean(0)) / trz.std(0).clamp_min(1e-8) if len(trz) > 1 else trz
    base = max(median_distance(z_std.double()), 1e-6)
    best = None
    for f in sigma_factors:
        for a in alphas:
            if len(trz) <= max_exact:
                m = KernelRidgeReconstructor(trz.shape[1], (trx.shape[1],), sigma=base * f, alpha=a).fit(trz, trx)
            else:
                m = RFFKernelRidgeReconstructor(trz.shape[1], (trx.shape[1],), num_features=rff_features, sigma=base * f,
                                                alpha=a, seed=seed).fit(trz, trx)
            err = _mse(m(vz), vx)
            if best is None or err < best[0]:
                best = (err, m, {"alpha": a, "sigma": base * f, "exact": len(trz) <= max_exact})
    return best


def _fit_decoder(trz, trx, vz, vx, *, seed: int, epochs: int, hidden: int, lr: float, batch_size: int, patience: int):
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = nn.Sequential(nn.Linear(trz.shape[1], hidden), nn.ReLU(), nn.Linear(hidden, trx.shape[1]))
    # standardise inputs with train statistics: the attacker must not depend on the code's scale
    # (a floor on the std: a code entry constant on train must not blow up on validation)
    mu, sd = trz.mean(0), trz.std(0).clamp_min(1e-3) if len(trz) > 1 else torch.ones(trz.shape[1])
    xm = trx.mean(0)
    lo, hi = float(trx.min()), float(trx.max())  # a reconstruction stays in the inputs' range
    norm = lambda z: (z - mu) / sd  # noqa: E731
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    best, best_state, since = math.inf, None, 0
    for ep in range(epochs):
        net.train()
        perm = torch.randperm(len(trz), generator=g)
        for s in range(0, len(trz), batch_size):
            i = perm[s:s + batch_size]
            loss = ((net(norm(trz[i])) + xm - trx[i]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            err = _mse((net(norm(vz)) + xm).clamp(lo, hi), vx)
        if err < best - 1e-7:
            best, best_state, since = err, {k: v.clone() for k, v in net.state_dict().items()}, 0
        else:
            since += 1
            if since >= patience:
                break
    net.load_state_dict(best_state)
    net.eval()

    def predict(z):
        with torch.no_grad():
            return (net(norm(z)) + xm).clamp(lo, hi)

    return best, predict, {"epochs_run": ep + 1, "hidden": hidden}


def reconstruction_attack(train_z: torch.Tensor, train_x: torch.Tensor, val_z: torch.Tensor, val_x: torch.Tensor,
                          test_z: torch.Tensor, test_x: torch.Tensor, *, attackers: Sequence[str] = ATTACKERS,
                          seed: int = 0, epochs: int = 60, hidden: int = 256, lr: float = 2e-3, batch_size: int = 64,
                          patience: int = 8, alphas: Sequence[float] = (1e-4, 1e-2, 1.0, 1e2),
                          sigma_factors: Sequence[float] = (0.5, 1.0, 2.0), max_exact: int = 3000,
                          rff_features: int = 1024, examples: int = 0) -> dict:
    """Fresh reconstruction attackers f_b on a frozen release z = f_d(x): fit on train, select on
    validation, score on test.

    Args:
        train_z, train_x, val_z, val_x, test_z, test_x: releases ``[N, ...]`` and the inputs ``[N, C, H, W]``
            (or ``[N, C, T, H, W]``) they came from, in [0, 1].
        attackers: any of ``ridge``, ``kernel_ridge``, ``decoder``.
        seed: seeds the decoder and the random features.
        epochs, hidden, lr, batch_size, patience: the decoder's training (early-stopped on validation).
        alphas: ridge penalties tried (relative to standardised codes); sigma_factors: RBF bandwidths tried,
            as multiples of the median pairwise distance.
        max_exact: exact kernel ridge up to this many training pairs, random Fourier features beyond.
        examples: also return this many test inputs and their best reconstructions (tensors, not JSON).

    Returns:
        ``{"attackers": {name: {"mse", "psnr", "ssim", "val_mse", "params"}}, "best_attacker": name,
        "mse", "psnr", "ssim"}`` — the best attacker chosen by validation MSE; PSNR/SSIM are present
        for image-shaped inputs (values clamped to [0, 1] first). With ``examples``: ``"examples":
        {"input": tensor, "reconstruction": tensor}``.
    """
    unknown = [a for a in attackers if a not in ATTACKERS]
    if unknown:
        raise ValueError(f"unknown reconstruction attacker {unknown[0]!r}; valid: {', '.join(ATTACKERS)}")
    if not attackers:
        raise ValueError("reconstruction_attack needs at least one attacker")
    tr_z, va_z, te_z = _flat(train_z), _flat(val_z), _flat(test_z)
    tr_x, va_x, te_x = _flat(train_x), _flat(val_x), _flat(test_x)
    shape = tuple(test_x.shape[1:])
    results: dict[str, dict] = {}
    preds: dict[str, torch.Tensor] = {}
    for name in attackers:
        t0 = time.time()
        if name == "ridge":
            val_err, model, params = _fit_ridge(tr_z, tr_x, va_z, va_x, alphas)
            predict = model
        elif name == "kernel_ridge":
            val_err, model, params = _fit_kernel(tr_z, tr_x, va_z, va_x, alphas, sigma_factors, seed, max_exact, rff_features)
            predict = model
        else:
            val_err, predict, params = _fit_decoder(tr_z, tr_x, va_z, va_x, seed=seed, epochs=epochs, hidden=hidden, lr=lr,
                                                    batch_size=batch_size, patience=patience)
        with torch.no_grad():
            pred = predict(te_z).float().reshape(len(te_z), *shape)
        preds[name] = pred
        results[name] = {**_scores(pred, test_x.float()), "val_mse": val_err, "params": params,
                         "seconds": round(time.time() - t0, 2)}
        log.info("reconstruction attacker %s: val MSE %.5f, test MSE %.5f", name, val_err, results[name]["mse"])
    best = min(results, key=lambda n: results[n]["val_mse"])
    out: dict[str, Any] = {"attackers": results, "best_attacker": best,
                           **{k: v for k, v in results[best].items() if k in ("mse", "psnr", "ssim")}}
    if examples:
        out["examples"] = {"input": test_x[:examples].detach().cpu(), "reconstruction": preds[best][:examples].cpu()}
    return out


# ------------------------------------------------------------------------------------------ faces
def face_detected_fraction(images: torch.Tensor | np.ndarray, *, scale_factor: float = 1.1, min_neighbors: int = 3,
                           min_size: int = 0) -> float:
    """Fraction of images in which OpenCV's frontal-face Haar cascade finds at least one face.

    Args:
        images: ``[N, C, H, W]`` (or clips ``[N, C, T, H, W]``, scored per frame) in [0, 1], C in {1, 3}.
        scale_factor, min_neighbors: the cascade's ``detectMultiScale`` settings.
        min_size: smallest face side in pixels (0: a tenth of the image side, at least 12).
    """
    import cv2

    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    if cascade.empty():  # pragma: no cover - broken OpenCV install
        raise RuntimeError("OpenCV's haarcascade_frontalface_default.xml could not be loaded")
    x = _frames(torch.as_tensor(images)).clamp(0, 1)
    if len(x) == 0:
        return 0.0
    grey = x.mean(1) if x.shape[1] != 1 else x[:, 0]
    arr = (grey.numpy() * 255).round().astype(np.uint8)
    side = min(arr.shape[1:])
    ms = min_size or max(12, side // 10)
    hits = 0
    for img in arr:
        faces = cascade.detectMultiScale(img, scaleFactor=scale_factor, minNeighbors=min_neighbors, minSize=(ms, ms))
        hits += int(len(faces) > 0)
    return hits / len(arr)


__all__ = ["reconstruction_attack", "face_detected_fraction", "psnr", "ssim", "ATTACKERS"]
