"""Audit metrics against scikit-learn / scikit-image references and edge cases."""

import math

import numpy as np
import pytest
import torch

from privacam.evaluate import metrics as M


def test_cmap_equals_sklearn_macro_ap_with_ties():
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(0)
    targets = (rng.random((60, 7)) < 0.3).astype(float)
    targets[0] = 1  # every class has a positive
    scores = rng.normal(size=(60, 7))
    scores[:20, 1] = 0.25  # ties form one threshold
    scores[:, 2] = np.round(scores[:, 2], 1)
    ref = average_precision_score(targets, scores, average="macro")
    assert M.cmap(scores, targets) == pytest.approx(ref, abs=1e-12)
    assert M.cmap(torch.from_numpy(scores), torch.from_numpy(targets)) == pytest.approx(ref, abs=1e-12)


def test_cmap_skips_classes_without_positive_and_perfect_scores():
    t = np.array([[1, 0], [0, 0], [1, 0]], dtype=float)
    s = np.array([[0.9, 0.1], [0.1, 0.2], [0.8, 0.3]])
    assert M.cmap(s, t) == pytest.approx(1.0)
    assert M.chance_cmap(t) == pytest.approx(2 / 3)


def test_chance_cmap_is_mean_prevalence():
    t = np.array([[1, 0, 1], [0, 1, 1], [0, 0, 1], [0, 0, 0]], dtype=float)
    assert M.chance_cmap(t) == pytest.approx(np.mean([0.25, 0.25, 0.75]))


def test_accuracy_clip_and_frame():
    y = torch.tensor([0, 1])
    assert M.accuracy(torch.tensor([[2.0, 1.0], [0.0, 1.0]]), y) == 1.0
    assert M.accuracy(torch.tensor([1, 1]), y) == 0.5
    # frames: clip 0 has 1 of 3 frames right but its average is right
    fl = torch.tensor([[[3.0, 0.0], [0.0, 1.0], [0.0, 1.0]], [[0.0, 1.0], [0.0, 1.0], [0.0, 1.0]]])
    assert M.frame_accuracy(fl, y) == pytest.approx(4 / 6)
    assert M.clip_accuracy(fl, y) == 1.0
    with pytest.raises(ValueError):
        M.accuracy(torch.zeros(3, 2), y)


def test_chance_accuracy_uses_train_majority():
    assert M.chance_accuracy([0, 1, 1, 2], [1, 1, 0, 2, 2]) == pytest.approx(2 / 5)
    assert M.chance_accuracy([3, 3, 0], [0, 0]) == 0.0
    assert M.chance_accuracy([1, 0], [0, 1, 0]) == pytest.approx(2 / 3)  # tie: smallest label


def test_per_attribute_f1_matches_sklearn():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(1)
    t = (rng.random((40, 5)) < 0.4).astype(int)
    s = rng.normal(size=(40, 5))
    ref = f1_score(t, (s >= 0).astype(int), average=None, zero_division=0)
    np.testing.assert_allclose(M.per_attribute_f1(s, t), ref)


def test_nag_edge_cases():
    assert M.nag(0.5, 1.0, 0.0) == pytest.approx(0.5)
    assert M.nag(0.1, 0.9, 0.2) == 0.0  # below chance clips at 0
    assert M.nag(1.0, 0.6, 0.2) == pytest.approx(2.0)  # above raw is not clipped
    assert M.nag(0.3, 0.2, 0.2) == 1.0  # raw at chance: any leak counts fully
    assert M.nag(0.2, 0.2, 0.2) == 0.0
    assert M.nag(0.1, 0.1, 0.3) == 0.0


def _images():
    rng = np.random.default_rng(2)
    x = rng.random((3, 3, 24, 20))
    y = np.clip(x + rng.normal(0, 0.1, x.shape), 0, 1)
    return x, y


def test_psnr_matches_skimage():
    from skimage.metrics import peak_signal_noise_ratio

    x, y = _images()
    ref = np.mean([peak_signal_noise_ratio(a, b, data_range=1) for a, b in zip(x, y)])
    assert M.psnr(torch.from_numpy(x).float(), torch.from_numpy(y).float()) == pytest.approx(ref, abs=1e-4)
    assert M.psnr(x, y) == pytest.approx(ref, abs=1e-9)
    assert math.isinf(M.psnr(x, x))


def test_ssim_matches_skimage():
    from skimage.metrics import structural_similarity

    x, y = _images()
    ref = np.mean([structural_similarity(a, b, data_range=1, channel_axis=0) for a, b in zip(x, y)])
    assert M.ssim(x, y) == pytest.approx(ref, abs=1e-4)
    assert M.ssim(torch.from_numpy(x).float(), torch.from_numpy(y).float()) == pytest.approx(ref, abs=1e-4)
    assert M.ssim(x, x) == pytest.approx(1.0)
    # a different image pair, single channel
    g = np.random.default_rng(3).random((1, 1, 16, 16))
    h = np.roll(g, 1, axis=-1)
    assert M.ssim(g, h) == pytest.approx(structural_similarity(g[0, 0], h[0, 0], data_range=1), abs=1e-4)
