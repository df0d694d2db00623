"""Decode vs cached clip throughput (clips/s) of privacam's video datasets.

    python bench/bench_decode.py [--videos 8] [--frames 120] [--size 112] [--clip-len 16]

Generates a set of mp4 files (640x480 by default) in a temporary folder and reads one epoch of
random 16-frame clips three ways: decoding each clip from the file, through the uint8 memmap cache
(first epoch fills it, the second only reads it), and preloaded in memory. Then the same on the
Weizmann frame folders when ``../shared/data/weizmann`` is present. Prints a small table.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from privacam.data.video import FrameStore, Record, VideoClipDataset


def make_videos(folder: Path, n: int, frames: int, w: int, h: int) -> list[Path]:
    import av

    rng = np.random.default_rng(0)
    out = []
    for v in range(n):
        p = folder / f"v{v:03d}.mp4"
        base = rng.integers(0, 255, (h // 8, w // 8, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
        with av.open(str(p), "w") as c:
            s = c.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=25)
            s.width, s.height, s.pix_fmt = w, h, "yuv420p"
            for i in range(frames):
                f = np.roll(base, 4 * i, axis=1)
                for pkt in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                    c.mux(pkt)
            for pkt in s.encode():
                c.mux(pkt)
        out.append(p)
    return out


def epoch(ds: VideoClipDataset, e: int) -> float:
    ds.set_epoch(e)
    t = time.perf_counter()
    for i in range(len(ds)):
        ds[i]
    return len(ds) / (time.perf_counter() - t)


def run(name: str, recs: list[Record], size: int, clip_len: int, clips: int, cache: Path) -> list[tuple]:
    rows = []
    kw = dict(clip_len=clip_len, size=size, strategy="random", clips_per_video=clips)
    ds = VideoClipDataset(recs, store=FrameStore(size), **kw)
    rows.append((name, "decode per clip", epoch(ds, 0)))
    store = FrameStore(size, cache_dir=cache)
    ds = VideoClipDataset(recs, store=store, **kw)
    rows.append((name, "cache, epoch 1 (fills)", epoch(ds, 0)))
    ds = VideoClipDataset(recs, store=FrameStore(size, cache_dir=cache), **kw)
    rows.append((name, "cache, epoch 2 (memmap)", epoch(ds, 1)))
    store = FrameStore(size)
    t = time.perf_counter()
    store.preload([r.path for r in recs])
    load = time.perf_counter() - t
    ds = VideoClipDataset(recs, store=store, **kw)
    rows.append((name, f"preloaded ({load:.1f} s to load)", epoch(ds, 1)))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=8)
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--clip-len", type=int, default=16)
    ap.add_argument("--clips", type=int, default=4, help="clips per video per epoch")
    a = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        vids = make_videos(tmp, a.videos, a.frames, a.width, a.height)
        print(f"generated {a.videos} mp4 files of {a.frames} frames {a.width}x{a.height} in {time.perf_counter() - t:.1f} s")
        recs = [Record(str(v), 0, 0, v.stem) for v in vids]
        rows += run(f"mp4 {a.width}x{a.height}", recs, a.size, a.clip_len, a.clips, tmp / "cache")
        weiz = Path(__file__).resolve().parents[2] / "shared/data/weizmann/frames"
        if weiz.is_dir():
            recs = [Record(str(d), 0, 0, d.name) for d in sorted(weiz.iterdir()) if d.is_dir()]
            rows += run("weizmann frames 64x64", recs, 32, a.clip_len, 8, tmp / "cache_w")
        else:
            print(f"(Weizmann not found at {weiz}; skipped)")
    print(f"\n{'data':<24} {'mode':<32} {'clips/s':>10}")
    for name, mode, rate in rows:
        print(f"{name:<24} {mode:<32} {rate:>10.1f}")


if __name__ == "__main__":
    main()
