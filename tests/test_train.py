"""Runs: the run directory contract, determinism, resume after interruption, bad input, CLI."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

from conftest import SCHEDULES
from privacam.cli import main
from privacam.config import load_config
from privacam.errors import ConfigError
from privacam.runs import read_metrics
from privacam.train import train
from privacam.utils import load_checkpoint


def _cfg(overrides, *extra):
    return load_config("default", overrides + list(extra))


def _encoder_state(run):
    return torch.load(run / "encoder.pt", weights_only=True)


def test_run_directory_contract(tmp_path, tiny_overrides):
    run = train(_cfg(tiny_overrides), tmp_path / "run")
    assert (run / "config.yaml").exists() and (run / "checkpoints" / "last.pt").exists()
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["train"]["steps"] == 4 and cfg["encoder"]["name"] == "small_conv"
    recs = read_metrics(run)
    assert all("step" in r for r in recs)
    assert [r["step"] for r in recs if r["stage"] == "game"] == [1, 2, 3, 4]
    assert {r["stage"] for r in recs} == {"init_encoder", "init_utility", "init_budget", "game"}
    ck = load_checkpoint(run / "checkpoints" / "last.pt")  # weights_only load
    assert ck["game"]["step_count"] == 4
    meta = json.loads((run / "run.json").read_text())
    assert meta["shapes"]["num_private"] == 3 and meta["utility_classes"] == ["wave1", "jump", "bend"]


def test_same_seed_same_result_other_seed_differs(tmp_path, tiny_overrides):
    a = _encoder_state(train(_cfg(tiny_overrides), tmp_path / "a"))
    b = _encoder_state(train(_cfg(tiny_overrides), tmp_path / "b"))
    c = _encoder_state(train(_cfg(tiny_overrides, "train.seed=1"), tmp_path / "c"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


@pytest.mark.parametrize("schedule", ["entropy", "kbeam", "grl", "entropy+randomised_motion"])
def test_interrupted_then_resumed_matches_uninterrupted(tmp_path, tiny_overrides, schedule, monkeypatch):
    schedule, _, randomised = schedule.partition("+")
    ov = tiny_overrides + SCHEDULES[schedule] + ["train.steps=6", "budget.restart_every=3"]
    if randomised:  # the release's own draws must continue where they stopped, too
        ov += ["encoder.name=motion", "encoder.params={width: 4, depth: 2, jitter: 0.5, dilate: 1}"]
    full = _encoder_state(train(_cfg(ov), tmp_path / "full"))
    full_metrics = read_metrics(tmp_path / "full")

    from privacam.game import game as game_mod

    orig = game_mod.AdversarialGame.step

    def dying_step(self, *a, **k):
        if self.step_count == 5:  # killed after the checkpoint at step 4
            raise KeyboardInterrupt
        return orig(self, *a, **k)

    monkeypatch.setattr(game_mod.AdversarialGame, "step", dying_step)
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(ov), tmp_path / "cut")
    monkeypatch.setattr(game_mod.AdversarialGame, "step", orig)
    assert load_checkpoint(tmp_path / "cut/checkpoints/last.pt")["game"]["step_count"] == 4
    resumed = _encoder_state(train(_cfg(ov), tmp_path / "cut", resume=True))
    assert all(torch.equal(full[k], resumed[k]) for k in full)
    assert read_metrics(tmp_path / "cut") == full_metrics


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, tiny_overrides, monkeypatch):
    from privacam.game import game as game_mod
    from privacam.errors import NonFiniteLossError

    orig = game_mod.AdversarialGame.encoder_move

    def poisoned(self, *a, **k):
        if self.step_count >= 2:
            for p in self.encoder.parameters():
                p.data.fill_(float("nan"))
        return orig(self, *a, **k)

    monkeypatch.setattr(game_mod.AdversarialGame, "encoder_move", poisoned)
    with pytest.raises(NonFiniteLossError, match="player encoder at step 3"):
        train(_cfg(tiny_overrides), tmp_path / "r")
    ck = load_checkpoint(tmp_path / "r/checkpoints/last.pt")
    assert ck["game"]["step_count"] == 2
    assert all(torch.isfinite(v).all() for v in ck["game"]["encoder"].values())


def test_config_errors_are_one_line_with_fix():
    with pytest.raises(ConfigError, match="did you mean 'train.steps'"):
        load_config("default", ["train.setps=3"])
    with pytest.raises(ConfigError, match="did you mean 'game.gamma'"):
        load_config("default", ["game.gama=3"])
    with pytest.raises(ConfigError, match="must be an integer"):
        load_config("default", ["train.steps=abc"])


def test_user_weights_with_another_class_count_load_all_but_the_head(tmp_path):
    from privacam.config import PlayerConfig
    from privacam.errors import PrivacamError
    from privacam.players import load_weights
    from privacam.registry import create_utility

    torch.manual_seed(0)
    src = create_utility("small3d", num_classes=99, width=4).state_dict()  # trained for another label set
    dst = create_utility("small3d", num_classes=3, width=4)
    torch.save(src, tmp_path / "w.pt")
    before = {k: v.clone() for k, v in dst.state_dict().items()}
    load_weights(dst, PlayerConfig(weights=str(tmp_path / "w.pt")), "utility")
    skipped = [k for k, v in dst.state_dict().items() if src[k].shape != v.shape]
    assert skipped and all(k.startswith("net.head.") for k in skipped)
    for k, v in dst.state_dict().items():  # matching tensors loaded, the head keeps its own initialisation
        assert torch.equal(v, before[k] if k in skipped else src[k]), k
    (tmp_path / "bad.pt").write_text("not a state dict")
    with pytest.raises(PrivacamError, match="utility.weights: cannot read .*bad.pt"):
        load_weights(dst, PlayerConfig(weights=str(tmp_path / "bad.pt")), "utility")


def test_cli_end_to_end_and_errors(tmp_path, tiny_overrides, capsys):
    out = tmp_path / "cli_run"
    assert main(["train", "--data", "synthetic", *tiny_overrides, *SCHEDULES["kbeam"], "--out", str(out)]) == 0
    assert (out / "encoder.pt").exists()
    assert main(["train", "--out", str(out), "encoder.name=st_cov"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "did you mean 'st_conv'" in err[0]
    assert main(["configs"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert any(l.startswith("default\t") for l in lines) and any(l.startswith("cpgan_digits\t") for l in lines)


@pytest.mark.slow
def test_sigkill_then_resume_completes(tmp_path, tiny_overrides):
    out = tmp_path / "killed"
    ov = [o for o in tiny_overrides if not o.startswith("train.steps")] + ["train.steps=400", "train.checkpoint_every=5"]
    cmd = [sys.executable, "-m", "privacam.cli", "train", *ov, "--out", str(out)]
    p = subprocess.Popen(cmd, start_new_session=True)
    ck = out / "checkpoints" / "last.pt"
    deadline = time.time() + 120
    while time.time() < deadline:
        if ck.exists() and load_checkpoint(ck)["stage"] == "game" and load_checkpoint(ck)["game"]["step_count"] >= 10:
            break
        time.sleep(0.5)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    step = load_checkpoint(ck)["game"]["step_count"]
    assert 0 < step < 400
    assert subprocess.call(cmd + ["--resume"]) == 0
    assert load_checkpoint(ck)["game"]["step_count"] == 400
    assert read_metrics(out)[-1]["step"] == 400


def test_final_utility_stage_moves_only_the_utility_model(tmp_path, tiny_overrides):
    a = train(_cfg(tiny_overrides), tmp_path / "a")
    b = train(_cfg(tiny_overrides, "train.final_utility_steps=3"), tmp_path / "b")
    ea, eb = _encoder_state(a), _encoder_state(b)
    assert all(torch.equal(ea[k], eb[k]) for k in ea)  # the release is unchanged
    ua = load_checkpoint(a / "checkpoints/final.pt")["game"]["utility"]
    ub = load_checkpoint(b / "checkpoints/final.pt")["game"]["utility"]
    assert any(not torch.equal(ua[k], ub[k]) for k in ua)
    assert [r["stage"] for r in read_metrics(b)][-3:] == ["final_utility"] * 3
