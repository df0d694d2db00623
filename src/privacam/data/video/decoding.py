"""Decoding footage: video files (through PyAV), frame folders and images into uint8 ``[T,H,W,3]``,
and resizing frames to ``size x size``.

- :func:`decode_frames` reads a video file (mp4/avi/webm/...) or a folder of frames (png/jpg, sorted by
  name), optionally only some frame indices (a video is decoded sequentially up to the last wanted
  frame, and only wanted frames are converted to RGB).
- :func:`resize_frames` brings frames to ``size x size`` (``resize`` squashes,
  ``short_side_center_crop`` keeps the aspect ratio and crops the centre).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from ...errors import ConfigError, DataError

VIDEO_EXTS = {".mp4", ".avi", ".webm", ".mkv", ".mov", ".mpg", ".mpeg", ".m4v", ".wmv", ".flv", ".ogv"}
IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
RESIZE_MODES = ("resize", "short_side_center_crop")


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


def content_signature(path: str | Path) -> list:
    """What changes when the content of ``path`` changes, without reading it: the size and modification
    time (ns) of the file, or of every frame of a frame folder (or file pattern), by name. A frame
    edited, added, removed or replaced in place changes it; a missing path gives ``["missing"]``.
    One ``stat`` per file (docs/performance.md: the cost on Weizmann)."""
    p = Path(path)
    try:
        if p.is_dir() or _is_glob(p):
            return [(f.name, *_size_mtime(f)) for f in list_frame_files(p)]
        return [list(_size_mtime(p))]
    except (OSError, DataError):
        return ["missing"]


def _size_mtime(f: Path) -> tuple[int, int]:
    st = f.stat()
    return st.st_size, st.st_mtime_ns


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


def load_frame(path: Path) -> np.ndarray:
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
            return _stack_same(p, [load_frame(f) for f in files])
        want = sorted(set(int(i) for i in indices))
        loaded = {i: load_frame(files[min(max(i, 0), len(files) - 1)]) for i in want}
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
