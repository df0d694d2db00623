"""Reading real footage: decoding, clip sampling, resizing, caching, generic datasets.

Everything a video or image loader needs lives here, so the manifest and the built-in datasets are
thin factories that only turn their label files into :class:`Record` lists:

- :func:`decode_frames` reads a video file (mp4/avi/webm/..., through PyAV) or a folder of frames
  (png/jpg, sorted by name) into uint8 ``[T,H,W,3]``, optionally only some frame indices (a video is
  decoded sequentially up to the last wanted frame, and only wanted frames are converted to RGB).
- :func:`sample_indices` picks the frames of one clip by a named strategy (``random``, ``sbu``,
  ``uniform``, ``dense``, ``center``), deterministic given ``(seed, epoch, index)``; clips shorter
  than ``clip_len`` are looped (default) or padded with their last frame.
- :func:`resize_frames` brings frames to ``size x size`` (``resize`` squashes,
  ``short_side_center_crop`` keeps the aspect ratio and crops the centre).
- :class:`FrameStore` holds decoded, resized videos: in memory (``preload``) and/or as uint8
  ``.npy`` memmap files in a cache folder, keyed by a hash of path + mtime + size + settings, so that
  epochs after the first never decode again.
- :class:`VideoClipDataset` and :class:`ImageDataset` yield the sample dicts of the data contract;
  :func:`build_video_splits` / :func:`build_image_splits` turn record lists into :class:`Splits`.

Parameters read from ``data_cfg.params`` are listed in :data:`VIDEO_PARAMS` and ``docs/datasets.md``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import ConfigError, DataError
from .base import Splits, stratified_split

logger = logging.getLogger(__name__)

VIDEO_EXTS = {".mp4", ".avi", ".webm", ".mkv", ".mov", ".mpg", ".mpeg", ".m4v", ".wmv", ".flv", ".ogv"}
IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
STRATEGIES = ("random", "sbu", "uniform", "dense", "center")
RESIZE_MODES = ("resize", "short_side_center_crop")
SHORT_MODES = ("loop", "pad")

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


# ---------------------------------------------------------------------------------------- records
@dataclass
class Record:
    """One sample source: a video / frame folder / image and its labels.

    ``start``/``end`` (frame indices, end exclusive) restrict a video to a segment (time-carved
    validation, KTH sequences, IPN gestures). ``box`` (x, y, w, h) crops an image. ``source`` names
    where the record came from ("manifest.csv row 7") for error messages. ``video`` names the
    recording the segment was cut from (default: ``id``); samples carry it as ``"video"``, so the
    audit can pool the clips of one video and keep its selection split off the training videos.
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

    @classmethod
    def of(cls, r: Any) -> "Record":
        if isinstance(r, Record):
            return r
        if isinstance(r, dict):
            return cls(**r)
        return cls(*r)

    def where(self) -> str:
        return self.source or str(self.path)


def kind_of_path(path: str | Path) -> str:
    """``"image"``, ``"video"`` (a video file) or ``"frames"`` (a folder) from the path alone."""
    p = Path(path)
    if p.is_dir() or _is_glob(p):
        return "frames"
    ext = p.suffix.lower()
    if ext in IMAGE_EXTS:
        return "image"
    if ext in VIDEO_EXTS:
        return "video"
    return "unknown"


# ---------------------------------------------------------------------------------------- decoding
def _natural_key(name: str):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def _is_glob(p: Path) -> bool:
    return "*" in p.name or "?" in p.name


def list_frame_files(folder: str | Path) -> list[Path]:
    """Image files of a frame folder, sorted by name (numbers compared as numbers).

    ``folder`` may end in a file pattern (``run/rgb_*.png``) to pick some files of a folder.
    """
    import fnmatch

    folder = Path(folder)
    pattern = None
    if _is_glob(folder):
        folder, pattern = folder.parent, folder.name
    try:
        names = [
            e.name for e in os.scandir(folder)
            if e.is_file() and Path(e.name).suffix.lower() in IMAGE_EXTS and (pattern is None or fnmatch.fnmatch(e.name, pattern))
        ]
    except OSError as e:
        raise DataError(f"{folder}: cannot list frame folder ({e.strerror}); fix the path") from None
    return [folder / n for n in sorted(names, key=_natural_key)]


def load_image(path: str | Path, box: tuple | None = None) -> np.ndarray:
    """An image file as uint8 RGB ``[H,W,3]`` (grey, palette, RGBA, 16-bit all converted)."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            if im.mode == "P":
                im = im.convert("RGBA")
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                a = np.asarray(im, dtype=np.float64)
                a = (a / max(a.max(), 1.0) * 255.0).astype(np.uint8)
                im = Image.fromarray(a, mode="L")
            if box is not None:
                x, y, w, h = (int(round(v)) for v in box)
                im = im.crop((max(x, 0), max(y, 0), x + w, y + h))
            arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except FileNotFoundError:
        raise DataError(f"{path}: image file does not exist; fix the path or remove the sample") from None
    except Exception as e:  # PIL raises many types for corrupt files
        raise DataError(f"{path}: cannot read image ({type(e).__name__}: {e}); replace or remove the file") from None
    return arr


def _load_frame(path: Path) -> np.ndarray:
    """A frame file as uint8 RGB: OpenCV when it can (faster), else :func:`load_image`."""
    import cv2

    a = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if a is None:
        return load_image(path)
    return cv2.cvtColor(a, cv2.COLOR_BGR2RGB)


def _video_stream(container):
    if not container.streams.video:
        raise ValueError("no video stream")
    s = container.streams.video[0]
    s.thread_type = "AUTO"
    return s


def count_frames(path: str | Path) -> int:
    """Number of frames of a video file or frame folder (container metadata first, else decode)."""
    p = Path(path)
    if p.is_dir() or _is_glob(p):
        return len(list_frame_files(p))
    if kind_of_path(p) == "image":
        return 1
    import av

    try:
        with av.open(str(p)) as c:
            s = _video_stream(c)
            n = int(s.frames or 0)
            if n > 0:
                return n
            return sum(1 for _ in c.decode(s))
    except FileNotFoundError:
        raise DataError(f"{p}: video file does not exist; fix the path or remove the sample") from None
    except Exception as e:
        raise DataError(f"{p}: cannot read video ({type(e).__name__}: {e}); re-encode or remove the file") from None


def decode_frames(path: str | Path, indices: Sequence[int] | None = None) -> np.ndarray:
    """Frames of a video file or frame folder as uint8 ``[len(indices) or N, H, W, 3]``.

    ``indices`` may repeat and be in any order. For a video, frames are decoded sequentially up to
    the largest wanted index; indices past the real end (container metadata can overstate the
    length) get the last decoded frame. Raises :class:`DataError` for unreadable input or no frames.
    """
    p = Path(path)
    if p.is_dir() or _is_glob(p):
        files = list_frame_files(p)
        if not files:
            raise DataError(f"{p}: frame folder has zero frames (no png/jpg files); fill it or remove the sample")
        if indices is None:
            return _stack_same(p, [_load_frame(f) for f in files])
        want = sorted(set(int(i) for i in indices))
        loaded = {i: _load_frame(files[min(max(i, 0), len(files) - 1)]) for i in want}
        return _stack_same(p, [loaded[int(i)] for i in indices])
    if kind_of_path(p) == "image":
        img = load_image(p)[None]
        return img if indices is None else np.repeat(img, len(indices), axis=0)
    import av

    want = None if indices is None else set(int(i) for i in indices)
    last = None if indices is None else max(want)
    got: dict[int, np.ndarray] = {}
    frames: list[np.ndarray] = []
    n, tail = 0, None
    try:
        with av.open(str(p)) as c:
            s = _video_stream(c)
            for i, fr in enumerate(c.decode(s)):
                n, tail = i + 1, fr
                if want is None:
                    frames.append(fr.to_ndarray(format="rgb24"))
                elif i in want:
                    got[i] = fr.to_ndarray(format="rgb24")
                    if i >= last:
                        break
    except FileNotFoundError:
        raise DataError(f"{p}: video file does not exist; fix the path or remove the sample") from None
    except DataError:
        raise
    except Exception as e:
        raise DataError(f"{p}: cannot decode video ({type(e).__name__}: {e}); re-encode or remove the file") from None
    if n == 0:
        raise DataError(f"{p}: video has zero decodable frames; re-encode or remove the file")
    if indices is None:
        return np.stack(frames)
    missing = [i for i in want if i not in got]
    if missing:  # past the real end (metadata overstated the length): the last decoded frame
        last_arr = tail.to_ndarray(format="rgb24")
        for i in missing:
            got[i] = last_arr
    return _stack_same(p, [got[int(i)] for i in indices])


def _stack_same(src, frames: list[np.ndarray]) -> np.ndarray:
    shapes = {f.shape for f in frames}
    if len(shapes) > 1:  # frames of different sizes in one folder: bring all to the first one
        import cv2

        h, w = frames[0].shape[:2]
        frames = [f if f.shape[:2] == (h, w) else cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in frames]
    return np.stack(frames)


# ---------------------------------------------------------------------------------------- resizing
def resize_frames(frames: np.ndarray, size: int, mode: str = "resize") -> np.ndarray:
    """uint8 ``[T,H,W,3]`` -> ``[T,size,size,3]`` (``resize`` squashes; ``short_side_center_crop``)."""
    import cv2

    if mode not in RESIZE_MODES:
        raise ConfigError(f"data.params.resize {mode!r} is not one of {', '.join(RESIZE_MODES)}")
    T, H, W = frames.shape[:3]
    if mode == "short_side_center_crop" and H != W:
        s = size / min(H, W)
        nh, nw = max(size, round(H * s)), max(size, round(W * s))
        y0, x0 = (nh - size) // 2, (nw - size) // 2
        crop = lambda f: f[y0 : y0 + size, x0 : x0 + size]  # noqa: E731
    else:
        nh, nw = size, size
        crop = lambda f: f  # noqa: E731
    if (H, W) == (nh, nw):
        return frames if (nh, nw) == (size, size) else np.ascontiguousarray(np.stack([crop(f) for f in frames]))
    interp = cv2.INTER_AREA if nh < H or nw < W else cv2.INTER_LINEAR
    return np.stack([crop(cv2.resize(np.ascontiguousarray(f), (nw, nh), interpolation=interp)) for f in frames])


# ---------------------------------------------------------------------------------------- sampling
def clip_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The random generator of one clip: a pure function of (seed, epoch, index)."""
    return np.random.default_rng([abs(int(seed)), abs(int(epoch)), abs(int(index))])


def _fit_short(idx: np.ndarray, n: int, clip_len: int, short: str) -> np.ndarray:
    if len(idx) >= clip_len:
        return idx[:clip_len]
    if short == "pad":
        return np.concatenate([idx, np.full(clip_len - len(idx), idx[-1])])
    reps = -(-clip_len // len(idx))
    return np.tile(idx, reps)[:clip_len]


def sample_indices(
    num_frames: int,
    clip_len: int,
    strategy: str = "random",
    *,
    rng: np.random.Generator | None = None,
    clip: int = 0,
    num_clips: int = 1,
    stride: int = 1,
    short: str = "loop",
) -> np.ndarray:
    """Frame indices (within ``[0, num_frames)``) of clip ``clip`` of ``num_clips`` of one video.

    Strategies:
      - ``random``: a contiguous window (step ``stride``) at a random start; with several clips per
        video, clip k starts at random inside the k-th of ``num_clips`` equal ranges of starts.
      - ``sbu``: ``clip_len`` distinct random indices over the whole video, sorted (Wu et al., SBU).
      - ``uniform``: ``clip_len`` indices evenly spaced over the whole video; clip k is shifted by
        k/num_clips of a step.
      - ``dense``: contiguous windows whose starts are evenly spaced from the first to the last
        possible start (deterministic multi-clip evaluation covering the video).
      - ``center``: the contiguous window in the middle.
    A video shorter than the clip is looped (``short="loop"``) or padded with its last frame
    (``short="pad"``); ``random``/``sbu`` need ``rng``.
    """
    if num_frames < 1:
        raise DataError("clip with zero frames")
    if strategy not in STRATEGIES:
        raise ConfigError(f"clip sampling strategy {strategy!r} is not one of {', '.join(STRATEGIES)}")
    if short not in SHORT_MODES:
        raise ConfigError(f"data.params.short {short!r} is not one of {', '.join(SHORT_MODES)}")
    n, T, K = int(num_frames), int(clip_len), max(1, int(num_clips))
    k = int(clip) % K
    if strategy in ("random", "sbu") and rng is None:
        raise ValueError(f"strategy {strategy!r} needs an rng")
    if strategy in ("sbu", "uniform"):
        if n <= T:
            return _fit_short(np.arange(n), n, T, short)
        if strategy == "sbu":
            return np.sort(rng.choice(n, size=T, replace=False))
        step = n / T
        return np.minimum((np.arange(T) * step + step * (k + 0.5) / K).astype(np.int64), n - 1)
    span = (T - 1) * stride + 1
    s = max(1, min(stride, (n - 1) // max(T - 1, 1))) if span > n else stride
    span = (T - 1) * s + 1
    if span > n:  # shorter than one clip even at step 1
        return _fit_short(np.arange(n), n, T, short)
    last_start = n - span
    if strategy == "center":
        start = last_start // 2
    elif strategy == "dense":
        start = 0 if K == 1 and last_start == 0 else round(k * last_start / (K - 1)) if K > 1 else last_start // 2
    else:  # random, stratified over the K clips of the video
        lo = (k * (last_start + 1)) // K
        hi = max(lo + 1, ((k + 1) * (last_start + 1)) // K)
        start = int(rng.integers(lo, hi))
    return start + np.arange(T) * s


# ---------------------------------------------------------------------------------------- storage
def default_cache_dir() -> Path:
    return Path(os.environ.get("PRIVACAM_CACHE", Path.home() / ".cache" / "privacam"))


def cache_key(path: str | Path, settings: dict) -> str:
    """Hash of the absolute path, its mtime and size (a folder: of its files) and the settings."""
    p = Path(path).resolve()
    st = (p.parent if _is_glob(p) else p).stat()
    if p.is_dir() or _is_glob(p):
        files = list_frame_files(p)
        sig = [len(files), st.st_mtime_ns] + [(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files[:: max(1, len(files) // 16)]]
    else:
        sig = [st.st_size, st.st_mtime_ns]
    blob = json.dumps([str(p), sig, settings], sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()


class FrameStore:
    """Decoded, resized videos: from memory (preloaded), a memmap cache, or decoded on demand.

    Shared by the train/val/test datasets of one :class:`Splits` so that a video (and the time
    segments carved from it) is decoded at most once.

    Args:
        size: output frame size (square).
        resize: ``resize`` or ``short_side_center_crop``.
        cache_dir: folder for ``<hash>.npy`` uint8 memmaps ``[N,size,size,3]``; None = no disk cache.
    """

    def __init__(self, size: int, resize: str = "resize", cache_dir: str | Path | None = None):
        if resize not in RESIZE_MODES:
            raise ConfigError(f"data.params.resize {resize!r} is not one of {', '.join(RESIZE_MODES)}")
        self.size, self.resize = int(size), resize
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else None
        self.memory: dict[str, np.ndarray] = {}
        self._maps: dict[str, np.ndarray] = {}
        self._counts: dict[str, int] = {}
        self.decodes = 0  # how many times a file was decoded (for tests and benchmarks)

    @property
    def settings(self) -> dict:
        return {"size": self.size, "resize": self.resize, "v": 1}

    def num_frames(self, path: str) -> int:
        path = str(path)
        if path in self.memory:
            return len(self.memory[path])
        if path in self._maps:
            return len(self._maps[path])
        if path not in self._counts:
            self._counts[path] = count_frames(path)
        return self._counts[path]

    def set_num_frames(self, path: str, n: int) -> None:
        self._counts[str(path)] = int(n)

    def _decode_all(self, path: str) -> np.ndarray:
        self.decodes += 1
        frames = decode_frames(path)
        return np.ascontiguousarray(resize_frames(frames, self.size, self.resize))

    def _cached(self, path: str) -> np.ndarray:
        m = self._maps.get(path)
        if m is not None:
            return m
        f = self.cache_dir / f"{cache_key(path, self.settings)}.npy"
        if f.is_file():
            try:
                m = np.load(f, mmap_mode="r")
            except (ValueError, OSError):
                m = None
                logger.warning("cache file %s is unreadable; decoding %s again", f, path)
        if m is None:
            arr = self._decode_all(path)
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.cache_dir, prefix=".tmp-", suffix=".npy")
            os.close(fd)
            try:
                np.save(tmp, arr)
                os.replace(tmp, f)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
            m = np.load(f, mmap_mode="r")
        self._maps[path] = m
        return m

    def preload(self, paths: Iterable[str]) -> None:
        """Decode each path once into memory (through the disk cache when there is one)."""
        todo = [p for p in dict.fromkeys(str(p) for p in paths) if p not in self.memory]
        load = lambda p: np.ascontiguousarray(self._cached(p) if self.cache_dir else self._decode_all(p))  # noqa: E731
        workers = min(8, os.cpu_count() or 1, len(todo))
        if workers > 1:  # decoders release the GIL
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(workers) as ex:
                arrays = list(ex.map(load, todo))
        else:
            arrays = [load(p) for p in todo]
        for p, arr in zip(todo, arrays):
            self.memory[p] = arr
            self._maps.pop(p, None)

    def frames(self, path: str, indices: Sequence[int]) -> np.ndarray:
        """uint8 ``[len(indices), size, size, 3]`` for frame ``indices`` of ``path``."""
        path = str(path)
        idx = np.asarray(indices, dtype=np.int64)
        if path in self.memory:
            return self.memory[path][idx]
        if self.cache_dir is not None:
            return np.asarray(self._cached(path)[idx])
        self.decodes += 1
        return resize_frames(decode_frames(path, idx.tolist()), self.size, self.resize)


# ---------------------------------------------------------------------------------------- datasets
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
        return {"input": x, "utility": torch.tensor(int(rec.utility)), "private": _label(rec.private),
                "id": f"{rec.id}#{self.items[i][1]}" if self.items[i][2] > 1 else rec.id, "video": rec.video or rec.id}

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
        if preload and self.records:
            self.memory = np.stack([self._read(r) for r in self.records])

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
        return {"input": x, "utility": torch.tensor(int(rec.utility)), "private": _label(rec.private), "id": rec.id}

    def __getitem__(self, i: int) -> dict:
        return self._guarded(i, self._load)


# ---------------------------------------------------------------------------------------- splits
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
        if va or not video:
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
    return new_train, val, "time"


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
) -> Splits:
    """Wrap record lists into :class:`VideoClipDataset` splits sharing one :class:`FrameStore`.

    ``defaults`` overrides the defaults of :func:`video_options` (a dataset's own conventions);
    ``data_cfg.params`` overrides both.
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
    if pre:
        store.preload(paths)
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
        meta={"options": o, "videos": {"train": len(train), "val": len(val), "test": len(test)}, **(meta or {})},
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
    return Splits(
        train=ImageDataset(train, **kw),
        val=ImageDataset(val, **kw),
        test=ImageDataset(test, **kw),
        utility_classes=list(utility_classes),
        private_classes=list(private_classes),
        multilabel=multilabel,
        kind="image",
        name=name,
        meta={"images": {"train": len(train), "val": len(val), "test": len(test)}, **(meta or {})},
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
