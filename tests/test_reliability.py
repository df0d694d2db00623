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
    last = out / "checkpoints" / "last.pt"
    reached = load_checkpoint(last)["game"]["step_count"] if last.exists() else 0  # stop there: a resume never goes back
    with caplog.at_level(logging.WARNING):
        assert main(["train", "--out", str(out), "--resume", f"train.steps={reached}"]) == 0
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


# ==================================================================================== round two (issue 23)
# Every test below failed on the code before issue 23 (2e9f8a4): an input or an output overwritten, a
# stale cache or chance, a resume that said more than it did, advice that did not work, a traceback.
def _no_temporaries(folder: Path) -> bool:
    """No temporary file or folder of privacam's writers is left in ``folder`` (they start with a dot)."""
    return not [p for p in folder.iterdir() if p.name.startswith(".") and (".tmp" in p.name)]


# ------------------------------------------------------------------------------------ the same file, by device and inode
@pytest.mark.parametrize("case", ["hard_link_image", "hard_linked_frames", "alias_of_the_folder"])
def test_a_hard_link_or_alias_of_the_input_is_the_input(tiny_run, tmp_path, capsys, case):
    """Paths that differ but name the input (a hard link, a folder of hard links to its frames, a
    symlinked alias of the folder) are the input: refused, --overwrite or not, and the input is intact."""
    import os

    if case == "hard_link_image":
        inp = write_image(tmp_path / "img.png")
        out = tmp_path / "hard.png"
        os.link(inp, out)
    else:
        inp = write_frames(tmp_path / "frames", 3)
        out = tmp_path / "copy"
        if case == "hard_linked_frames":
            out.mkdir()
            for f in inp.iterdir():
                os.link(f, out / f.name)
        else:
            out.symlink_to(inp, target_is_directory=True)
    before = _digest(inp)
    for extra in ([], ["--overwrite"]):
        assert main(["anonymize", str(tiny_run), str(inp), "-o", str(out), *extra]) == 2
        assert "never writes over its input" in _one_error_line(capsys)
        assert _digest(inp) == before


def test_export_never_writes_over_a_file_of_its_run(tiny_run, tmp_path, capsys):
    import os

    run = _copy(tiny_run, tmp_path)
    alias = tmp_path / "weights.onnx"
    os.link(run / "encoder.pt", alias)  # a hard link to the run's own weights
    before = _digest(run)
    for extra in ([], ["--overwrite"]):
        assert main(["export", str(run), "-o", str(alias), *extra]) == 2
        assert "is the same file as the input" in _one_error_line(capsys)
    assert _digest(run) == before


# ------------------------------------------------------------------------------------ outputs never clobber
def _three_outputs(tiny_run, tmp_path, capsys):
    """Run anonymize, export and report once each into fresh outputs; returns their paths."""
    run = _copy(tiny_run, tmp_path)
    assert main(["evaluate", str(run), *EVAL_MIN, "eval.raw_reference=false"]) == 0
    shot = write_image(tmp_path / "shot.png")
    outs = {"anonymize": tmp_path / "released.png", "export": tmp_path / "enc.onnx", "report": tmp_path / "page" / "r.html"}
    cmds = {"anonymize": ["anonymize", str(run), str(shot), "-o", str(outs["anonymize"])],
            "export": ["export", str(run), "-o", str(outs["export"])],
            "report": ["report", str(run), "-o", str(outs["report"])]}
    for name, cmd in cmds.items():
        assert main(cmd) == 0, name
    capsys.readouterr()
    return cmds, outs


def test_existing_outputs_are_refused_and_overwrite_moves_them_aside(tiny_run, tmp_path, capsys):
    """anonymize, export and report refuse an output that exists; --overwrite moves it aside
    (STEM.replaced-<time>.SUFFIX, bytes intact) and writes a new one."""
    cmds, outs = _three_outputs(tiny_run, tmp_path, capsys)
    for name, cmd in cmds.items():
        out = outs[name]
        before = out.read_bytes()
        assert main(cmd) == 2, name
        line = _one_error_line(capsys)
        assert f"output {out} already exists" in line and "--overwrite" in line, line
        assert out.read_bytes() == before
        assert main(cmd + ["--overwrite"]) == 0, name
        capsys.readouterr()
        aside = [p for p in out.parent.iterdir() if p.name.startswith(f"{out.stem}.replaced-") and p.suffix == out.suffix]
        assert len(aside) == 1 and aside[0].suffix == out.suffix and aside[0].read_bytes() == before, name
        assert out.exists() and _no_temporaries(out.parent)


def test_a_link_in_an_output_folder_is_never_written_through(tiny_run, tmp_path, capsys):
    """An output folder that holds a symlink to a file outside it: refused; with --overwrite the folder
    is moved aside and the file the link points to is untouched."""
    frames = write_frames(tmp_path / "frames", 2)
    outside = write_image(tmp_path / "elsewhere" / "precious.png", value=7)
    out = tmp_path / "released"
    out.mkdir()
    (out / "0001.png").symlink_to(outside)  # the name the first released frame gets
    before = outside.read_bytes()
    assert main(["anonymize", str(tiny_run), str(frames), "-o", str(out)]) == 2
    assert "already exists (a folder holding files)" in _one_error_line(capsys)
    assert main(["anonymize", str(tiny_run), str(frames), "-o", str(out), "--overwrite"]) == 0
    assert outside.read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == ["0001.png", "0002.png"] and not (out / "0001.png").is_symlink()
    (aside,) = [p for p in tmp_path.iterdir() if p.name.startswith("released.replaced-")]
    assert (aside / "0001.png").is_symlink()


def test_a_failed_write_leaves_no_half_written_output(tiny_run, tmp_path, monkeypatch, capsys):
    """A folder of released frames appears whole or not at all; an ONNX file that fails its check is
    not left behind; no temporary file stays."""
    from privacam.deploy import io as deploy_io

    frames = write_frames(tmp_path / "frames", 4)
    orig, calls = deploy_io.ImageSink.write, {"n": 0}

    def failing(self, frame):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(28, "No space left on device")
        return orig(self, frame)

    monkeypatch.setattr(deploy_io.ImageSink, "write", failing)
    assert main(["anonymize", str(tiny_run), str(frames), "-o", str(tmp_path / "out")]) == 2
    assert "No space left on device" in _one_error_line(capsys)
    assert not (tmp_path / "out").exists() and _no_temporaries(tmp_path)
    from privacam.deploy import export as deploy_export

    monkeypatch.setattr(deploy_export, "onnx_parity", lambda *a, **k: 1.0)  # the file does not match PyTorch
    assert main(["export", str(tiny_run), "-o", str(tmp_path / "e.onnx")]) == 2
    assert "nothing was written" in _one_error_line(capsys)
    assert not (tmp_path / "e.onnx").exists() and _no_temporaries(tmp_path)


# ------------------------------------------------------------------------------------ caches notice
def test_frame_cache_and_fingerprint_notice_a_frame_edited_in_place(tmp_path, monkeypatch):
    """One frame of 40 is edited in place (same name; the folder's time does not change): the frame
    cache misses and decodes it again, and the data fingerprint changes."""
    import os

    from privacam.data.video import FrameStore

    folder = write_frames(tmp_path / "v", 40, h=8, w=8)
    folder_time = folder.stat().st_mtime_ns
    store = FrameStore(8, cache_dir=tmp_path / "cache")
    first = store.frames(str(folder), range(40))
    assert store.decodes == 1
    again = FrameStore(8, cache_dir=tmp_path / "cache")
    again.frames(str(folder), [0])
    assert again.decodes == 0  # unchanged: a hit
    rows = []
    for i, (u, p) in enumerate([(u, p) for u in ("a", "b") for p in ("x", "y")]):
        for split in ("train", "test"):
            sub = folder if (i, split) == (0, "train") else write_frames(tmp_path / f"o{i}{split}", 8, h=8, w=8, tint=9 * i)
            rows.append([str(sub), u, p, split])
    csv = write_csv(tmp_path / "m.csv", ["path", "utility", "private", "split"], rows)
    before = make_splits(_data(csv, clip_len=4)).meta["fingerprint"]
    edited = folder / "0002.png"  # frame 1: not among the frames the old key sampled
    Image.fromarray(np.full((8, 8, 3), 255, np.uint8)).save(edited)
    os.utime(folder, ns=(folder_time, folder_time))  # as an editor that rewrites in place leaves it
    fresh = FrameStore(8, cache_dir=tmp_path / "cache")
    now = fresh.frames(str(folder), range(40))
    assert fresh.decodes == 1 and not np.array_equal(now[1], first[1]) and np.array_equal(now[0], first[0])
    assert make_splits(_data(csv, clip_len=4)).meta["fingerprint"] != before


# ------------------------------------------------------------------------------------ chance as the score is weighed
def test_utility_chance_is_weighed_as_the_score_is(tmp_path):
    """Test videos of uneven length (the majority action's are short): a constant predictor of the
    training majority scores exactly the utility chance the audit reports."""
    import torch.nn as nn

    from privacam.evaluate import protocol
    from privacam.evaluate.protocol import AuditSpec, FitConfig
    from privacam.models.encoders import IdentityEncoder

    rows = []
    for a, persons in (("act0", ("p0", "p1", "p2")), ("act1", ("p0", "p1"))):  # act0: the training majority
        for p in persons:
            i = len(rows)
            for split, n in (("train", 12), ("test", 4 if a == "act0" else 16)):
                rows.append([str(write_frames(tmp_path / f"{a}_{p}_{split}", n, h=16, w=16, tint=20 * i)), a, p, split])
    csv = write_csv(tmp_path / "m.csv", ["path", "utility", "private", "split"], rows)
    splits = make_splits(DataConfig(name="manifest", root=str(csv), size=16, clip_len=4))

    class Constant(nn.Module):  # always the first action
        def forward(self, z):
            return torch.tensor([[0.0, -5.0]]).expand(len(z), 2)

    spec = AuditSpec(attackers=["linear_probe"], fit=FitConfig(epochs=1, batch_size=8, min_epochs=1),
                     utility_fit=FitConfig(epochs=1, batch_size=8), bootstrap=20, trials=5, person_k=[1])
    s = protocol.audit(IdentityEncoder(), splits, spec, out_dir=tmp_path / "eval", utility_model=Constant())
    u = s.utility
    assert u.value == pytest.approx(0.6)  # 3 of the 5 test videos, each weighing the same
    assert u.chance == pytest.approx(u.value)


# ------------------------------------------------------------------------------------ resume is honest
def test_resume_extends_a_finished_run_or_refuses_in_one_line(tiny_run, tmp_path, monkeypatch, capsys):
    """A finished run resumed with a larger train.steps trains to it; a smaller one, a change that
    would train nothing, or a stage length the run has passed are refused in one line and config.yaml
    keeps what the run used."""
    from privacam.runs import read_metrics

    run = _copy(tiny_run, tmp_path)
    assert load_checkpoint(run / "checkpoints/last.pt")["game"]["step_count"] == 2
    config = (run / "config.yaml").read_text()
    for override, why in (("train.steps=1", "train.steps=1 is below the 2 game steps"), ("encoder.lr=0.5", "encoder.lr would never be used")):
        assert main(["train", "--out", str(run), "--resume", override]) == 2
        assert why in _one_error_line(capsys)
        assert (run / "config.yaml").read_text() == config
    assert main(["train", "--out", str(run), "--resume", "train.steps=3"]) == 0
    assert load_checkpoint(run / "checkpoints/last.pt")["game"]["step_count"] == 3
    assert load_checkpoint(run / "checkpoints/final.pt")["game"]["step_count"] == 3
    assert [r["step"] for r in read_metrics(run) if r["stage"] == "game"] == [1, 2, 3]
    assert load_config(run / "config.yaml").train.steps == 3
    # mid-run: a stage the run has passed, and a length below the steps already made
    mid = _interrupted_run(tmp_path / "mid", monkeypatch)
    config = (mid / "config.yaml").read_text()
    for override, why in (("train.steps=1", "train.steps=1 is below the 2 steps"), ("init.utility_steps=5", "past that stage")):
        assert main(["train", "--out", str(mid), "--resume", override]) == 2
        assert why in _one_error_line(capsys)
        assert (mid / "config.yaml").read_text() == config


def test_a_finished_val_probe_run_is_not_extended_silently(tmp_path, capsys):
    run = tmp_path / "r"
    assert main(["train", *TINY, "train.steps=2", "train.select=val_probe", "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["train", "--out", str(run), "--resume", "train.steps=4"]) == 2
    assert "shipped its best checkpoint" in _one_error_line(capsys)
    assert load_config(run / "config.yaml").train.steps == 2


# ------------------------------------------------------------------------------------ paths resolved before overlap checks
def test_a_symlinked_alias_folder_does_not_hide_a_leak(tmp_path):
    rows = _grid(("train", "val", "test"))
    csv = _images(tmp_path, rows)
    (tmp_path / "alias").symlink_to(tmp_path / "img", target_is_directory=True)
    text = csv.read_text() + "alias/cat_ann_train.png,cat,ann,test\n"  # the train image again, in test
    csv.write_text(text)
    with pytest.raises(DataError, match=r"in both train and test"):
        make_splits(_data(csv))


# ------------------------------------------------------------------------------------ advice that works when followed
def test_ctrl_c_advice_works_when_followed(tiny_run, tmp_path, monkeypatch, capsys):
    """After Ctrl-C, evaluate says to run the same command again (it has no --resume), train says to
    resume its run and a sweep to run again with --resume: each advised command is accepted."""
    import shlex

    from privacam.evaluate import runner

    run = _copy(tiny_run, tmp_path)
    cmd = ["evaluate", str(run), *EVAL_MIN, "eval.raw_reference=false"]
    orig = runner.audit

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "audit", interrupted)
    assert main(cmd) == 130
    line = _one_error_line(capsys)
    assert "--resume" not in line and "run the same command again" in line
    monkeypatch.setattr(runner, "audit", orig)
    assert main(cmd) == 0
    capsys.readouterr()

    from privacam.game import game as game_mod

    step = game_mod.AdversarialGame.step

    def dying(self, *a, **k):
        if self.step_count == 3:
            raise KeyboardInterrupt
        return step(self, *a, **k)

    monkeypatch.setattr(game_mod.AdversarialGame, "step", dying)
    assert main(["train", *TINY, "--out", str(tmp_path / "t")]) == 130
    advice = re.search(r"`privacam (train [^`]*)`", _one_error_line(capsys)).group(1).split()
    sweep = ["sweep", "default", *TINY, *EVAL_MIN, "eval.raw_reference=false", "--key", "game.gamma", "--values", "1", "--out", str(tmp_path / "s")]
    assert main(sweep) == 130  # a sweep (like the demo) continues with --resume
    sweep_advice = re.search(r"`privacam (sweep [^`]*)`", _one_error_line(capsys)).group(1)
    monkeypatch.setattr(game_mod.AdversarialGame, "step", step)
    assert advice[-1] == "--resume" and main(advice) == 0
    assert load_checkpoint(tmp_path / "t/checkpoints/last.pt")["game"]["step_count"] == 4
    assert sweep_advice.endswith("--resume") and main(shlex.split(sweep_advice)) == 0
    assert (tmp_path / "s" / "sweep.json").exists()


def test_damaged_run_advice_works_when_followed(tiny_run, tmp_path, capsys):
    """A run without run.json is told a command that trains it again (and that command is accepted);
    a report of a path without an audit is told how to audit it, and a damaged encoder.pt how to
    write it again (accepted too)."""
    import shlex

    run = _copy(tiny_run, tmp_path)
    (run / "run.json").unlink()
    assert main(["evaluate", str(run)]) == 2
    advice = re.search(r"`privacam (train [^`]*)`", _one_error_line(capsys)).group(1)
    assert main(shlex.split(advice)) == 0 and (run / "run.json").exists()
    capsys.readouterr()
    fresh = _copy(tiny_run, tmp_path / "b")
    assert main(["report", str(fresh), "-o", str(tmp_path / "r.html")]) == 2
    advice = re.search(r"`privacam (evaluate [^`]*)`", _one_error_line(capsys)).group(1)
    assert main(shlex.split(advice) + EVAL_MIN + ["eval.raw_reference=false"]) == 0
    capsys.readouterr()
    enc = fresh / "encoder.pt"  # a damaged encoder: the advice resumes the finished run, which writes it again
    enc.write_bytes(enc.read_bytes()[:100])
    assert main(["anonymize", str(fresh), str(write_image(tmp_path / "a.png")), "-o", str(tmp_path / "o.png")]) == 2
    advice = re.search(r"`privacam (train [^`]*)`", _one_error_line(capsys)).group(1)
    assert main(shlex.split(advice)) == 0
    assert main(["anonymize", str(fresh), str(tmp_path / "a.png"), "-o", str(tmp_path / "o.png")]) == 0


def test_disk_errors_are_one_line_leave_no_half_file_and_their_advice_works(tiny_run, tmp_path, monkeypatch, capsys):
    """A full disk while training (at a checkpoint), auditing (at the summary) and exporting: one line
    naming the file, the earlier file intact, no temporary left; training's advice resumes the run."""
    import errno
    import os
    import shlex

    real_fsync = os.fsync

    def full_at(name):
        def fsync(fd):
            if name in os.readlink(f"/proc/self/fd/{fd}"):
                raise OSError(errno.ENOSPC, "No space left on device")
            return real_fsync(fd)
        return fsync

    out = tmp_path / "t"
    assert main(["train", *TINY, "train.steps=2", "--out", str(out)]) == 0
    capsys.readouterr()
    monkeypatch.setattr(os, "fsync", full_at(".last."))
    assert main(["train", "--out", str(out), "--resume", "train.steps=4"]) == 2
    line = _one_error_line(capsys)
    assert "cannot write" in line and "last.pt" in line and "disk is full" in line
    assert load_checkpoint(out / "checkpoints/last.pt")["game"]["step_count"] == 2  # the earlier one, whole
    assert _no_temporaries(out / "checkpoints")
    monkeypatch.setattr(os, "fsync", real_fsync)
    advice = re.search(r"`privacam (train [^`]*)`", line).group(1)
    assert main(shlex.split(advice) + ["train.steps=4"]) == 0
    assert load_checkpoint(out / "checkpoints/last.pt")["game"]["step_count"] == 4
    capsys.readouterr()

    run = _copy(tiny_run, tmp_path / "e")
    monkeypatch.setattr(os, "fsync", full_at(".summary."))
    assert main(["evaluate", str(run), *EVAL_MIN, "eval.raw_reference=false"]) == 2
    assert "summary.json" in _one_error_line(capsys)
    assert not (run / "eval" / "summary.json").exists() and _no_temporaries(run / "eval")
    monkeypatch.setattr(os, "fsync", full_at(".enc."))
    assert main(["export", str(run), "-o", str(tmp_path / "enc.onnx")]) == 2
    assert "enc.onnx" in _one_error_line(capsys)
    assert not (tmp_path / "enc.onnx").exists() and _no_temporaries(tmp_path)


def test_a_read_only_run_directory_is_one_line(tiny_run, tmp_path, capsys):
    import contextlib
    import os
    import subprocess

    run = _copy(tiny_run, tmp_path)

    @contextlib.contextmanager
    def read_only(path):
        if os.geteuid() == 0:  # root writes through permissions: make the folder immutable instead
            if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode:
                pytest.skip("no way to make a folder read-only here (chattr)")
            try:
                yield
            finally:
                subprocess.run(["chattr", "-i", str(path)], check=True)
        else:
            mode = path.stat().st_mode
            path.chmod(0o555)
            try:
                yield
            finally:
                path.chmod(mode)

    before = _digest(run)
    with read_only(run):
        for cmd in (["train", "--out", str(run), "--resume", "train.steps=3"], ["evaluate", str(run), *EVAL_MIN], ["export", str(run)]):
            assert main(cmd) == 2, cmd
            line = _one_error_line(capsys)
            assert str(run) in line and ("not writable" in line or "permissions" in line), line
    assert _digest(run) == before


# ------------------------------------------------------------------------------------ report and anonymize say what they did
def test_report_names_a_path_without_an_audit_and_never_writes_the_page_over_the_figure(tiny_run, tmp_path, capsys):
    audited, bare = _copy(tiny_run, tmp_path / "a"), _copy(tiny_run, tmp_path / "b")
    assert main(["evaluate", str(audited), *EVAL_MIN, "eval.raw_reference=false"]) == 0
    capsys.readouterr()
    assert main(["report", str(bare), str(audited), "-o", str(tmp_path / "r.html")]) == 2
    line = _one_error_line(capsys)
    assert f"{bare} holds no audit" in line and not (tmp_path / "r.html").exists()
    assert main(["report", str(audited), "-o", str(tmp_path / "X.png")]) == 2
    assert "give -o" in _one_error_line(capsys) and not (tmp_path / "X.png").exists()


def test_anonymize_max_frames_0_writes_nothing_and_says_so(tiny_run, tmp_path, capsys):
    frames = write_frames(tmp_path / "frames", 3)
    for value in ("0", "-1"):
        assert main(["anonymize", str(tiny_run), str(frames), "-o", str(tmp_path / "o.mp4"), "--max-frames", value]) == 2
        assert f"--max-frames is {value}" in _one_error_line(capsys)
        assert not (tmp_path / "o.mp4").exists()


# ------------------------------------------------------------------------------------ tracebacks become one line
@pytest.mark.parametrize("spec,pattern", [
    ("downsample:factor=abc", r"'downsample:factor' is 'abc'; it must be an integer >= 1"),
    ("downsample:factor=0", r"'downsample:factor' is 0; it must be an integer >= 1"),
    ("downsample:factor=1.5", r"'downsample:factor' is 1.5"),
    ("blur:sigma=-1", r"'blur:sigma' is -1; it must be >= 0"),
    ("blur:sigma=abc", r"'blur:sigma' is 'abc'"),
    ("blur:sigma=1e9", r"'blur:sigma' is 1000000000.0; it must be >= 0 and <= 64"),
    ("pixelate:block=0", r"'pixelate:block' is 0"),
    ("pixelate:levels=1", r"'pixelate:levels' is 1"),
    ("temporal_diff:gain=abc", r"'temporal_diff:gain' is 'abc'"),
    ("body_crop:fallback=box", r"'body_crop:fallback' is 'box'.*choose one of motion, none"),
])
def test_bad_parameters_of_a_named_encoder_are_one_line(spec, pattern, tmp_path, capsys):
    assert main(["evaluate", "--encoder", spec, "--out", str(tmp_path / "e"), *TINY[5:8], *EVAL_MIN]) == 2
    assert re.search(pattern, _one_error_line(capsys))
    assert not (tmp_path / "e").exists()


@pytest.mark.parametrize("command,option,pattern", [
    ("anonymize", ["--batch-size", "0"], r"--batch-size is 0"), ("anonymize", ["--fps", "-5"], r"--fps is -5.0"),
    ("anonymize", ["--fps", "nan"], r"--fps is nan"), ("anonymize", ["--fps", "0"], r"--fps is 0.0"),
    ("anonymize", ["--device", "cuda:7"], r"use --device auto"),
    ("export", ["--opset", "0"], r"--opset is 0"), ("export", ["--opset", "5"], r"onnxruntime cannot run the file exported at opset 5"),
    ("export", ["--tolerance", "-1"], r"--tolerance is -1.0"),
])
def test_bad_anonymize_and_export_options_are_one_line(command, option, pattern, tiny_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / ("o.mp4" if command == "anonymize" else "o.onnx")
    frames = [str(write_frames(tmp_path / "frames", 3))] if command == "anonymize" else []
    assert main([command, str(tiny_run), *frames, "-o", str(out), *option]) == 2
    assert re.search(pattern, _one_error_line(capsys))
    assert not out.exists() and _no_temporaries(tmp_path)


def test_every_encoder_parameter_is_checked():
    """Each parameter of each registered encoder has a value rule or a type the registry checks
    (int, float, bool, str, maybe None): a wrong value is one line, never a traceback."""
    import inspect

    from privacam.registry import ENCODERS, _check_type

    for name in ENCODERS.list():
        rules = ENCODERS.rules(name)
        for pname, param in inspect.signature(ENCODERS.get(name)).parameters.items():
            if pname in rules:
                continue
            with pytest.raises(ConfigError):  # a checked type refuses a value of no type it takes
                _check_type(f"{name}:{pname}", object(), param)


def test_a_manifest_with_one_identity_is_one_line(tmp_path, capsys):
    rows = [(f"{u}_solo_{s}", u, "solo", s) for u in ("cat", "dog") for s in ("train", "train", "val", "test")]
    csv = _images(tmp_path, rows)
    for family in (["train.select=val_probe"], TINY):  # the default family (its selection probe divided by zero) and the game
        ov = [o for o in family if not o.startswith("data.params")] + ["data.size=16", "data.clip_len=4"]
        assert main(["train", *ov, "--data", str(csv), "--out", str(tmp_path / "r")]) == 2
        assert "every sample has the same private class ('solo')" in _one_error_line(capsys)
        assert not (tmp_path / "r" / "config.yaml").exists()


def test_a_setting_the_decision_family_cannot_use_is_one_line(tmp_path, capsys):
    ov = ["data.size=16", "data.clip_len=4", "train.steps=1", "train.batch_size=4",
          "data.params={num_actors: 3, clips_per_pair: 3, actions: [wave1, jump, bend]}", "train.final_utility_steps=2"]
    assert main(["train", "decision", *ov, "--out", str(tmp_path / "r")]) == 2
    assert "train.final_utility_steps=2 trains f_T alone" in _one_error_line(capsys)
    assert not (tmp_path / "r").exists()


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
