"""Every registered player: shapes and a backward pass (parametrised over the registries)."""

import pytest
import torch

from privacam import registry
from privacam.registry import (ADVERSARIES, ENCODERS, UTILITY_MODELS, create_adversary, create_encoder,
                               create_utility, list_adversaries, list_utility_models)
from privacam.errors import ConfigError, RegistryError

SLOW_UTILITY = {"c3d", "r2plus1d_18", "r3d_18", "mc3_18"}


@pytest.mark.parametrize("name", ENCODERS.list())
@pytest.mark.parametrize("kind", ["clip", "image"])
def test_encoder_shapes_range_and_backward(name, kind):
    torch.manual_seed(0)
    enc = create_encoder(name)
    x = torch.rand(2, 3, 4, 16, 16) if kind == "clip" else torch.rand(2, 3, 16, 16)
    x.requires_grad_(True)
    if name == "substitute":  # a release is a bank clip: fill a bank; its gradient (expected losses) is in test_substitute
        g = torch.Generator().manual_seed(0)
        enc.set_bank(torch.randint(0, 256, (6, *x.shape[1:]), dtype=torch.uint8, generator=g),
                     torch.tensor([0, 1, 0, 1, 0, 1]), torch.tensor([0, 0, 1, 1, 2, 2]))
        y = enc(x)
        assert y.shape == x.shape and float(y.min()) >= 0.0 and float(y.max()) <= 1.0
        return
    y = enc(x)
    assert y.shape[0] == 2 and y.dim() == x.dim()
    if getattr(enc, "releases", "image") == "image":
        assert y.shape[-2:] == x.shape[-2:]
        assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    params = [p for p in enc.parameters() if p.requires_grad]
    if getattr(enc, "trainable", True) and params:
        # a weighted sum: the mean of a normalised release (the decision's softmax) is constant
        (y.float() * torch.rand(y.shape, generator=torch.Generator().manual_seed(1))).sum().backward()
        assert any(p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0 for p in params)


@pytest.mark.parametrize("name", ["small_conv", "st_conv", "transform_net", "identity"])
def test_grey_output_has_one_channel(name):
    enc = create_encoder(name, grey=True)
    assert enc(torch.rand(1, 3, 2, 16, 16)).shape[1] == 1


@pytest.mark.parametrize("name", UTILITY_MODELS.list())
def test_utility_shapes_and_backward(name):
    size, t = (32, 8) if name in SLOW_UTILITY else (16, 4)
    if name == "decision_readout":  # reads a release of 5 decisions, has no parameters
        m = create_utility(name, in_channels=5, num_classes=5)
        x = torch.rand(2, 5, 1, 1, 1).softmax(1).requires_grad_(True)
    else:
        m = create_utility(name, num_classes=5, size=size, clip_len=t)
        x = torch.rand(2, 3, t, size, size)
    y = m(x)
    assert y.shape == (2, 5)
    y.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)
    image = torch.rand(2, 5, 1, 1) if name == "decision_readout" else torch.rand(2, 3, size, size)
    assert m(image).shape == (2, 5)  # images as one-frame clips


@pytest.mark.parametrize("name", ADVERSARIES.list())
def test_adversary_framewise_average(name):
    m = create_adversary(name, num_classes=7, size=16)
    m.eval()
    x = torch.rand(2, 3, 3, 16, 16)
    y = m(x)
    assert y.shape == (2, 7)
    from privacam.models.common import FrameClassifier

    if isinstance(m, FrameClassifier):  # frame-wise budget models: logits are the per-frame mean
        per_frame = torch.stack([m(x[:, :, i]) for i in range(3)], 1).mean(1)
        assert torch.allclose(y, per_frame, atol=1e-5)
    m.train()
    m(x).sum().backward()


def test_mobilenet_width_multiplier_changes_size():
    small = sum(p.numel() for p in create_adversary("mobilenet_v2", num_classes=3, width=0.3).parameters())
    big = sum(p.numel() for p in create_adversary("mobilenet_v2", num_classes=3, width=0.6).parameters())
    assert small < big


def test_registry_errors_list_valid_names_and_params():
    with pytest.raises(RegistryError, match="did you mean 'small_conv'.*valid names"):
        create_encoder("small_conf")
    with pytest.raises(ConfigError, match="takes no parameter 'widht'.*width"):
        create_encoder("small_conv", widht=3)
    assert "mobilenet_v2" in list_adversaries("mobile*")
    assert list_utility_models("small*") == ["small3d", "small_cnn_image"]


REGISTRIES = [registry.ENCODERS, registry.UTILITY_MODELS, registry.ADVERSARIES, registry.RECONSTRUCTORS,
              registry.ATTACKERS, registry.PRIVACY_LOSSES, registry.SCHEDULES, registry.DATASETS]


@pytest.mark.parametrize("reg,name", [(r, n) for r in REGISTRIES for n in r.list()],
                         ids=lambda v: v if isinstance(v, str) else v.kind)
def test_every_registered_factory_and_schedule_class_has_a_docstring(reg, name):
    doc = (reg.get(name).__doc__ or "").strip()
    assert len(doc) > 20, f"{reg.kind} {name!r} has no docstring"
