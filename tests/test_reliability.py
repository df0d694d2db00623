"""Nothing lost, nothing silently wrong (issue 17): each test holds one guarantee of docs/reliability.md.

Every case here failed on the code before the issue (a3000f4): a bad value ran or crashed with a
traceback, a manifest mistake passed silently, a damaged file gave a traceback, a NaN left a
non-finite ``last.pt``.
"""

from __future__ import annotations

import datetime
import logging
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import TINY
from conftest_data import write_csv, write_frames, write_image
from privacam.builders import check_config
from privacam.cli import main
from privacam.config import DataConfig, RULES, config_keys, load_config
from privacam.data import apply_data_spec, make_splits
from privacam.errors import CheckpointError, ConfigError, DataError, NonFiniteLossError
from privacam.train import train
from privacam.utils import load_checkpoint


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


# ------------------------------------------------------------------------------------ config values
@pytest.mark.parametrize(
    "override,pattern",
    [
        ("train.steps=-5", r"'train.steps' is -5; it must be >= 0"),
        ("train.amp=fp8", r"'train.amp' is 'fp8'.*choose one of off, bf16, fp16"),
        ("train.batch_size=0", r"'train.batch_size' is 0; it must be >= 1"),
        ("data.clip_len=0", r"'data.clip_len' is 0; it must be >= 1"),
        ("train.log_every=0", r"'train.log_every' is 0; it must be >= 1"),
        ("encoder.lr=-0.001", r"'encoder.lr' is -0.001; it must be >= 0"),
        ("eval.lr=0", r"'eval.lr' is 0.0; it must be > 0"),
        ("encoder.l1_decay=1.5", r"'encoder.l1_decay' is 1.5; it must be >= 0 and <= 1"),
        ("data.privacy_source={name: synthetic, size: 0}", r"'data.privacy_source.size' is 0"),
    ],
)
def test_out_of_range_values_are_refused_at_load(override, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_config("default", [override])


def test_out_of_range_value_is_one_cli_line(tmp_path, capsys):
    assert main(["train", "train.steps=-5", "--out", str(tmp_path / "r")]) == 2
    assert "train.steps" in _one_error_line(capsys)
    assert not (tmp_path / "r").exists()  # refused before anything was written


def test_cuda_on_a_machine_without_cuda_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["train", *TINY, "train.device=cuda", "--out", str(tmp_path / "r")]) == 2
    assert "no CUDA device" in _one_error_line(capsys)


def test_every_config_key_has_a_range_or_choices():
    """A key added to the dataclasses without a rule (or a rule left for a removed key) fails here."""
    keys = config_keys()
    unruled = [k for k, tp in keys.items() if k not in RULES and tp is not bool]
    assert not unruled, f"add these keys to privacam.config.RULES: {unruled}"
    stale = [k for k in RULES if k not in keys]
    assert not stale, f"RULES names keys the config no longer has: {stale}"


@pytest.mark.parametrize(
    "overrides,pattern",
    [
        (["schedule.params.max_budget_steps=-1"], r"'schedule.params.max_budget_steps' is -1; it must be an integer >= 0"),
        (["schedule.params.utility_bar=high"], r"'schedule.params.utility_bar' is 'high'; it must be a number >= 0"),
        (["schedule={name: kbeam, params: {plateau: 2.5}}", "game.against=strongest"],
         r"'schedule.params.plateau' is 2.5; it must be an integer"),
        (["schedule={name: multi_adversary, params: {buffer_size: 0}}"], r"'schedule.params.buffer_size' is 0; it must be an integer >= 1"),
        (["schedule={name: multi_adversary, params: {utility_with_encoder: maybe}}"], r"must be true or false"),
        (["game.against=everyone"], r"'game.against' is 'everyone'.*choose one of all, strongest"),
        (["game.aggregate=median"], r"'game.aggregate' is 'median'.*choose one of max, mean"),
    ],
)
def test_new_keys_and_schedule_params_are_checked(overrides, pattern, tmp_path, capsys):
    """game.against / game.aggregate when the config loads; a schedule's own settings against its
    ``param_rules`` before any work (one CLI line, nothing written)."""
    with pytest.raises(ConfigError, match=pattern):
        check_config(load_config("default", overrides))
    assert main(["train", *overrides, "--out", str(tmp_path / "r")]) == 2
    assert re.search(pattern, _one_error_line(capsys))
    assert not (tmp_path / "r").exists()


def test_every_schedule_setting_has_a_rule():
    from privacam.registry import SCHEDULES

    for name in SCHEDULES.list():
        params = set(SCHEDULES.parameters(name) or [])
        rules = set(getattr(SCHEDULES.get(name), "param_rules", {}))
        assert params == rules, f"schedule {name}: parameters {sorted(params)} but param_rules for {sorted(rules)}"


def test_yaml_1_2_numbers_parse(tmp_path):
    assert load_config("default", ["encoder.lr=1e-4"]).encoder.lr == pytest.approx(1e-4)
    f = tmp_path / "c.yaml"
    f.write_text("encoder:\n  lr: 1e-4\ntrain:\n  steps: 1e2\n")
    cfg = load_config(f)
    assert cfg.encoder.lr == pytest.approx(1e-4) and cfg.train.steps == 100


def test_top_level_yaml_list_is_one_line(tmp_path, capsys):
    f = tmp_path / "list.yaml"
    f.write_text("- train\n- encoder\n")
    with pytest.raises(ConfigError, match="top level is a list, not a mapping"):
        load_config(f)
    assert main(["train", str(f), "--out", str(tmp_path / "r")]) == 2
    assert "not a mapping" in _one_error_line(capsys)


# ------------------------------------------------------------------------------------ manifests
def _images(tmp_path, rows, name="m.csv"):
    """rows: (file stem, utility, private, split); writes one small PNG per distinct stem."""
    out = []
    for i, (stem, u, p, split) in enumerate(rows):
        f = tmp_path / "img" / f"{stem}.png"
        if not f.exists():
            write_image(f, size=(12, 12), value=20 + 9 * i)
        out.append([f"img/{stem}.png", u, p, split])
    return write_csv(tmp_path / name, ["path", "utility", "private", "split"], out)


def _grid(splits=("train", "test"), utility=("cat", "dog"), private=("ann", "bob", "cid")):
    return [(f"{u}_{p}_{s}", u, p, s) for u in utility for p in private for s in splits]


def _data(csv, **kw):
    return DataConfig(name="manifest", root=str(csv), size=8, **kw)


def test_class_with_no_training_example_is_refused(tmp_path):
    rows = _grid() + [("dan_test", "cat", "dan", "test"), ("dan_test2", "dog", "dan", "test")]
    with pytest.raises(DataError, match=r"private class 'dan' has no train example but is in test \(rows 14, 15\)"):
        make_splits(_data(_images(tmp_path, rows)))


def test_path_in_two_splits_is_refused_or_loudly_allowed(tmp_path, caplog):
    rows = _grid(("train", "val", "test"))
    rows.append(("cat_ann_train", "cat", "ann", "test"))  # the same file again, in test: a leak
    csv = _images(tmp_path, rows)
    with pytest.raises(DataError, match=r"rows 2, 20 list img/cat_ann_train.png in both train and test"):
        make_splits(_data(csv))
    with caplog.at_level(logging.WARNING):
        s = make_splits(_data(csv, params={"allow_overlap": True}))
    assert "!!!" in caplog.text and "leak between splits" in caplog.text
    assert len(s.test) == 7


def test_repeated_rows_are_dropped_with_a_warning_and_relabelled_repeats_refused(tmp_path, caplog):
    rows = _grid(("train", "val", "test"))
    csv = _images(tmp_path, rows + [rows[0], rows[0]])
    with caplog.at_level(logging.WARNING):
        s = make_splits(_data(csv))
    assert len(s.train) == 6 and caplog.text.count("repeats row 2") == 2
    relabelled = _images(tmp_path, rows + [("cat_ann_train", "dog", "ann", "train")], name="r.csv")
    with pytest.raises(DataError, match=r"rows 2, 20 list the same file img/cat_ann_train.png with different labels"):
        make_splits(_data(relabelled))


def test_image_manifest_with_train_and_test_rows_only_trains(tmp_path, caplog):
    """One train image per (utility, private) pair: stratifying on both labels leaves no validation,
    so rows are carved whose classes keep a train example, and the count is logged."""
    csv = _images(tmp_path, _grid())
    with caplog.at_level(logging.INFO):
        s = make_splits(_data(csv))
    assert len(s.val) >= 1 and len(s.train) + len(s.val) == 6
    assert "carved 1 of 6 train rows as validation" in caplog.text
    train_u = {int(s.train[i]["utility"]) for i in range(len(s.train))}
    train_p = {int(s.train[i]["private"]) for i in range(len(s.train))}
    assert train_u == {0, 1} and train_p == {0, 1, 2}  # every class is still learnable
    ov = [o for o in TINY if not o.startswith("data.params")]
    cfg = load_config("default", ov + ["train.steps=1", "init.encoder_steps=1", "init.utility_steps=1", "init.budget_steps=1"])
    cfg.data = apply_data_spec(cfg.data, str(csv))
    run = train(cfg, tmp_path / "run")
    assert (run / "encoder.pt").exists()


def test_skip_means_skip_when_preloading(tmp_path, caplog):
    """A corrupt image (a valid header, truncated data) and a frame folder with a corrupt frame are
    both preloaded (small sets); under skip each is left out and counted, under error it stops."""
    rows = _grid(("train", "val", "test"))
    csv = _images(tmp_path, rows)
    bad = tmp_path / "img" / "cat_bob_test.png"
    noise = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(noise).save(bad)
    bad.write_bytes(bad.read_bytes()[:600])  # the header reads, the pixels do not
    with pytest.raises(DataError, match="cat_bob_test.png"):
        make_splits(_data(csv))
    with caplog.at_level(logging.WARNING):
        s = make_splits(_data(csv, on_bad_sample="skip"))
    assert len(s.test) == 5 and len(s.meta["skipped"]) == 1 and "cat_bob_test" in s.meta["skipped"][0]
    assert "skipped 1 of 18 images" in caplog.text

    vids = []
    for i, (stem, u, p, split) in enumerate(rows):
        write_frames(tmp_path / "v" / stem, 4, tint=10 * i)
        vids.append([f"v/{stem}", u, p, split])
    (tmp_path / "v" / "dog_cid_val" / "0002.png").write_bytes(b"not a png at all")
    vcsv = write_csv(tmp_path / "v.csv", ["path", "utility", "private", "split"], vids)
    with pytest.raises(DataError, match="dog_cid_val"):
        make_splits(_data(vcsv, clip_len=4))
    s = make_splits(_data(vcsv, clip_len=4, on_bad_sample="skip"))
    assert len(s.val.records) == 5 and len(s.meta["skipped"]) == 1 and "v.csv row" in s.meta["skipped"][0]
    # and the run files say so
    ov = [o for o in TINY if not o.startswith("data.params")]
    cfg = load_config("default", ov + ["data.on_bad_sample=skip", "data.clip_len=4", "train.steps=1", "init.encoder_steps=0",
                                       "init.utility_steps=1", "init.budget_steps=0"])
    cfg.data = apply_data_spec(cfg.data, str(vcsv))
    run = train(cfg, tmp_path / "run")
    import json

    assert json.loads((run / "run.json").read_text())["skipped"]["count"] == 1


# ------------------------------------------------------------------------------------ damaged files
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("reliability") / "run"
    return train(load_config("default", TINY + ["train.steps=2"]), out)


def _copy(run, tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(run, dst)
    return dst


@pytest.mark.parametrize("damage", ["truncated", "empty", "refused"])
def test_damaged_checkpoint_is_one_line_naming_the_file(tiny_run, tmp_path, capsys, damage):
    run = _copy(tiny_run, tmp_path)
    last = run / "checkpoints" / "last.pt"
    if damage == "truncated":
        last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    elif damage == "empty":
        last.write_bytes(b"")
    else:  # a pickle that weights_only refuses (it could run code)
        torch.save({"game": {}, "when": datetime.datetime(2020, 1, 1)}, last)
    with pytest.raises(CheckpointError, match=str(last)):
        load_checkpoint(last)
    assert main(["train", "--out", str(run), "--resume"]) == 2
    line = _one_error_line(capsys)
    assert str(last) in line and "weights_only" not in line
    if damage == "refused":
        assert "datetime" in line and "could run code" in line


def test_damaged_encoder_and_missing_run_json_are_one_line(tiny_run, tmp_path, capsys):
    run = _copy(tiny_run, tmp_path)
    enc = run / "encoder.pt"
    enc.write_bytes(enc.read_bytes()[:100])
    assert main(["evaluate", str(run)]) == 2
    line = _one_error_line(capsys)
    assert str(enc) in line and "weights_only" not in line
    shutil.copy(tiny_run / "encoder.pt", enc)
    (run / "run.json").unlink()
    assert main(["evaluate", str(run)]) == 2
    assert "no run.json" in _one_error_line(capsys)


# ------------------------------------------------------------------------------------ finite checkpoints
def _finite(state: dict) -> bool:
    return all(torch.isfinite(v).all() for part in ("encoder", "utility", "budget") for v in state[part].values()
               if torch.is_tensor(v) and v.is_floating_point())


def test_nan_at_a_stage_boundary_leaves_a_finite_last_checkpoint(tmp_path, monkeypatch):
    """The last budget update of the initialisation writes NaN into f_b: the stage-boundary checkpoint
    must not be written with it, and the error names the budget player and its learning rate."""
    from privacam.game import game as game_mod

    orig = game_mod.AdversarialGame.budget_move
    calls = {"n": 0}

    def poisoned(self, *a, **k):
        logs = orig(self, *a, **k)
        calls["n"] += 1
        if calls["n"] == 2:  # init.budget_steps=2: the last step before the boundary save
            next(self.budget.parameters()).data.fill_(float("nan"))  # slipped past the move's own check
        return logs

    monkeypatch.setattr(game_mod.AdversarialGame, "budget_move", poisoned)
    with pytest.raises(NonFiniteLossError, match=r"player budget .*lower budget.lr \(now 0.001\)"):
        train(load_config("default", TINY), tmp_path / "r")
    ck = load_checkpoint(tmp_path / "r/checkpoints/last.pt")
    assert ck["stage"] == "init_utility" and _finite(ck["game"])  # the boundary before: finite


def test_blown_up_update_names_the_player_that_moved_first(tmp_path):
    """f_d's learning rate is absurd: its first update puts its weights near 1e30 (finite). The run
    stops at that update, blames f_d and its rate (not f_T, whose loss overflows next), and keeps no
    checkpoint with those weights."""
    ov = TINY + ["encoder.lr=1.0e+30", "init.encoder_steps=0"]
    with pytest.raises(NonFiniteLossError, match=r"player encoder .*encoder.lr \(now 1e\+30\)"):
        train(load_config("default", ov), tmp_path / "r")
    last = tmp_path / "r/checkpoints/last.pt"
    if last.exists():
        ck = load_checkpoint(last)
        assert all(v.abs().max() < 1e15 for v in ck["game"]["encoder"].values() if v.is_floating_point())


# ------------------------------------------------------------------------------------ inputs are never written
def _digest(path: Path) -> dict:
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return {str(p): p.read_bytes() for p in files}


@pytest.mark.parametrize("case", ["video", "image", "folder", "inside_folder", "image_into_its_folder"])
def test_anonymize_never_writes_over_its_input(tiny_run, tmp_path, capsys, case):
    if case == "video":
        av = pytest.importorskip("av")
        inp = tmp_path / "clip.mp4"
        with av.open(str(inp), "w") as c:
            s = c.add_stream("mpeg4", rate=10)
            s.width, s.height, s.pix_fmt = 32, 24, "yuv420p"
            for i in range(5):
                for p in s.encode(av.VideoFrame.from_ndarray(np.full((24, 32, 3), 40 * i, np.uint8), format="rgb24")):
                    c.mux(p)
            for p in s.encode():
                c.mux(p)
        out = inp
    elif case in ("image", "image_into_its_folder"):
        inp = write_image(tmp_path / "shots" / "a.png")
        out = inp if case == "image" else inp.parent
    else:
        inp = write_frames(tmp_path / "frames", 3)
        out = inp if case == "folder" else inp / "released"
    before = _digest(inp.parent if case == "image_into_its_folder" else inp)
    assert main(["anonymize", str(tiny_run), str(inp), "-o", str(out)]) == 2
    assert "never writes over its input" in _one_error_line(capsys)
    assert _digest(inp.parent if case == "image_into_its_folder" else inp) == before  # untouched, nothing added


# ------------------------------------------------------------------------------------ a run directory has one writer
def test_train_over_an_existing_run_refuses_and_overwrite_moves_it_aside(tiny_run, tmp_path, capsys):
    run = _copy(tiny_run, tmp_path)
    before = _digest(run)
    assert main(["train", *TINY, "train.steps=1", "--out", str(run)]) == 2
    line = _one_error_line(capsys)
    assert "already holds a run" in line and "--resume" in line and "--overwrite" in line
    assert _digest(run) == before
    assert main(["train", *TINY, "train.steps=1", "--out", str(run), "--overwrite"]) == 0
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("run.replaced-")]
    assert len(aside) == 1 and _digest(aside[0]) == {k.replace(str(run), str(aside[0])): v for k, v in before.items()}
    assert load_config(run / "config.yaml").train.steps == 1 and not (run / "eval").exists()
    assert not (run / ".lock").exists()


def test_two_trainings_cannot_share_a_run_dir_and_a_stale_lock_is_taken_over(tmp_path, caplog):
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "r"
    cmd = [sys.executable, "-m", "privacam.cli", "train", *TINY, "train.steps=100000", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen(cmd, start_new_session=True, env=env, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while not (out / "run.json").exists() and time.time() < deadline:
            time.sleep(0.2)
        assert first.poll() is None, "the first training should still be running"
        second = subprocess.run(cmd[:-2] + ["--out", str(out), "--overwrite"], env=env, capture_output=True, text=True, timeout=300)
        assert second.returncode == 2, second.stderr[-2000:]
        err = second.stderr.strip().splitlines()
        assert len(err) == 1 and f"being written by process {first.pid}" in err[0]
        assert first.poll() is None  # the owner runs on, its directory untouched
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    assert (out / ".lock").exists()  # left behind by the killed owner
    with caplog.at_level(logging.WARNING):
        assert main(["train", "--out", str(out), "--resume", "train.steps=1"]) == 0
    assert f"taking over a stale lock of process {first.pid}" in caplog.text
    assert not (out / ".lock").exists()


def test_nothing_else_writes_a_run_while_it_trains(tiny_run, tmp_path, capsys):
    """A live training's lock (another process) keeps out a resume and an audit of that directory."""
    import json
    import os
    import socket

    run = _copy(tiny_run, tmp_path)
    (run / ".lock").write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname(), "since": "now"}))
    before = _digest(run)
    assert main(["train", "--out", str(run), "--resume"]) == 2
    assert f"being written by process {os.getppid()}" in _one_error_line(capsys)
    assert main(["evaluate", str(run)]) == 2
    assert f"being written by process {os.getppid()}" in _one_error_line(capsys)
    assert _digest(run) == before


# ------------------------------------------------------------------------------------ resume means resume
def _interrupted_run(tmp_path, monkeypatch) -> Path:
    """A TINY run killed during game step 3: its last checkpoint is at step 2."""
    from privacam.game import game as game_mod

    orig = game_mod.AdversarialGame.step

    def dying(self, *a, **k):
        if self.step_count == 3:
            raise KeyboardInterrupt
        return orig(self, *a, **k)

    monkeypatch.setattr(game_mod.AdversarialGame, "step", dying)
    with pytest.raises(KeyboardInterrupt):
        train(load_config("default", TINY), tmp_path / "r")
    monkeypatch.setattr(game_mod.AdversarialGame, "step", orig)
    assert not (tmp_path / "r" / ".lock").exists()  # released on the way out
    return tmp_path / "r"


def test_resume_applies_and_records_overrides_learning_rates_included(tmp_path, monkeypatch, capsys):
    from privacam.runs import load_run_config, read_history

    run = _interrupted_run(tmp_path, monkeypatch)
    assert load_checkpoint(run / "checkpoints/last.pt")["game"]["step_count"] == 2
    # a key that defines the players cannot change on resume
    assert main(["train", "--out", str(run), "--resume", "encoder.params={width: 8, depth: 2}"]) == 2
    assert "encoder.params.width cannot change on --resume" in _one_error_line(capsys)
    assert main(["train", "--out", str(run), "--resume", "encoder.lr=0.0005", "budget.lr=0.002"]) == 0
    ck = load_checkpoint(run / "checkpoints/last.pt")["game"]
    assert ck["optimizers"]["encoder"]["param_groups"][0]["lr"] == pytest.approx(0.0005)
    assert ck["optimizers"]["budget"]["param_groups"][0]["lr"] == pytest.approx(0.002)
    assert ck["optimizers"]["utility"]["param_groups"][0]["lr"] == pytest.approx(0.001)
    cfg = load_run_config(run)
    assert cfg.encoder.lr == pytest.approx(0.0005) and cfg.budget.lr == pytest.approx(0.002)
    text = (run / "config.yaml").read_text()
    assert text.startswith("# resumed at step 2 (game): budget.lr: 0.001 -> 0.002; encoder.lr: 0.001 -> 0.0005\n")
    (hist,) = read_history(run)
    assert hist["step"] == 2 and hist["changed"]["encoder.lr"] == {"from": 0.001, "to": 0.0005}


def test_resume_of_a_missing_run_and_resume_with_other_labels_are_one_line(tmp_path, monkeypatch, capsys):
    assert main(["train", "--out", str(tmp_path / "typo"), "--resume"]) == 2
    assert "holds no run to resume" in _one_error_line(capsys)
    assert not (tmp_path / "typo").exists()
    run = _interrupted_run(tmp_path, monkeypatch)
    csv = _images(tmp_path, _grid(("train", "val", "test")))
    assert main(["train", "--out", str(run), "--resume", "--data", str(csv)]) == 2
    line = _one_error_line(capsys)
    assert "keeps its label sets" in line and "'cat', 'dog'" in line
    assert main(["train", "default", "--out", str(run), "--resume"]) == 2
    assert "give key=value overrides instead of the config 'default'" in _one_error_line(capsys)


def test_allow_overlap_flag_maps_to_the_data_param(tmp_path, capsys):
    rows = _grid(("train", "val", "test")) + [("cat_ann_train", "cat", "ann", "test")]
    csv = _images(tmp_path, rows)
    ov = [o for o in TINY if not o.startswith("data.params")] + ["train.steps=1", "init.encoder_steps=0",
                                                                  "init.utility_steps=1", "init.budget_steps=0"]
    assert main(["train", *ov, "--data", str(csv), "--out", str(tmp_path / "a")]) == 2
    assert "in both train and test" in _one_error_line(capsys)
    assert main(["train", *ov, "--data", str(csv), "--allow-overlap", "--out", str(tmp_path / "b")]) == 0
    assert load_config(tmp_path / "b" / "config.yaml").data.params["allow_overlap"] is True
    # evaluate takes it too (an audit on such a manifest is refused without it)
    ev = ["--encoder", "identity", "--data", str(csv), *ov, *EVAL_MIN, "eval.raw_reference=false"]
    assert main(["evaluate", *ev, "--out", str(tmp_path / "e")]) == 2
    assert "in both train and test" in _one_error_line(capsys)
    assert main(["evaluate", *ev, "--allow-overlap", "--out", str(tmp_path / "e")]) == 0


# ------------------------------------------------------------------------------------ derived files know their source
def test_relabelled_manifest_invalidates_the_raw_reference_cache(tmp_path, monkeypatch):
    """Same path, same rows, labels swapped in place: the cached raw reference must not be reused."""
    from privacam.evaluate import runner

    monkeypatch.setenv("PRIVACAM_CACHE", str(tmp_path / "cache"))
    audits = []

    from privacam.audits import AuditSummary

    def fake_audit(encoder, splits, spec, **kw):  # the raw reference's audit, counted
        audits.append(splits.meta["fingerprint"])
        return AuditSummary.from_dict({"utility": {}, "privacy": {}})

    monkeypatch.setattr(runner, "audit", fake_audit)
    rows = _grid(("train", "val", "test"))
    csv = _images(tmp_path, rows)
    cfg = load_config("default", ["data.size=8"])
    cfg.data = apply_data_spec(cfg.data, str(csv))
    spec = runner.audit_spec(cfg)
    for _ in range(2):
        runner.raw_reference(cfg, make_splits(cfg.data), spec, device="cpu")
    assert len(audits) == 1  # the second came from the cache
    text = csv.read_text()
    csv.write_text(text.replace(",cat,", ",tmp,").replace(",dog,", ",cat,").replace(",tmp,", ",dog,"))  # relabelled in place
    relabelled = make_splits(cfg.data)
    assert relabelled.meta["fingerprint"] != audits[0]
    runner.raw_reference(cfg, relabelled, spec, device="cpu")
    assert len(audits) == 2 and audits[1] == relabelled.meta["fingerprint"]


def test_encoder_and_audit_are_stamped_with_their_run(tiny_run, tmp_path, capsys):
    """run.json stamps encoder.pt (a replaced encoder is refused) and the audit records the stamp (an
    audit of an encoder the run no longer holds is refused by the report)."""
    import json

    from privacam import runs

    run = _copy(tiny_run, tmp_path)
    meta = runs.read_meta(run)
    assert meta["encoder_sha1"] == runs.file_sha1(run / "encoder.pt") and meta["run_id"] and meta["data_fingerprint"]
    ev = ["eval.attackers=[linear_probe]", "eval.epochs=1", "eval.min_epochs=1", "eval.utility_epochs=1", "eval.views=1",
          "eval.trials=5", "eval.bootstrap=10", "eval.raw_reference=false", "eval.reconstruction=false"]
    assert main(["evaluate", str(run), *ev]) == 0
    capsys.readouterr()
    summary = json.loads((run / "eval" / "summary.json").read_text())
    assert summary["encoder"]["stamp"] == runs.stamp(run)
    assert main(["report", str(run), "-o", str(tmp_path / "r.html")]) == 0
    capsys.readouterr()
    # another training wrote this directory since (an older privacam, or files copied by hand)
    runs.write_meta(run, {**meta, "run_id": "another"})
    assert main(["report", str(run), "-o", str(tmp_path / "r2.html")]) == 2
    assert "audits an encoder that" in _one_error_line(capsys)
    state = torch.load(run / "encoder.pt", weights_only=True)
    next(iter(state.values())).add_(1.0)
    torch.save(state, run / "encoder.pt")  # replaced by another run's encoder of the same shape
    assert main(["evaluate", str(run), *ev]) == 2
    assert "is not the one" in _one_error_line(capsys)


# ------------------------------------------------------------------------------------ every task has a meaningful reference
EVAL_MIN = ["eval.attackers=[linear_probe]", "eval.epochs=1", "eval.min_epochs=1", "eval.utility_epochs=1", "eval.views=1",
            "eval.trials=5", "eval.bootstrap=10", "eval.reconstruction=false"]


def test_feature_run_is_compared_with_its_unprotected_network(tmp_path, monkeypatch, capsys):
    """The reference of a feature-level run is the same config at gamma 0, trained, audited the same
    way and cached; NAG against it is computed, or refused with the reason when it never learned."""
    import json

    from privacam.evaluate.protocol import reference_refusal
    from test_feature import TINY as FEATURE_TINY

    monkeypatch.setenv("PRIVACAM_CACHE", str(tmp_path / "cache"))
    run = tmp_path / "f"
    assert main(["train", "feature_synthetic_image", *FEATURE_TINY, "game.gamma=2", "--out", str(run)]) == 0
    assert main(["evaluate", str(run), *EVAL_MIN]) == 0
    (ref_dir,) = list((tmp_path / "cache" / "unprotected").iterdir())
    ref_cfg, cfg = load_config(ref_dir / "config.yaml"), load_config(run / "config.yaml")
    assert ref_cfg.game.gamma == 0 and cfg.game.gamma == 2
    ref_cfg.game.gamma = cfg.game.gamma
    assert ref_cfg == cfg  # the same network and training, unprotected
    ref = json.loads((ref_dir / "eval" / "summary.json").read_text())
    s = json.loads((run / "eval" / "summary.json").read_text())
    assert s["privacy"]["raw"] == ref["privacy"]["best"] and "unprotected network" in s["privacy"]["reference"]
    assert s["utility"]["raw"] == ref["utility"]["retrained"]
    out = capsys.readouterr().out
    assert "reference: the unprotected network" in out
    from privacam.audits import AuditSummary

    why = reference_refusal(AuditSummary.from_dict({**ref, "reference": s["privacy"]["reference"]}))
    if why:  # two training steps may leave it at chance: then NAG is refused, and the audit says why
        assert s["privacy"]["nag"] is None and s["privacy"]["nag_refused"] == why and why in out
    else:
        assert s["privacy"]["nag"] is not None
    stamp = (ref_dir / "encoder.pt").stat().st_mtime_ns
    assert main(["evaluate", str(run), *EVAL_MIN]) == 0  # the second audit reuses the cached reference
    assert (ref_dir / "encoder.pt").stat().st_mtime_ns == stamp


def test_nag_is_refused_against_a_reference_at_chance():
    from privacam.audits import AuditSummary, Privacy
    from privacam.evaluate.protocol import add_raw, reference_refusal

    S = AuditSummary.from_dict
    # the case: 26.7 % on a small test set, chance 25 %: within the noise of chance
    never_learned = {"reference": "the unprotected network", "utility": {"value": 0.267, "interval": [0.2, 0.33], "chance": 0.25},
                     "privacy": {"best": 0.9, "chance": 0.2, "levels": {}}}
    why = reference_refusal(S(never_learned))
    assert why and "26.7 % (95 % interval 20.0-33.0 %) on its own task, no better than chance 25.0 %" in why
    privacy = Privacy.from_dict({"best": 0.5, "chance": 0.2, "levels": {"clip": {"best": 0.5, "chance": 0.2}}})
    add_raw(privacy, Privacy.from_dict({"best": 0.9, "levels": {"clip": {"best": 0.9}}}), why)
    privacy = privacy.to_dict()
    assert privacy["nag"] is None and privacy["levels"]["clip"]["nag"] is None and privacy["nag_refused"] == why
    assert reference_refusal(S({**never_learned, "reference": None})) is None  # raw data: its attackers' task counts
    blind = {"utility": {"value": 0.9, "chance": 0.25}, "privacy": {"best": 0.2, "chance": 0.2}}
    assert "no reference leakage" in reference_refusal(S(blind))
    assert reference_refusal(S({"utility": {"value": 0.9, "interval": [0.85, 0.95], "chance": 0.25},
                                "privacy": {"best": 0.6, "interval": [0.5, 0.7], "chance": 0.2}})) is None


# ------------------------------------------------------------------------------------ the page of guarantees
def test_reliability_doc_names_every_test():
    """docs/reliability.md names each guarantee's tests: every name exists here, and every test here
    is named there."""
    import ast

    doc = (Path(__file__).resolve().parents[1] / "docs" / "reliability.md").read_text()
    named = set(re.findall(r"`(test_\w+)`", doc)) - {"test_reliability_doc_names_every_test"}
    tree = ast.parse(Path(__file__).read_text())
    tests = {n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")}
    tests.discard("test_reliability_doc_names_every_test")
    assert not named - tests, f"docs/reliability.md names tests that do not exist: {sorted(named - tests)}"
    assert not tests - named, f"add these tests to docs/reliability.md under their guarantee: {sorted(tests - named)}"
