"""From record lists to :class:`~privacam.data.base.Splits`: carving validation from train (by rows or
by time), the video options read from ``data.params`` (:data:`VIDEO_PARAMS`, documented in
``docs/datasets.md``), and the split builders shared by the manifest and the built-in datasets.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ...errors import ConfigError, DataError
from ..base import Splits, stratified_split
from .datasets import ImageDataset, Record, VideoClipDataset
from .store import FrameStore, default_cache_dir

logger = logging.getLogger(__name__)

#: data.params keys understood by every video dataset (documented in docs/datasets.md).
VIDEO_PARAMS = {
    "train_sampling": "clip strategy for train: random | sbu | uniform | dense | center (default random)",
    "eval_sampling": "clip strategy for val/test (default dense: evenly spaced contiguous clips)",
    "clips_per_video": "clips per train video and epoch (default 8 for manifests, 1 otherwise)",
    "test_clips_per_video": "clips per val/test video (default 4; short videos give fewer, at least 1)",
    "stride": "frame step inside a contiguous clip (default 1)",
    "short": "clips shorter than clip_len: loop | pad (default loop)",
    "resize": "resize | short_side_center_crop (default resize)",
    "cache_dir": "folder for uint8 memmap caches of decoded, resized videos (default off; true = ~/.cache/privacam)",
    "preload": "true | false | auto: decode every video once into memory (auto: below preload_max_frames)",
    "preload_max_frames": "auto-preload limit on the total number of frames (default 200000)",
    "preload_max_mb": "auto-preload limit on the memory of the resized frames in MiB (default 2048)",
}


def param(params: dict, key: str, default: Any, types: tuple = ()) -> Any:
    v = params.get(key, default)
    if types and v is not None and not isinstance(v, types):
        raise ConfigError(f"data.params.{key} must be {'/'.join(t.__name__ for t in types)}, got {v!r}")
    return v


def strata_key(rec: Record):
    p = rec.private
    if isinstance(p, (list, tuple, np.ndarray)):
        p = tuple(int(round(float(v))) for v in p)
    return (int(rec.utility), p)


def carve_val(
    train: list[Record],
    val_fraction: float,
    *,
    mode: str = "auto",
    seed: int = 0,
    video: bool = True,
    store: FrameStore | None = None,
    min_val_frames: int = 1,
    dataset: str = "",
) -> tuple[list[Record], list[Record], str]:
    """Carve a validation set from train records; returns (train, val, mode used).

    ``rows``: whole records, stratified on (utility, private). ``time``: the last ``val_fraction``
    of each train video's frames (keeps every identity/action in train when strata have a single
    video). ``auto``: ``time`` for videos when a stratum has fewer than 2 train records (or when
    rows would leave val empty), else ``rows``.
    """
    if val_fraction <= 0 or not train:
        return train, [], "none"
    if mode not in ("auto", "rows", "time"):
        raise ConfigError(f"data.params.val_mode {mode!r} is not one of auto, rows, time")
    if mode == "time" and not video:
        raise ConfigError("data.params.val_mode: time needs videos; use rows for images")
    keys = [strata_key(r) for r in train]
    if mode == "auto":
        counts: dict = {}
        for k in keys:
            counts[k] = counts.get(k, 0) + 1
        small = sum(1 for c in counts.values() if c < 2)
        if video and small:
            mode = "time"
            logger.info(
                "%s: %d of %d (utility, private) strata have fewer than 2 train videos; carving validation "
                "by time (the last %.0f%% of each train video)", dataset or "data", small, len(counts), 100 * val_fraction,
            )
        else:
            mode = "rows"
    if mode == "rows":
        tr, va = stratified_split(keys, [1 - val_fraction, val_fraction], seed=seed)
        if not va and not video:
            # every (utility, private) stratum has a single train row: take rows whose classes keep
            # another train example, so that validation exists and every class stays learnable
            tr, va = _carve_keeping_classes(train, max(1, round(val_fraction * len(train))), seed)
        if va or not video:
            logger.info("%s: no validation rows; carved %d of %d train rows as validation (stratified on the utility "
                        "and private labels)", dataset or "data", len(va), len(train))
            return [train[i] for i in tr], [train[i] for i in va], "rows"
        logger.info("%s: carving validation by rows left it empty; carving by time instead", dataset or "data")
        mode = "time"
    store = store or FrameStore(8)
    new_train, val = [], []
    for rec in train:
        n = store.num_frames(rec.path)
        end = n if rec.end is None else min(rec.end, n)
        length = end - rec.start
        m = int(round(length * val_fraction))
        m = min(max(m, min_val_frames), length - 1)
        if length < 2 or m < 1:
            new_train.append(rec)
            continue
        cut = end - m
        new_train.append(dataclasses.replace(rec, end=cut))
        val.append(dataclasses.replace(rec, start=cut, end=end, id=f"{rec.id}@val", video=rec.video or rec.id))
    logger.info("%s: no validation rows; carved the last %.0f%% of %d of %d train videos as validation (by time)",
                dataset or "data", 100 * val_fraction, len(val), len(train))
    return new_train, val, "time"


def _carve_keeping_classes(train: list[Record], n_val: int, seed: int) -> tuple[list[int], list[int]]:
    """Up to ``n_val`` train indices for validation, drawn in a seeded order from the largest strata
    first, each taken only when its utility class and its private classes keep a train example."""
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(train), generator=g).tolist()
    size: dict = {}
    for r in train:
        size[strata_key(r)] = size.get(strata_key(r), 0) + 1
    order.sort(key=lambda i: -size[strata_key(train[i])])  # stable: seeded order within a size

    def labels(r: Record) -> list:
        p = r.private
        ps = [("p", i) for i, v in enumerate(p) if float(v) > 0.5] if isinstance(p, (list, tuple, np.ndarray)) else [("p", int(p))]
        return [("u", int(r.utility))] + ps

    left: dict = {}
    for r in train:
        for c in labels(r):
            left[c] = left.get(c, 0) + 1
    val: list[int] = []
    for i in order:
        if len(val) >= n_val:
            break
        cs = labels(train[i])
        if all(left[c] > 1 for c in cs):
            for c in cs:
                left[c] -= 1
            val.append(i)
    chosen = set(val)
    return [i for i in range(len(train)) if i not in chosen], sorted(val)


def _check_nonempty(name: str, parts: dict, val_fraction: float) -> None:
    for split, recs in parts.items():
        if not recs and not (split == "val" and val_fraction <= 0):
            raise DataError(
                f"{name}: the {split} split is empty; give it samples (split column / split files) "
                f"or change data.val_fraction"
            )


def video_options(data_cfg, *, train_clips: int = 1, train_sampling: str = "random", eval_sampling: str = "dense", test_clips: int = 4) -> dict:
    p = dict(data_cfg.params or {})
    cache = p.get("cache_dir")
    if cache is True:
        cache = str(default_cache_dir())
    elif cache in (False, "", "off", "none", None):
        cache = None
    return {
        "train_sampling": str(p.get("train_sampling", train_sampling)),
        "eval_sampling": str(p.get("eval_sampling", eval_sampling)),
        "clips_per_video": int(p.get("clips_per_video", train_clips)),
        "test_clips_per_video": int(p.get("test_clips_per_video", test_clips)),
        "stride": int(p.get("stride", 1)),
        "short": str(p.get("short", "loop")),
        "resize": str(p.get("resize", "resize")),
        "cache_dir": cache,
        "preload": p.get("preload", "auto"),
        "preload_max_frames": int(p.get("preload_max_frames", 200_000)),
        "preload_max_mb": float(p.get("preload_max_mb", 2048)),
    }


def build_video_splits(
    name: str,
    train: list[Record],
    val: list[Record],
    test: list[Record],
    *,
    utility_classes: list[str],
    private_classes: list[str],
    multilabel: bool,
    data_cfg,
    seed: int = 0,
    defaults: dict | None = None,
    store: FrameStore | None = None,
    meta: dict | None = None,
    tasks: dict[str, list[str]] | None = None,
) -> Splits:
    """Wrap record lists into :class:`VideoClipDataset` splits sharing one :class:`FrameStore`.

    ``defaults`` overrides the defaults of :func:`video_options` (a dataset's own conventions);
    ``data_cfg.params`` overrides both. ``tasks``: the class names of the records' task labels.
    """
    _check_nonempty(name, {"train": train, "val": val, "test": test}, data_cfg.val_fraction)
    o = video_options(data_cfg, **(defaults or {}))
    store = store or FrameStore(data_cfg.size, o["resize"], o["cache_dir"])
    if store.cache_dir is None and o["cache_dir"]:
        store.cache_dir = Path(o["cache_dir"]).expanduser()
    pre = o["preload"]
    paths = list(dict.fromkeys(r.path for r in train + val + test))
    if pre == "auto":
        known = [store._counts.get(p) for p in paths]
        if all(k is not None for k in known):
            total = sum(known)
            nbytes = total * data_cfg.size * data_cfg.size * 3
            pre = total <= o["preload_max_frames"] and nbytes <= o["preload_max_mb"] * 2**20
            if pre:
                logger.info("%s: preloading %d videos (%d frames) into memory", name, len(paths), total)
        else:
            pre = False
    skipped = list((meta or {}).get("skipped", []))
    if pre:
        failed = store.preload(paths, skip_bad=data_cfg.on_bad_sample == "skip")
        if failed:  # skip means skip on the preloading path too: those videos leave every split
            bad = {p: f"{next((r.where() for r in train + val + test if r.path == p), p)}: {e}" for p, e in failed.items()}
            train, val, test = ([r for r in part if r.path not in failed] for part in (train, val, test))
            skipped += list(bad.values())
            check_skip(name, [], list(bad.values()), len(paths), "skip")
            _check_nonempty(name, {"train": train, "val": val, "test": test}, data_cfg.val_fraction)
    common = dict(clip_len=data_cfg.clip_len, size=data_cfg.size, stride=o["stride"], short=o["short"], store=store, on_bad_sample=data_cfg.on_bad_sample)
    tr = VideoClipDataset(train, strategy=o["train_sampling"], clips_per_video=o["clips_per_video"], seed=seed, **common)
    ev = dict(strategy=o["eval_sampling"], clips_per_video=o["test_clips_per_video"], seed=seed + 1, **common)
    return Splits(
        train=tr,
        val=VideoClipDataset(val, **ev),
        test=VideoClipDataset(test, **ev),
        utility_classes=list(utility_classes),
        private_classes=list(private_classes),
        multilabel=multilabel,
        kind="video",
        name=name,
        meta={"options": o, "videos": {"train": len(train), "val": len(val), "test": len(test)}, **(meta or {}), "skipped": skipped},
        tasks=dict(tasks or {}),
    )


def build_image_splits(
    name: str,
    train: list[Record],
    val: list[Record],
    test: list[Record],
    *,
    utility_classes: list[str],
    private_classes: list[str],
    multilabel: bool,
    data_cfg,
    meta: dict | None = None,
    tasks: dict[str, list[str]] | None = None,
) -> Splits:
    """Wrap record lists into :class:`ImageDataset` splits (``params.preload``: auto below 20,000 images
    of at most 64x64, else off)."""
    _check_nonempty(name, {"train": train, "val": val, "test": test}, data_cfg.val_fraction)
    p = data_cfg.params or {}
    resize = str(p.get("resize", "resize"))
    pre = p.get("preload", "auto")
    n = len(train) + len(val) + len(test)
    if pre == "auto":
        pre = n * data_cfg.size * data_cfg.size * 3 <= 20_000 * 64 * 64 * 3
    kw = dict(size=data_cfg.size, resize=resize, preload=bool(pre), on_bad_sample=data_cfg.on_bad_sample)
    parts = {"train": ImageDataset(train, **kw), "val": ImageDataset(val, **kw), "test": ImageDataset(test, **kw)}
    skipped = list((meta or {}).get("skipped", [])) + [e for ds in parts.values() for e in ds.skipped]
    if any(ds.skipped for ds in parts.values()):
        logger.warning("%s: skipped %d of %d images while preloading (data.on_bad_sample: skip)", name,
                       sum(len(ds.skipped) for ds in parts.values()), n)
    return Splits(
        train=parts["train"],
        val=parts["val"],
        test=parts["test"],
        utility_classes=list(utility_classes),
        private_classes=list(private_classes),
        multilabel=multilabel,
        kind="image",
        name=name,
        meta={"images": {k: len(ds) for k, ds in parts.items()}, **(meta or {}), "skipped": skipped},
        tasks=dict(tasks or {}),
    )


def split_records(records: list[Record], fractions: Sequence[float], seed: int = 0) -> list[list[Record]]:
    """Deterministic split of records stratified on (utility, private)."""
    parts = stratified_split([strata_key(r) for r in records], list(fractions), seed=seed)
    return [[records[i] for i in part] for part in parts]


def check_skip(name: str, records: list, bad: list[str], total: int, on_bad_sample: str) -> None:
    """Raise the first problem (``error``) or log each and the summary (``skip``)."""
    if not bad:
        return
    if on_bad_sample != "skip":
        raise DataError(bad[0])
    for b in bad:
        logger.warning("skipping: %s", b)
    logger.warning("%s: skipped %d of %d samples (data.on_bad_sample: skip)", name, len(bad), total)
