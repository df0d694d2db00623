"""Helpers that write tiny real-format data (videos, frame folders, label files) into tmp dirs.

Imported by the tests/test_data_*.py files (not a conftest: no fixtures are injected globally).
Each frame i of a generated clip is a flat colour whose red channel encodes i (``level(i)``), so a test
can tell which frames a loader returned even after lossy video coding.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def level(i: int) -> int:
    """Red value of frame i (distinct for i < 40, spaced for lossy codecs)."""
    return 10 + 6 * (i % 40)


def frame(i: int, h: int = 24, w: int = 32, tint: int = 0) -> np.ndarray:
    a = np.zeros((h, w, 3), np.uint8)
    a[..., 0] = level(i)
    a[..., 1] = tint
    a[..., 2] = 128
    return a


def frame_index(clip_red: np.ndarray) -> int:
    """Inverse of :func:`level` from a clip frame's mean red value in [0,1]."""
    return int(round((float(clip_red) * 255 - 10) / 6))


def write_video(path: Path, n: int, h: int = 24, w: int = 32, tint: int = 0, codec: str = "mpeg4", fps: int = 10) -> Path:
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.bit_rate = 4_000_000
        if codec == "mpeg4":
            s.options = {"qscale": "1"}
        elif codec == "libvpx":
            s.options = {"crf": "4", "qmin": "0", "qmax": "10"}
        for i in range(n):
            for pkt in s.encode(av.VideoFrame.from_ndarray(frame(i, h, w, tint), format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    return path


def write_frames(folder: Path, n: int, h: int = 24, w: int = 32, tint: int = 0, pattern: str = "{:04d}.png", start: int = 1) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(frame(i, h, w, tint)).save(folder / pattern.format(i + start))
    return folder


def write_image(path: Path, mode: str = "RGB", size=(40, 30), value: int = 100) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    if mode == "L":
        im = Image.new("L", (w, h), value)
    elif mode == "P":
        im = Image.new("RGB", (w, h), (value, 0, 0)).convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    elif mode == "RGBA":
        im = Image.new("RGBA", (w, h), (value, value, value, 128))
    else:
        im = Image.new("RGB", (w, h), (value, value // 2, 0))
    im.save(path)
    return path


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    lines = [",".join(header)] + [",".join(str(v) for v in r) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path
