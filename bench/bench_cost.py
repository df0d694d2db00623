"""Cost of f_T versus f_d: FLOPs (``torch.utils.flop_counter.FlopCounterMode``) and CPU time.

Paper-style config: f_T = C3D on a 16x112x112 clip; f_d = transform_net (width 32, 5 blocks) on the
same 16 frames of 112x112 (Wu et al. report f_d at about 1/45 of f_T). The camera-sized families
are measured on the same clip.

    python bench/bench_cost.py
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from _common import machine, setup_threads, table, timeit

ENCODERS = [
    ("transform_net (w32, 5 blocks)", "transform_net", {"width": 32, "blocks": 5}),
    ("small_conv (w16, d3; default)", "small_conv", {}),
    ("small_conv (w8, d2; camera)", "small_conv", {"width": 8, "depth": 2}),
    ("st_conv", "st_conv", {}),
    ("bdq", "bdq", {}),
    ("decision (w16, 4 classes; default)", "decision", {"num_classes": 4}),
]


def flops(model, x) -> int:
    with torch.inference_mode(), FlopCounterMode(display=False) as fc:
        model(x)
    return int(fc.get_total_flops())


def run(min_time: float = 1.0) -> dict:
    from privacam.registry import create_encoder, create_utility

    setup_threads()
    torch.manual_seed(0)
    x = torch.rand(1, 3, 16, 112, 112)
    f_t = create_utility("c3d", in_channels=3, num_classes=13, size=112, clip_len=16).eval()
    ft_flops = flops(f_t, x)
    with torch.inference_mode():
        ft_time = timeit(lambda: f_t(x), min_time=min_time, min_reps=2)
    rows = [{"model": "C3D f_T", "gflops_per_clip": ft_flops / 1e9, "ms_per_clip": ft_time * 1e3,
             "flops_ratio_fT_over_fd": 1.0, "time_ratio_fT_over_fd": 1.0}]
    for label, name, params in ENCODERS:
        enc = create_encoder(name, in_channels=3, **params).eval()
        fl = flops(enc, x)
        with torch.inference_mode():
            t = timeit(lambda: enc(x), min_time=min_time)
        rows.append({"model": f"{label} f_d", "gflops_per_clip": fl / 1e9, "ms_per_clip": t * 1e3,
                     "flops_ratio_fT_over_fd": ft_flops / max(fl, 1), "time_ratio_fT_over_fd": ft_time / t})
        logging.info("%s", rows[-1])
    return {"clip": [1, 3, 16, 112, 112], "rows": rows}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--min-time", type=float, default=1.0)
    ap.add_argument("--json")
    a = ap.parse_args()
    res = run(a.min_time)
    print(json.dumps(machine()))
    print(table(res["rows"], ["model", "gflops_per_clip", "ms_per_clip", "flops_ratio_fT_over_fd", "time_ratio_fT_over_fd"],
                {"ms_per_clip": "{:.1f}", "flops_ratio_fT_over_fd": "{:.1f}", "time_ratio_fT_over_fd": "{:.1f}"}))
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
