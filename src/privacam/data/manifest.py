"""Manifest datasets: a user's own images or videos described by one CSV file.

Columns (see ``docs/datasets.md``):

- ``path``: an image file, a video file or a folder of frames, relative to the CSV (or absolute);
- ``utility``: the task class name;
- ``private`` (a class name) **or** several ``private:<attribute>`` columns holding 0/1
  (multi-label: the private label is a multi-hot float vector over the attributes, in column order);
- optional ``split``: ``train`` / ``val`` / ``test``. Without it, a deterministic split stratified on
  both labels (``params.test_fraction``, ``data.val_fraction``, ``params.split_seed``). With only
  train and test rows, validation is carved from train (``params.val_mode``: ``auto`` | ``rows`` |
  ``time``; ``auto`` carves by time — the last part of each train video — when some
  (utility, private) stratum has fewer than two train videos, as for Weizmann);
- optional ``id``: a sample name (default: the path as written).

Class lists are sorted by name unless ``params.utility_classes`` / ``params.private_classes`` fix them
(then a label outside the list is an error). Row numbers in messages count the header as row 1, as a
spreadsheet shows them.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

from ..errors import ConfigError, DataError
from ..registry import register_dataset
from .base import Splits
from .video import (
    FrameStore,
    Record,
    build_image_splits,
    build_video_splits,
    carve_val,
    check_skip,
    kind_of_path,
    split_records,
    video_options,
)

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
_TRUE = {"1", "1.0", "true", "yes"}
_FALSE = {"0", "0.0", "false", "no"}

#: data.params keys of the manifest loader, besides those of :data:`privacam.data.video.VIDEO_PARAMS`.
MANIFEST_PARAMS = {
    "test_fraction": "test share when the CSV has no split column (default 0.2)",
    "split_seed": "seed of the automatic split (default 0; independent of the run seed)",
    "val_mode": "auto | rows | time: how validation is carved from train (default auto)",
    "utility_classes": "fixed list of utility class names (default: sorted names found)",
    "private_classes": "fixed list of private class names (default: sorted names found)",
}


def _read_rows(csv_path: Path) -> tuple[list[str], list[tuple[int, dict]]]:
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = [h.strip() for h in (reader.fieldnames or [])]
            reader.fieldnames = header
            rows = []
            for row in reader:
                if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
                    continue
                rows.append((reader.line_num, {k: (v or "").strip() if isinstance(v, str) else "" for k, v in row.items() if k}))
    except FileNotFoundError:
        raise DataError(f"manifest {csv_path} does not exist; pass the path of a CSV file (--data path/to/manifest.csv)") from None
    except UnicodeDecodeError:
        raise DataError(f"manifest {csv_path} is not a UTF-8 text CSV; save it as CSV (UTF-8)") from None
    except csv.Error as e:
        raise DataError(f"manifest {csv_path}: malformed CSV ({e}); fix the file") from None
    return header, rows


def read_manifest(csv_path: str | Path, *, on_bad_sample: str = "error", params: dict | None = None) -> dict:
    """Parse and check a manifest; returns a dict with the records per split (or all under
    ``"all"``), the class lists, ``kind``, ``multilabel`` and the frame store with known counts.

    Every problem names the CSV, the row and the fix; with ``on_bad_sample="skip"`` bad rows are
    dropped with a warning each and a summary line.
    """
    params = params or {}
    csv_path = Path(csv_path)
    name = csv_path.name
    header, rows = _read_rows(csv_path)
    if "path" not in header or "utility" not in header:
        missing = [c for c in ("path", "utility") if c not in header]
        raise DataError(f"{name}: missing column(s) {', '.join(missing)} (header is {','.join(header)}); the manifest needs path,utility,private[,split]")
    attr_cols = [h for h in header if h.startswith("private:")]
    if "private" in header and attr_cols:
        raise DataError(f"{name}: has both a private column and private:<attribute> columns; keep one form")
    if "private" not in header and not attr_cols:
        raise DataError(f"{name}: no private column; add 'private' (a class name) or 'private:<attribute>' columns (0/1)")
    multilabel = bool(attr_cols)
    attributes = [c.split(":", 1)[1].strip() for c in attr_cols]
    if any(not a for a in attributes):
        raise DataError(f"{name}: a private:<attribute> column has no attribute name; name it e.g. private:face")
    has_split = "split" in header
    if not rows:
        raise DataError(f"{name}: has no data rows; add one row per sample")

    fixed_u = params.get("utility_classes")
    fixed_p = params.get("private_classes")
    for key, val in (("utility_classes", fixed_u), ("private_classes", fixed_p)):
        if val is not None and not isinstance(val, list):
            raise ConfigError(f"data.params.{key} must be a list of class names, got {val!r}")

    base = csv_path.parent
    bad: list[str] = []
    parsed = []  # (line, path, kind, utility, private, split, id)
    for line, row in rows:
        where = f"{name} row {line}"
        rel = row.get("path", "")
        if not rel:
            bad.append(f"{where}: empty path; fill it (relative to the CSV) or remove the row")
            continue
        p = Path(rel)
        p = p if p.is_absolute() else base / p
        if not p.exists():
            bad.append(f"{where}: file {rel} does not exist; fix the path (relative to the CSV) or remove the row")
            continue
        kind = kind_of_path(p)
        if kind == "unknown":
            bad.append(f"{where}: {rel} is neither an image, a video nor a folder of frames (unknown extension {p.suffix!r}); convert it or remove the row")
            continue
        u = row.get("utility", "")
        if not u:
            bad.append(f"{where}: empty utility label; fill it or remove the row")
            continue
        if fixed_u is not None and u not in fixed_u:
            bad.append(f"{where}: utility label {u!r} is not in data.params.utility_classes; fix the label or the class list")
            continue
        if multilabel:
            vec, ok = [], True
            for col in attr_cols:
                v = row.get(col, "").lower()
                if v in _TRUE:
                    vec.append(1.0)
                elif v in _FALSE:
                    vec.append(0.0)
                else:
                    bad.append(f"{where}: column {col} is {row.get(col, '')!r}, not 0 or 1; fix the value or remove the row")
                    ok = False
                    break
            if not ok:
                continue
            priv = vec
        else:
            priv = row.get("private", "")
            if not priv:
                bad.append(f"{where}: empty private label; fill it or remove the row")
                continue
            if fixed_p is not None and priv not in fixed_p:
                bad.append(f"{where}: private label {priv!r} is not in data.params.private_classes; fix the label or the class list")
                continue
        split = None
        if has_split:
            split = row.get("split", "").lower()
            if split == "validation":
                split = "val"
            if split not in SPLITS:
                bad.append(f"{where}: split is {row.get('split', '')!r}; use train, val or test (or drop the split column for an automatic split)")
                continue
        parsed.append((line, str(p), kind, u, priv, split, row.get("id") or rel))

    check_skip(name, [], bad, len(rows), on_bad_sample)
    if not parsed:
        raise DataError(f"{name}: no usable rows; fix the rows reported above")
    kinds = {k for (_, _, k, *_) in parsed}
    if "image" in kinds and kinds - {"image"}:
        first_img = next(r for r in parsed if r[2] == "image")
        first_vid = next(r for r in parsed if r[2] != "image")
        raise DataError(
            f"{name}: mixes images (row {first_img[0]}) and videos/frame folders (row {first_vid[0]}); "
            f"use one manifest per kind"
        )
    kind = "image" if kinds == {"image"} else "video"

    # frame counts of videos: catches corrupt files and empty folders now, rather than mid-training
    store = FrameStore(8)
    if kind == "video":
        bad2, kept = [], []
        for r in parsed:
            try:
                n = store.num_frames(r[1])
            except DataError as e:
                bad2.append(f"{name} row {r[0]}: {e}")
                continue
            if n < 1:
                bad2.append(f"{name} row {r[0]}: {r[6]} has zero frames; fill it or remove the row")
                continue
            kept.append(r)
        check_skip(name, [], bad2, len(rows), on_bad_sample)
        parsed = kept
    else:
        bad2, kept = [], []
        from PIL import Image

        for r in parsed:
            try:
                with Image.open(r[1]) as im:
                    im.size  # noqa: B018  (header read: catches non-images early)
            except Exception as e:
                bad2.append(f"{name} row {r[0]}: cannot read image {r[6]} ({type(e).__name__}); replace the file or remove the row")
                continue
            kept.append(r)
        check_skip(name, [], bad2, len(rows), on_bad_sample)
        parsed = kept
    if not parsed:
        raise DataError(f"{name}: no usable rows left; fix the rows reported above")

    utility_classes = list(fixed_u) if fixed_u is not None else sorted({r[3] for r in parsed})
    private_classes = attributes if multilabel else (list(fixed_p) if fixed_p is not None else sorted({r[4] for r in parsed}))
    u_index = {c: i for i, c in enumerate(utility_classes)}
    p_index = {c: i for i, c in enumerate(private_classes)}
    by_split: dict[str, list[Record]] = {s: [] for s in SPLITS}
    by_split["all"] = []
    for line, path, _, u, priv, split, sid in parsed:
        rec = Record(path=path, utility=u_index[u], private=priv if multilabel else p_index[priv], id=sid, source=f"{name} row {line}")
        by_split[split or "all"].append(rec)
    return {
        "records": by_split,
        "has_split": has_split,
        "utility_classes": utility_classes,
        "private_classes": private_classes,
        "multilabel": multilabel,
        "kind": kind,
        "store": store,
        "rows": len(rows),
    }


@register_dataset("manifest")
def manifest(data_cfg, seed: int = 0) -> Splits:
    """A CSV manifest of images, videos or frame folders (see the module docstring)."""
    if not data_cfg.root:
        raise ConfigError("dataset 'manifest' needs data.root = the CSV path (or --data path/to/manifest.csv)")
    params = dict(data_cfg.params or {})
    csv_path = Path(data_cfg.root).expanduser()
    m = read_manifest(csv_path, on_bad_sample=data_cfg.on_bad_sample, params=params)
    recs = m["records"]
    name = csv_path.stem
    video = m["kind"] == "video"
    vf = float(data_cfg.val_fraction)
    split_seed = int(params.get("split_seed", 0))
    val_mode = "given"
    if not m["has_split"]:
        tf = float(params.get("test_fraction", 0.2))
        if not 0 < tf < 1 or tf + vf >= 1:
            raise ConfigError(f"data.params.test_fraction {tf} with data.val_fraction {vf}: each must be in (0, 1) and their sum below 1")
        train, val, test = split_records(recs["all"], [1 - vf - tf, vf, tf], seed=split_seed)
        val_mode = "rows"
        logger.info("%s: no split column; stratified split %d/%d/%d (seed %d)", csv_path.name, len(train), len(val), len(test), split_seed)
    else:
        train, val, test = recs["train"], recs["val"], recs["test"]
        if not val and vf > 0:
            mode = str(params.get("val_mode", "auto"))
            train, val, val_mode = carve_val(train, vf, mode=mode, seed=split_seed, video=video, store=m["store"], dataset=csv_path.name)
    meta = {"manifest": str(csv_path), "val_mode": val_mode, "rows": m["rows"]}
    common = dict(utility_classes=m["utility_classes"], private_classes=m["private_classes"], multilabel=m["multilabel"], data_cfg=data_cfg, meta=meta)
    if video:
        store = m["store"]
        opts = video_options(data_cfg)
        store.size, store.resize = int(data_cfg.size), opts["resize"]
        store.cache_dir = Path(opts["cache_dir"]).expanduser() if opts["cache_dir"] else None
        return build_video_splits(name, train, val, test, seed=seed, store=store, defaults={"train_clips": 8}, **common)
    return build_image_splits(name, train, val, test, **common)
