"""GPU-efficiency switches on CPU: bf16 autocast, channels-last, compile off by default."""

import contextlib
import copy

import pytest
import torch

from conftest import TINY
from privacam.builders import build_game, to_channels_last
from privacam.players import Shapes
from privacam.config import load_config
from privacam.errors import NonFiniteLossError
from privacam.registry import create_adversary, create_encoder, create_utility
from privacam.train import train

SHAPES = Shapes(in_channels=3, size=16, clip_len=4, num_utility=3, num_private=3)


def _game(*overrides):
    cfg = load_config("default", TINY + list(overrides))
    torch.manual_seed(0)
    return build_game(cfg, SHAPES, torch.device("cpu"), generator=torch.Generator().manual_seed(1))


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"input": torch.rand(4, 3, 4, 16, 16, generator=g), "utility": torch.randint(0, 3, (4,), generator=g),
            "private": torch.randint(0, 3, (4,), generator=g)}


def _cpu_bf16_conv3d_backward_is_broken() -> bool:
    """Some PyTorch builds (seen with 2.14.1 on CPU) return NaN in part of a Conv3d weight gradient
    under bf16 autocast, at random (about 2 calls in 5). The game's finite-gradient check then stops
    the run, as it must; these tests can only hold where the kernel is sound."""
    torch.manual_seed(0)
    conv = torch.nn.Conv3d(8, 16, 3, padding=1)
    for _ in range(30):
        conv.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = conv(torch.randn(4, 8, 2, 4, 4))
        y.float().sum().backward()
        if not torch.isfinite(conv.weight.grad).all():
            return True
    return False


@contextlib.contextmanager
def sound_bf16_kernels():
    """A NaN gradient stops the game (as it must); when this PyTorch's CPU bf16 Conv3d backward is the
    cause (probed right then: the fault comes and goes), the test is skipped, else the error stands."""
    try:
        yield
    except NonFiniteLossError:
        if _cpu_bf16_conv3d_backward_is_broken():
            pytest.skip(f"this PyTorch ({torch.__version__}) returns NaN Conv3d gradients under CPU bf16 autocast")
        raise


def test_bf16_autocast_on_cpu_gives_close_losses():
    fp32, bf16 = _game(), _game("train.amp=bf16")
    assert bf16.amp == "bf16"
    bf16.encoder.load_state_dict(fp32.encoder.state_dict())
    for move in ("encoder_move", "utility_move", "budget_move"):
        torch.manual_seed(5)  # same dropout masks
        a = getattr(fp32, move)(iter([_batch(1)]))
        torch.manual_seed(5)
        with sound_bf16_kernels():
            b = getattr(bf16, move)(iter([_batch(1)]))
        for k in a:
            if k.startswith("loss/"):
                assert b[k] == pytest.approx(a[k], rel=0.05, abs=0.02), (move, k)


def test_bf16_training_runs_and_stays_finite(tmp_path):
    short = ["init.encoder_steps=1", "init.utility_steps=1", "init.budget_steps=1", "train.steps=2"]
    with sound_bf16_kernels():
        run = train(load_config("default", TINY + short + ["train.amp=bf16"]), tmp_path / "bf16")
    enc = torch.load(run / "encoder.pt", weights_only=True)
    assert all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in enc.values())  # master weights fp32


@pytest.mark.parametrize("kind,name,kw,x", [
    ("encoder", "small_conv", {}, torch.rand(2, 3, 4, 16, 16)),             # 2D convs on folded clips
    ("encoder", "transform_net", {"width": 8, "blocks": 1}, torch.rand(2, 3, 16, 16)),
    ("encoder", "st_conv", {}, torch.rand(2, 3, 4, 16, 16)),                # 3D convs
    ("utility", "small3d", {"in_channels": 3, "num_classes": 3, "width": 4}, torch.rand(2, 3, 4, 16, 16)),
    ("adversary", "small_cnn", {"in_channels": 3, "num_classes": 3, "width": 4}, torch.rand(2, 3, 4, 16, 16)),
])
def test_channels_last_gives_same_outputs(kind, name, kw, x):
    make = {"encoder": create_encoder, "utility": create_utility, "adversary": create_adversary}[kind]
    torch.manual_seed(0)
    m = make(name, **kw).eval()
    ref = m(x)
    cl = to_channels_last(copy.deepcopy(m))
    formats = [p.is_contiguous(memory_format=torch.channels_last) if p.dim() == 4 else
               p.is_contiguous(memory_format=torch.channels_last_3d) for p in cl.parameters() if p.dim() in (4, 5)]
    assert formats and all(formats)
    assert torch.allclose(cl(x), ref, atol=1e-5, rtol=1e-4)
    xl = x.contiguous(memory_format=torch.channels_last_3d if x.dim() == 5 else torch.channels_last)
    assert torch.allclose(cl(xl), ref, atol=1e-5, rtol=1e-4)


def test_channels_last_game_matches_contiguous():
    a, b = _game(), _game("train.channels_last=true")
    assert any(p.dim() == 4 and not p.is_contiguous() for p in b.encoder.parameters())
    torch.manual_seed(5)
    la = a.budget_move(iter([_batch(2)]))
    torch.manual_seed(5)
    lb = b.budget_move(iter([_batch(2)]))
    assert lb["loss/budget"] == pytest.approx(la["loss/budget"], rel=1e-4)
    for (k, pa), pb in zip(a.budget.state_dict().items(), b.budget.state_dict().values()):
        assert torch.allclose(pa, pb, atol=1e-5), k


def test_compile_is_off_by_default_and_on_when_asked():
    cfg = load_config("default", TINY)
    assert cfg.train.compile is False and cfg.train.channels_last is False and cfg.train.amp == "off"
    g = _game()
    for m in (g.encoder, g.utility, *g.budget.models):
        assert getattr(m, "_compiled_call_impl", None) is None  # plain eager modules
        assert all(p.is_contiguous() for p in m.parameters())
    assert type(g).__name__ == "AdversarialGame"  # not the distributed game in one process
    c = _game("train.compile=true")  # compiled in place (lazily: nothing is compiled before a call)
    assert all(getattr(m, "_compiled_call_impl", None) is not None for m in (c.encoder, c.utility, *c.budget.models))
    assert set(c.encoder.state_dict()) == set(g.encoder.state_dict())  # the state dict keeps its keys
