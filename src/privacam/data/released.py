"""Released data from any anonymiser: a manifest of the same rows as the raw one, pointing at what a
tool (face blurring, a GAN anonymiser, a codec, a user's own network) has released.

``RELEASED.csv`` has the columns of the raw manifest (``docs/datasets.md``): every raw row once, with
the same id, labels and split; only ``path`` differs (an anonymised video, frame folder or image).
Rows are paired by the ``id`` column when both manifests have one, else by the file name without its
extension (``frames/actor0_bend_test`` and ``released/actor0_bend_test.mp4`` pair), else by row order.
A video release keeps every frame: its frame count is the raw one's.

Task columns (``task:<name>``) are labels of the raw clips: the audit reads them from the raw
manifest, so the released one may leave them out. Where it has a task column of the raw manifest it
must agree row by row (a release keeps the raw labels); a task column the raw manifest lacks is
ignored, with a warning.

:func:`released_splits` gives the raw :class:`~privacam.data.base.Splits` and the released ones: the
same datasets (same clips, same split, same validation carve-out), reading the released files. The
audit (``privacam evaluate --released``) trains its attackers on the latter and takes the raw
reference from the former.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from pathlib import Path

from ..errors import DataError
from ..utils import same_file
from .base import Splits
from .manifest import _read_rows
from .video import FrameStore, kind_of_path

log = logging.getLogger(__name__)

_LABEL_COLS = ("utility", "private", "split")


def _key(path) -> str:
    """A raw file as both manifests' readers name it (absolute, resolved)."""
    return str(Path(path).expanduser().resolve())


def _split_of(v: str) -> str:
    v = v.strip().lower()
    return "val" if v == "validation" else v


def _keys(csv: Path, header: list[str], rows: list[tuple[int, dict]]) -> tuple[list[str], str]:
    """One pairing key per row and what it is (``id``, ``name`` or ``row``)."""
    if "id" in header:
        return [r.get("id") or r.get("path", "") for _, r in rows], "id"
    names = [Path(r.get("path", "")).stem or r.get("path", "") for _, r in rows]
    return names, "name"


def pair_manifests(raw_csv: str | Path, released_csv: str | Path) -> dict:
    """Check that ``released_csv`` releases exactly the rows of ``raw_csv``; returns the pairing.

    Raises:
        DataError: one line naming the first row that differs (a missing or extra row, another
            label or split, another frame count) and the fix.

    Returns:
        ``{"paths": {raw absolute path: released absolute path}, "rows": n, "paired_by": how,
        "frames": {raw path: frame count}}``.
    """
    raw_csv, released_csv = Path(raw_csv).expanduser(), Path(released_csv).expanduser()
    rname, lname = raw_csv.name, released_csv.name
    if same_file(raw_csv, released_csv) or raw_csv.resolve() == released_csv.resolve():  # a link to it is it
        raise DataError(f"{lname} is the raw manifest itself; give the manifest of the released files (--released)")
    rh, rrows = _read_rows(raw_csv)
    lh, lrows = _read_rows(released_csv)
    label_cols = [c for c in rh if c in _LABEL_COLS or c.startswith("private:")]
    missing_cols = [c for c in label_cols + ["path"] if c not in lh]
    if missing_cols:
        raise DataError(f"{lname}: missing column(s) {', '.join(missing_cols)} of {rname} (header is {','.join(lh)}); "
                        f"a released manifest has the raw manifest's columns, with path pointing at the released files")
    label_cols += [c for c in rh if c.startswith("task:") and c in lh]  # task labels: optional, but if given, the raw ones
    extra = [c for c in lh if c.startswith("task:") and c not in rh]
    if extra:
        log.warning("%s: column(s) %s are not in %s and are ignored: task labels are read from the raw manifest "
                    "(add the column there to audit the task)", lname, ", ".join(extra), rname)
    rkeys, how = _keys(raw_csv, rh, rrows)
    lkeys, lhow = _keys(released_csv, lh, lrows)
    if how != lhow:
        which, other = (rname, lname) if how == "id" else (lname, rname)
        raise DataError(f"{which} has an id column and {other} has none; give both manifests the same ids")
    if len(set(rkeys)) != len(rkeys) or len(set(lkeys)) != len(lkeys):
        how = "row"  # names repeat (e.g. every video is clip.mp4 in its own folder): pair by row order
        rkeys = [str(i) for i in range(len(rrows))]
        lkeys = [str(i) for i in range(len(lrows))]
    lindex = {k: i for i, k in enumerate(lkeys)}
    rset = set(rkeys)
    what = {"id": "id", "name": "file name", "row": "row"}[how]
    for i, k in enumerate(rkeys):
        if k not in lindex:
            line, row = rrows[i]
            shown = f"{what} {k!r}" if how != "row" else f"path {row.get('path', '')!r}"
            raise DataError(f"{lname}: no row for {rname} row {line} ({shown}); a release has every raw row "
                            f"(same {what}s, labels and split): add it")
    for j, k in enumerate(lkeys):
        if k not in rset:
            line, row = lrows[j]
            raise DataError(f"{lname} row {line} ({what} {k!r}) is not in {rname}; remove it, or give it the {what} of a raw row")
    paths: dict[str, str] = {}
    pairs = []
    for i, k in enumerate(rkeys):
        rline, rrow = rrows[i]
        lline, lrow = lrows[lindex[k]]
        for c in label_cols:
            a, b = rrow.get(c, ""), lrow.get(c, "")
            if c == "split":
                a, b = _split_of(a), _split_of(b)
            if a != b:
                raise DataError(f"{lname} row {lline} ({what} {k!r}): {c} is {lrow.get(c, '')!r} but {rname} row {rline} "
                                f"says {rrow.get(c, '')!r}; a release keeps the raw labels and split")
        if not lrow.get("path"):
            raise DataError(f"{lname} row {lline} ({what} {k!r}): empty path; point it at the released file")
        rp, lp = Path(rrow.get("path", "")), Path(lrow["path"])
        rp = rp if rp.is_absolute() else raw_csv.parent / rp
        lp = lp if lp.is_absolute() else released_csv.parent / lp
        if not lp.exists():
            raise DataError(f"{lname} row {lline} ({what} {k!r}): file {lrow['path']} does not exist; "
                            f"fix the path (relative to {lname}) or release that row")
        if _key(rp) in paths:
            raise DataError(f"{rname} row {rline}: path {rrow.get('path')} appears twice; one row per raw file")
        paths[_key(rp)] = str(lp)
        pairs.append((rline, lline, k, rp, lp))
    # a video release keeps every frame (and an image release is an image)
    store = FrameStore(8)
    frames = {}
    for rline, lline, k, rp, lp in pairs:
        rk, lk = kind_of_path(rp), kind_of_path(lp)
        if (rk == "image") != (lk == "image"):
            raise DataError(f"{lname} row {lline} ({what} {k!r}): {lp.name} is {'an image' if lk == 'image' else 'a video'} "
                            f"but {rname} row {rline} is {'an image' if rk == 'image' else 'a video'}; release the same kind")
        if rk == "image":
            continue
        try:
            n_raw = store.num_frames(str(rp))
        except DataError:
            continue  # the raw manifest's own check names this row
        try:
            n_rel = store.num_frames(str(lp))
        except DataError as e:
            raise DataError(f"{lname} row {lline} ({what} {k!r}): {e}") from None
        if n_rel != n_raw:
            raise DataError(f"{lname} row {lline} ({what} {k!r}): {n_rel} frames but {rname} row {rline} has {n_raw}; "
                            f"a release keeps every frame (same length): release the whole video")
        frames[_key(rp)] = n_raw
    log.info("%s pairs with %s: %d rows by %s", lname, rname, len(pairs), what)
    return {"paths": paths, "rows": len(pairs), "paired_by": how, "frames": frames}


def _swap(ds, paths: dict[str, str], store_for, released_csv: str):
    """A copy of the dataset ``ds`` reading the released file of each record."""
    if not hasattr(ds, "records"):
        raise DataError(f"--released needs a manifest (or a dataset of files) as --data; {type(ds).__name__} holds no files")
    out = copy.copy(ds)
    recs = []
    for r in ds.records:
        p = paths.get(_key(r.path))
        if p is None:
            raise DataError(f"{r.where()}: no released file for {r.path}; add its row to {released_csv}")
        recs.append(dataclasses.replace(r, path=p, source=f"{Path(released_csv).name} (release of {r.where()})"))
    out.records = recs
    if hasattr(ds, "store"):
        out.store = store_for(ds.store)
    if getattr(ds, "memory", None) is not None:  # preloaded images: read the released ones
        import numpy as np

        out.memory = np.stack([out._read(r) for r in recs])
    if hasattr(out, "_reads"):
        out._reads = {}
    return out


def released_splits(raw: Splits, released_csv: str | Path, pairing: dict) -> Splits:
    """The splits of the release: ``raw``'s datasets (same items, clips, split and validation
    carve-out) reading the released files of ``pairing`` (:func:`pair_manifests`)."""
    stores: dict[int, FrameStore] = {}

    def store_for(s: FrameStore) -> FrameStore:
        if id(s) not in stores:
            new = FrameStore(s.size, s.resize, s.cache_dir)
            for rp, n in pairing["frames"].items():
                new.set_num_frames(pairing["paths"][rp], n)
            stores[id(s)] = new
            if s.memory:  # the raw frames were preloaded: preload the released ones too
                new.preload([pairing["paths"][_key(p)] for p in s.memory if _key(p) in pairing["paths"]])
        return stores[id(s)]

    out = copy.copy(raw)
    for k in ("train", "val", "test"):
        setattr(out, k, _swap(getattr(raw, k), pairing["paths"], store_for, str(released_csv)))
    out.privacy = None
    out.name = f"{raw.name}"
    out.meta = {**raw.meta, "released": str(released_csv)}
    return out


__all__ = ["pair_manifests", "released_splits"]
