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
