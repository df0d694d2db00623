"""Baseline encoders f_d: shapes, range, grey, the defining property of each, BDQ gradients."""

import pytest
import torch

import privacam.models.baselines as baselines  # registers the baselines
from privacam.registry import ENCODERS

NAMES = list(baselines.BASELINES)


def _clip(b=2, t=8, h=32, w=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, t, h, w, generator=g)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(2, 3, 8, 32, 32), (2, 3, 32, 32)], ids=["clip", "image"])
def test_shape_range_grey(name, shape):
    x = torch.rand(shape, dtype=torch.float32)
    for grey in (False, True):
        enc = ENCODERS.create(name, grey=grey)
        y = enc(x)
        c = 1 if grey else 3
        assert y.shape == (shape[0], c, *shape[2:])
        assert enc.out_channels == c
        assert y.dtype == x.dtype and y.device == x.device
        assert y.min() >= 0 and y.max() <= 1
        assert enc.releases == "image"
        assert enc.trainable is (name == "bdq")


def test_downsample_is_constant_on_blocks():
    y = ENCODERS.create("downsample", factor=4)(_clip())
    blocks = y.unfold(-2, 4, 4).unfold(-2, 4, 4)  # [..., 8, 8, 4, 4]
    assert torch.allclose(blocks, blocks[..., :1, :1].expand_as(blocks))
    small = ENCODERS.create("downsample", factor=4, upsample=False)(_clip())
    assert small.shape[-2:] == (8, 8)
    torch.testing.assert_close(small, y[..., ::4, ::4])


def test_pixelate_blocks_and_partial_tiles():
    x = torch.rand(1, 3, 10, 10)
    y = ENCODERS.create("pixelate", block=4)(x)
    torch.testing.assert_close(y[..., 0, 0], x[..., :4, :4].mean((-1, -2)))
    torch.testing.assert_close(y[..., 9, 9], x[..., 8:, 8:].mean((-1, -2)))


def _high_freq_energy(x):
    return (x[..., 1:, :] - x[..., :-1, :]).pow(2).mean() + (x[..., :, 1:] - x[..., :, :-1]).pow(2).mean()


def test_blur_reduces_high_frequencies_monotonically():
    x = _clip()
    e = [_high_freq_energy(ENCODERS.create(n)(x)) for n in ("blur_weak", "blur", "blur_strong")]
    assert e[0] < 0.5 * _high_freq_energy(x) and e[1] < e[0] and e[2] < e[1]
    flat = torch.full((1, 3, 16, 16), 0.3)
    torch.testing.assert_close(ENCODERS.create("blur", sigma=2.0)(flat), flat)  # mean preserved


def test_greyscale_channels_equal():
    y = ENCODERS.create("greyscale")(_clip())
    torch.testing.assert_close(y[:, 0], y[:, 1])
    torch.testing.assert_close(y[:, 1], y[:, 2])


def test_temporal_diff_zero_on_static_and_images():
    static = torch.rand(2, 3, 1, 16, 16).expand(2, 3, 6, 16, 16)
    enc = ENCODERS.create("temporal_diff")
    assert enc(static).abs().max() == 0
    assert enc(torch.rand(2, 3, 16, 16)).abs().max() == 0
    moving = _clip(t=4)
    assert enc(moving).mean() > 0.1


def _moving_square_clip(t=8, size=32):
    """Static textured background with a bright square moving left to right."""
    g = torch.Generator().manual_seed(1)
    bg = 0.3 + 0.1 * torch.rand(1, 3, 1, size, size, generator=g)
    x = bg.expand(1, 3, t, size, size).clone()
    for i in range(t):
        x[0, :, i, 12:20, 2 + 2 * i: 10 + 2 * i] = 0.95
    return x


def test_blacken_removes_moving_region_keeps_static_background():
    x = _moving_square_clip()
    y = ENCODERS.create("blacken", threshold=0.1, dilate=1)(x)
    assert y[0, :, 3, 12:20, 8:14].abs().max() == 0  # the square in frame 3 is gone
    torch.testing.assert_close(y[0, :, :, 0:8], x[0, :, :, 0:8])  # far background untouched


def test_blacken_image_fallback_is_centre_box():
    x = torch.rand(1, 3, 32, 32) * 0.5 + 0.5
    y = ENCODERS.create("blacken")(x)
    assert y[0, :, 16, 16].abs().max() == 0
    torch.testing.assert_close(y[0, :, 0, 0], x[0, :, 0, 0])


def test_body_crop_falls_back_to_motion_mask():
    x = _moving_square_clip()
    y = ENCODERS.create("body_crop", threshold=0.1, dilate=1)(x)
    assert y[0, :, 3, 12:20, 8:14].abs().max() == 0
    torch.testing.assert_close(y[0, :, :, 0:8], x[0, :, :, 0:8])
    none = ENCODERS.create("body_crop", fallback="none")(x)
    assert none.shape == x.shape


@pytest.mark.parametrize("name", ["face_blur", "face_crop"])
def test_face_detector_runs_and_leaves_faceless_input_unchanged(name):
    enc = ENCODERS.create(name)
    flat = torch.linspace(0, 1, 32).reshape(1, 1, 1, 32).expand(2, 3, 32, 32).contiguous()
    torch.testing.assert_close(enc(flat), flat)
    clip = flat.unsqueeze(2).expand(2, 3, 4, 32, 32).contiguous()
    torch.testing.assert_close(enc(clip), clip)
    assert enc._det(_grey_u8_of(flat)) == []  # the Haar cascade path ran


def _grey_u8_of(x):
    return (x[0].mean(0) * 255).to(torch.uint8).numpy()


def test_face_obfuscation_modifies_detected_boxes(monkeypatch):
    x = torch.rand(1, 3, 32, 32)
    crop = ENCODERS.create("face_crop", margin=0.0)
    monkeypatch.setattr(crop, "_det", lambda grey: [(4, 6, 10, 8)])
    y = crop(x)
    assert y[0, :, 6:14, 4:14].abs().max() == 0
    torch.testing.assert_close(y[0, :, 20:], x[0, :, 20:])
    blur = ENCODERS.create("face_blur", margin=0.0)
    monkeypatch.setattr(blur, "_det", lambda grey: [(4, 6, 10, 8)])
    yb = blur(x)
    assert _high_freq_energy(yb[..., 6:14, 4:14]) < 0.5 * _high_freq_energy(x[..., 6:14, 4:14])
    torch.testing.assert_close(yb[0, :, 20:], x[0, :, 20:])


def test_bdq_gradients_reach_sigma_and_bins():
    enc = ENCODERS.create("bdq")
    x = _clip(t=4)
    y = enc(x)
    assert y.shape == x.shape
    (y * torch.randn_like(y)).sum().backward()
    assert enc.sigma.grad is not None and enc.sigma.grad.abs().sum() > 0
    assert enc.bins.grad is not None and enc.bins.grad.abs().sum() > 0
    img = ENCODERS.create("bdq", hard=True)
    out = img(torch.rand(2, 3, 16, 16))
    levels = torch.unique(out.detach())
    assert len(levels) <= 16  # hard staircase: at most `levels` values
    out.sum().backward()
    assert img.bins.grad is not None


def test_bdq_weights_roundtrip(tmp_path):
    a = ENCODERS.create("bdq")
    with torch.no_grad():
        a.sigma.fill_(2.0)
    torch.save(a.state_dict(), tmp_path / "bdq.pt")
    b = ENCODERS.create("bdq", weights=str(tmp_path / "bdq.pt"))
    torch.testing.assert_close(b.sigma, a.sigma)


@pytest.mark.parametrize("hw", [(32, 32), (30, 17), (7, 5), (3, 2), (1, 9)])
def test_traceable_forms_match_eager(hw):
    """The export-friendly forms used under tracing (ONNX export) give the eager releases, also at
    sizes not divisible by the factor and smaller than the blur radius."""
    x = torch.rand(2, 3, *hw, generator=torch.Generator().manual_seed(0))
    for factor in (1, 3, 4):
        for up in (True, False):
            ref = baselines.Downsample(3, factor=factor, upsample=up).encode_frames(x)
            got = baselines.traceable_area_resize(x, factor, up)
            assert got.shape == ref.shape
            torch.testing.assert_close(got, ref, atol=1e-6, rtol=0)
    for sigma in (1.0, 2.0):
        enc = baselines.GaussianBlur(3, sigma=sigma)
        torch.testing.assert_close(baselines.traceable_separable_blur(x, enc.taps), enc.encode_frames(x), atol=1e-6, rtol=0)
    assert baselines.GaussianBlur(3).state_dict() == {}  # the fixed taps are not saved
