"""Issue 14: the decision release (the default), checkpoint selection on validation data only,
pooled adversaries, restarted adversaries trained before the encoder moves."""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import one_thread
from privacam import runs
from privacam.config import load_config
from privacam.data import make_splits
from privacam.errors import ConfigError
from privacam.game import AdversarialGame, BudgetEnsemble, Restarter
from privacam.players import build_encoder
from privacam.registry import create_adversary, create_encoder, create_utility
from privacam.train import GroupedBatchStream, Trainer, train
from privacam.utils import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]

#: the shipped default (the decision family) at a size that trains in seconds
DECISION = [
    "data.size=16", "data.clip_len=4", "data.params={num_actors: 3, clips_per_pair: 4, actions: [wave1, jump, bend]}",
    "encoder.params={width: 4}", "init.budget_steps=1", "train.steps=6", "train.batch_size=6", "train.log_every=1",
    "train.checkpoint_every=2", "train.device=cpu",
]


# ---------------------------------------------------------------------------------------------- the decision family
def test_decision_releases_a_one_hot_decision_and_its_readout_is_that_decision():
    torch.manual_seed(0)
    enc = create_encoder("decision", num_classes=4, clip_len=8, width=4)
    x = torch.rand(5, 3, 8, 16, 16)
    soft = enc.train()(x)
    assert soft.shape == (5, 4, 1, 1, 1)
    assert torch.allclose(soft.sum(1), torch.ones(5, 1, 1, 1)) and ((soft > 0) & (soft < 1)).all()
    hard = enc.eval()(x)
    assert set(hard.unique().tolist()) <= {0.0, 1.0} and (hard.sum(1) == 1).all()
    assert torch.equal(hard.flatten(1).argmax(1), enc.logits(x).argmax(1))
    readout = create_utility("decision_readout", in_channels=4, num_classes=4)
    assert not list(readout.parameters())
    assert torch.equal(readout(hard).argmax(1), hard.flatten(1).argmax(1))
    # in training, L_T through the readout is the classifier's own cross-entropy
    y = torch.tensor([0, 1, 2, 3, 0])
    ce = torch.nn.functional.cross_entropy(readout(soft), y)
    assert ce.item() == pytest.approx(torch.nn.functional.cross_entropy(enc.logits(x), y).item(), rel=1e-4)


def test_decision_family_is_2d_for_images_and_sized_from_the_data():
    cfg = load_config("decision")
    video = build_encoder(cfg, 3, {"num_utility": 5, "clip_len": 16})
    image = build_encoder(cfg, 3, {"num_utility": 7, "clip_len": 0})
    assert video.out_channels == 5 and isinstance(video.net[0], torch.nn.Conv3d)
    assert image.out_channels == 7 and isinstance(image.net[0], torch.nn.Conv2d)
    assert image.eval()(torch.rand(2, 3, 16, 16)).shape == (2, 7, 1, 1)
    with pytest.raises(ConfigError, match="decision_readout reads a release of 3 decisions"):
        create_utility("decision_readout", in_channels=4, num_classes=3)


def test_default_trains_the_decision_exports_to_onnx_and_selects_on_validation(tmp_path):
    from privacam.deploy import export_run
    from privacam.deploy.export import onnx_session

    with one_thread():
        run = train(load_config("decision", DECISION), tmp_path / "run")
    meta = runs.read_meta(run)
    assert meta["encoded_shape"] == [3, 1, 1, 1]
    sel = json.loads((run / runs.SELECTION).read_text())
    scores = [c["score"] for c in sel["candidates"]]
    assert [c["at"] for c in sel["candidates"]] == ["step 2", "step 4", "step 6"]
    assert sel["chosen"]["score"] == max(scores)
    # the shipped encoder is the chosen candidate's (best.pt), not necessarily the last
    best = load_checkpoint(run / "checkpoints" / "best.pt")["game"]["encoder"]
    shipped = torch.load(run / runs.ENCODER, weights_only=True)
    assert all(torch.equal(best[k], shipped[k]) for k in shipped)
    res = export_run(run)
    assert res["diff"] == 0.0
    out = onnx_session(res["output"]).run(None, {"input": np.random.rand(3, 3, 4, 16, 16).astype(np.float32)})[0]
    assert out.shape == (3, 3, 1, 1, 1) and np.array_equal(out.sum(1), np.ones((3, 1, 1, 1), np.float32))


class _Sealed(torch.utils.data.Dataset):
    """A test split that fails on any read: selection must never touch it."""

    reads = 0

    def __len__(self):
        type(self).reads += 1
        raise AssertionError("training read the test split")

    def __getitem__(self, i):
        type(self).reads += 1
        raise AssertionError("training read the test split")


class _Counted(torch.utils.data.Dataset):
    def __init__(self, inner):
        self.inner, self.reads = inner, 0

    def __len__(self):
        return len(self.inner)

    def __getitem__(self, i):
        self.reads += 1
        return self.inner[i]


def test_checkpoint_selection_reads_validation_and_never_test(tmp_path):
    cfg = load_config("decision", DECISION)
    splits = make_splits(cfg.data, seed=0)
    val = _Counted(splits.val)
    sealed = dataclasses.replace(splits, val=val, test=_Sealed())
    with one_thread():
        tr = Trainer(cfg, tmp_path / "run", splits=sealed)
        tr.run()
    assert _Sealed.reads == 0
    assert val.reads >= 3 * len(splits.val)  # every candidate scored on the whole validation split
    assert len(tr.selection) == 3 and (tmp_path / "run" / runs.SELECTION).exists()
    # the score is computed from validation only: a poisoned test split changes nothing
    tr2 = Trainer(cfg, tmp_path / "run2", splits=dataclasses.replace(splits, test=None))
    with one_thread():
        tr2.run()
    assert [c["score"] for c in tr2.selection] == [c["score"] for c in tr.selection]


def test_selection_picks_the_best_validation_score_not_the_last(tmp_path, monkeypatch):
    cfg = load_config("decision", DECISION)
    scores = iter([0.5, 0.9, 0.1])
    monkeypatch.setattr(Trainer, "validation_score", lambda self: {"val_utility": 0.0, "val_probe_identity": 0.0,
                                                                    "val_probe_nag": 0.0, "score": next(scores)})
    snapshots = {}
    orig = Trainer.candidate

    def spy(self, at):
        orig(self, at)
        snapshots[at] = {k: v.clone() for k, v in self.game.encoder.state_dict().items()}

    monkeypatch.setattr(Trainer, "candidate", spy)
    with one_thread():
        run = train(cfg, tmp_path / "run")
    shipped = torch.load(run / runs.ENCODER, weights_only=True)
    assert all(torch.equal(snapshots["step 4"][k], shipped[k]) for k in shipped)
    assert not all(torch.equal(snapshots["step 6"][k], shipped[k]) for k in shipped)


# ---------------------------------------------------------------------------------------------- pooled adversaries
def test_pooled_batches_hold_k_clips_of_each_identity(tmp_path):
    cfg = load_config("decision", DECISION + ["game.pool_k=3"])
    splits = make_splits(cfg.data, seed=0)
    stream = GroupedBatchStream(splits.train, 6, seed=0, k=3)
    for batch in itertools.islice(stream, 12):
        p = batch["private"].reshape(2, 3)
        assert (p == p[:, :1]).all(), p  # every group of 3 consecutive clips is one identity
        assert p[0, 0] != p[1, 0]  # and the groups are different identities
        assert len(set(batch["id"])) == 6  # k distinct clips, not one clip repeated
    # the trainer plays on such batches, and the budget models are scored on pooled logits
    seen = []
    orig = AdversarialGame.budget_move

    def spy(self, batches, models=None):
        b = next(batches)
        seen.append(b["private"].clone())
        return orig(self, itertools.chain([b], batches), models)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(AdversarialGame, "budget_move", spy)
        with one_thread():
            run = train(cfg, tmp_path / "run")
    assert seen and all((p.reshape(-1, 3) == p.reshape(-1, 3)[:, :1]).all() for p in seen)
    assert any("loss/budget_pooled" in r for r in runs.read_metrics(run))


def _game(**kw):
    torch.manual_seed(0)
    enc = create_encoder("small_conv", width=4, depth=2)
    util = create_utility("small3d", num_classes=2, size=8, width=4)
    budget = BudgetEnsemble([create_adversary("probe", num_classes=3, size=8, pool=2)])
    opts = {"encoder": torch.optim.Adam(enc.parameters(), 1e-2), "utility": torch.optim.Adam(util.parameters(), 1e-2),
            "budget": torch.optim.Adam(budget.parameters(), 1e-2)}
    return AdversarialGame(encoder=enc, utility=util, budget=budget, optimizers=opts,
                           schedule_params=dict(max_utility_steps=1, max_budget_steps=1), **kw)


def _batches(private):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(len(private), 3, 2, 8, 8, generator=g)
    return itertools.cycle([{"input": x, "utility": torch.arange(len(private)) % 2, "private": torch.tensor(private)}])


def test_pooled_adversary_scores_the_summed_log_probabilities_of_each_group():
    g = _game(pool_k=2)
    logs = g.encoder_move(_batches([0, 0, 1, 1, 2, 2]))
    # the pooled adversary is part of the privacy term: with pooling the encoder's loss differs
    plain = _game().encoder_move(_batches([0, 0, 1, 1, 2, 2]))
    assert logs["loss/privacy"] != pytest.approx(plain["loss/privacy"])
    assert "loss/budget_pooled" in g.budget_move(_batches([0, 0, 1, 1, 2, 2]))
    with pytest.raises(ValueError, match="does not hold groups of 2 clips of one identity"):
        g.budget_move(_batches([0, 1, 1, 0, 2, 2]))


# ---------------------------------------------------------------------------------------------- restarts
def test_a_restarted_budget_model_trains_its_inner_loop_before_the_encoder_moves():
    g = _game(restarter=Restarter(every=2), restart_steps=5)
    calls = []
    for name in ("encoder_move", "budget_move"):
        orig = getattr(g, name)

        def wrapped(*a, _orig=orig, _name=name, **k):
            calls.append(_name)
            return _orig(*a, **k)

        setattr(g, name, wrapped)
    orig_restart = g.budget.restart
    g.budget.restart = lambda gen=None: (calls.append("restart"), orig_restart(gen))[1]
    b, v = _batches([0, 1, 2, 0, 1, 2]), _batches([0, 1, 2, 0, 1, 2])
    for _ in range(3):
        g.step(b, v)
    i = calls.index("restart")
    after = calls[i + 1:]
    # the re-initialised model gets its whole inner loop (restart_steps budget updates) before the next encoder step
    assert after[:5] == ["budget_move"] * 5 and after[5] == "encoder_move"
    assert calls[:i].count("encoder_move") == 2


# ---------------------------------------------------------------------------------------------- README
def test_readme_names_the_default_config():
    text = (ROOT / "README.md").read_text()
    m = re.search(r"<!-- default-family: (\w+) -->", text)
    assert m, "README must name the default family in a <!-- default-family: NAME --> marker"
    assert load_config("default").encoder.name == m.group(1)
    assert f"`{m.group(1)}`" in text.split(m.group(0))[1][:600]  # and says it in words next to the marker


def test_the_decision_on_image_data_trains_the_2d_decision(tmp_path):
    with one_thread():
        run = train(load_config("decision", DECISION + ["data.name=synthetic_image"]), tmp_path / "run")
    meta = runs.read_meta(run)
    assert meta["kind"] == "image" and meta["encoded_shape"] == [3, 1, 1]
    enc, _, _ = runs.load_encoder(run)
    assert isinstance(enc.net[0], torch.nn.Conv2d)


def test_every_network_attacker_takes_a_decision_release():
    from privacam.registry import ATTACKERS, create_attacker

    z = torch.nn.functional.one_hot(torch.arange(4) % 3, 3).float().reshape(4, 3, 1, 1, 1)
    for name in ATTACKERS.list():
        model = create_attacker(name, in_channels=3, num_classes=5, size=1, clip_len=1)
        if not isinstance(model, torch.nn.Module):
            continue  # classical attackers (features + sklearn) are checked by the audit's own tests
        for training in (True, False):
            assert model.train(training)(z).shape == (4, 5), name
