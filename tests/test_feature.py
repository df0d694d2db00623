"""Feature-level privacy (Li & Cavallaro): tap shapes, the split is the full network, gamma = 0 is
plain training, the confusion loss weakens a probe on the tapped features, the shipped config runs."""

import copy
import json

import pytest
import torch
import torch.nn.functional as F

from conftest import one_thread

from privacam.builders import build_game
from privacam.config import load_config
from privacam.players import Shapes
from privacam.models.feature import BACKBONES, backbone_stages, list_taps, split_network, tap_channels
from privacam.registry import create_adversary, create_encoder, create_utility

TAPS = [(b, t) for b in BACKBONES for t in list_taps(b)]
WIDTH = {"resnet18": 8, "small_cnn": 4, "small3d": 4}
# spatial reduction at each tap for a 16x16 input (ResNet small stem; SmallCNN / Small3D pooling;
# the last tap, "pool", is the globally pooled feature vector: 1x1)
REDUCTION = {"resnet18": (1, 2, 4, 8, 16), "small_cnn": (2, 4, 4, 16), "small3d": (2, 4, 8, 8, 16)}
TIME_REDUCTION = {"small3d": (1, 2, 4, 4, 4)}

TINY = [
    "data.size=16", "data.params={num_actors: 3, clips_per_pair: 4, actions: [wave1, jump, bend]}",
    "encoder.params={backbone: small_cnn, layer: block2, width: 4, input_size: 16}",
    "utility.params={backbone: small_cnn, layer: block2}", "budget.params={hidden: 8}",
    "init.utility_steps=1", "init.budget_steps=1", "train.steps=2", "train.batch_size=4", "train.log_every=1",
    "train.checkpoint_every=1", "schedule.params.max_utility_steps=1", "schedule.params.max_budget_steps=1", "budget.restart_steps=1",
    "train.device=cpu", "train.final_utility_steps=0",
]


@pytest.mark.parametrize("backbone,layer", TAPS)
@pytest.mark.parametrize("kind", ["image", "clip"])
def test_tap_yields_declared_shape(backbone, layer, kind):
    torch.manual_seed(0)
    w = WIDTH[backbone]
    enc = create_encoder("tap", backbone=backbone, layer=layer, width=w, input_size=16)
    assert enc.releases == "feature" and enc.trainable
    k = list_taps(backbone).index(layer)
    c, r = tap_channels(backbone, layer, w), REDUCTION[backbone][k]
    assert enc.out_channels == c
    x = torch.rand(2, 3, 4, 16, 16) if kind == "clip" else torch.rand(2, 3, 16, 16)
    z = enc(x)
    if kind == "clip":
        t = 4 // TIME_REDUCTION.get(backbone, (1,) * len(list_taps(backbone)))[k]
        assert z.shape == (2, c, t, 16 // r, 16 // r)
    else:
        assert z.shape == (2, c, 16 // r, 16 // r)
    rest = create_utility("tap_rest", in_channels=c, num_classes=5, size=z.shape[-1], clip_len=4 if kind == "clip" else 0,
                          backbone=backbone, layer=layer)
    assert isinstance(rest.adapter, torch.nn.Identity)  # the width follows the encoder's channels
    assert rest(z).shape == (2, 5)
    head = create_adversary("feature_head", in_channels=c, num_classes=3, size=z.shape[-1], hidden=8)
    assert head(z).shape == (2, 3)


@pytest.mark.parametrize("backbone,layer", [("resnet18", "layer2"), ("resnet18", "layer4"), ("small_cnn", "block1"),
                                            ("small_cnn", "pool"), ("small3d", "block3"), ("small3d", "pool")])
def test_encoder_and_rest_are_exactly_the_full_network(backbone, layer):
    torch.manual_seed(0)
    kw = dict(in_channels=3, num_classes=4, input_size=16, width=WIDTH[backbone])
    full = torch.nn.Sequential(backbone_stages(backbone, **kw)).eval()
    enc = create_encoder("tap", backbone=backbone, layer=layer, width=WIDTH[backbone], input_size=16)
    rest = create_utility("tap_rest", in_channels=enc.out_channels, num_classes=4, backbone=backbone, layer=layer)
    # the two parts' parameter names partition the full network's
    parts = {**enc.net.state_dict(), **{k: v for k, v in rest.net.state_dict().items()}}
    assert set(parts) == set(full.state_dict()) and len(parts) == len(enc.net.state_dict()) + len(rest.net.state_dict())
    enc.net.load_state_dict({k: v for k, v in full.state_dict().items() if k in enc.net.state_dict()})
    rest.net.load_state_dict({k: v for k, v in full.state_dict().items() if k in rest.net.state_dict()})
    enc.eval(), rest.eval()
    x = torch.rand(2, 3, 4, 16, 16) if backbone == "small3d" else torch.rand(2, 3, 16, 16)
    assert torch.equal(rest(enc(x)), full(x))


@pytest.mark.parametrize("backbone", ["small_cnn", "small3d"])
def test_rest_after_pool_tap_takes_maps_of_any_size(backbone):
    """The audit's raw-data reference retrains f_T on images: after the pool tap it pools them first."""
    rest = create_utility("tap_rest", in_channels=3, num_classes=4, backbone=backbone, layer="pool", width=4)
    assert rest(torch.rand(2, 3, 16, 16)).shape == (2, 4)


def test_split_rejects_unknown_tap_and_backbone():
    from privacam.errors import ConfigError

    with pytest.raises(ConfigError, match="valid taps: layer1"):
        split_network("resnet18", "block2")
    with pytest.raises(ConfigError, match="valid: resnet18"):
        create_encoder("tap", backbone="vgg")


# ------------------------------------------------------------------ gamma = 0 is plain training
def _game(gamma, seed=0, budget_seed=0, extra=()):
    cfg = load_config("feature_synthetic_image", TINY + [f"game.gamma={gamma}", "schedule.params.budget_bar=1.01", *extra])
    shapes = Shapes(in_channels=3, size=16, clip_len=0, num_utility=3, num_private=3)
    torch.manual_seed(seed)
    game = build_game(cfg, shapes, torch.device("cpu"))
    torch.manual_seed(budget_seed)
    game.budget.restart()
    return game, cfg


def _batches(n, seed=0, bs=8):
    g = torch.Generator().manual_seed(seed)
    return [{"input": torch.rand(bs, 3, 16, 16, generator=g), "utility": torch.randint(0, 3, (bs,), generator=g),
             "private": torch.randint(0, 3, (bs,), generator=g)} for _ in range(n)]


def _grads(m):
    return [p.grad.clone() for p in m.parameters()]


def test_gamma0_encoder_move_gradient_is_the_plain_task_gradient():
    batch = _batches(1)[0]
    for gamma, same in ((0.0, True), (1.0, False)):
        game, _ = _game(gamma)
        enc, util = copy.deepcopy(game.encoder), copy.deepcopy(game.utility)
        game.encoder_move(iter([batch]))
        # plain: L_T of the composed network, f_T frozen (eval mode) as in the move
        util.eval()
        enc.train()
        F.cross_entropy(util(enc(batch["input"])), batch["utility"]).backward()
        match = all(torch.allclose(a, b, atol=1e-7) for a, b in zip(_grads(game.encoder), _grads(enc)))
        assert match is same, f"gamma={gamma}"


def test_gamma0_joint_steps_equal_a_plain_training_loop():
    batches = _batches(4)
    game, cfg = _game(0.0)
    net = torch.nn.Sequential(copy.deepcopy(game.encoder), copy.deepcopy(game.utility))
    opt_e = torch.optim.Adam(net[0].parameters(), lr=cfg.encoder.lr)
    opt_u = torch.optim.Adam(net[1].parameters(), lr=cfg.utility.lr)
    torch.manual_seed(5)
    for _ in range(4):
        game.utility_move(iter(batches[_:_ + 1]), with_encoder=True)
    torch.manual_seed(5)
    net.train()
    for b in batches:  # plain training of E -> U on L_T only
        opt_e.zero_grad(), opt_u.zero_grad()
        F.cross_entropy(net(b["input"]), b["utility"]).backward()
        opt_u.step(), opt_e.step()
    for mine, plain in ((game.encoder, net[0]), (game.utility, net[1])):
        for (k, a), b in zip(mine.state_dict().items(), plain.state_dict().values()):
            assert torch.allclose(a.float(), b.float(), atol=1e-6), k


def test_gamma0_whole_game_ignores_the_adversaries():
    """With gamma = 0 the adversaries (here: differently initialised) cannot change E and U."""
    def run(budget_seed, gamma=0.0):
        game, _ = _game(gamma, budget_seed=budget_seed)
        stream, val = iter(_batches(30, 1, bs=4)), iter(_batches(30, 2, bs=4))
        torch.manual_seed(3)
        for _ in range(2):
            game.step(stream, val)
        return {**game.encoder.state_dict(), **{"u." + k: v for k, v in game.utility.state_dict().items()}}

    a, b = run(1), run(2)
    assert all(torch.equal(a[k], b[k]) for k in a)
    c, d = run(1, 5.0), run(2, 5.0)
    assert any(not torch.equal(c[k], d[k]) for k in c)  # with gamma > 0 they do


# ------------------------------------------------------------------ the shipped config, end to end
def test_cli_trains_feature_config(tmp_path):
    from privacam.cli import main

    out = tmp_path / "run"
    assert main(["train", "feature_synthetic_image", *TINY, "--out", str(out)]) == 0
    meta = json.loads((out / "run.json").read_text())
    assert meta["task"] == "feature" and meta["encoded_shape"] == [8, 4, 4]
    assert (out / "encoder.pt").exists()


def test_feature_configs_load_and_name_their_command():
    from privacam.config import read_config_text, shipped_configs

    names = [n for n in shipped_configs() if n.startswith("feature_")]
    assert {"feature_synthetic_image", "feature_weizmann", "feature_rafdb", "feature_celeba"} <= set(names)
    for n in names:
        assert read_config_text(n).startswith(f"# privacam train {n} ")
        cfg = load_config(n)
        assert cfg.encoder.name == "tap" and cfg.game.privacy_loss == "confusion"
        assert cfg.init.encoder_steps == 0 and cfg.utility.name == "tap_rest"


# ------------------------------------------------------------------ the defence works (seeded)
def _probe_accuracy(encoder, splits):
    from privacam.evaluate.protocol import FitConfig, encode_split, fit_classifier, predict
    from privacam.registry import create_attacker

    enc = {k: encode_split(encoder, getattr(splits, k), batch_size=64) for k in ("train", "val", "test")}
    torch.manual_seed(0)
    probe = create_attacker("linear_probe", in_channels=enc["train"].x.shape[1], num_classes=splits.num_private,
                            size=enc["train"].x.shape[-1], probe_size=4)
    fit_classifier(probe, enc["train"], enc["val"], "private", multilabel=False,
                   cfg=FitConfig(epochs=25, patience=6, batch_size=16, lr=1e-2, flip=False), device=torch.device("cpu"))
    return float((predict(probe, enc["test"], torch.device("cpu")).argmax(1) == enc["test"].private).float().mean())


def test_protected_features_weaken_a_linear_probe(tmp_path):
    """Seeded, about 10 s on a CPU. The shipped recipe (pooled tap, whitened probes as f_b, confusion
    loss) scaled down: 16x16 images of 4 actors, a width-8 network, 100 utility-first and 100 game
    steps. A linear probe retrained on the protected network's features must be at least 10 points
    weaker than on the unprotected network's (measured with seed 0: 75 % vs 58 %; seeds 1 and 2:
    69 % vs 44 %, 73 % vs 52 %; chance 25 %)."""
    from privacam.data import make_splits
    from privacam.runs import load_encoder
    from privacam.train import train

    ov = ["data.size=16", "data.params={num_actors: 4, clips_per_pair: 10, actions: [wave1, wave2, bend, jack]}",
          "encoder.params={backbone: small_cnn, layer: pool, width: 8, input_size: 16}",
          "budget.params={pool: 1, hidden: 32, layers: 2, whiten: true, shrink: 0.1}",
          "init.utility_steps=100", "init.budget_steps=20", "train.steps=100", "train.final_utility_steps=20",
          "train.batch_size=16", "budget.restart_every=20", "budget.restart_steps=10", "train.device=cpu",
          "train.checkpoint_every=1000", "train.seed=0"]
    acc = {}
    with one_thread():
        for gamma in (0.0, 2.0):
            cfg = load_config("feature_synthetic_image", ov + [f"game.gamma={gamma}"])
            run = train(cfg, tmp_path / f"g{gamma}")
            enc, _, _ = load_encoder(run)
            acc[gamma] = _probe_accuracy(enc, make_splits(cfg.data, seed=0))
    # chance is 25 % (4 actors); the unprotected features give the actor away to a linear probe
    assert acc[0.0] >= 0.6, acc
    assert acc[2.0] <= acc[0.0] - 0.10, acc


def test_running_whitening_whitens_and_resets():
    from privacam.models.feature import RunningWhitening

    torch.manual_seed(0)
    mix = torch.randn(6, 6) * torch.tensor([3.0, 1.0, 0.5, 0.3, 0.2, 0.1])
    w = RunningWhitening(6, momentum=0.05, eps=1e-4)
    with one_thread():
        for _ in range(60):
            w(torch.randn(256, 6) @ mix + 2.0)
    w.eval()
    y = w(torch.randn(4000, 6) @ mix + 2.0)
    assert y.mean(0).abs().max() < 0.1
    assert (y.t() @ y / len(y) - torch.eye(6)).abs().max() < 0.15
    x = torch.randn(4, 6, requires_grad=True)
    w(x).sum().backward()
    assert x.grad is not None and w.running_cov.grad is None  # gradients reach the input, not the statistics
    w.reset_parameters()
    assert torch.equal(w.running_cov, torch.eye(6)) and int(w.num_batches_tracked) == 0


def test_probe_adversaries_share_budget_params():
    """feature_linear / feature_mlp share one budget.params (each takes its own keys); restarting
    resets their whitening."""
    from privacam.game.ensemble import BudgetEnsemble
    from privacam.players import build_budget_models

    cfg = load_config("feature_synthetic_image", ["budget.m=2", "budget.params={pool: 1, hidden: 8, layers: 2, whiten: true, shrink: 0.1}"])
    shapes = Shapes(in_channels=3, size=16, clip_len=0, num_utility=3, num_private=3)
    lin, mlp = build_budget_models(cfg, shapes, (16, 1, 1))
    z = torch.rand(8, 16, 1, 1)
    assert lin(z).shape == mlp(z).shape == (8, 3)
    assert sum(isinstance(m, torch.nn.Linear) for m in lin.modules()) == 1
    assert sum(isinstance(m, torch.nn.Linear) for m in mlp.modules()) == 3
    ens = BudgetEnsemble([lin, mlp])
    ens.restart(torch.Generator().manual_seed(0))
    assert all(int(m.net.norm.num_batches_tracked) == 0 for m in ens.models)
