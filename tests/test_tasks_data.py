"""Task labels in the data contract: ``task:<name>`` manifest columns, samples' ``"tasks"``, collate,
fingerprints, released manifests, the tasks of the procedural data and the frame-derived tasks
(data/base.py, data/manifest.py, data/released.py, data/synthetic.py, data/tasks.py)."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest_data import write_csv, write_frames
from privacam.config import DataConfig, load_config
from privacam.data import collate, data_fingerprint, make_splits
from privacam.data.base import UNLABELLED, TensorSampleDataset, item_tasks
from privacam.data.released import pair_manifests, released_splits
from privacam.errors import DataError


def cfg(root, **kw):
    return DataConfig(name="manifest", root=str(root), size=16, clip_len=4, params=kw.pop("params", {}), **kw)


def task_manifest(tmp_path, position=None, extra_cols=(), extra=None):
    """2 actors x 2 actions, a train and a test folder each, with task:position (and more columns)."""
    position = position or {}
    rows = []
    for a, actor in enumerate(["ann", "bob"]):
        for c, act in enumerate(["walk", "wave"]):
            for part, n in (("train", 12), ("test", 6)):
                name = f"{actor}_{act}_{part}"
                if not (tmp_path / "frames" / name).exists():
                    write_frames(tmp_path / "frames" / name, n, h=16, w=16, tint=60 * a)
                pos = position.get(name, ["left", "right"][(a + c) % 2])
                rows.append([f"frames/{name}", act, actor, part, pos] + list((extra or {}).get(name, [])))
    return write_csv(tmp_path / "m.csv", ["path", "utility", "private", "split", "task:position", *extra_cols], rows)


# ---------------------------------------------------------------------------------------- manifest
def test_manifest_task_columns_reach_samples_batches_and_item_tasks(tmp_path):
    csv = task_manifest(tmp_path, extra_cols=("task:speed",),
                        extra={"ann_walk_train": ["fast"], "bob_wave_train": ["slow"], "ann_walk_test": ["slow"]})
    s = make_splits(cfg(csv, val_fraction=0.2))
    assert s.tasks == {"position": ["left", "right"], "speed": ["fast", "slow"]}
    names = {s.test[i]["id"]: s.test[i]["tasks"] for i in range(len(s.test))}
    got = {k.split("#")[0]: {t: int(v) for t, v in d.items()} for k, d in names.items()}
    assert got["frames/ann_walk_test"] == {"position": 0, "speed": 1}  # left, slow
    assert got["frames/ann_wave_test"] == {"position": 1, "speed": UNLABELLED}  # an empty cell: no label
    b = collate([s.train[i] for i in range(len(s.train))])
    assert set(b["tasks"]) == {"position", "speed"} and b["tasks"]["position"].shape == (len(s.train),)
    for part in (s.train, s.val, s.test):  # read without decoding a frame, equal to the samples
        fast = item_tasks(part)
        slow = collate([part[i] for i in range(len(part))])["tasks"]
        assert set(fast) == set(slow) and all(torch.equal(fast[k], slow[k]) for k in fast)
    assert set(item_tasks(s.test, ["speed", "size"])) == {"speed", "size"}
    assert (item_tasks(s.test, ["size"])["size"] == UNLABELLED).all()


def test_manifest_without_tasks_is_unchanged(tmp_path):
    rows = [[f"frames/{a}_{p}", "walk" if i % 2 else "wave", a, p] for i, a in enumerate(["ann", "bob"]) for p in ("train", "test")]
    for a in ("ann", "bob"):
        for p in ("train", "test"):
            write_frames(tmp_path / "frames" / f"{a}_{p}", 8, h=16, w=16)
    csv = write_csv(tmp_path / "m.csv", ["path", "utility", "private", "split"], rows)
    s = make_splits(cfg(csv, val_fraction=0.2))
    assert s.tasks == {} and "tasks" not in s.train[0] and "tasks" not in collate([s.test[0], s.test[1]])
    assert item_tasks(s.train) == {}


def test_task_labels_change_the_fingerprint(tmp_path):
    a = make_splits(cfg(task_manifest(tmp_path), val_fraction=0.2))
    b = make_splits(cfg(task_manifest(tmp_path, position={"bob_walk_test": "left", "bob_walk_train": "left",
                                                          "ann_walk_train": "right", "ann_walk_test": "right"}),
                        val_fraction=0.2))
    assert data_fingerprint(a) != data_fingerprint(b)
    c = make_splits(cfg(task_manifest(tmp_path), val_fraction=0.2))
    assert data_fingerprint(a) == data_fingerprint(c)


@pytest.mark.parametrize("case,match", [
    ("unseen", r"m\.csv: task:position class 'centre' has no train example but is in test \(row 3\)"),
    ("noname", r"a task:<name> column has no task name"),
    ("empty", r"column task:speed has no label in any usable row; fill it or remove the column"),
    ("fixed", r"m\.csv row 2: task:position label 'left' is not in data\.params\.task_classes\.position"),
    ("twice", r"m\.csv: rows 2, 10 list the same file frames/ann_walk_train with different labels"),
])
def test_manifest_task_errors_name_the_row_and_the_fix(tmp_path, case, match):
    params = {}
    if case == "unseen":
        csv = task_manifest(tmp_path, position={"ann_walk_test": "centre"})
    elif case == "noname":
        csv = task_manifest(tmp_path, extra_cols=("task:",), extra={})
    elif case == "empty":
        csv = task_manifest(tmp_path, extra_cols=("task:speed",), extra={})
    elif case == "fixed":
        csv = task_manifest(tmp_path)
        params = {"task_classes": {"position": ["right", "centre"]}}
    else:
        csv = task_manifest(tmp_path)
        text = Path(csv).read_text().splitlines()  # row 2 again, with another position label
        Path(csv).write_text("\n".join(text + [text[1].replace(",left", ",right")]) + "\n")
    with pytest.raises(DataError, match=match) as e:
        make_splits(cfg(csv, val_fraction=0.2, params=params))
    assert "\n" not in str(e.value)


def test_released_manifest_task_columns(tmp_path, caplog):
    raw = task_manifest(tmp_path)
    lines = Path(raw).read_text().splitlines()
    header = lines[0].split(",")
    # a release without the task column: accepted (the labels are the raw manifest's)
    drop = header.index("task:position")
    rel = tmp_path / "rel.csv"
    rel.write_text("\n".join(",".join(c for j, c in enumerate(line.split(",")) if j != drop) for line in lines) + "\n")
    pairing = pair_manifests(raw, rel)
    s = make_splits(cfg(raw, val_fraction=0.2))
    out = released_splits(s, rel, pairing)
    assert out.tasks == s.tasks and torch.equal(item_tasks(out.test)["position"], item_tasks(s.test)["position"])
    # with the column: the labels must be the raw ones
    flipped = [lines[0]] + [line.replace(",left", ",LEFT") for line in lines[1:]]
    rel.write_text("\n".join(flipped) + "\n")
    with pytest.raises(DataError, match=r"rel\.csv row 2 \(file name 'ann_walk_train'\): task:position is 'LEFT' but m\.csv row 2"):
        pair_manifests(raw, rel)
    # a task column the raw manifest lacks: ignored, with a warning
    rel.write_text("\n".join([lines[0] + ",task:size"] + [line + ",big" for line in lines[1:]]) + "\n")
    with caplog.at_level(logging.WARNING):
        pair_manifests(raw, rel)
    assert "task:size are not in m.csv and are ignored" in caplog.text


def test_collate_stacks_dict_fields():
    ds = TensorSampleDataset(torch.zeros(3, 3, 2, 4, 4, dtype=torch.uint8), torch.arange(3), torch.arange(3),
                             tasks={"a": torch.tensor([0, 1, 1]), "b": torch.tensor([1, 0, UNLABELLED])})
    b = collate([ds[i] for i in range(3)])
    assert torch.equal(b["tasks"]["a"], torch.tensor([0, 1, 1])) and torch.equal(b["tasks"]["b"], torch.tensor([1, 0, -1]))
    sub = ds.subset([2, 0])
    assert torch.equal(sub.tasks["b"], torch.tensor([-1, 1])) and int(sub[0]["tasks"]["a"]) == 1


# ---------------------------------------------------------------------------------------- synthetic
def _digest(*parts) -> str:
    h = hashlib.sha1()
    for p in parts:
        h.update(p.numpy().tobytes() if isinstance(p, torch.Tensor) else repr(p).encode())
    return h.hexdigest()[:16]


def test_synthetic_clips_labels_and_splits_are_unchanged_by_tasks():
    """The default embedded data, pinned to the bytes it had before task labels existed (docs/synthetic.md
    and the README's figures depend on them)."""
    s = make_splits(load_config("demo").data)  # synthetic, 32x32, 16 frames, 10 actors, 6 actions
    assert [_digest(p.inputs, p.utility, p.private, p.ids) for p in (s.train, s.val, s.test)] == [
        "e8a2e8601461eb80", "9d6f1382edca85a6", "c1a3583088d29742"]


def _independence_p(labels: torch.Tensor, private: torch.Tensor) -> float:
    from scipy.stats import chi2_contingency

    table = np.zeros((int(private.max()) + 1, int(labels.max()) + 1))
    np.add.at(table, (private.numpy(), labels.numpy()), 1)
    return float(chi2_contingency(table)[1])


def test_synthetic_tasks_balanced_and_independent_of_identity_but_not_in_cues():
    from privacam.data.synthetic import TASKS, generate

    d = generate(size=16, frames=4)
    cues = generate(size=16, frames=4, cues=True)
    assert set(d["tasks"]) == set(TASKS) and d["task_classes"]["position"] == ["left", "right"]
    for t, (key, thr, _) in TASKS.items():
        for data in (d, cues):
            share = data["tasks"][t].float().mean().item()
            assert 0.42 < share < 0.58, (t, share)
            assert torch.equal(data["tasks"][t], (data["params"][key] >= thr).long())
        assert _independence_p(d["tasks"][t], d["private"]) > 0.01, t  # drawn per clip: no identity in them
        assert _independence_p(cues["tasks"][t], cues["private"]) < 1e-6, t  # synthetic_cues: identity lives there
        assert _independence_p(d["tasks"][t], d["utility"]) > 0.01, t  # nor the action


def test_synthetic_splits_carry_tasks_and_image_variant_has_no_speed():
    ov = ["data.size=16", "data.clip_len=4", "data.params={num_actors: 3, clips_per_pair: 4, actions: [wave1, jump]}"]
    for name, tasks in (("synthetic", {"position", "speed", "size"}), ("synthetic_cues", {"position", "speed", "size"}),
                        ("synthetic_image", {"position", "size"})):
        s = make_splits(load_config("default", [f"data.name={name}", *ov]).data)
        assert set(s.tasks) == tasks and set(s.test[0]["tasks"]) == tasks and s.name == name
        assert all(len(v) == len(s.test) for v in item_tasks(s.test).values())


def test_synthetic_cues_actors_share_clothes_and_rooms():
    from privacam.data.synthetic import _cue_actors

    actors = _cue_actors(np.random.default_rng(0), 6)
    assert all(np.array_equal(a["shirt"], actors[0]["shirt"]) and a["sessions"] is actors[0]["sessions"] for a in actors)
    for key in ("place", "tempo", "zoom", "girth"):
        assert len({a[key] for a in actors}) == 6


# ---------------------------------------------------------------------------------------- derived
def _person_frames(folder: Path, x: int, amp: int, n: int = 12, w: int = 48, h: int = 40):
    """A dark body (trunk and legs) standing at column ``x`` before a wall even along rows, with an
    arm that swings ``amp`` pixels up and down every frame."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = np.linspace(150, 220, h).astype(np.uint8)
    for t in range(n):
        a = np.repeat(np.repeat(rows[:, None, None], w, 1), 3, 2).copy()
        a[8:36, x - 3:x + 3] = (30, 30, 60)  # trunk and legs
        y = 14 + (amp if t % 2 else 0)
        a[y:y + 3, x + 3:x + 10] = (30, 30, 60)  # the arm
        Image.fromarray(a).save(folder / f"{t:04d}.png")


def test_derive_tasks_bins_position_and_motion_within_each_action(tmp_path):
    from privacam.data.tasks import derive_tasks, measure_video, write_manifest
    from privacam.data.video import decode_frames

    # action "a": people stand at x = 12, 16, 30, 34 with arm swings 1, 6, 2, 8; action "b" all further right
    spec = {("a", 0): (12, 1), ("a", 1): (16, 6), ("a", 2): (30, 2), ("a", 3): (34, 8),
            ("b", 0): (20, 7), ("b", 1): (24, 1), ("b", 2): (36, 8), ("b", 3): (40, 2)}
    rows = []
    for (act, k), (x, amp) in spec.items():
        _person_frames(tmp_path / "f" / f"{act}{k}", x, amp)
        rows.append([f"f/{act}{k}", act, f"p{k // 2}", "train" if k % 2 else "test"])
    csv = write_csv(tmp_path / "m.csv", ["path", "utility", "private", "split"], rows)
    m = measure_video(decode_frames(tmp_path / "f" / "a0"))
    assert abs(m["stand_x"] - 12 / 48) < 0.03 and m["empty"] == 0
    out, record = derive_tasks(csv)
    pos = {r["id"]: r["task:position"] for r in out}
    mot = {r["id"]: r["task:motion"] for r in out}
    assert [pos[f"f/a{k}"] for k in range(4)] == ["left", "left", "right", "right"]
    assert [pos[f"f/b{k}"] for k in range(4)] == ["left", "left", "right", "right"]  # its own median, not a's
    assert [mot[f"f/a{k}"] for k in range(4)] == ["low", "high", "low", "high"]
    assert [mot[f"f/b{k}"] for k in range(4)] == ["high", "low", "high", "low"]
    assert record["tasks"]["position"]["counts"]["a"]["train"] == {"left": 1, "right": 1}
    assert all(Path(r["path"]).is_absolute() for r in out)
    # the written manifest is a manifest: its tasks reach the samples
    derived = write_manifest(out, tmp_path / "out" / "derived.csv")
    s = make_splits(cfg(derived, val_fraction=0.25))
    assert s.tasks == {"position": ["left", "right"], "motion": ["high", "low"]}
    one = {t: [] for t in s.tasks}
    for i in range(len(s.test)):
        for t, v in s.test[i]["tasks"].items():
            one[t].append(int(v))
    assert set(one["position"]) == {0, 1}


def test_derive_tasks_refuses_a_video_without_a_person(tmp_path):
    from privacam.data.tasks import derive_tasks

    _person_frames(tmp_path / "f" / "ok", 20, 3)
    blank = tmp_path / "f" / "blank"
    blank.mkdir(parents=True)
    for t in range(4):
        Image.fromarray(np.full((40, 48, 3), 128, np.uint8)).save(blank / f"{t:04d}.png")
    csv = write_csv(tmp_path / "m.csv", ["path", "utility", "private"], [["f/ok", "a", "p"], ["f/blank", "a", "q"]])
    with pytest.raises(DataError, match=r"m\.csv row 3: no person found in 'f/blank'"):
        derive_tasks(csv)


def test_weizmann_tasks_script_writes_a_manifest(tmp_path, capsys):
    import importlib.util

    for k, x in enumerate((14, 34)):
        _person_frames(tmp_path / "f" / f"v{k}", x, 2 + 4 * k)
    csv = write_csv(tmp_path / "m.csv", ["path", "utility", "private"], [["f/v0", "a", "p"], ["f/v1", "a", "q"]])
    spec = importlib.util.spec_from_file_location("weizmann_tasks", Path(__file__).resolve().parents[1] / "scripts" / "weizmann_tasks.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--manifest", str(csv), "--out", str(tmp_path / "o" / "manifest.csv")]) == 0
    text = (tmp_path / "o" / "manifest.csv").read_text()
    assert text.splitlines()[0] == "path,utility,private,id,task:position,task:motion"
    assert (tmp_path / "o" / "tasks.json").is_file()
    printed = capsys.readouterr().out
    assert "task:position" in printed and "1 left / 1 right" in printed


def test_image_manifest_tasks(tmp_path):
    from conftest_data import write_image

    rows = []
    for i in range(16):
        f = write_image(tmp_path / "img" / f"{i}.png", "RGB", size=(12, 12), value=40 + 10 * i)
        rows.append([f"img/{f.name}", ["cat", "dog"][i % 2], ["x", "y"][(i // 2) % 2], ["near", "far"][(i // 4) % 2]])
    csv = write_csv(tmp_path / "imgs.csv", ["path", "utility", "private", "task:distance"], rows)
    s = make_splits(cfg(csv, params={"test_fraction": 0.25}))
    assert s.kind == "image" and s.tasks == {"distance": ["far", "near"]}
    got = item_tasks(s.test)["distance"]
    want = torch.stack([s.test[i]["tasks"]["distance"] for i in range(len(s.test))])
    assert torch.equal(got, want) and set(got.tolist()) <= {0, 1}


def _weizmann() -> Path | None:
    for parent in Path(__file__).resolve().parents:
        cand = parent / "shared" / "data" / "weizmann" / "manifest.csv"
        if cand.is_file():
            return cand
    return None


@pytest.mark.realdata
def test_weizmann_derived_tasks_are_balanced_within_each_action():
    from privacam.data.tasks import derive_tasks

    csv = _weizmann()
    if csv is None:
        pytest.skip("../shared/data/weizmann is absent")
    rows, record = derive_tasks(csv)
    assert len(rows) == 72 and all(m["empty"] == 0 for m in record["rows"])  # a body in every frame
    for task in ("position", "motion"):
        for action, by_split in record["tasks"][task]["counts"].items():
            total = {k: sum(c[k] for c in by_split.values()) for k in record["tasks"][task]["classes"]}
            assert sorted(total.values()) == [9, 9], (task, action, total)  # 18 rows per action, split at the median
    # where a person stands is a property of the recording: its train and test segments mostly agree
    by_video: dict = {}
    for r in rows:
        by_video.setdefault(r["id"].rsplit("_", 1)[0], []).append(r["task:position"])
    agree = sum(len(set(v)) == 1 for v in by_video.values())
    assert agree >= 0.75 * len(by_video), agree
