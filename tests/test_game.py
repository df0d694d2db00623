"""The game: per-sample max, restarting, which players each move updates, schedules, NaN."""

import itertools

import pytest
import torch
from torch import nn

import torch.nn.functional as F

from privacam.errors import ConfigError, NonFiniteLossError
from privacam.game import AdversarialGame, BudgetEnsemble, Restarter
from privacam.game.losses import bce_half, ce_uniform, neg_entropy
from privacam.registry import create_adversary, create_encoder, create_utility


def _batches(n=8, seed=0, k_priv=3):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, 2, 8, 8, generator=g)
    return itertools.cycle([{"input": x, "utility": torch.arange(n) % 2, "private": torch.arange(n) % k_priv}])


def _game(schedule="entropy", m=2, **kw):
    torch.manual_seed(0)
    enc = create_encoder("small_conv", width=4, depth=2)
    util = create_utility("small3d", num_classes=2, size=8, width=4)
    budget = BudgetEnsemble([create_adversary("small_cnn", num_classes=3, size=8, width=4) for _ in range(m)])
    opts = {"encoder": torch.optim.Adam(enc.parameters(), 1e-2), "utility": torch.optim.Adam(util.parameters(), 1e-2),
            "budget": torch.optim.Adam(budget.parameters(), 1e-2)}
    params = {"entropy": dict(max_utility_steps=1, max_budget_steps=1), "grl": {}, "kbeam": dict(encoder_steps=2, budget_steps=2, utility_steps=1)}[schedule]
    objective = {"entropy": {}, "grl": dict(privacy_loss="neg_ce", aggregate="mean"),
                 "kbeam": dict(privacy_loss="neg_ce", against="strongest")}[schedule]
    return AdversarialGame(encoder=enc, utility=util, budget=budget, optimizers=opts, schedule=schedule,
                           schedule_params=params, **{**objective, **kw})


def _snapshot(m: nn.Module):
    return [p.detach().clone() for p in m.parameters()]


def _moved(before, m):
    return any(not torch.equal(a, b.detach()) for a, b in zip(before, m.parameters()))


def test_per_sample_max_picks_most_confident_model():
    # model 0 is confident on sample 0, model 1 on sample 1
    conf, flat = torch.tensor([10.0, 0.0, 0.0]), torch.zeros(3)
    out0 = torch.stack([conf, flat])
    out1 = torch.stack([flat, conf])
    per = torch.stack([neg_entropy(out0), neg_entropy(out1)])  # [M, B]
    agg = BudgetEnsemble.aggregate(per, "max")
    assert torch.isclose(agg, neg_entropy(conf[None])[0])  # both samples take the confident model
    assert agg > BudgetEnsemble.aggregate(per, "mean")
    # a per-batch max would pick one model for both samples and get a lower value
    assert agg > per.mean(dim=1).max()


def test_privacy_losses_are_minimal_at_uniform():
    uniform, peaked = torch.zeros(1, 4), torch.tensor([[5.0, 0, 0, 0]])
    for loss in (neg_entropy, ce_uniform):
        assert loss(uniform) < loss(peaked)
    assert torch.isclose(ce_uniform(uniform), torch.zeros(1), atol=1e-6)
    assert torch.isclose(bce_half(torch.zeros(1, 5)), torch.zeros(1), atol=1e-6)
    assert bce_half(torch.full((1, 5), 3.0)) > 0
    assert neg_entropy(torch.zeros(1, 5), multilabel=True) < neg_entropy(torch.full((1, 5), 4.0), multilabel=True)


@pytest.mark.parametrize("move", ["encoder", "utility_only", "budget"])
def test_each_move_updates_only_its_players(move):
    g = _game()
    b = _batches()
    snaps = {n: (_snapshot(getattr(g, n)), getattr(g, n)) for n in ("encoder", "utility", "budget")}
    bn_before = [buf.clone() for buf in g.budget.buffers()]
    if move == "encoder":
        g.encoder_move(b)
        expect = {"encoder"}
    elif move == "utility_only":
        g.utility_move(b, with_encoder=False)
        expect = {"utility"}
    else:
        g.budget_move(b)
        expect = {"budget"}
    for name, (before, mod) in snaps.items():
        assert _moved(before, mod) == (name in expect), name
    if move != "budget":  # frozen players do not update their running statistics either
        assert all(torch.equal(a, c) for a, c in zip(bn_before, g.budget.buffers()))


def test_joint_utility_move_updates_encoder_and_utility_not_budget():
    g = _game()
    e, u, bu = _snapshot(g.encoder), _snapshot(g.utility), _snapshot(g.budget)
    g.utility_move(_batches(), with_encoder=True)
    assert _moved(e, g.encoder) and _moved(u, g.utility) and not _moved(bu, g.budget)


@pytest.mark.parametrize("schedule", ["entropy", "grl", "kbeam"])
def test_schedules_step_and_report_named_metrics(schedule):
    g = _game(schedule)
    logs = g.step(_batches(), _batches(seed=1))
    assert g.step_count == 1
    assert "loss/budget" in logs and "restarted" in logs
    assert all(isinstance(v, (int, float)) for v in logs.values())


def test_kbeam_encoder_step_plays_only_against_the_strongest():
    g = _game("kbeam", m=3)
    outs = {}
    for i, m in enumerate(g.budget.models):
        m.register_forward_hook(lambda mod, inp, out, i=i: outs.setdefault(i, out.detach()))
    before = _snapshot(g.budget)
    logs = g.encoder_move(_batches(), strongest=1)
    assert list(outs) == [1]  # only the strongest model sees the release
    y = next(_batches())["private"]
    # the privacy term is minus the strongest model's cross-entropy, weighted by gamma
    assert logs["loss/privacy"] == pytest.approx(-F.cross_entropy(outs[1].float(), y).item(), rel=1e-5)
    assert logs["loss/encoder"] == pytest.approx(logs["loss/utility"] + g.gamma * logs["loss/privacy"], rel=1e-5)
    assert not _moved(before, g.budget)
    # against all models, every one of them is played
    outs.clear()
    h = _game("kbeam", m=3, against="all")
    for i, m in enumerate(h.budget.models):
        m.register_forward_hook(lambda mod, inp, out, i=i: outs.setdefault(i, out.detach()))
    h.encoder_move(_batches(), strongest=1)
    assert sorted(outs) == [0, 1, 2]


def test_encoder_objective_settings_must_fit_the_adversaries_and_the_schedule():
    with pytest.raises(ConfigError, match="game.against=strongest needs a schedule that picks"):
        _game("entropy", against="strongest")
    with pytest.raises(ConfigError, match="does not score classification adversaries.*neg_entropy"):
        _game("entropy", privacy_loss="neg_mse")
    with pytest.raises(ConfigError, match="game.aggregate 'median'"):
        _game("entropy", aggregate="median")


def test_gamma_is_the_one_privacy_weight():
    """The encoder loss is L_T + gamma * L_priv under every schedule (GRL's old lambda included)."""
    for schedule in ("entropy", "grl"):
        for gamma in (0.5, 2.0):
            g = _game(schedule, gamma=gamma)
            logs = g.encoder_move(_batches())
            assert logs["loss/encoder"] == pytest.approx(logs["loss/utility"] + gamma * logs["loss/privacy"], rel=1e-5)


def test_restart_reinitialises_and_retrains():
    g = _game(restarter=Restarter(every=2), restart_steps=2)
    b = _batches()
    for _ in range(3):
        g.budget_move(b)
    trained = _snapshot(g.budget)
    g.restart_budget(b, steps=0)
    fresh = _snapshot(g.budget)
    assert all(not torch.equal(a, c) for a, c in zip(trained, fresh) if a.dim() > 1)
    assert len(g.optimizers["budget"].state) == 0  # optimizer moments are reset too
    g.restart_budget(b, steps=2)
    assert _moved(fresh, g.budget)  # and it retrains after re-initialising
    # the schedule-driven restart fires every R steps
    flags = [g.step(b, _batches(seed=1))["restarted"] for _ in range(4)]
    assert flags == [0, 1, 0, 1]


def test_restart_on_plateau():
    r = Restarter(plateau=2)
    seq = [r.should_restart(i, l) for i, l in enumerate([1.0, 0.9, 0.95, 0.95, 0.5])]
    assert seq == [False, False, False, True, False]


def test_fixed_encoder_is_never_updated():
    g = _game()
    g.encoder = create_encoder("identity")
    logs = g.encoder_move(_batches())
    assert logs == {}


def test_nan_loss_names_player_and_step():
    g = _game()
    bad = itertools.cycle([{"input": torch.full((4, 3, 2, 8, 8), float("nan")), "utility": torch.zeros(4, dtype=torch.long),
                            "private": torch.zeros(4, dtype=torch.long)}])
    with pytest.raises(NonFiniteLossError, match="player encoder at step 0"):
        g.encoder_move(bad)


def test_gradient_accumulation_matches_big_batch():
    from privacam.models.common import FrameClassifier

    x = torch.rand(8, 3, 2, 8, 8)
    big = [{"input": x, "utility": torch.arange(8) % 2, "private": torch.arange(8) % 3}]
    small = [{k: v[:4] for k, v in big[0].items()}, {k: v[4:] for k, v in big[0].items()}]
    grads = []
    for batches, accum in ((big, 1), (small, 2)):
        g = _game(accum_steps=accum)
        torch.manual_seed(1)
        g.budget = BudgetEnsemble([FrameClassifier(nn.Sequential(nn.Flatten(), nn.Linear(3 * 64, 3)))])
        g.optimizers["budget"] = torch.optim.SGD(g.budget.parameters(), lr=0.0)
        g.budget_move(iter(batches))
        grads.append(torch.cat([p.grad.flatten() for p in g.budget.parameters()]))
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


def test_standardised_budget_cannot_be_fooled_by_shrinking_contrast():
    from privacam.models.common import standardise_channels

    z = torch.rand(6, 3, 2, 8, 8)
    shrunk = 0.1 * z + 0.45  # the same content at a tenth of the contrast
    assert torch.allclose(standardise_channels(z), standardise_channels(shrunk), atol=1e-2)
    game = _game(standardise_budget=True)
    game.budget.eval()  # no dropout: the same input gives the same output
    with torch.no_grad():
        a = game._budget_outputs(z)[0]
        b = game._budget_outputs(shrunk)[0]
    assert torch.allclose(a, b, atol=1e-2)
    plain = _game()
    plain.budget.eval()
    with torch.no_grad():
        assert not torch.allclose(plain._budget_outputs(z)[0], plain._budget_outputs(shrunk)[0], atol=1e-2)
    # the privacy gradient still reaches the encoder through the standardisation
    before = _snapshot(game.encoder)
    game.encoder_move(_batches())
    assert _moved(before, game.encoder)


def test_utility_batchnorm_is_recalibrated_on_the_final_release_without_moving_parameters():
    game = _game()
    x = next(_batches())["input"]
    bn = next(m for m in game.utility.modules() if isinstance(m, nn.BatchNorm3d))
    bn.running_mean.fill_(5.0)  # stale statistics, as after a game whose release kept changing
    bn.running_var.fill_(9.0)
    before = _snapshot(game.utility)
    assert game.recalibrate_utility_bn(_batches(), 3) > 0
    assert not _moved(before, game.utility)
    # the first BN layer now holds the plain statistics of its input on the release
    with torch.no_grad():
        h = game.utility.net.features[0][0](game.encoder.eval()(x))  # the conv in front of it
    dims = [0, 2, 3, 4]
    assert torch.allclose(bn.running_mean, h.mean(dims), atol=1e-5)
    assert torch.allclose(bn.running_var, h.var(dims, unbiased=True), rtol=1e-4, atol=1e-6)
    assert bn.momentum == 0.1 and game.utility.training  # settings and mode restored


def test_readme_example_runs():
    """README's "Using the game from your own loop" runs as written and logs the named losses."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    code = re.search(r"## Using the game from your own loop\n\n```python\n(.*?)```", readme, re.S).group(1)
    scope: dict = {}
    torch.manual_seed(0)
    exec(compile(code, "README.md", "exec"), scope)
    assert scope["game"].step_count == 2
    assert {"loss/encoder", "loss/privacy", "loss/budget", "acc/utility_val"} <= set(scope["logs"])
