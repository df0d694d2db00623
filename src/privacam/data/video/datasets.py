"""The generic datasets over records: :class:`VideoClipDataset` (one clip per item) and
:class:`ImageDataset`, yielding the sample dicts of the data contract. A :class:`Record` is one sample
source (a video, a frame folder or an image) and its labels.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ...errors import ConfigError, DataError
from .decoding import RESIZE_MODES, load_image, resize_frames
from .sampling import SHORT_MODES, STRATEGIES, clip_rng, sample_indices
from .store import FrameStore

logger = logging.getLogger(__name__)


@dataclass
class Record:
    """One sample source: a video / frame folder / image and its labels.

    ``start``/``end`` (frame indices, end exclusive) restrict a video to a segment (time-carved
    validation, KTH sequences, IPN gestures). ``box`` (x, y, w, h) crops an image. ``source`` names
    where the record came from ("manifest.csv row 7") for error messages. ``video`` names the
    recording the segment was cut from (default: ``id``); samples carry it as ``"video"``, so the
    audit can pool the clips of one video and keep its selection split off the training videos.
    ``tasks`` (task name -> label, ``-1`` = unlabelled) are labels of further tasks; samples carry
    them as ``"tasks"`` when there are any.
    """

    path: str
    utility: int
    private: Any
    id: str
    start: int = 0
    end: int | None = None
    source: str = ""
    box: tuple | None = None
    video: str | None = None
    tasks: dict | None = None

    @classmethod
    def of(cls, r: Any) -> "Record":
        if isinstance(r, Record):
            return r
        if isinstance(r, dict):
            return cls(**r)
        return cls(*r)

    def where(self) -> str:
        return self.source or str(self.path)


def _to_float(a: np.ndarray, axes: tuple) -> torch.Tensor:
    """uint8 channels-last array -> float32 channels-first tensor in [0,1] (in NumPy: no torch
    intra-op threads for these small per-sample conversions)."""
    x = np.ascontiguousarray(a.transpose(axes), dtype=np.float32)
    x *= np.float32(1.0 / 255.0)
    return torch.from_numpy(x)


def _label(private: Any):
    if isinstance(private, (list, tuple, np.ndarray)):
        return torch.as_tensor(np.asarray(private, dtype=np.float32))
    if isinstance(private, torch.Tensor):
        return private.float() if private.dim() else private.long()
    return torch.tensor(int(private))


def _with_tasks(sample: dict, rec: Record) -> dict:
    """Add the record's task labels (``"tasks": {name: 0-dim long tensor}``) when it has any."""
    if rec.tasks:
        sample["tasks"] = {k: torch.tensor(int(v)) for k, v in rec.tasks.items()}
    return sample


class _SkipMixin:
    on_bad_sample: str = "error"
    records: list[Record]

    def _guarded(self, i: int, fn):
        if self.on_bad_sample != "skip":
            return fn(i)
        n = len(self)
        for k in range(min(n, 20)):
            j = (i + k) % n
            try:
                return fn(j)
            except DataError as e:
                logger.warning("skipping a bad sample: %s", e)
                seen = self.__dict__.setdefault("skipped", [])
                if str(e) not in seen:  # counted once, however often it is drawn
                    seen.append(str(e))
        raise DataError(f"{type(self).__name__}: 20 consecutive samples failed to load; fix the data (see the warnings above)")


class VideoClipDataset(_SkipMixin, Dataset):
    """One clip per item from a list of video records.

    Item ``i`` is clip ``k`` of record ``r`` (``clips_per_video`` items per record, fewer for short
    videos in deterministic mode). Random strategies draw from :func:`clip_rng` with
    ``(seed, epoch, i)``; call :meth:`set_epoch` each epoch (without it, the epoch of an item is the
    number of times it was read in this process, so a plain loop still sees new clips each epoch).

    Args:
        records: :class:`Record` objects or ``(path, utility, private, id[, start, end])`` tuples.
        clip_len, size: T and H = W of the output ``[3,T,H,W]`` float clip in [0,1].
        strategy: see :func:`sample_indices`.
        clips_per_video: clips per record per epoch.
        store: a shared :class:`FrameStore` (default: a new one without disk cache).
        frame_counts: optional ``{path: N}`` known frame counts (saves probing).
    """

    def __init__(
        self,
        records: Sequence,
        clip_len: int = 16,
        size: int = 112,
        *,
        strategy: str = "random",
        clips_per_video: int = 1,
        stride: int = 1,
        short: str = "loop",
        resize: str = "resize",
        store: FrameStore | None = None,
        seed: int = 0,
        on_bad_sample: str = "error",
        deterministic_counts: bool | None = None,
    ):
        if strategy not in STRATEGIES:
            raise ConfigError(f"clip sampling strategy {strategy!r} is not one of {', '.join(STRATEGIES)}")
        if short not in SHORT_MODES:
            raise ConfigError(f"data.params.short {short!r} is not one of {', '.join(SHORT_MODES)}")
        self.records = [Record.of(r) for r in records]
        self.clip_len, self.size = int(clip_len), int(size)
        self.strategy, self.stride, self.short = strategy, max(1, int(stride)), short
        self.clips_per_video = max(1, int(clips_per_video))
        self.store = store or FrameStore(size, resize)
        self.seed, self.epoch, self.on_bad_sample = int(seed), None, on_bad_sample
        self._reads: dict[int, int] = {}
        # items: (record index, clip k, clips of that record)
        det = strategy in ("dense", "uniform", "center") if deterministic_counts is None else deterministic_counts
        self.items: list[tuple[int, int, int]] = []
        for r, rec in enumerate(self.records):
            K = self.clips_per_video
            if det and K > 1 and strategy != "center":
                n = self.segment_length(rec)
                distinct = max(1, n - ((self.clip_len - 1) * self.stride + 1) + 1) if strategy == "dense" else max(1, n)
                K = min(K, distinct)
            elif strategy == "center":
                K = 1
            self.items.extend((r, k, K) for k in range(K))

    def segment_length(self, rec: Record) -> int:
        n = self.store.num_frames(rec.path)
        end = n if rec.end is None else min(rec.end, n)
        return max(0, end - max(rec.start, 0))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.items)

    def clip_indices(self, i: int, epoch: int = 0) -> np.ndarray:
        """The frame indices (in the file) of item ``i`` at ``epoch``."""
        r, k, K = self.items[i]
        rec = self.records[r]
        n = self.segment_length(rec)
        if n < 1:
            raise DataError(f"{rec.where()}: clip with zero frames (segment {rec.start}:{rec.end} of {rec.path}); fix or remove the sample")
        rng = clip_rng(self.seed, epoch, i) if self.strategy in ("random", "sbu") else None
        idx = sample_indices(n, self.clip_len, self.strategy, rng=rng, clip=k, num_clips=K, stride=self.stride, short=self.short)
        return idx + max(rec.start, 0)

    def _load(self, i: int) -> dict:
        r = self.items[i][0]
        rec = self.records[r]
        if self.epoch is None:
            epoch = self._reads.get(i, 0)
            self._reads[i] = epoch + 1
        else:
            epoch = self.epoch
        try:
            idx = self.clip_indices(i, epoch)
            frames = self.store.frames(rec.path, idx)
        except DataError as e:
            msg = str(e)
            raise DataError(msg if rec.source == "" or rec.source in msg else f"{rec.source}: {msg}") from None
        x = _to_float(frames, (3, 0, 1, 2))
        out = {"input": x, "utility": torch.tensor(int(rec.utility)), "private": _label(rec.private),
               "id": f"{rec.id}#{self.items[i][1]}" if self.items[i][2] > 1 else rec.id, "video": rec.video or rec.id}
        return _with_tasks(out, rec)

    def __getitem__(self, i: int) -> dict:
        return self._guarded(i, self._load)


class ImageDataset(_SkipMixin, Dataset):
    """Images from a list of records as ``[3,size,size]`` float in [0,1].

    ``preload`` reads every image once into a uint8 array (for small sets).
    """

    def __init__(
        self,
        records: Sequence,
        size: int = 112,
        *,
        resize: str = "resize",
        preload: bool = False,
        on_bad_sample: str = "error",
    ):
        if resize not in RESIZE_MODES:
            raise ConfigError(f"data.params.resize {resize!r} is not one of {', '.join(RESIZE_MODES)}")
        self.records = [Record.of(r) for r in records]
        self.size, self.resize, self.on_bad_sample = int(size), resize, on_bad_sample
        self.memory: np.ndarray | None = None
        self.skipped: list[str] = []
        if preload and self.records:
            arrays, kept = [], []
            for r in self.records:
                try:
                    arrays.append(self._read(r))
                    kept.append(r)
                except DataError as e:
                    if on_bad_sample != "skip":
                        raise
                    logger.warning("skipping: %s", e)
                    self.skipped.append(str(e))
            if not kept:
                raise DataError(f"every one of the {len(self.records)} images failed to load; fix the data (see the warnings above)")
            self.records = kept
            self.memory = np.stack(arrays)

    def _read(self, rec: Record) -> np.ndarray:
        try:
            img = load_image(rec.path, rec.box)
        except DataError as e:
            raise DataError(f"{rec.source}: {e}" if rec.source else str(e)) from None
        return resize_frames(img[None], self.size, self.resize)[0]

    def __len__(self) -> int:
        return len(self.records)

    def _load(self, i: int) -> dict:
        rec = self.records[i]
        img = self.memory[i] if self.memory is not None else self._read(rec)
        x = _to_float(img, (2, 0, 1))
        return _with_tasks({"input": x, "utility": torch.tensor(int(rec.utility)), "private": _label(rec.private), "id": rec.id}, rec)

    def __getitem__(self, i: int) -> dict:
        return self._guarded(i, self._load)
