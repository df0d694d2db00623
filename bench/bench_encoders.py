"""Encoder f_d throughput (frames/s) for every learned family and the cheap baselines, PyTorch and
onnxruntime, at 112x112 and 224x224, one 16-frame clip per call.

    python bench/bench_encoders.py [--sizes 112 224] [--min-time 1.0]
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path

import numpy as np
import torch

from _common import machine, setup_threads, table, timeit

# (label, registry name, params): the learned families, BDQ and the cheap baselines
ENCODERS = [
    ("small_conv (w16, d3)", "small_conv", {}),
    ("small_conv (w8, d2)", "small_conv", {"width": 8, "depth": 2}),
    ("st_conv", "st_conv", {}),
    ("transform_net (w32, 5 blocks)", "transform_net", {"width": 32, "blocks": 5}),
    ("bdq", "bdq", {}),
    ("motion", "motion", {}),
    ("decision (w16, 4 classes)", "decision", {"num_classes": 4}),
    ("downsample x4", "downsample", {"factor": 4}),
    ("pixelate 8", "pixelate", {"block": 8}),
    ("blur sigma 2", "blur", {"sigma": 2.0}),
    ("temporal_diff", "temporal_diff", {}),
]
FRAMES = 16


def run(sizes=(112, 224), min_time: float = 1.0) -> list[dict]:
    from privacam.deploy import export_onnx, is_clip_level, onnx_session
    from privacam.registry import create_encoder

    setup_threads()
    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="privacam-bench-"))
    for label, name, params in ENCODERS:
        torch.manual_seed(0)
        enc = create_encoder(name, in_channels=3, **params).eval()
        clip = is_clip_level(enc)
        for size in sizes:
            x = torch.rand(1, 3, FRAMES, size, size) if clip else torch.rand(FRAMES, 3, size, size)
            with torch.inference_mode():
                t_torch = timeit(lambda: enc(x), min_time=min_time)
            row = {"encoder": label, "size": size, "torch_fps": FRAMES / t_torch}
            if any(p.requires_grad for p in enc.parameters()) or name in ("downsample", "pixelate", "blur", "temporal_diff", "bdq"):
                onnx_path = tmp / f"{name}_{size}.onnx"
                try:
                    diff = export_onnx(enc, onnx_path, in_channels=3, size=size, clip_len=FRAMES if clip else 0)
                    sess = onnx_session(onnx_path)
                    xn = x.numpy()
                    t_ort = timeit(lambda: sess.run(None, {"input": xn}), min_time=min_time)
                    row.update(ort_fps=FRAMES / t_ort, onnx_max_diff=diff)
                except Exception as e:  # noqa: BLE001 - report, do not stop the bench
                    row["ort_fps"] = f"export failed: {type(e).__name__}"
            rows.append(row)
            logging.info("%s", row)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[112, 224])
    ap.add_argument("--min-time", type=float, default=1.0)
    ap.add_argument("--json")
    a = ap.parse_args()
    rows = run(a.sizes, a.min_time)
    print(json.dumps(machine()))
    print(table(rows, ["encoder", "size", "torch_fps", "ort_fps", "onnx_max_diff"], {"torch_fps": "{:.1f}", "ort_fps": "{:.1f}"}))
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
