"""Built-in dataset loaders on tiny fixtures written in each documented layout (data/builtin.py)."""

from __future__ import annotations

import json

import pytest
import torch

from conftest_data import write_frames, write_image, write_video
from privacam.config import DataConfig
from privacam.data import apply_data_spec, make_splits
from privacam.data import builtin
from privacam.errors import ConfigError, DataError


def cfg(name, root, **kw):
    return DataConfig(name=name, root=str(root), size=kw.pop("size", 16), clip_len=kw.pop("clip_len", 4), params=kw.pop("params", {}), **kw)


def labels(ds):
    return [(int(ds[i]["utility"]), ds[i]["private"]) for i in range(len(ds))]


# ------------------------------------------------------------------------------------ SBU
def test_sbu_pairs_merge_symmetric_sets(tmp_path):
    assert len(builtin.SBU_SETS) == 21 and len(builtin.SBU_PAIRS) == 13
    assert sorted(s for v in builtin.SBU_PAIRS.values() for s in v) == sorted(builtin.SBU_SETS)
    assert builtin.sbu_pair("s02s01") == builtin.sbu_pair("s01s02") == "s01s02"
    for st in ("s01s02", "s02s01", "s03s04"):
        for action in ("01", "05"):
            for run in ("001", "002"):
                d = write_frames(tmp_path / st / action / run, 6, pattern="rgb_{:06d}.png")
                write_frames(d, 6, pattern="depth_{:06d}.png", tint=255)  # depth frames must be ignored
    s = make_splits(cfg("sbu", tmp_path, params={"test_fraction": 0.5}))
    assert s.utility_classes[0] == "approaching" and len(s.utility_classes) == 8
    assert len(s.private_classes) == 13
    pairs = {r.private for r in s.train.records} | {r.private for r in s.test.records}
    assert pairs == {s.private_classes.index("s01s02"), s.private_classes.index("s03s04")}
    x = s.train[0]
    assert x["input"].shape == (3, 4, 16, 16)
    assert float(x["input"][1].max()) == 0.0  # green channel 0: only rgb_*.png frames read
    assert {r.utility for r in s.test.records} == {0, 4}
    # a folder run appears in exactly one split
    tr = {r.id for r in s.train.records}
    assert not tr & {r.id for r in s.test.records}
    f1 = make_splits(cfg("sbu", tmp_path, params={"split": "fold1"}))  # s01s02 and s03s04 are in fold 1
    assert {r.id.split("/")[0] for r in f1.test.records} == {"s01s02", "s03s04"}


# ------------------------------------------------------------------------------------ KTH
def test_kth_sequences_time_split(tmp_path):
    seq = []
    for person in (1, 2):
        for action in ("boxing", "walking"):
            name = f"person{person:02d}_{action}_d1"
            write_video(tmp_path / action / f"{name}_uncomp.avi", 16, tint=100 * person)
            seq.append(f"{name}\t\tframes\t1-4, 5-8, 9-12, 13-16")
    (tmp_path / "00sequences.txt").write_text("header line\n\n" + "\n".join(seq) + "\n")
    assert builtin.read_kth_sequences(tmp_path / "00sequences.txt")["person01_boxing_d1"][1] == (4, 8)
    s = make_splits(cfg("kth", tmp_path))
    assert s.utility_classes == builtin.KTH_ACTIONS and len(s.private_classes) == 25
    assert len(s.test.records) == 4 and all(r.start == 12 and r.end == 16 for r in s.test.records)
    assert {(r.utility, r.private) for r in s.test.records} == {(0, 0), (5, 0), (0, 1), (5, 1)}
    assert all(r.end <= 12 for r in s.train.records + s.val.records)
    assert s.test[0]["input"].shape == (3, 4, 16, 16)


def test_kth_persons_split_sides(tmp_path):
    for person in (11, 19, 22):
        write_video(tmp_path / f"person{person}_jogging_d2_uncomp.avi", 8)
    s = make_splits(cfg("kth", tmp_path, params={"split": "persons"}))  # no 00sequences.txt: 4 equal parts
    assert {r.private for r in s.train.records} == {10} and {r.private for r in s.val.records} == {18}
    assert {r.private for r in s.test.records} == {21} and len(s.test.records) == 4


# ------------------------------------------------------------------------------------ UCF101 / HMDB51 / PA-HMDB51
def test_ucf101_official_split(tmp_path):
    lists = tmp_path / "ucfTrainTestlist"
    lists.mkdir()
    (lists / "classInd.txt").write_text("1 ApplyEyeMakeup\n2 Archery\n")
    train, test = [], []
    for c, cls in enumerate(("ApplyEyeMakeup", "Archery")):
        for g in (1, 8, 9, 10):
            rel = f"{cls}/v_{cls}_g{g:02d}_c01.avi"
            write_video(tmp_path / "UCF-101" / rel, 5)
            (test if g == 1 else train).append(rel + (f" {c + 1}" if g != 1 else ""))
    (lists / "trainlist01.txt").write_text("\n".join(train) + "\n")
    (lists / "testlist01.txt").write_text("\n".join(t.split()[0] for t in test) + "\n")
    s = make_splits(cfg("ucf101", tmp_path, val_fraction=0.34))
    assert s.utility_classes == ["ApplyEyeMakeup", "Archery"] and s.private_classes == ["none"]
    assert s.meta["has_private"] is False
    assert {r.id for r in s.test.records} == {"v_ApplyEyeMakeup_g01_c01", "v_Archery_g01_c01"}
    assert {r.id.split("_g")[1][:2] for r in s.val.records} == {"10"}  # whole groups to val
    assert int(s.test[0]["private"]) == 0
    with pytest.raises(DataError, match="testlist02.txt is missing"):
        (lists / "trainlist02.txt").write_text(train[0] + "\n")
        make_splits(cfg("ucf101", tmp_path, params={"split": 2}))


def _pahmdb(tmp_path):
    root = tmp_path / "pahmdb"
    (root / "PrivacyAttributes").mkdir(parents=True)
    labels = {
        "a.avi": {"face": [[0, 10, 2]], "gender": [[0, 10, 0]], "skin_color": [[0, 5, 0], [6, 10, [0, 3]]], "nudity": [[0, 10, 0]], "relationship": [[0, 10, 0]]},
        "b.avi": {"face": [[0, 10, 0]], "gender": [[0, 10, 1]], "skin_color": [[0, 10, 0]], "nudity": [[0, 10, 1]], "relationship": [[0, 10, 1]]},
        "c.avi": {"face": [[0, 10, 1]], "gender": [[0, 10, 2]], "skin_color": [[0, 10, 1]], "nudity": [[0, 10, 0]], "relationship": [[0, 10, 0]]},
    }
    (root / "PrivacyAttributes" / "brush_hair.json").write_text(json.dumps(labels))
    return root, labels


def test_hmdb51_split_tags_and_pahmdb_exclusion(tmp_path):
    hm = tmp_path / "hmdb"
    sp = hm / "testTrainMulti_7030_splits"
    sp.mkdir(parents=True)
    for cls in ("brush_hair", "cartwheel"):
        lines = []
        for i, (name, tag) in enumerate((("a.avi", 1), ("b.avi", 1), ("x.avi", 1), ("y.avi", 1), ("t.avi", 2), ("u.avi", 0))):
            write_video(hm / cls / name, 4)
            lines.append(f"{name} {tag} ")
        (sp / f"{cls}_test_split1.txt").write_text("\n".join(lines) + "\n")
    s = make_splits(cfg("hmdb51", hm, val_fraction=0.25))
    assert s.utility_classes == ["brush_hair", "cartwheel"] and s.meta["has_private"] is False
    assert len(s.test.records) == 2 and len(s.train.records) + len(s.val.records) == 8
    pa_root, _ = _pahmdb(tmp_path)
    assert builtin.pahmdb_video_names(pa_root) == {"a.avi", "b.avi", "c.avi"}
    e = make_splits(cfg("hmdb51", hm, val_fraction=0.5, params={"exclude_pahmdb": str(pa_root)}))
    assert e.meta["excluded_pahmdb"] == 4  # a.avi, b.avi in both classes (names are matched per file name)
    assert all(r.id not in ("a", "b") for r in e.train.records + e.val.records)
    assert len(e.test.records) == 2


def test_pahmdb51_binarised_multilabel(tmp_path):
    root, lab = _pahmdb(tmp_path)
    for name in lab:
        write_video(tmp_path / "hmdb" / "brush_hair" / name, 4)
    assert builtin.pahmdb_present([[0, 5, 0], [6, 10, [0, 3]]]) and not builtin.pahmdb_present([[0, 9, 0]])
    s = make_splits(cfg("pahmdb51", root, val_fraction=0.0, params={"videos": str(tmp_path / "hmdb"), "test_fraction": 0.34}))
    assert s.multilabel and s.private_classes == builtin.PAHMDB_ATTRIBUTES and s.meta["evaluation_only"]
    vec = {r.id: r.private for r in s.train.records + s.test.records}
    assert vec == {"a": [1.0, 0.0, 1.0, 0.0, 0.0], "b": [0.0, 1.0, 0.0, 1.0, 1.0], "c": [1.0, 1.0, 1.0, 0.0, 0.0]}
    x = s.test[0]
    assert x["private"].dtype == torch.float32 and x["private"].shape == (5,)


# ------------------------------------------------------------------------------------ VISPR
def test_vispr_subsets(tmp_path):
    for split, n in (("train2017", 4), ("val2017", 2), ("test2017", 2)):
        for i in range(n):
            stem = f"2017_{split[:2]}{i}"
            write_image(tmp_path / "images" / split / f"{stem}.jpg", "RGB", size=(30, 20))
            (tmp_path / "annos" / split).mkdir(parents=True, exist_ok=True)
            labs = ["a0_safe"] if i % 2 else ["a4_gender", "a12_semi_nudity", "a59_sports"]
            (tmp_path / "annos" / split / f"{stem}.json").write_text(json.dumps({"id": stem, "image_path": f"images/{split}/{stem}.jpg", "labels": labs}))
    s7 = make_splits(cfg("vispr", tmp_path))
    assert s7.kind == "image" and s7.multilabel and s7.private_classes == builtin.VISPR7
    assert (len(s7.train), len(s7.val), len(s7.test)) == (4, 2, 2)
    rec = next(r for r in s7.train.records if r.id.endswith("0"))
    assert rec.private == [0, 1, 0, 0, 1, 0, 0] or rec.private == [0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0]
    s17 = make_splits(cfg("vispr", tmp_path, params={"attributes": "vispr17"}))
    assert len(s17.private_classes) == 17 and s17.train[0]["input"].shape == (3, 16, 16)
    r17 = next(r for r in s17.train.records if r.id.endswith("0"))
    assert r17.private[builtin.VISPR17.index("a4_gender")] == 1.0
    with pytest.raises(ConfigError, match="vispr7, vispr17"):
        make_splits(cfg("vispr", tmp_path, params={"attributes": "vispr9"}))


# ------------------------------------------------------------------------------------ IPN Hand
def test_ipn_segments_and_gender(tmp_path):
    ann = tmp_path / "annotations"
    ann.mkdir()
    (ann / "metadata.csv").write_text("video,gender\nv1,male\nv2,female\n")
    for v in ("v1", "v2"):
        write_frames(tmp_path / "frames" / v, 20, pattern=v + "_{:06d}.jpg")
    hdr = "video,label,id,t_start,t_end,frames\n"
    (ann / "Annot_TrainList.txt").write_text(hdr + "v1,G01,1,1,6,6\nv1,D0X,2,7,10,4\nv1,G02,3,11,20,10\nv2,G01,1,1,8,8\nv2,G02,2,9,20,12\n")
    (ann / "Annot_TestList.txt").write_text(hdr + "v2,G01,3,1,5,5\n")
    s = make_splits(cfg("ipn", tmp_path, val_fraction=0.0))
    assert s.utility_classes == ["G01", "G02"] and s.private_classes == ["female", "male"]
    assert len(s.train.records) == 4  # D0X (no gesture) dropped
    seg = next(r for r in s.train.records if r.id == "v1_11")
    assert (seg.start, seg.end, seg.utility, seg.private) == (10, 20, 1, 1)
    assert s.test[0]["input"].shape == (3, 4, 16, 16)


# ------------------------------------------------------------------------------------ RAF-DB
def test_rafdb_attributes_and_unsure(tmp_path):
    base = tmp_path / "basic"
    (base / "EmoLabel").mkdir(parents=True)
    (base / "Annotation" / "manual").mkdir(parents=True)
    lines = []
    spec = [("train_00001", 4, 0, 2, 2), ("train_00002", 7, 1, 0, 3), ("train_00003", 1, 2, 1, 1), ("train_00004", 5, 1, 1, 0), ("test_0001", 3, 0, 2, 4), ("test_0002", 6, 1, 0, 2)]
    for stem, emo, g, r, a in spec:
        write_image(base / "Image" / "aligned" / f"{stem}_aligned.jpg", "RGB", size=(20, 20))
        (base / "Annotation" / "manual" / f"{stem}_manu_attri.txt").write_text("1 2\n3 4\n5 6\n7 8\n9 10\n" + f"{g}\n{r}\n{a}\n")
        lines.append(f"{stem}.jpg {emo}")
    (base / "EmoLabel" / "list_patition_label.txt").write_text("\n".join(lines) + "\n")
    s = make_splits(cfg("rafdb", tmp_path, val_fraction=0.0))
    assert s.private_classes == ["male", "female"] and s.utility_classes[3] == "happiness"
    assert s.meta["dropped_unsure"] == 1
    got = {r.id: (r.utility, r.private) for r in s.train.records + s.test.records}
    assert got == {"train_00001": (3, 0), "train_00002": (6, 1), "train_00004": (4, 1), "test_0001": (2, 0), "test_0002": (5, 1)}
    a = make_splits(cfg("rafdb", tmp_path, val_fraction=0.0, params={"private": "age"}))
    assert len(a.private_classes) == 5 and {r.id: r.private for r in a.test.records} == {"test_0001": 4, "test_0002": 2}
    assert a.test[0]["input"].shape == (3, 16, 16)


# ------------------------------------------------------------------------------------ CelebA
def test_celeba_attributes_and_identity(tmp_path):
    imgs = [f"{i:06d}.jpg" for i in range(1, 13)]
    for f in imgs:
        write_image(tmp_path / "img_align_celeba" / f, "RGB", size=(18, 22))
    attr = [str(len(imgs)), "Male Smiling Young"]
    for i, f in enumerate(imgs):
        attr.append(f"{f} {1 if i % 2 else -1} {1 if i % 3 == 0 else -1} 1")
    (tmp_path / "list_attr_celeba.txt").write_text("\n".join(attr) + "\n")
    (tmp_path / "list_eval_partition.txt").write_text("\n".join(f"{f} {0 if i < 8 else (1 if i < 10 else 2)}" for i, f in enumerate(imgs)) + "\n")
    (tmp_path / "identity_CelebA.txt").write_text("\n".join(f"{f} {1 + i % 3}" for i, f in enumerate(imgs)) + "\n")
    s = make_splits(cfg("celeba", tmp_path))
    assert (len(s.train), len(s.val), len(s.test)) == (8, 2, 2)
    assert s.utility_classes == ["not_Smiling", "Smiling"] and s.private_classes == ["not_Male", "Male"]
    r0 = next(r for r in s.train.records if r.id == "000001")
    assert (r0.utility, r0.private) == (1, 0)
    i = make_splits(cfg("celeba", tmp_path, params={"private": "identity", "test_fraction": 0.25}))
    assert i.private_classes == ["1", "2", "3"]
    assert {r.private for r in i.test.records} == {0, 1, 2}  # every identity on both sides
    with pytest.raises(ConfigError, match="not in list_attr_celeba.txt"):
        make_splits(cfg("celeba", tmp_path, params={"utility": "Smile"}))


# ------------------------------------------------------------------------------------ AFLW
def test_aflw_csv_and_box(tmp_path):
    rows = ["file,x,y,w,h,sex,glasses"]
    for i in range(24):
        write_image(tmp_path / "flickr" / "0" / f"img{i}.jpg", "RGB", size=(40, 40), value=30 + 10 * i)
        rows.append(f"0/img{i}.jpg,5,5,20,20,{'mf'[i % 2]},{(i // 2) % 2}")
    (tmp_path / "faces.csv").write_text("\n".join(rows) + "\n")
    s = make_splits(cfg("aflw", tmp_path, size=8))
    assert s.utility_classes == ["0", "1"] and s.private_classes == ["f", "m"]
    assert len(s.train) + len(s.val) + len(s.test) == 24 and len(s.val) == 4
    assert all(r.box == (5.0, 5.0, 20.0, 20.0) for r in s.train.records)
    assert s.train[0]["input"].shape == (3, 8, 8)


# ------------------------------------------------------------------------------------ errors
def test_missing_root_and_spec(tmp_path):
    with pytest.raises(DataError, match="is not a folder"):
        make_splits(cfg("sbu", tmp_path / "absent"))
    with pytest.raises(ConfigError, match="needs data.root"):
        make_splits(DataConfig(name="kth"))
    with pytest.raises(DataError, match="no set folders"):
        make_splits(cfg("sbu", tmp_path))
    d = apply_data_spec(DataConfig(), f"ucf101:{tmp_path}")
    assert d.name == "ucf101" and d.root == str(tmp_path)


def test_hmdb_missing_video_error_and_skip(tmp_path, caplog):
    hm = tmp_path / "hmdb"
    sp = hm / "testTrainMulti_7030_splits"
    sp.mkdir(parents=True)
    write_video(hm / "run" / "a.avi", 4)
    write_video(hm / "run" / "t.avi", 4)
    (sp / "run_test_split1.txt").write_text("a.avi 1\nmissing.avi 1\nt.avi 2\n")
    with pytest.raises(DataError, match=r"run_test_split1.txt line 2: file .*missing.avi does not exist"):
        make_splits(cfg("hmdb51", hm, val_fraction=0.0))
    s = make_splits(cfg("hmdb51", hm, val_fraction=0.0, on_bad_sample="skip"))
    assert len(s.train.records) == 1 and "skipped 1 of 2 samples" in caplog.text
