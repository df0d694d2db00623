"""The frame store: decoded, resized videos held in memory (``preload``) and/or as uint8 ``.npy``
memmap files in a cache folder, keyed by a hash of path + mtime + size + settings, so that epochs after
the first never decode again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ...errors import ConfigError, DataError
from .decoding import RESIZE_MODES, content_signature, count_frames, decode_frames, resize_frames

logger = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    return Path(os.environ.get("PRIVACAM_CACHE", Path.home() / ".cache" / "privacam"))


def cache_key(path: str | Path, settings: dict) -> str:
    """Hash of the absolute path, the size and modification time of the file (a frame folder: of every
    one of its frames, :func:`content_signature`) and the settings: a frame edited in place is a miss."""
    p = Path(path).resolve()
    blob = json.dumps([str(p), content_signature(p), settings], sort_keys=True, default=str)
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
        return {"size": self.size, "resize": self.resize, "v": 2}  # v2: keys cover every frame

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

    def preload(self, paths: Iterable[str], *, skip_bad: bool = False) -> dict[str, str]:
        """Decode each path once into memory (through the disk cache when there is one).

        Args:
            skip_bad: a path that cannot be decoded is left out (its error returned) instead of
                raising :class:`DataError` (``data.on_bad_sample: skip``).

        Returns:
            ``{path: error message}`` of the paths left out.
        """
        todo = [p for p in dict.fromkeys(str(p) for p in paths) if p not in self.memory]

        def load(p):
            try:
                return np.ascontiguousarray(self._cached(p) if self.cache_dir else self._decode_all(p))
            except DataError as e:
                if not skip_bad:
                    raise
                return e

        workers = min(8, os.cpu_count() or 1, len(todo))
        if workers > 1:  # decoders release the GIL
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(workers) as ex:
                arrays = list(ex.map(load, todo))
        else:
            arrays = [load(p) for p in todo]
        failed = {}
        for p, arr in zip(todo, arrays):
            if isinstance(arr, DataError):
                failed[p] = str(arr)
                continue
            self.memory[p] = arr
            self._maps.pop(p, None)
        return failed

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
