"""Built-in datasets: thin factories that turn each dataset's own label files into records.

Registered names: ``sbu``, ``kth``, ``ucf101``, ``hmdb51``, ``pahmdb51`` (video); ``vispr``, ``rafdb``,
``celeba``, ``aflw`` (image); ``ipn`` (video). Expected folder layouts, official splits, labels and
``data.params`` are documented in ``docs/datasets.md``; decoding, sampling and caching are shared
through :mod:`privacam.data.video`. Datasets without private labels (UCF101, HMDB51) give a single
dummy private class and ``meta["has_private"] = False``: pair them with a privacy source (VISPR).
"""

from __future__ import annotations

import csv
import json
import logging
import re
from pathlib import Path

from ..errors import ConfigError, DataError
from ..registry import register_dataset
from .base import Splits, dataset_root
from .video import (
    IMAGE_EXTS,
    VIDEO_EXTS,
    FrameStore,
    Record,
    build_image_splits,
    build_video_splits,
    carve_val,
    check_skip,
    split_records,
    video_options,
)

logger = logging.getLogger(__name__)

NO_PRIVATE = ["none"]


# ------------------------------------------------------------------------------------------ helpers
def _find(root: Path, names: list[str], what: str, dataset: str, want_dir: bool = False) -> Path:
    """First existing ``root/<name>`` among ``names`` (one level of nesting searched too)."""
    for n in names:
        for base in (root, *[d for d in sorted(root.iterdir()) if d.is_dir()]):
            p = base / n
            if (p.is_dir() if want_dir else p.is_file()):
                return p
    raise DataError(f"{dataset}: {what} not found under {root} (looked for {', '.join(names)}); see docs/datasets.md for the layout")


def _missing(recs: list[Record], dataset: str, on_bad: str, total: int | None = None) -> list[Record]:
    bad, ok = [], []
    for r in recs:
        if Path(r.path).exists() or "*" in Path(r.path).name:
            ok.append(r)
        else:
            bad.append(f"{r.where()}: file {r.path} does not exist; restore it or remove its entry")
    check_skip(dataset, recs, bad, total or len(recs), on_bad)
    return ok


def _split_param(params: dict, default: str, valid: list[str], dataset: str) -> str:
    s = str(params.get("split", default))
    if s not in valid:
        raise ConfigError(f"{dataset}: data.params.split {s!r} is not one of {', '.join(valid)}")
    return s


def _carve(train, data_cfg, dataset, video=True, store=None, mode=None):
    params = data_cfg.params or {}
    return carve_val(train, data_cfg.val_fraction, mode=str(mode or params.get("val_mode", "auto")), seed=int(params.get("split_seed", 0)), video=video, store=store, dataset=dataset)


def _video_splits(name, train, val, test, data_cfg, seed, utility, private, multilabel=False, defaults=None, meta=None, store=None):
    opts = video_options(data_cfg)
    if store is None:
        store = FrameStore(data_cfg.size, opts["resize"], opts["cache_dir"])
    else:
        store.size, store.resize = int(data_cfg.size), opts["resize"]
        store.cache_dir = Path(opts["cache_dir"]).expanduser() if opts["cache_dir"] else None
    return build_video_splits(
        name, train, val, test, utility_classes=utility, private_classes=private, multilabel=multilabel,
        data_cfg=data_cfg, seed=seed, defaults=defaults, store=store, meta=meta,
    )


# ------------------------------------------------------------------------------------------ SBU
SBU_ACTIONS = ["approaching", "departing", "kicking", "punching", "pushing", "hugging", "shaking_hands", "exchanging"]
#: the 21 recording sets of SBU Kinect Interaction v2 (participant pairs, 7 participants)
SBU_SETS = [
    "s01s02", "s01s03", "s01s07", "s02s01", "s02s03", "s02s06", "s02s07", "s03s02", "s03s04", "s03s05", "s03s06",
    "s04s02", "s04s03", "s04s06", "s05s02", "s05s03", "s06s02", "s06s03", "s06s04", "s07s01", "s07s03",
]
#: the 13 actor-pair classes: symmetric sets merged (s01s02 and s02s01 are the same two people)
SBU_PAIRS = {
    "s01s02": ["s01s02", "s02s01"], "s01s03": ["s01s03"], "s01s07": ["s01s07", "s07s01"],
    "s02s03": ["s02s03", "s03s02"], "s02s04": ["s04s02"], "s02s05": ["s05s02"], "s02s06": ["s02s06", "s06s02"],
    "s02s07": ["s02s07"], "s03s04": ["s03s04", "s04s03"], "s03s05": ["s03s05", "s05s03"],
    "s03s06": ["s03s06", "s06s03"], "s03s07": ["s07s03"], "s04s06": ["s04s06", "s06s04"],
}
#: the official subject-wise 5-fold cross-validation (1-based indices into SBU_SETS)
SBU_FOLDS = [[1, 9, 15, 19], [5, 7, 10, 16], [2, 3, 20, 21], [4, 6, 8, 11], [12, 13, 14, 17, 18]]


def sbu_pair(set_name: str) -> str:
    """The merged actor-pair class of a set name (``s02s01`` -> ``s01s02``)."""
    m = re.fullmatch(r"s(\d\d)s(\d\d)", set_name)
    if not m:
        raise ValueError(set_name)
    a, b = sorted((m.group(1), m.group(2)))
    return f"s{a}s{b}"


@register_dataset("sbu")
def sbu(data_cfg, seed: int = 0) -> Splits:
    """SBU Kinect Interaction (RGB): utility = 8 interactions, private = 13 merged actor pairs."""
    root = dataset_root(data_cfg, "sbu")
    params = data_cfg.params or {}
    split = _split_param(params, "runs", ["runs"] + [f"fold{i}" for i in range(1, 6)], "sbu")
    pairs = sorted(SBU_PAIRS)
    recs = []
    set_dirs = sorted(d for d in root.rglob("s[0-9][0-9]s[0-9][0-9]") if d.is_dir())
    if not set_dirs:
        raise DataError(f"sbu: no set folders like s01s02/ under {root}; see docs/datasets.md for the layout")
    for sd in set_dirs:
        if sd.name not in SBU_SETS:
            logger.warning("sbu: %s is not one of the 21 SBU sets; its pair class is %s", sd, sbu_pair(sd.name))
        pair = sbu_pair(sd.name)
        if pair not in pairs:
            raise DataError(f"sbu: set {sd} gives actor pair {pair}, not one of the 13 SBU pairs; remove the folder")
        for ad in sorted(d for d in sd.iterdir() if d.is_dir() and d.name.isdigit()):
            a = int(ad.name) - 1
            if not 0 <= a < 8:
                raise DataError(f"sbu: action folder {ad} is not 01..08; remove or rename it")
            for run in sorted(d for d in ad.iterdir() if d.is_dir()):
                recs.append(Record(str(run / "rgb_*.png"), a, pairs.index(pair), f"{sd.name}/{ad.name}/{run.name}", source=str(run)))
    store = FrameStore(8)
    bad, ok = [], []
    for r in recs:
        if store.num_frames(r.path) < 1:
            bad.append(f"sbu: {r.source} has no rgb_*.png frames; restore them or remove the folder")
        else:
            ok.append(r)
    check_skip("sbu", recs, bad, len(recs), data_cfg.on_bad_sample)
    if split == "runs":
        tf = float(params.get("test_fraction", 0.3))
        train, test = split_records(ok, [1 - tf, tf], seed=int(params.get("split_seed", 0)))
    else:
        test_sets = {SBU_SETS[i - 1] for i in SBU_FOLDS[int(split[-1]) - 1]}
        logger.warning("sbu: %s tests on unseen actor pairs (subject-wise); private accuracy is then meaningless", split)
        train = [r for r in ok if r.id.split("/")[0] not in test_sets]
        test = [r for r in ok if r.id.split("/")[0] in test_sets]
    train, val, mode = _carve(train, data_cfg, "sbu", store=store)
    defaults = {"train_sampling": "sbu", "train_clips": 8, "eval_sampling": "uniform", "test_clips": 4}
    return _video_splits("sbu", train, val, test, data_cfg, seed, SBU_ACTIONS, pairs, defaults=defaults, store=store, meta={"split": split, "val_mode": mode})


# ------------------------------------------------------------------------------------------ KTH
KTH_ACTIONS = ["boxing", "handclapping", "handwaving", "jogging", "running", "walking"]
KTH_PERSONS = {
    "train": [11, 12, 13, 14, 15, 16, 17, 18],
    "val": [19, 20, 21, 23, 24, 25, 1, 4],
    "test": [22, 2, 3, 5, 6, 7, 8, 9, 10],
}
_KTH_NAME = re.compile(r"person(\d\d)_([a-z]+)_d(\d)(?:_uncomp)?")


def read_kth_sequences(path: Path) -> dict[str, list[tuple[int, int]]]:
    """``00sequences.txt`` -> {``person01_boxing_d1``: [(start, end_exclusive), ...]} (0-based)."""
    out = {}
    for line in path.read_text(errors="replace").splitlines():
        if "frames" not in line:
            continue
        name, _, ranges = line.partition("frames")
        segs = []
        for part in ranges.split(","):
            m = re.match(r"\s*(\d+)\s*-\s*(\d+)", part)
            if m:
                segs.append((int(m.group(1)) - 1, int(m.group(2))))
        if segs:
            out[name.strip()] = segs
    return out


@register_dataset("kth")
def kth(data_cfg, seed: int = 0) -> Splits:
    """KTH actions: utility = 6 actions, private = 25 persons; clips cut by ``00sequences.txt``."""
    root = dataset_root(data_cfg, "kth")
    params = data_cfg.params or {}
    split = _split_param(params, "time", ["time", "persons"], "kth")
    videos = sorted(p for p in root.rglob("person*_d*") if p.suffix.lower() in VIDEO_EXTS)
    if not videos:
        raise DataError(f"kth: no personXX_action_dY_uncomp.avi files under {root}; see docs/datasets.md")
    seq_files = list(root.rglob("00sequences.txt"))
    seqs = read_kth_sequences(seq_files[0]) if seq_files else {}
    if not seq_files:
        logger.warning("kth: no 00sequences.txt under %s; each video is cut into 4 equal sequences", root)
    store = FrameStore(8)
    persons = [f"person{i:02d}" for i in range(1, 26)]
    parts = {"train": [], "val": [], "test": []}
    for v in videos:
        m = _KTH_NAME.match(v.stem)
        if not m or m.group(2) not in KTH_ACTIONS:
            logger.warning("kth: skipping %s (name is not personXX_<action>_dY)", v)
            continue
        key = f"person{m.group(1)}_{m.group(2)}_d{m.group(3)}"
        segs = seqs.get(key)
        if not segs:
            n = store.num_frames(str(v))
            q = n // 4
            segs = [(i * q, (i + 1) * q if i < 3 else n) for i in range(4)]
        u, pv = KTH_ACTIONS.index(m.group(2)), int(m.group(1)) - 1
        recs = [Record(str(v), u, pv, f"{key}_seq{k + 1}", start=s, end=e, source=str(v)) for k, (s, e) in enumerate(segs)]
        if split == "time":  # the last sequence of every video is test: each person and action on both sides
            parts["train"].extend(recs[:-1] if len(recs) > 1 else recs)
            parts["test"].extend(recs[-1:] if len(recs) > 1 else [])
        else:
            side = next(s for s, ps in KTH_PERSONS.items() if int(m.group(1)) in ps)
            parts[side].extend(recs)
    train, val, test = parts["train"], parts["val"], parts["test"]
    if split == "time":
        train, val, mode = _carve(train, data_cfg, "kth", store=store)
    else:
        mode = "persons"
        logger.warning("kth: split persons tests on unseen persons; use it for utility only (private accuracy is meaningless)")
    return _video_splits("kth", train, val, test, data_cfg, seed, KTH_ACTIONS, persons, store=store, meta={"split": split, "val_mode": mode})


# ------------------------------------------------------------------------------------------ UCF101
def _list_videos_by_class(root: Path, dataset: str) -> Path:
    for cand in (root / "UCF-101", root / "UCF101", root / "videos", root / "hmdb51_org", root):
        if cand.is_dir() and any(d.is_dir() and any(f.suffix.lower() in VIDEO_EXTS for f in d.iterdir()) for d in cand.iterdir() if d.is_dir()):
            return cand
    raise DataError(f"{dataset}: no <class>/<video>.avi folders under {root}; see docs/datasets.md")


def _group_val(train: list[Record], group_of, vf: float) -> tuple[list[Record], list[Record]]:
    """Validation = the last ``vf`` share of the train groups (whole groups: no near-duplicates across)."""
    groups = sorted({group_of(r) for r in train})
    k = max(1, round(len(groups) * vf)) if vf > 0 and len(groups) > 1 else 0
    val_groups = set(groups[len(groups) - k :]) if k else set()
    return [r for r in train if group_of(r) not in val_groups], [r for r in train if group_of(r) in val_groups]


@register_dataset("ucf101")
def ucf101(data_cfg, seed: int = 0) -> Splits:
    """UCF101 with its official split 1-3 (``params.split``); no private labels."""
    root = dataset_root(data_cfg, "ucf101")
    params = data_cfg.params or {}
    n = int(params.get("split", 1))
    if n not in (1, 2, 3):
        raise ConfigError(f"ucf101: data.params.split {n} is not 1, 2 or 3")
    lists = _find(root, ["ucfTrainTestlist"], "the ucfTrainTestlist folder", "ucf101", want_dir=True)
    vids = _list_videos_by_class(root, "ucf101")
    class_ind = lists / "classInd.txt"
    if class_ind.is_file():
        classes = [ln.split()[1] for ln in class_ind.read_text().splitlines() if ln.strip()]
    else:
        classes = sorted(d.name for d in vids.iterdir() if d.is_dir())
    index = {c: i for i, c in enumerate(classes)}

    def read(fname):
        f = lists / fname
        if not f.is_file():
            raise DataError(f"ucf101: split file {f} is missing; restore ucfTrainTestlist from the UCF101 download")
        out = []
        for ln_no, ln in enumerate(f.read_text().splitlines(), 1):
            if not ln.strip():
                continue
            rel = ln.split()[0]
            cls = rel.split("/")[0]
            if cls not in index:
                raise DataError(f"ucf101: {f.name} line {ln_no}: class {cls!r} is not in classInd.txt; fix the line")
            out.append(Record(str(vids / rel), index[cls], 0, Path(rel).stem, source=f"{f.name} line {ln_no}"))
        return out

    train = _missing(read(f"trainlist0{n}.txt"), "ucf101", data_cfg.on_bad_sample)
    test = _missing(read(f"testlist0{n}.txt"), "ucf101", data_cfg.on_bad_sample)
    grp = lambda r: re.search(r"_g(\d+)_", r.id).group(1) if re.search(r"_g(\d+)_", r.id) else r.id  # noqa: E731
    train, val = _group_val(train, grp, data_cfg.val_fraction)
    return _video_splits("ucf101", train, val, test, data_cfg, seed, classes, NO_PRIVATE, meta={"has_private": False, "split": n})


# ------------------------------------------------------------------------------------------ HMDB51 / PA-HMDB51
PAHMDB_ATTRIBUTES = ["face", "gender", "skin_color", "nudity", "relationship"]


def _pahmdb_label_files(root: Path) -> list[Path]:
    files = sorted(p for p in root.rglob("*.json"))
    if not files:
        raise DataError(f"pahmdb51: no <action>.json label files under {root}; see docs/datasets.md")
    return files


def pahmdb_video_names(root: str | Path) -> set[str]:
    """Names (``<video>.avi``) of the PA-HMDB51 videos, to exclude them from HMDB51 training."""
    names = set()
    for f in _pahmdb_label_files(Path(root).expanduser()):
        names.update(json.loads(f.read_text()).keys())
    return names


def pahmdb_present(spans) -> bool:
    """True iff any frame range of an attribute has a value != 0 (a value may be a list)."""
    for span in spans or []:
        if len(span) < 3:
            continue
        v = span[2]
        vals = v if isinstance(v, list) else [v]
        if any(int(x) != 0 for x in vals):
            return True
    return False


def _hmdb_split_dir(root: Path, params: dict) -> Path:
    if params.get("splits_dir"):
        return Path(params["splits_dir"]).expanduser()
    return _find(root, ["testTrainMulti_7030_splits", "splits"], "the testTrainMulti_7030_splits folder", "hmdb51", want_dir=True)


@register_dataset("hmdb51")
def hmdb51(data_cfg, seed: int = 0) -> Splits:
    """HMDB51 with its official split 1-3; no private labels; ``params.exclude_pahmdb`` drops PA-HMDB51 videos."""
    root = dataset_root(data_cfg, "hmdb51")
    params = data_cfg.params or {}
    n = int(params.get("split", 1))
    if n not in (1, 2, 3):
        raise ConfigError(f"hmdb51: data.params.split {n} is not 1, 2 or 3")
    sdir = _hmdb_split_dir(root, params)
    files = sorted(sdir.glob(f"*_test_split{n}.txt"))
    if not files:
        raise DataError(f"hmdb51: no <action>_test_split{n}.txt files in {sdir}; restore them from the HMDB51 download")
    vids = _list_videos_by_class(root, "hmdb51")
    classes = sorted(f.name[: -len(f"_test_split{n}.txt")] for f in files)
    exclude = pahmdb_video_names(params["exclude_pahmdb"]) if params.get("exclude_pahmdb") else set()
    train, test, dropped = [], [], 0
    for f in files:
        cls = f.name[: -len(f"_test_split{n}.txt")]
        for ln_no, ln in enumerate(f.read_text().splitlines(), 1):
            parts = ln.split()
            if len(parts) < 2:
                continue
            name, tag = parts[0], parts[1]
            if tag not in ("0", "1", "2"):
                raise DataError(f"hmdb51: {f.name} line {ln_no}: tag {tag!r} is not 0, 1 or 2; fix the line")
            rec = Record(str(vids / cls / name), classes.index(cls), 0, Path(name).stem, source=f"{f.name} line {ln_no}")
            if tag == "1":
                if name in exclude:
                    dropped += 1
                    continue
                train.append(rec)
            elif tag == "2":
                test.append(rec)
    if exclude:
        logger.info("hmdb51: excluded %d PA-HMDB51 videos from training", dropped)
    train = _missing(train, "hmdb51", data_cfg.on_bad_sample)
    test = _missing(test, "hmdb51", data_cfg.on_bad_sample)
    train, val = (split_records(train, [1 - data_cfg.val_fraction, data_cfg.val_fraction], seed=int(params.get("split_seed", 0))) if data_cfg.val_fraction > 0 else (train, []))
    return _video_splits("hmdb51", train, val, test, data_cfg, seed, classes, NO_PRIVATE, meta={"has_private": False, "split": n, "excluded_pahmdb": dropped})


@register_dataset("pahmdb51")
def pahmdb51(data_cfg, seed: int = 0) -> Splits:
    """PA-HMDB51: HMDB51 videos with binarised privacy attributes (multi-label); evaluation data."""
    root = dataset_root(data_cfg, "pahmdb51")
    params = data_cfg.params or {}
    videos = Path(params["videos"]).expanduser() if params.get("videos") else root
    vdir = _list_videos_by_class(videos, "pahmdb51")
    recs = []
    for f in _pahmdb_label_files(root):
        action = f.stem
        try:
            labels = json.loads(f.read_text())
        except json.JSONDecodeError as e:
            raise DataError(f"pahmdb51: {f} is not valid JSON ({e.msg} at line {e.lineno}); fix the file") from None
        for name in sorted(labels):
            attrs = labels[name] or {}
            unknown = set(attrs) - set(PAHMDB_ATTRIBUTES)
            if unknown:
                raise DataError(f"pahmdb51: {f.name} video {name}: unknown attribute(s) {sorted(unknown)}; valid: {PAHMDB_ATTRIBUTES}")
            vec = [1.0 if pahmdb_present(attrs.get(a)) else 0.0 for a in PAHMDB_ATTRIBUTES]
            recs.append((action, Record(str(vdir / action / name), 0, vec, Path(name).stem, source=f"{f.name} {name}")))
    actions = sorted({a for a, _ in recs})
    records = [Record(r.path, actions.index(a), r.private, r.id, source=r.source) for a, r in recs]
    records = _missing(records, "pahmdb51", data_cfg.on_bad_sample)
    tf = float(params.get("test_fraction", 0.3))
    vf = data_cfg.val_fraction
    # stratified on the action only (attribute vectors are too many strata)
    keyed = [Record(r.path, r.utility, 0, r.id) for r in records]
    parts = split_records(keyed, [1 - tf - vf, vf, tf], seed=int(params.get("split_seed", 0)))
    by_id = {r.id: r for r in records}
    train, val, test = ([by_id[r.id] for r in p] for p in parts)
    return _video_splits(
        "pahmdb51", train, val, test, data_cfg, seed, actions, PAHMDB_ATTRIBUTES, multilabel=True,
        meta={"evaluation_only": True, "attributes": PAHMDB_ATTRIBUTES},
    )


# ------------------------------------------------------------------------------------------ VISPR
VISPR17 = [
    "a0_safe", "a1_age_approx", "a2_weight_approx", "a3_height_approx", "a4_gender", "a5_eye_color", "a6_hair_color",
    "a9_face_complete", "a10_face_partial", "a12_semi_nudity", "a16_race", "a17_color", "a46_occupation",
    "a58_hobbies", "a59_sports", "a64_rel_personal", "a65_rel_social",
]
VISPR7 = ["a0_safe", "a12_semi_nudity", "a46_occupation", "a58_hobbies", "a59_sports", "a64_rel_personal", "a65_rel_social"]


@register_dataset("vispr")
def vispr(data_cfg, seed: int = 0) -> Splits:
    """VISPR privacy attributes (multi-label; ``params.attributes``: vispr7 | vispr17 | all); utility dummy."""
    root = dataset_root(data_cfg, "vispr")
    params = data_cfg.params or {}
    subset = params.get("attributes", "vispr7")
    annos = _find(root, ["annos", "annotations"], "the annos folder", "vispr", want_dir=True)
    parts_raw = {}
    for split, names in (("train", ["train2017", "train"]), ("val", ["val2017", "val"]), ("test", ["test2017", "test"])):
        d = next((annos / n for n in names if (annos / n).is_dir()), None)
        parts_raw[split] = [] if d is None else sorted(d.glob("*.json"))
    if isinstance(subset, list):
        attributes = list(subset)
    elif subset == "vispr7":
        attributes = VISPR7
    elif subset == "vispr17":
        attributes = VISPR17
    elif subset == "all":
        seen = set()
        for fs in parts_raw.values():
            for f in fs:
                seen.update(json.loads(f.read_text()).get("labels", []))
        attributes = sorted(seen, key=lambda a: (int(re.match(r"a(\d+)", a).group(1)) if re.match(r"a(\d+)", a) else 999, a))
    else:
        raise ConfigError(f"vispr: data.params.attributes {subset!r} is not vispr7, vispr17, all or a list")
    parts = {}
    for split, files in parts_raw.items():
        recs = []
        for f in files:
            try:
                a = json.loads(f.read_text())
            except json.JSONDecodeError as e:
                raise DataError(f"vispr: {f} is not valid JSON ({e.msg}); fix or remove it") from None
            img = a.get("image_path")
            p = (root / img) if img else next((q for q in (root / "images" / f.parent.name).glob(f.stem + ".*") if q.suffix.lower() in IMAGE_EXTS), root / "images" / f.parent.name / (f.stem + ".jpg"))
            labels = set(a.get("labels", []))
            recs.append(Record(str(p), 0, [1.0 if x in labels else 0.0 for x in attributes], f.stem, source=str(f)))
        parts[split] = _missing(recs, "vispr", data_cfg.on_bad_sample)
    if not parts["val"] and parts["train"] and data_cfg.val_fraction > 0:
        parts["train"], parts["val"] = split_records(parts["train"], [1 - data_cfg.val_fraction, data_cfg.val_fraction], seed=0)
    return build_image_splits(
        "vispr", parts["train"], parts["val"], parts["test"], utility_classes=["none"], private_classes=attributes,
        multilabel=True, data_cfg=data_cfg, meta={"has_utility": False, "attributes": subset},
    )


# ------------------------------------------------------------------------------------------ IPN Hand
@register_dataset("ipn")
def ipn(data_cfg, seed: int = 0) -> Splits:
    """IPN Hand: utility = gesture class of each annotated segment, private = the subject's gender.

    Assumed layout (docs/datasets.md): ``frames/<video>/<video>_000001.jpg``,
    ``annotations/Annot_TrainList.txt`` and ``Annot_TestList.txt`` (CSV: video,label,id,t_start,t_end,frames;
    1-based inclusive frame numbers), ``annotations/metadata.csv`` (columns video, gender).
    """
    root = dataset_root(data_cfg, "ipn")
    params = data_cfg.params or {}
    ann = _find(root, ["annotations", "annotation"], "the annotations folder", "ipn", want_dir=True)
    meta_f = ann / "metadata.csv" if (ann / "metadata.csv").is_file() else _find(root, ["metadata.csv"], "metadata.csv", "ipn")
    with open(meta_f, newline="") as f:
        rows = list(csv.DictReader(f))
    cols = {c.lower(): c for c in (rows[0].keys() if rows else [])}
    if "video" not in cols or "gender" not in cols:
        raise DataError(f"ipn: {meta_f} needs columns video,gender; fix the header")
    gender = {r[cols["video"]].strip(): r[cols["gender"]].strip().lower() for r in rows}
    genders = sorted(set(gender.values()))
    frames = _find(root, ["frames"], "the frames folder", "ipn", want_dir=True)
    skip_nogesture = bool(params.get("drop_no_gesture", True))
    parts, labels = {}, set()
    raw = {}
    for split, fname in (("train", "Annot_TrainList.txt"), ("test", "Annot_TestList.txt")):
        f = ann / fname
        if not f.is_file():
            raise DataError(f"ipn: {f} is missing; restore the IPN Hand annotation lists")
        out = []
        for ln_no, ln in enumerate(f.read_text().splitlines(), 1):
            p = [x.strip() for x in ln.split(",")]
            if len(p) < 5 or not p[3].isdigit():
                continue
            video, label, s, e = p[0], p[1], int(p[3]), int(p[4])
            if skip_nogesture and label.upper() in ("D0X", "B0A", "B0B"):
                continue
            if video not in gender:
                raise DataError(f"ipn: {fname} line {ln_no}: video {video} has no gender in {meta_f.name}; add it")
            labels.add(label)
            out.append((label, Record(str(frames / video / "*.jpg"), 0, genders.index(gender[video]), f"{video}_{s}", start=s - 1, end=e, source=f"{fname} line {ln_no}")))
        raw[split] = out
    classes = sorted(labels)
    for split, out in raw.items():
        parts[split] = [Record(r.path, classes.index(lab), r.private, r.id, r.start, r.end, r.source) for lab, r in out]
    train, val, mode = _carve(parts["train"], data_cfg, "ipn", mode="rows")
    return _video_splits("ipn", train, val, parts["test"], data_cfg, seed, classes, genders, meta={"val_mode": mode})


# ------------------------------------------------------------------------------------------ RAF-DB
RAF_EMOTIONS = ["surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral"]
RAF_ATTRIBUTES = {
    "gender": ["male", "female", "unsure"],
    "race": ["caucasian", "african_american", "asian"],
    "age": ["0-3", "4-19", "20-39", "40-69", "70+"],
}


def read_raf_attributes(path: Path) -> dict[str, int]:
    """The last three non-empty lines of a ``*_manu_attri.txt``: gender, race, age codes."""
    lines = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
    if len(lines) < 3:
        raise DataError(f"rafdb: {path} has fewer than 3 lines; expected landmarks then gender, race, age")
    g, r, a = (int(float(x.split()[0])) for x in lines[-3:])
    return {"gender": g, "race": r, "age": a}


@register_dataset("rafdb")
def rafdb(data_cfg, seed: int = 0) -> Splits:
    """RAF-DB basic: utility = 7 expressions, private = ``params.private`` gender | age | race."""
    root = dataset_root(data_cfg, "rafdb")
    params = data_cfg.params or {}
    private = str(params.get("private", "gender"))
    if private not in RAF_ATTRIBUTES:
        raise ConfigError(f"rafdb: data.params.private {private!r} is not one of {', '.join(RAF_ATTRIBUTES)}")
    lab = _find(root, ["EmoLabel/list_patition_label.txt", "list_patition_label.txt", "basic/EmoLabel/list_patition_label.txt"], "list_patition_label.txt", "rafdb")
    base = lab.parent.parent if lab.parent.name == "EmoLabel" else lab.parent
    manual = base / "Annotation" / "manual"
    img_dir = base / "Image" / "aligned"
    aligned = img_dir.is_dir()
    if not aligned:
        img_dir = base / "Image" / "original"
    classes = [c for c in RAF_ATTRIBUTES[private] if not (private == "gender" and c == "unsure")]
    parts = {"train": [], "test": []}
    bad, dropped, total = [], 0, 0
    for ln_no, ln in enumerate(lab.read_text().splitlines(), 1):
        p = ln.split()
        if len(p) < 2:
            continue
        total += 1
        name, emo = p[0], int(p[1])
        stem = Path(name).stem
        where = f"{lab.name} line {ln_no}"
        if not 1 <= emo <= 7:
            bad.append(f"rafdb: {where}: emotion {emo} is not 1..7; fix the line")
            continue
        af = manual / f"{stem}_manu_attri.txt"
        if not af.is_file():
            bad.append(f"rafdb: {where}: attribute file {af} is missing; restore Annotation/manual")
            continue
        code = read_raf_attributes(af)[private]
        if private == "gender" and code == 2:
            dropped += 1
            continue
        if not 0 <= code < len(classes):
            bad.append(f"rafdb: {af}: {private} code {code} is not in 0..{len(classes) - 1}; fix the file")
            continue
        img = img_dir / (f"{stem}_aligned.jpg" if aligned else name)
        split = "train" if stem.startswith("train") else "test"
        parts[split].append(Record(str(img), emo - 1, code, stem, source=where))
    check_skip("rafdb", [], bad, total, data_cfg.on_bad_sample)
    if dropped:
        logger.info("rafdb: dropped %d images with gender 'unsure'", dropped)
    train = _missing(parts["train"], "rafdb", data_cfg.on_bad_sample)
    test = _missing(parts["test"], "rafdb", data_cfg.on_bad_sample)
    train, val, _ = _carve(train, data_cfg, "rafdb", video=False, mode="rows")
    return build_image_splits("rafdb", train, val, test, utility_classes=RAF_EMOTIONS, private_classes=classes, multilabel=False, data_cfg=data_cfg, meta={"private": private, "dropped_unsure": dropped})


# ------------------------------------------------------------------------------------------ CelebA
@register_dataset("celeba")
def celeba(data_cfg, seed: int = 0) -> Splits:
    """CelebA: utility = a binary attribute (``params.utility``, default Smiling), private = an attribute
    (default Male) or ``identity``."""
    root = dataset_root(data_cfg, "celeba")
    params = data_cfg.params or {}
    ua, pa = str(params.get("utility", "Smiling")), str(params.get("private", "Male"))
    attr_f = _find(root, ["list_attr_celeba.txt", "Anno/list_attr_celeba.txt"], "list_attr_celeba.txt", "celeba")
    part_f = _find(root, ["list_eval_partition.txt", "Eval/list_eval_partition.txt"], "list_eval_partition.txt", "celeba")
    img_dir = _find(root, ["img_align_celeba", "Img/img_align_celeba"], "the img_align_celeba folder", "celeba", want_dir=True)
    lines = attr_f.read_text().splitlines()
    names = lines[1].split()
    for a in (ua,) + (() if pa == "identity" else (pa,)):
        if a not in names:
            raise ConfigError(f"celeba: attribute {a!r} is not in {attr_f.name}; valid: {', '.join(names)}")
    attrs = {}
    for ln in lines[2:]:
        p = ln.split()
        if len(p) == len(names) + 1:
            attrs[p[0]] = p[1:]
    part = {p.split()[0]: int(p.split()[1]) for p in part_f.read_text().splitlines() if len(p.split()) == 2}
    if pa == "identity":
        id_f = _find(root, ["identity_CelebA.txt", "Anno/identity_CelebA.txt"], "identity_CelebA.txt", "celeba")
        ident = {p.split()[0]: p.split()[1] for p in id_f.read_text().splitlines() if len(p.split()) == 2}
        pclasses = sorted(set(ident.values()), key=lambda s: (len(s), s))
        pidx = {c: i for i, c in enumerate(pclasses)}
    else:
        pclasses = [f"not_{pa}", pa]
    ui, pi = names.index(ua), (names.index(pa) if pa != "identity" else None)
    recs = {0: [], 1: [], 2: []}
    for img, vals in attrs.items():
        u = 1 if vals[ui] == "1" else 0
        if pa == "identity":
            if img not in ident:
                continue
            p = pidx[ident[img]]
        else:
            p = 1 if vals[pi] == "1" else 0
        recs[part.get(img, 0)].append(Record(str(img_dir / img), u, p, Path(img).stem))
    if pa == "identity":  # official partitions have disjoint identities: re-split per identity
        allr = recs[0] + recs[1] + recs[2]
        tf = float(params.get("test_fraction", 0.2))
        keyed = [Record(r.path, 0, r.private, r.id) for r in allr]
        by = {r.id: r for r in allr}
        tr, va, te = (
            [by[r.id] for r in part_]
            for part_ in split_records(keyed, [1 - tf - data_cfg.val_fraction, data_cfg.val_fraction, tf], seed=int(params.get("split_seed", 0)))
        )
    else:
        tr, va, te = recs[0], recs[1], recs[2]
    tr, va, te = (_missing(x, "celeba", data_cfg.on_bad_sample) for x in (tr, va, te))
    return build_image_splits("celeba", tr, va, te, utility_classes=[f"not_{ua}", ua], private_classes=pclasses, multilabel=False, data_cfg=data_cfg, meta={"utility": ua, "private": pa})


# ------------------------------------------------------------------------------------------ AFLW
@register_dataset("aflw")
def aflw(data_cfg, seed: int = 0) -> Splits:
    """AFLW faces with attributes from an exported CSV (assumed layout in docs/datasets.md).

    ``faces.csv`` columns: ``file`` (image path relative to ``root/flickr``), ``x,y,w,h`` (face box,
    optional), and attribute columns (e.g. ``sex`` m/f, ``glasses`` 0/1). ``params.utility`` (default
    ``glasses``) and ``params.private`` (default ``sex``) name the columns; the split is stratified.
    """
    root = dataset_root(data_cfg, "aflw")
    params = data_cfg.params or {}
    ucol, pcol = str(params.get("utility", "glasses")), str(params.get("private", "sex"))
    f = _find(root, ["faces.csv", "aflw_faces.csv"], "faces.csv", "aflw")
    with open(f, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise DataError(f"aflw: {f} has no rows")
    for c in ("file", ucol, pcol):
        if c not in rows[0]:
            raise DataError(f"aflw: {f.name} has no column {c!r}; columns: {', '.join(rows[0])}")
    img_root = root / "flickr" if (root / "flickr").is_dir() else root
    uclasses = sorted({r[ucol].strip() for r in rows})
    pclasses = sorted({r[pcol].strip() for r in rows})
    recs = []
    for i, r in enumerate(rows, 2):
        box = None
        if all(r.get(k, "").strip() for k in "xywh"):
            box = tuple(float(r[k]) for k in "xywh")
        recs.append(Record(str(img_root / r["file"]), uclasses.index(r[ucol].strip()), pclasses.index(r[pcol].strip()), f"{Path(r['file']).stem}_{i}", source=f"{f.name} row {i}", box=box))
    recs = _missing(recs, "aflw", data_cfg.on_bad_sample)
    tf = float(params.get("test_fraction", 0.2))
    tr, va, te = split_records(recs, [1 - tf - data_cfg.val_fraction, data_cfg.val_fraction, tf], seed=int(params.get("split_seed", 0)))
    return build_image_splits("aflw", tr, va, te, utility_classes=uclasses, private_classes=pclasses, multilabel=False, data_cfg=data_cfg, meta={"utility": ucol, "private": pcol})
