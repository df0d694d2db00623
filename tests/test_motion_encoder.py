"""The motion encoder f_d: static appearance has no path to the release; the release is quantised."""

import torch

from privacam.registry import create_encoder


def _moving_square(static_colour: float = 0.3) -> torch.Tensor:
    x = torch.full((1, 3, 6, 16, 16), static_colour)
    x[:, 0] = torch.linspace(0, 1, 16)  # a static colour gradient: appearance, not motion
    for t in range(6):
        x[:, :, t, 4:8, 2 + t:6 + t] = 0.9
    return x


def test_untrained_motion_encoder_is_a_thresholded_motion_detector():
    enc = create_encoder("motion").eval()
    x = _moving_square()
    z = enc(x)
    assert z.shape == x.shape
    assert set(z.unique().tolist()) <= {0.0, 1.0}  # binary release (levels=2)
    # frames 1..5: exactly the pixels whose grey level changed switch on
    g = (x * torch.tensor([0.299, 0.587, 0.114]).reshape(1, 3, 1, 1, 1)).sum(1)
    moved = (g[:, 1:] - g[:, :-1]).abs() > enc.threshold
    assert torch.equal(z[:, 0, 1:].bool(), moved)


def test_static_appearance_does_not_reach_the_release():
    enc = create_encoder("motion", levels=0).eval()
    torch.manual_seed(0)
    for p in enc.net.parameters():  # a trained-looking net, not the zero-initialised one
        torch.nn.init.normal_(p, std=0.3)
    a, b = _moving_square(0.2), _moving_square(0.2)
    b[:, 1:] += 0.5 * torch.rand(1, 2, 1, 16, 16)  # other clothing/background colours, same motion
    b = b.clamp(0, 1)
    b[:, :, :, 4:8] = a[:, :, :, 4:8]  # keep the moving rows identical
    with torch.no_grad():
        za, zb = enc(a), enc(b)
    # a static change (same in every frame) cancels in the temporal difference
    assert torch.allclose(za, zb, atol=1e-6)


def test_quantised_release_passes_gradients_straight_through():
    enc = create_encoder("motion", levels=4)
    x = _moving_square().requires_grad_(True)
    z = enc(x)
    assert len(z.unique()) <= 4
    z.sum().backward()
    assert enc.last.bias.grad is not None and enc.last.bias.grad.abs() > 0
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_colour_motion_sees_a_change_of_colour_at_equal_brightness():
    x = torch.full((1, 3, 4, 8, 8), 0.5)
    # frames 2..3: a patch turns from grey to a red/green mix of the same luminance
    x[:, 0, 2:, 2:4, 2:4], x[:, 1, 2:, 2:4, 2:4] = 0.5 + 0.3, 0.5 - 0.3 * 0.299 / 0.587
    grey, colour = create_encoder("motion").eval(), create_encoder("motion", colour=True).eval()
    with torch.no_grad():
        assert grey(x).sum() == 0  # the grey difference is (almost) zero: nothing shows
        z = colour(x)
    assert z[0, 0, 2, 2:4, 2:4].eq(1).all() and z[0, 0, 3].sum() == 0 and z[0, 0, 2].sum() == 4


def test_cell_releases_whole_blocks():
    x = _moving_square()
    with torch.no_grad():
        fine, coarse = create_encoder("motion").eval()(x), create_encoder("motion", cell=4).eval()(x)
    assert coarse.shape == fine.shape
    # every 4x4 block is constant, and on exactly when some pixel in it was on in the fine map
    blocks = coarse[0, 0].unfold(1, 4, 4).unfold(2, 4, 4)
    assert (blocks == blocks[..., :1, :1]).all()
    on = fine[0, 0].unfold(1, 4, 4).unfold(2, 4, 4).amax((-1, -2))
    assert torch.equal(blocks[..., 0, 0], on)


def _ramp_clips(n: int) -> torch.Tensor:
    """Clips whose frame-1 grey change grows from 0 to 0.3 along the width (frame 0 repeats it)."""
    x = torch.zeros(n, 3, 2, 4, 32)
    x[:, :, 1] = torch.linspace(0, 0.3, 32)
    return x


def test_jitter_draws_a_threshold_per_clip_within_its_range():
    enc = create_encoder("motion", jitter=0.5, seed=3).eval()
    x = _ramp_clips(64)
    change = torch.linspace(0, 0.3, 32)
    with torch.no_grad():
        z = enc(x)[:, 0, 1, 0]  # [clip, column]
    t = enc.threshold
    assert z[:, change > t * 1.5 + 0.01].eq(1).all() and z[:, change < t * 0.5 - 0.01].eq(0).all()
    # each clip is a threshold: on exactly above its own cut, and the cut varies between clips
    cuts = z.sum(1)
    assert all(torch.equal(row, (torch.arange(32) >= 32 - c).float()) for row, c in zip(z, cuts.long()))
    assert len(cuts.unique()) > 5
    # the same seed gives the same release; the next draw another one
    again = create_encoder("motion", jitter=0.5, seed=3).eval()
    with torch.no_grad():
        assert torch.equal(again(x)[:, 0, 1, 0], z)
        assert not torch.equal(again(x)[:, 0, 1, 0], z)


def test_dilate_thickens_each_clip_by_a_random_radius():
    x = _moving_square()
    x = x.expand(40, -1, -1, -1, -1).contiguous()
    plain = create_encoder("motion").eval()
    enc = create_encoder("motion", dilate=2, seed=1).eval()
    with torch.no_grad():
        m, z = plain(x)[:, :1], enc(x)[:, :1]
    grown = [m] + [torch.nn.functional.max_pool3d(m, (1, 2 * r + 1, 2 * r + 1), 1, (0, r, r)) for r in (1, 2)]
    radii = []
    for i in range(len(x)):
        match = [r for r in range(3) if torch.equal(z[i], grown[r][i])]
        assert match, f"clip {i} is not a dilation of the plain release"
        radii.append(match[0])
    assert set(radii) == {0, 1, 2}


def test_bad_randomisation_settings_are_config_errors():
    import pytest

    from privacam.errors import ConfigError

    with pytest.raises(ConfigError, match="jitter"):
        create_encoder("motion", jitter=1.5)
    with pytest.raises(ConfigError, match="dilate"):
        create_encoder("motion", dilate=-1)
