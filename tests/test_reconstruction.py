"""Reconstruction attacks: closed-form regressors against scikit-learn, PSNR/SSIM at the extremes."""

import numpy as np
import pytest
import torch

from privacam.evaluate.reconstruction import face_detected_fraction, reconstruction_attack
from privacam.models.reconstructors import KernelRidgeReconstructor, LinearRidgeReconstructor, RFFKernelRidgeReconstructor


def _regression_data(n=200, d=5, k=7, seed=0):
    g = np.random.default_rng(seed)
    z = g.normal(size=(n, d))
    x = np.tanh(z @ g.normal(size=(d, k))) + 0.1 * g.normal(size=(n, k))
    return z, x


def test_linear_ridge_equals_sklearn_ridge():
    from sklearn.linear_model import Ridge

    z, x = _regression_data()
    zt = np.random.default_rng(1).normal(size=(30, 5))
    for alpha in (0.01, 3.0, 100.0):
        m = LinearRidgeReconstructor(5, (7,), alpha=alpha, standardize=False).fit(torch.tensor(z), torch.tensor(x))
        ours = m(torch.tensor(zt, dtype=torch.float32)).numpy()
        ref = Ridge(alpha=alpha).fit(z, x).predict(zt)
        np.testing.assert_allclose(ours, ref, atol=1e-4)


def test_linear_ridge_dual_form_when_code_is_wider_than_data():
    from sklearn.linear_model import Ridge

    g = np.random.default_rng(2)
    z, x = g.normal(size=(20, 50)), g.normal(size=(20, 3))
    m = LinearRidgeReconstructor(50, (3,), alpha=0.5, standardize=False).fit(torch.tensor(z), torch.tensor(x))
    np.testing.assert_allclose(m(torch.tensor(z, dtype=torch.float32)).numpy(), Ridge(alpha=0.5).fit(z, x).predict(z), atol=1e-4)


def test_rff_kernel_ridge_approaches_exact_rbf_kernel_ridge():
    from sklearn.kernel_ridge import KernelRidge

    z, x = _regression_data()
    zt = np.random.default_rng(1).normal(size=(50, 5))
    sigma, alpha = 2.0, 0.1
    exact = KernelRidge(kernel="rbf", gamma=1 / (2 * sigma**2), alpha=alpha).fit(z, x).predict(zt)
    errs = []
    for d in (16, 256, 8192):
        m = RFFKernelRidgeReconstructor(5, (7,), num_features=d, sigma=sigma, alpha=alpha, standardize=False,
                                        center=False, seed=0).fit(torch.tensor(z), torch.tensor(x))
        errs.append(float(np.abs(m(torch.tensor(zt, dtype=torch.float32)).numpy() - exact).mean()))
    assert errs[0] > errs[1] > errs[2]
    assert errs[2] < 0.05 * np.abs(exact).mean()
    # the exact dual-form module of the audit matches scikit-learn (no centring needed: compare centred)
    km = KernelRidgeReconstructor(5, (7,), sigma=sigma, alpha=alpha, standardize=False).fit(torch.tensor(z), torch.tensor(x))
    ref = KernelRidge(kernel="rbf", gamma=1 / (2 * sigma**2), alpha=alpha).fit(z, x - x.mean(0)).predict(zt) + x.mean(0)
    np.testing.assert_allclose(km(torch.tensor(zt)).numpy(), ref, atol=1e-6)


def test_closed_form_reconstructors_are_differentiable_in_the_code():
    z = torch.randn(64, 6)
    x = torch.rand(64, 1, 4, 4)
    for m in (LinearRidgeReconstructor(6, (1, 4, 4)), RFFKernelRidgeReconstructor(6, (1, 4, 4), num_features=64)):
        m.fit(z, x)
        zq = z[:4].clone().requires_grad_(True)
        m(zq).pow(2).sum().backward()
        assert zq.grad is not None and zq.grad.abs().sum() > 0
        assert not list(m.parameters())  # nothing for an optimizer: fitted, not trained


def _digit_images():
    from sklearn.datasets import load_digits

    x = torch.tensor(load_digits().images[:500], dtype=torch.float32)[:, None] / 16.0
    return x[:300], x[300:380], x[380:]


def test_identity_release_is_reconstructed_almost_perfectly():
    tr, va, te = _digit_images()
    res = reconstruction_attack(tr, tr, va, va, te, te, attackers=("ridge", "kernel_ridge", "decoder"), epochs=3)
    assert set(res["attackers"]) == {"ridge", "kernel_ridge", "decoder"}
    assert res["best_attacker"] == min(res["attackers"], key=lambda n: res["attackers"][n]["val_mse"])
    assert res["psnr"] > 35 and res["ssim"] > 0.98 and res["mse"] < 1e-3


def test_constant_release_gives_the_mean_image_error():
    tr, va, te = _digit_images()
    const = lambda x: torch.zeros(len(x), 4, 1, 1)  # noqa: E731 - an encoder that releases nothing
    res = reconstruction_attack(const(tr), tr, const(va), va, const(te), te, attackers=("ridge", "kernel_ridge", "decoder"),
                                epochs=5)
    expected = float(((te - tr.mean(0)) ** 2).mean())  # test variance around the train mean image
    for name in ("ridge", "kernel_ridge"):
        assert res["attackers"][name]["mse"] == pytest.approx(expected, rel=1e-3)
    assert res["mse"] == pytest.approx(expected, rel=0.1)
    assert res["psnr"] < 15


def test_attack_accepts_any_release_shape_and_clips():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(60, 1, 2, 4, 4, generator=g)  # clips [N, C, T, H, W]
    z = x.reshape(60, 2, 16)[:, :, :5]  # some [N, 2, 5] release
    res = reconstruction_attack(z[:40], x[:40], z[40:50], x[40:50], z[50:], x[50:], attackers=("ridge",), examples=3)
    assert np.isfinite(res["mse"]) and 0 <= res["ssim"] <= 1
    assert res["examples"]["reconstruction"].shape == (3, 1, 2, 4, 4)
    with pytest.raises(ValueError, match="valid: ridge"):
        reconstruction_attack(z, x, z, x, z, x, attackers=("resnet",))


def test_face_detector_finds_no_face_in_noise_and_counts_per_image():
    g = torch.Generator().manual_seed(0)
    noise = torch.rand(3, 3, 64, 64, generator=g)
    assert face_detected_fraction(noise) == 0.0
    assert face_detected_fraction(torch.zeros(0, 1, 32, 32)) == 0.0
