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
- optional ``id``: a sample name (default: the path as written);
- optional ``task:<name>`` columns: labels of further tasks (class names, like ``utility``), the
  tasks a release was never trained for that the audit measures (``docs/tasks.md``). An empty cell
  means the row has no label for that task (stored as ``-1``, :data:`~privacam.data.base.UNLABELLED`:
  not trained on and not scored for that task); a column with no label at all is refused. Class
  lists are sorted by name unless ``params.task_classes`` (``{name: [class, ...]}``) fixes them.

Checks beyond the rows themselves (each names the rows and the fix): a file listed twice with the same
labels and split is kept once (with a warning); listed with other labels, it is refused; listed in two
splits (a train/test leak) it is refused, unless ``params.allow_overlap`` (CLI ``--allow-overlap``) keeps
it with a warning; a class (or a multi-label attribute) used in val or test with no train example is
refused, since no model could learn it and the attack scores would look more private than they are;
the same holds for the classes of every ``task:<name>`` column.

Class lists are sorted by name unless ``params.utility_classes`` / ``params.private_classes`` fix them
(then a label outside the list is an error). Row numbers in messages count the header as row 1, as a
spreadsheet shows them.
"""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path

from ..errors import ConfigError, DataError
from ..registry import register_dataset
from .base import UNLABELLED, Splits
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
    "task_classes": "fixed class lists of task:<name> columns, {name: [class, ...]} (default: sorted names found)",
    "allow_overlap": "true: a file listed in two splits is kept in both, with a warning (default false: refused)",
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
    task_cols = [h for h in header if h.startswith("task:")]
    task_names = [c.split(":", 1)[1].strip() for c in task_cols]
    if any(not t for t in task_names):
        raise DataError(f"{name}: a task:<name> column has no task name; name it e.g. task:position")
    if len(set(task_names)) < len(task_names):
        dup = next(t for t in task_names if task_names.count(t) > 1)
        raise DataError(f"{name}: the column task:{dup} appears twice; keep one column per task")
    has_split = "split" in header
    if not rows:
        raise DataError(f"{name}: has no data rows; add one row per sample")

    fixed_u = params.get("utility_classes")
    fixed_p = params.get("private_classes")
    for key, val in (("utility_classes", fixed_u), ("private_classes", fixed_p)):
        if val is not None and not isinstance(val, list):
            raise ConfigError(f"data.params.{key} must be a list of class names, got {val!r}")
    fixed_t = params.get("task_classes") or {}
    if not isinstance(fixed_t, dict) or any(not isinstance(v, list) for v in fixed_t.values()):
        raise ConfigError(f"data.params.task_classes must map task names to lists of class names, got {fixed_t!r}")
    unknown = [t for t in fixed_t if t not in task_names]
    if unknown:
        raise ConfigError(f"data.params.task_classes names task {unknown[0]!r}, but {name} has no column task:{unknown[0]}; "
                          f"its task columns: {', '.join(task_cols) or 'none'}")

    base = csv_path.parent
    bad: list[str] = []
    parsed = []  # (line, path, kind, utility, private, split, id, tasks)
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
        tasks, ok = {}, True
        for col, t in zip(task_cols, task_names):
            v = row.get(col, "")
            if v and t in fixed_t and v not in fixed_t[t]:
                bad.append(f"{where}: {col} label {v!r} is not in data.params.task_classes.{t}; fix the label or the class list")
                ok = False
                break
            tasks[t] = v  # "" = no label for this task
        if not ok:
            continue
        split = None
        if has_split:
            split = row.get("split", "").lower()
            if split == "validation":
                split = "val"
            if split not in SPLITS:
                bad.append(f"{where}: split is {row.get('split', '')!r}; use train, val or test (or drop the split column for an automatic split)")
                continue
        parsed.append((line, str(p), kind, u, priv, split, row.get("id") or rel, tasks))

    skipped = list(bad)
    check_skip(name, [], bad, len(rows), on_bad_sample)
    if not parsed:
        raise DataError(f"{name}: no usable rows; fix the rows reported above")
    parsed = _check_repeated_paths(name, parsed, bool(params.get("allow_overlap", False)))
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
        skipped += bad2
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
        skipped += bad2
        check_skip(name, [], bad2, len(rows), on_bad_sample)
        parsed = kept
    if not parsed:
        raise DataError(f"{name}: no usable rows left; fix the rows reported above")

    utility_classes = list(fixed_u) if fixed_u is not None else sorted({r[3] for r in parsed})
    private_classes = attributes if multilabel else (list(fixed_p) if fixed_p is not None else sorted({r[4] for r in parsed}))
    u_index = {c: i for i, c in enumerate(utility_classes)}
    p_index = {c: i for i, c in enumerate(private_classes)}
    task_classes = {}
    for col, t in zip(task_cols, task_names):
        found = sorted({r[7][t] for r in parsed if r[7][t]})
        if not found:
            raise DataError(f"{name}: column {col} has no label in any usable row; fill it or remove the column")
        task_classes[t] = list(fixed_t[t]) if t in fixed_t else found
        if len(found) < 2:
            logger.warning("%s: column %s has a single class (%s): the task is answered by chance alone", name, col, found[0])
    t_index = {t: {c: i for i, c in enumerate(cs)} for t, cs in task_classes.items()}
    by_split: dict[str, list[Record]] = {s: [] for s in SPLITS}
    by_split["all"] = []
    for line, path, _, u, priv, split, sid, tasks in parsed:
        rec = Record(path=path, utility=u_index[u], private=priv if multilabel else p_index[priv], id=sid, source=f"{name} row {line}",
                     tasks={t: t_index[t][v] if v else UNLABELLED for t, v in tasks.items()} or None)
        by_split[split or "all"].append(rec)
    return {
        "records": by_split,
        "has_split": has_split,
        "utility_classes": utility_classes,
        "private_classes": private_classes,
        "tasks": task_classes,
        "multilabel": multilabel,
        "kind": kind,
        "store": store,
        "rows": len(rows),
        "skipped": skipped,
    }


def _rows_text(lines: list[int], limit: int = 6) -> str:
    shown = ", ".join(str(n) for n in lines[:limit])
    return f"rows {shown}" + (f" and {len(lines) - limit} more" if len(lines) > limit else "") if len(lines) > 1 else f"row {shown}"


def file_identity(path: str) -> tuple:
    """What makes two rows the same file: the device and inode once links are followed (a symlinked
    alias folder, a hard link or another spelling of the path is the same file), or the resolved
    path when it cannot be read (a file pattern, a missing file)."""
    try:
        st = os.stat(path)
        return ("inode", st.st_dev, st.st_ino)
    except OSError:
        return ("path", os.path.normcase(os.path.realpath(path)))


def _check_repeated_paths(name: str, parsed: list[tuple], allow_overlap: bool) -> list[tuple]:
    """Drop repeats of a row (same file, labels and split), refuse a file with two labellings, and
    refuse (or, with ``allow_overlap``, warn about) a file in two splits. Files are compared by
    :func:`file_identity`, so an alias of a file is that file. Returns the kept rows."""
    groups: dict = {}
    for r in parsed:
        groups.setdefault(file_identity(r[1]), []).append(r)
    drop: set[int] = set()
    overlaps = []
    for rs in groups.values():
        if len(rs) < 2:
            continue
        first: dict = {}
        for r in rs:  # (line, path, kind, utility, private, split, id, tasks)
            key = (r[3], tuple(r[4]) if isinstance(r[4], list) else r[4], r[5], tuple(sorted(r[7].items())))
            if key in first:
                drop.add(r[0])
                logger.warning("%s: row %d repeats row %d (same file, labels and split); keeping one (remove the repeat)", name, r[0], first[key][0])
            else:
                first[key] = r
        kept = list(first.values())
        by_split: dict = {}
        for r in kept:
            by_split.setdefault(r[5], []).append(r)
        for split, same in by_split.items():
            if len(same) > 1:
                raise DataError(
                    f"{name}: {_rows_text([r[0] for r in same])} list the same file {same[0][6]} with different labels; "
                    f"keep one row with the right labels"
                )
        if len(by_split) > 1:
            overlaps.append(sorted(kept))
    if overlaps:
        first = overlaps[0]
        splits = " and ".join(str(r[5]) for r in first)
        more = f" ({len(overlaps) - 1} more files are in several splits)" if len(overlaps) > 1 else ""
        msg = f"{name}: {_rows_text([r[0] for r in first])} list {first[0][6]} in both {splits}, a leak between splits{more}"
        if not allow_overlap:
            raise DataError(f"{msg}; keep each file in one split (or pass --allow-overlap / data.params.allow_overlap=true to keep it)")
        logger.warning("!!! %s; kept because of --allow-overlap: scores on the overlapping splits are not independent", msg)
    return [r for r in parsed if r[0] not in drop]


def check_train_covers(name: str, train: list[Record], others: dict[str, list[Record]], utility_classes: list[str],
                       private_classes: list[str], multilabel: bool, tasks: dict[str, list[str]] | None = None) -> None:
    """Refuse a utility, private or task class (a positive attribute when ``multilabel``) that appears
    in val/test but has no train example: no model can learn it, so an attacker's score on it would
    make the release look more private than it is (and a task look harder than it is).

    Raises:
        DataError: naming the class, the split and its rows.
    """

    def classes(rec: Record, which: str) -> list[int]:
        if which == "utility":
            return [int(rec.utility)]
        if which.startswith("task:"):
            v = int((rec.tasks or {}).get(which[5:], UNLABELLED))
            return [v] if v != UNLABELLED else []
        if multilabel:
            return [i for i, v in enumerate(rec.private) if float(v) > 0.5]
        return [int(rec.private)]

    checks = [("utility", utility_classes), ("private", private_classes)]
    checks += [(f"task:{t}", cs) for t, cs in (tasks or {}).items()]
    for which, names in checks:
        seen = {c for rec in train for c in classes(rec, which)}
        for split, recs in others.items():
            missing: dict[int, list[str]] = {}
            for rec in recs:
                for c in classes(rec, which):
                    if c not in seen:
                        missing.setdefault(c, []).append(rec.where())
            if missing:
                c, where = next(iter(sorted(missing.items())))
                kind = "attribute" if which == "private" and multilabel else "class"
                lines = [w.rsplit(" row ", 1)[-1] for w in where]
                rows = _rows_text([int(n) if n.isdigit() else n for n in lines])
                raise DataError(
                    f"{name}: {which} {kind} {names[c]!r} has no train example but is in {split} ({rows}); "
                    f"no model can learn it: add train rows for it or remove those rows"
                )


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
    check_train_covers(csv_path.name, train, {"val": val, "test": test}, m["utility_classes"], m["private_classes"], m["multilabel"],
                       m["tasks"])
    meta = {"manifest": str(csv_path), "val_mode": val_mode, "rows": m["rows"], "skipped": list(m["skipped"]),
            "label_files": [str(csv_path)]}
    common = dict(utility_classes=m["utility_classes"], private_classes=m["private_classes"], multilabel=m["multilabel"], data_cfg=data_cfg, meta=meta,
                  tasks=m["tasks"])
    if video:
        store = m["store"]
        opts = video_options(data_cfg)
        store.size, store.resize = int(data_cfg.size), opts["resize"]
        store.cache_dir = Path(opts["cache_dir"]).expanduser() if opts["cache_dir"] else None
        return build_video_splits(name, train, val, test, seed=seed, store=store, defaults={"train_clips": 8}, **common)
    return build_image_splits(name, train, val, test, **common)
