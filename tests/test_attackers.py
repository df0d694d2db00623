"""Every registered attacker: shapes on clips, images, small clips and feature maps; gradients;
pool composition; weight loading."""

import pytest
import torch

import privacam.evaluate.attackers as attackers  # fills the registry without privacam.models' players
from privacam.errors import CheckpointError
from privacam.registry import ATTACKERS

ALL = ATTACKERS.list()
NAMES = [n for n in ALL if "classical" not in ATTACKERS.tags(n)]  # the networks (classical ones: test_audit.py)
K = 5


def test_pool_size_and_families():
    assert len(NAMES) >= 10 and len(ALL) - len(NAMES) >= 6
    levels = {ATTACKERS.create(n, in_channels=3, num_classes=K).level for n in ALL}
    assert levels == {"frame", "clip", "probe", "classical"}
    assert ATTACKERS.list(tag="clip") and ATTACKERS.list(tag="probe") and ATTACKERS.list(tag="frame")
    for n in ALL:
        assert n not in ("small_cnn", "resnet18") and not n.startswith("mobilenet_v2")
        assert ATTACKERS.tags(n) == {ATTACKERS.create(n, in_channels=3, num_classes=K).level}
    assert set(attackers.DEFAULT_POOL) <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    "shape,kw",
    [
        ((2, 3, 16, 32, 32), {}),
        ((2, 3, 32, 32), {}),
        ((2, 3, 4, 16, 16), {"size": 16, "clip_len": 4}),
        ((2, 64, 4, 8, 8), {"size": 8, "clip_len": 4}),
    ],
    ids=["clip", "image", "small", "feature"],
)
def test_shapes_train_and_eval(name, shape, kw):
    torch.manual_seed(0)
    m = ATTACKERS.create(name, in_channels=shape[1], num_classes=K, **kw)
    x = torch.rand(shape)
    assert m(x).shape == (2, K)
    m.eval()
    with torch.no_grad():
        assert m(x).shape == (2, K)


@pytest.mark.parametrize("name", NAMES)
def test_backward_reaches_every_parameter(name):
    torch.manual_seed(0)
    m = ATTACKERS.create(name, in_channels=3, num_classes=K, size=16, clip_len=4)
    x = torch.rand(4, 3, 4, 16, 16)
    loss = torch.nn.functional.cross_entropy(m(x), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    for pname, p in m.named_parameters():
        assert p.grad is not None, f"{name}: no gradient for {pname}"
        assert torch.isfinite(p.grad).all(), f"{name}: non-finite gradient for {pname}"


def test_frame_attacker_frame_logits_and_sparse_training():
    m = ATTACKERS.create("small_cnn_a", in_channels=3, num_classes=K, train_frames=2)
    x = torch.rand(2, 3, 6, 32, 32)
    assert m.frame_logits(x).shape == (2, 2, K)  # training: 2 frames per clip
    m.eval()
    fl = m.frame_logits(x)
    assert fl.shape == (2, 6, K)
    torch.testing.assert_close(m(x), fl.mean(1))


def test_motion_probe_ignores_static_content():
    m = ATTACKERS.create("motion_probe", in_channels=3, num_classes=K).eval()
    still = torch.rand(1, 3, 1, 16, 16).expand(2, 3, 8, 16, 16).clone()
    still[1] = torch.rand(3, 1, 16, 16).expand(3, 8, 16, 16)  # another background, no motion
    out = m(still)
    torch.testing.assert_close(out[0], out[1])


def test_weights_skip_head_but_otherwise_strict(tmp_path, caplog):
    src = ATTACKERS.create("resnet_tiny", in_channels=3, num_classes=7)
    path = tmp_path / "w.pt"
    torch.save(src.state_dict(), path)
    with caplog.at_level("INFO", logger="privacam.models.common"):
        dst = ATTACKERS.create("resnet_tiny", in_channels=3, num_classes=K, weights=str(path))
    assert "net.fc.weight" in caplog.text
    torch.testing.assert_close(dst.net.stem[0].weight, src.net.stem[0].weight)
    torch.save({"state_dict": {"bogus": torch.zeros(1)}}, path)
    with pytest.raises(CheckpointError, match="do not fit"):
        ATTACKERS.create("resnet_tiny", in_channels=3, num_classes=K, weights=str(path))
