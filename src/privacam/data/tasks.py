"""Task labels derived from the frames of a manifest's videos: where the person stands and how much
they move (``docs/tasks.md``). These label tasks a release was never trained for (``task:<name>``
columns of a manifest, ``docs/datasets.md``) on footage that has none, such as Weizmann.

The person is found in every frame as the pixels whose colour differs from the **median of their
row** (:func:`silhouettes`). In a static shot of one person before a wall the wall is the same along a
row, and the person covers a small part of it, so the row median is the wall. (A per-video median
over time would keep the person too: in Weizmann the body stands still and only the limbs move.) The
mask is cleaned by a 2x2 opening and reduced to its largest connected part, the body.

Per manifest row (one video or video segment), :func:`measure_video` gives:

- ``stand_x``: where the person stands: the horizontal centre of the lower half of the body (the
  legs, which stay put while arms wave and the trunk bends), as a share of the frame width, the
  median over frames;
- ``motion``: how much the person moves: the share of the body's pixels that change between
  consecutive frames (``|m_t XOR m_t-1|`` over the mean body area), averaged over the video. It
  grows with both the tempo and the amplitude of the motion, and does not depend on the contrast of
  the clothes against the wall (the masks are binary).

:func:`derive_tasks` bins each measure at its median **within each utility class** (the action):
``position`` = ``left`` below the median, ``right`` at or above it; ``motion`` = ``low`` / ``high``.
Within-class medians keep the tasks from restating the action (in Weizmann people stand further
left to bend, and a jumping jack moves more than a wave), so a release that keeps only the action
answers them at chance. Limits: one label per manifest row (every clip of a video segment shares it,
though the person may move within it); the measures assume a static camera, one person and a
background that is even along rows.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..errors import DataError

log = logging.getLogger(__name__)

#: task name -> (the measure it bins, [class below the median, class at or above it])
DERIVED_TASKS = {
    "position": ("stand_x", ["left", "right"]),
    "motion": ("motion", ["low", "high"]),
}


def silhouettes(frames: np.ndarray, threshold: float = 0.3) -> np.ndarray:
    """The person in every frame: a boolean mask ``[T,H,W]``.

    Args:
        frames: uint8 ``[T,H,W,3]`` (or float in [0, 1]).
        threshold: a pixel is the person where the sum over RGB of its absolute difference from its
            row's median colour exceeds this (values in [0, 1], so at most 3). 0.3 keeps the wall's
            texture out and the body in on Weizmann (``docs/tasks.md``).
    """
    from scipy import ndimage

    a = frames.astype(np.float32) / 255.0 if frames.dtype == np.uint8 else frames.astype(np.float32)
    diff = np.abs(a - np.median(a, axis=2, keepdims=True)).sum(-1)
    out = np.zeros(diff.shape, dtype=bool)
    for t in range(len(diff)):
        m = ndimage.binary_opening(diff[t] > threshold, structure=np.ones((2, 2), dtype=bool))
        lab, n = ndimage.label(m)
        if n:
            sizes = np.bincount(lab.ravel())[1:]
            out[t] = lab == 1 + int(np.argmax(sizes))
    return out


def measure_video(frames: np.ndarray, threshold: float = 0.3) -> dict:
    """``stand_x``, ``motion`` and the mean body ``area`` (share of the frame) of one video, and how
    many frames had no body (``empty``). ``stand_x`` and ``motion`` are NaN when no frame (no
    consecutive pair) shows a body."""
    masks = silhouettes(frames, threshold)
    t, h, w = masks.shape
    xs = []
    for m in masks:
        ys, cols = np.nonzero(m)
        if not len(ys):
            continue
        low = ys >= (ys.min() + ys.max()) / 2
        xs.append(float((cols[low] + 0.5).mean() / w))
    area = masks.mean((1, 2))
    both = (area[1:] > 0) & (area[:-1] > 0)
    if both.any():
        change = np.logical_xor(masks[1:], masks[:-1]).mean((1, 2))[both]
        motion = float((change / ((area[1:] + area[:-1])[both] / 2)).mean())
    else:
        motion = float("nan")
    return {"stand_x": float(np.median(xs)) if xs else float("nan"), "motion": motion,
            "area": float(area.mean()), "frames": int(t), "empty": int((area == 0).sum())}


def bin_at_median(values: list[float], groups: list[str] | None = None) -> tuple[list[int], dict[str, float]]:
    """0 below the median of a value's group, 1 at or above it; returns the bins and each group's
    median (one group, ``"all"``, without ``groups``)."""
    groups = groups if groups is not None else ["all"] * len(values)
    medians = {g: float(np.median([v for v, k in zip(values, groups) if k == g])) for g in dict.fromkeys(groups)}
    return [int(v >= medians[g]) for v, g in zip(values, groups)], medians


def derive_tasks(manifest_csv: str | Path, *, threshold: float = 0.3, within: str | None = "utility",
                 absolute_paths: bool = True) -> tuple[list[dict], dict]:
    """Task columns for every row of a video manifest, from its frames (module docstring).

    Args:
        manifest_csv: a manifest of videos or frame folders (``docs/datasets.md``).
        threshold: of :func:`silhouettes`.
        within: the column whose classes get their own medians (``None``: one median over all rows).
        absolute_paths: write every ``path`` as an absolute path (the derived manifest can then live
            anywhere, pointing into the original frames).

    Returns:
        the rows (the manifest's columns, an ``id`` column (the row's id, else its path as written,
        so samples keep their names) and ``task:position`` / ``task:motion``), and a record of the
        derivation: the measures of every row, the medians and the class counts per task.

    Raises:
        DataError: a row whose frames cannot be read, or in which no body is found.
    """
    from .manifest import _read_rows
    from .video import decode_frames, kind_of_path

    csv_path = Path(manifest_csv).expanduser()
    header, rows = _read_rows(csv_path)
    if "path" not in header:
        raise DataError(f"{csv_path.name}: no path column; derive_tasks needs a manifest (docs/datasets.md)")
    if within and within not in header:
        raise DataError(f"{csv_path.name}: no {within} column to bin within; pass within=None for one median over all rows")
    clash = [f"task:{t}" for t in DERIVED_TASKS if f"task:{t}" in header]
    if clash:
        raise DataError(f"{csv_path.name} already has {', '.join(clash)}; derive from a manifest without them")
    from tqdm.auto import tqdm

    measures = []
    for line, row in tqdm(rows, desc="derive tasks", leave=False, disable=None):
        p = Path(row.get("path", ""))
        p = p if p.is_absolute() else csv_path.parent / p
        if kind_of_path(p) not in ("video", "frames"):
            raise DataError(f"{csv_path.name} row {line}: {row.get('path')!r} is not a video or a folder of frames; "
                            f"tasks are derived from videos only")
        try:
            m = measure_video(decode_frames(p), threshold)
        except DataError as e:
            raise DataError(f"{csv_path.name} row {line}: {e}") from None
        if not np.isfinite(m["stand_x"]) or not np.isfinite(m["motion"]):
            raise DataError(f"{csv_path.name} row {line}: no person found in {row.get('path')!r} (threshold {threshold}); "
                            f"the derivation needs a static camera and one person before an even background")
        measures.append({"row": line, "path": str(p.resolve()) if absolute_paths else row["path"],
                         "id": row.get("id") or row["path"], **({within: row[within]} if within else {}), **m})
    groups = [m[within] for m in measures] if within else None
    out_rows = [dict(r) for _, r in rows]
    record: dict = {"manifest": str(csv_path), "threshold": threshold, "within": within, "tasks": {}, "rows": measures}
    for task, (key, classes) in DERIVED_TASKS.items():
        bins, medians = bin_at_median([m[key] for m in measures], groups)
        for r, b in zip(out_rows, bins):
            r[f"task:{task}"] = classes[b]
        counts: dict = {}
        for r, m in zip(out_rows, measures):
            g = m[within] if within else "all"
            split = r.get("split", "all") or "all"
            c = counts.setdefault(g, {}).setdefault(split, {k: 0 for k in classes})
            c[r[f"task:{task}"]] += 1
        record["tasks"][task] = {"measure": key, "classes": classes, "medians": medians, "counts": counts}
        small = [g for g in medians if sum(1 for k in (groups or ["all"] * len(bins)) if k == g) < 2]
        if small:
            log.warning("%s: %s of %s has a single row: its median is its own value", csv_path.name, task, ", ".join(small))
    for r, m in zip(out_rows, measures):
        r["id"] = m["id"]
        r["path"] = m["path"]
    return out_rows, record


def write_manifest(rows: list[dict], out_csv: str | Path) -> Path:
    """Write manifest rows (dicts with the same keys) as a CSV; ``path`` first, task columns last."""
    import csv

    out = Path(out_csv)
    out.parent.mkdir(parents=True, exist_ok=True)
    keys = list(rows[0])
    cols = ["path"] + [k for k in keys if k != "path" and not k.startswith("task:")] + [k for k in keys if k.startswith("task:")]
    tmp = out.with_suffix(out.suffix + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    tmp.replace(out)
    return out


__all__ = ["DERIVED_TASKS", "bin_at_median", "derive_tasks", "measure_video", "silhouettes", "write_manifest"]
