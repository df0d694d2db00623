"""The manifest dataset: a CSV of images, videos or frame folders (data/manifest.py)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
import torch

from conftest_data import frame_index, write_csv, write_frames, write_image, write_video
from privacam.config import DataConfig
from privacam.data import apply_data_spec, make_splits
from privacam.errors import DataError

WEIZMANN = Path(__file__).resolve().parents[2] / "shared/data/weizmann"


def cfg(root, **kw):
    params = kw.pop("params", {})
    return DataConfig(name="manifest", root=str(root), size=kw.pop("size", 16), clip_len=kw.pop("clip_len", 8), params=params, **kw)


def video_manifest(tmp_path, n_frames=(30, 12), split=True):
    rows = []
    for a, actor in enumerate(["ann", "bob"]):
        for c, act in enumerate(["walk", "wave"]):
            for part, n in zip(("train", "test"), n_frames):
                name = f"{actor}_{act}_{part}"
                if (a + c) % 2:
                    write_video(Path(tmp_path) / "vids" / f"{name}.mp4", n, tint=60 * a)
                    path = f"vids/{name}.mp4"
                else:
                    write_frames(Path(tmp_path) / "frames" / name, n, tint=60 * a)
                    path = f"frames/{name}"
                rows.append([path, act, actor] + ([part] if split else []))
    return write_csv(Path(tmp_path) / "m.csv", ["path", "utility", "private"] + (["split"] if split else []), rows)


def test_video_manifest_train_test_time_carved_val(tmp_path, caplog):
    csv = video_manifest(tmp_path)
    with caplog.at_level(logging.INFO):
        s = make_splits(cfg(csv, val_fraction=0.2, params={"clips_per_video": 3, "test_clips_per_video": 2}))
    assert "carving validation by time" in caplog.text
    assert s.kind == "video" and s.multilabel is False
    assert s.utility_classes == ["walk", "wave"] and s.private_classes == ["ann", "bob"]
    assert s.meta["val_mode"] == "time"
    assert len(s.train) == 4 * 3
    # test videos have 12 frames, clips of 8: two distinct dense clips each
    assert len(s.test) == 4 * 2
    x = s.train[0]
    assert x["input"].shape == (3, 8, 16, 16) and 0 <= float(x["input"].min()) and float(x["input"].max()) <= 1
    # val = the last 20 % of each 30-frame train video (frames 24..29 -> looped to 8), train = 0..23
    v = s.val[0]
    first_red = [frame_index(v["input"][0, t].mean()) for t in range(8)]
    assert first_red == [24, 25, 26, 27, 28, 29, 24, 25]
    for e in range(4):
        s.train.set_epoch(e)
        for i in range(len(s.train)):
            idx = s.train.clip_indices(i, e)
            assert idx.max() < 24  # never a validation frame
    # labels follow the rows (every actor, action in train, val, test)
    for ds in (s.train, s.val, s.test):
        pairs = {(int(ds[i]["utility"]), int(ds[i]["private"])) for i in range(len(ds))}
        assert pairs == {(0, 0), (0, 1), (1, 0), (1, 1)}
    ids = [s.test[i]["id"] for i in range(len(s.test))]
    assert ids[0].startswith("frames/ann_walk_test")


def test_image_manifest_modes_sizes_and_auto_split(tmp_path):
    rows = []
    modes = ["L", "P", "RGBA", "RGB"]
    for i in range(40):
        u, p = ["cat", "dog"][i % 2], ["x", "y"][(i // 2) % 2]
        f = write_image(tmp_path / "img" / f"{i}.png", modes[i % 4], size=(20 + i, 15 + (i % 7)), value=50 + i)
        rows.append([f"img/{f.name}", u, p])
    csv = write_csv(tmp_path / "imgs.csv", ["path", "utility", "private"], rows)
    s = make_splits(cfg(csv, params={"test_fraction": 0.25}))
    assert s.kind == "image" and s.utility_classes == ["cat", "dog"] and s.private_classes == ["x", "y"]
    assert len(s.train) + len(s.val) + len(s.test) == 40
    assert (len(s.train), len(s.val), len(s.test)) == (24, 8, 8)  # each stratum of 10: 6 / 2 / 2
    for ds in (s.train, s.val, s.test):
        strata = {(int(ds[i]["utility"]), int(ds[i]["private"])) for i in range(len(ds))}
        assert strata == {(0, 0), (0, 1), (1, 0), (1, 1)}
        assert all(ds[i]["input"].shape == (3, 16, 16) for i in range(len(ds)))
    # deterministic and independent of the run seed
    s2 = make_splits(cfg(csv, params={"test_fraction": 0.25}), seed=7)
    assert [s.test[i]["id"] for i in range(len(s.test))] == [s2.test[i]["id"] for i in range(len(s2.test))]
    assert not set(s.train.records[i].id for i in range(len(s.train))) & set(r.id for r in s.test.records)
    # the label of a sample is the one in its row
    i = next(i for i in range(len(s.test)))
    rid = s.test[i]["id"]
    row = next(r for r in rows if r[0] == rid)
    assert s.utility_classes[int(s.test[i]["utility"])] == row[1] and s.private_classes[int(s.test[i]["private"])] == row[2]


def test_multilabel_columns(tmp_path):
    rows = []
    for i in range(12):
        f = write_image(tmp_path / f"{i}.jpg".replace("jpg", "png"), "RGB")
        rows.append([f.name, "a" if i % 2 else "b", i % 2, (i // 2) % 2, ["train", "val", "test"][i % 3]])
    csv = write_csv(tmp_path / "ml.csv", ["path", "utility", "private:face", "private:nudity", "split"], rows)
    s = make_splits(cfg(csv))
    assert s.multilabel and s.private_classes == ["face", "nudity"]
    x = s.train[0]
    assert x["private"].dtype == torch.float32 and x["private"].shape == (2,)
    rec = s.train.records[0]
    row = next(r for r in rows if r[0] == Path(rec.path).name)
    assert x["private"].tolist() == [float(row[2]), float(row[3])]


def test_short_clips_loop_and_pad(tmp_path):
    for i in range(2):
        write_frames(tmp_path / f"s{i}", 5)
    csv = write_csv(tmp_path / "m.csv", ["path", "utility", "private", "split"], [["s0", "a", "p", "train"], ["s1", "a", "p", "test"]])
    loop = make_splits(cfg(csv, val_fraction=0.0))
    assert [frame_index(loop.test[0]["input"][0, t].mean()) for t in range(8)] == [0, 1, 2, 3, 4, 0, 1, 2]
    pad = make_splits(cfg(csv, val_fraction=0.0, params={"short": "pad"}))
    assert [frame_index(pad.test[0]["input"][0, t].mean()) for t in range(8)] == [0, 1, 2, 3, 4, 4, 4, 4]
    assert len(pad.val) == 0


def test_rows_val_mode_and_given_val(tmp_path):
    rows = []
    for i in range(16):
        write_frames(tmp_path / f"c{i}", 4)
        rows.append([f"c{i}", "u" + str(i % 2), "p", "test" if i >= 12 else "train"])
    csv = write_csv(tmp_path / "m.csv", ["path", "utility", "private", "split"], rows)
    s = make_splits(cfg(csv, val_fraction=0.34))
    assert s.meta["val_mode"] == "rows" and len(s.val.records) == 4 and len(s.train.records) == 8
    assert {r.utility for r in s.val.records} == {0, 1}
    t = make_splits(cfg(csv, val_fraction=0.25, params={"val_mode": "time"}))
    assert t.meta["val_mode"] == "time" and len(t.val.records) == 12 and all(r.end == 3 for r in t.train.records)


# ------------------------------------------------------------------------------------ errors
def _one_bad(tmp_path, rows, header=("path", "utility", "private", "split")):
    for name in ("ok", "ok_b", "ok_c"):  # a file belongs to one split: distinct folders per row
        write_frames(tmp_path / name, 4)
    return write_csv(tmp_path / "bad.csv", list(header), rows)


def test_missing_path_names_row(tmp_path):
    csv = _one_bad(tmp_path, [["ok", "a", "p", "train"], ["nope/x.mp4", "a", "p", "test"]])
    with pytest.raises(DataError, match=r"bad.csv row 3: file nope/x.mp4 does not exist; fix the path \(relative to the CSV\)"):
        make_splits(cfg(csv))


def test_corrupt_video_names_file_and_row(tmp_path):
    (tmp_path / "broken.mp4").write_bytes(b"garbage" * 50)
    csv = _one_bad(tmp_path, [["ok", "a", "p", "train"], ["broken.mp4", "a", "p", "test"]])
    with pytest.raises(DataError, match=r"bad.csv row 3: .*broken.mp4.*re-encode or remove"):
        make_splits(cfg(csv))


@pytest.mark.parametrize(
    "rows,pattern",
    [
        ([["ok", "a", "p", "train"], ["ok_b", "a", "p", "holdout"]], r"row 3: split is 'holdout'; use train, val or test"),
        ([["ok", "a", "p", "train"], ["ok_b", "a", "p", "train"]], r"the test split is empty"),
        ([["ok", "", "p", "train"]], r"row 2: empty utility label"),
    ],
)
def test_bad_rows(tmp_path, rows, pattern):
    with pytest.raises(DataError, match=pattern):
        make_splits(cfg(_one_bad(tmp_path, rows)))


def test_bad_header_and_multilabel_value(tmp_path):
    with pytest.raises(DataError, match="no private column"):
        make_splits(cfg(_one_bad(tmp_path, [["ok", "a"]], header=("path", "utility"))))
    with pytest.raises(DataError, match=r"row 2: column private:face is 'maybe', not 0 or 1"):
        make_splits(cfg(_one_bad(tmp_path, [["ok", "a", "maybe"]], header=("path", "utility", "private:face"))))
    with pytest.raises(DataError, match="does not exist"):
        make_splits(cfg(tmp_path / "absent.csv"))


def test_label_outside_fixed_class_list(tmp_path):
    csv = _one_bad(tmp_path, [["ok", "a", "p", "train"], ["ok_b", "zz", "p", "train"], ["ok_c", "zz", "p", "test"]])
    with pytest.raises(DataError, match=r"row 3: utility label 'zz' is not in data.params.utility_classes"):
        make_splits(cfg(csv, params={"utility_classes": ["a", "b"]}))
    s = make_splits(cfg(csv, val_fraction=0.0, params={"utility_classes": ["b", "zz", "a"]}))
    assert s.utility_classes == ["b", "zz", "a"] and int(s.test[0]["utility"]) == 1


def test_skip_mode_counts(tmp_path, caplog):
    (tmp_path / "broken.mp4").write_bytes(b"garbage" * 50)
    write_frames(tmp_path / "ok2", 4)
    csv = _one_bad(tmp_path, [["ok", "a", "p", "train"], ["gone", "a", "p", "train"], ["broken.mp4", "a", "p", "test"], ["ok2", "a", "p", "test"]])
    with caplog.at_level(logging.WARNING):
        s = make_splits(cfg(csv, on_bad_sample="skip", val_fraction=0.0))
    assert len(s.train.records) == 1 and len(s.test.records) == 1
    assert "skipped 1 of 4 samples" in caplog.text  # the missing path
    assert caplog.text.count("skipped 1 of 4") == 2  # then the corrupt video (summary per check)


def test_data_spec_points_at_manifest(tmp_path):
    csv = video_manifest(tmp_path)
    d = apply_data_spec(DataConfig(), str(csv))
    assert d.name == "manifest" and d.root == str(csv)


def test_cache_dir_param_writes_memmaps(tmp_path):
    csv = video_manifest(tmp_path)
    s = make_splits(cfg(csv, params={"cache_dir": str(tmp_path / "cache"), "preload": False}))
    s.train[0]
    s.test[0]
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 2


@pytest.mark.realdata
def test_weizmann_real_data():
    csv = WEIZMANN / "manifest.csv"
    if not csv.is_file():
        pytest.skip(f"Weizmann data not found at {WEIZMANN} (clone the repo with shared/ beside it)")
    t0 = time.time()
    s = make_splits(DataConfig(name="manifest", root=str(csv), size=32, clip_len=16))
    build = time.time() - t0
    assert s.utility_classes == ["bend", "jack", "wave1", "wave2"]
    assert s.private_classes == [f"actor{i}" for i in range(9)]
    assert s.meta["val_mode"] == "time" and len(s.train.records) == 36 and len(s.val.records) == 36
    assert len(s.train) == 36 * 8
    assert {(r.utility, r.private) for r in s.test.records} == {(r.utility, r.private) for r in s.train.records}
    x = s.test[0]
    assert x["input"].shape == (3, 16, 32, 32)
    t0 = time.time()
    for i in range(len(s.train)):
        s.train[i]
    assert build < 20 and time.time() - t0 < 10  # preloaded: an epoch is cheap
