"""Camera cost of the releases on the camera, side by side in one process: the ``decision`` family, the
``substitute`` family with its bank look-up (and its draw and placement), and the motion encoder. onnxruntime
frames/s at 112x112 and 224x224 (one 16-frame clip per call, the models timed in alternation so that the
machine's load hits them alike), and FLOPs against the paper-style C3D f_T.

    python bench/bench_decision.py                 # prints the tables
    python bench/bench_decision.py --update-doc    # and rewrites its section of docs/performance.md

Targets: (issue 14) the decision at least 100x fewer FLOPs than the paper-style f_T and at least as fast as the
motion encoder; (issue 21) the substitute encoder with its bank look-up at least as fast as the decision
encoder at 112x112, and at least 1,000 frames/s at 224x224.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from _common import machine, setup_threads, table, update_section

HERE = Path(__file__).resolve().parent
DOC = HERE.parent / "docs" / "performance.md"
START, END = "<!-- decision-cost:start -->", "<!-- decision-cost:end -->"
FRAMES = 16
def _default_params() -> dict:
    """The substitute encoder's settings in configs/default.yaml (the default release)."""
    from privacam.config import load_config

    return dict(load_config("default").encoder.params)


#: (label, registry name, params): the decision family, the substitute family and the motion encoder of
#: weizmann_motion / demo_motion
MODELS = [
    ("decision (w16, 4 classes)", "decision", {"width": 16, "num_classes": 4, "clip_len": FRAMES}),
    ("substitute (the default's settings, 16x16 inside, bank of the embedded training split)", "substitute",
     {"clip_len": FRAMES, **_default_params()}),
    ("motion (w8, d3; weizmann_motion)", "motion", {"width": 8, "depth": 3, "levels": 2, "jitter": 0.5, "dilate": 2}),
]
#: the substitute's bank: the embedded data's training split at its size (32x32)
BANK = ("the embedded data's training split", 32)


def _build(name: str, params: dict):
    from privacam.config import load_config
    from privacam.data import make_splits
    from privacam.data.bank import read_bank
    from privacam.registry import create_encoder

    enc = create_encoder(name, in_channels=3, **params).eval()
    if name == "substitute":
        cfg = load_config("default", [f"data.size={BANK[1]}", f"data.clip_len={FRAMES}"])
        enc.set_bank(*read_bank([make_splits(cfg.data, seed=0).train]))
    return enc


def _flops(model, x) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), FlopCounterMode(display=False) as fc:
        model(x)
    return int(fc.get_total_flops())


def _alternating(fns: list, min_time: float, min_reps: int = 5) -> list[float]:
    """Median seconds per call of each of ``fns``, called in turn (one warm-up call each)."""
    for f in fns:
        f()
    times: list[list[float]] = [[] for _ in fns]
    start = time.perf_counter()
    while len(times[0]) < min_reps or time.perf_counter() - start < min_time * len(fns):
        for i, f in enumerate(fns):
            t = time.perf_counter()
            f()
            times[i].append(time.perf_counter() - t)
        if len(times[0]) >= 300:
            break
    return [statistics.median(t) for t in times]


def run(sizes=(112, 224), min_time: float = 1.0) -> dict:
    from privacam.deploy import export_onnx, onnx_session
    from privacam.registry import create_utility

    threads = setup_threads()
    tmp = Path(tempfile.mkdtemp(prefix="privacam-bench-decision-"))
    torch.manual_seed(0)
    models = [(label, _build(name, params)) for label, name, params in MODELS]
    speed = []
    for size in sizes:
        sessions = []
        for label, enc in models:
            path = tmp / f"{label.split()[0]}_{size}.onnx"
            export_onnx(enc, path, in_channels=3, size=size, clip_len=FRAMES)
            sessions.append(onnx_session(path))
        x = np.random.default_rng(0).random((1, 3, FRAMES, size, size), dtype=np.float32)
        secs = _alternating([lambda s=s: s.run(None, {"input": x}) for s in sessions], min_time)
        for (label, _), t in zip(models, secs):
            speed.append({"encoder": label, "size": size, "ort_fps": FRAMES / t})
        logging.info("%s", speed[-len(models):])
    x = torch.rand(1, 3, FRAMES, 112, 112)
    f_t = create_utility("c3d", in_channels=3, num_classes=13, size=112, clip_len=FRAMES).eval()
    ft = _flops(f_t, x)
    cost = [{"model": "C3D f_T (paper-style)", "gflops_per_clip": ft / 1e9, "flops_ratio_fT_over_model": 1.0}]
    for label, enc in models:
        fl = _flops(enc, x)
        cost.append({"model": f"{label} f_d", "gflops_per_clip": fl / 1e9, "flops_ratio_fT_over_model": ft / max(fl, 1)})
    fps = lambda i: {r["size"]: r["ort_fps"] for r in speed if r["encoder"] == MODELS[i][0]}  # noqa: E731
    dec, sub, mot = fps(0), fps(1), fps(2)
    targets = [("decision >= 100x fewer FLOPs than the paper-style f_T", f"{cost[1]['flops_ratio_fT_over_model']:.0f}x",
                cost[1]["flops_ratio_fT_over_model"] >= 100)]
    for size in sizes:
        targets.append((f"decision at least as fast as motion through onnxruntime at {size}x{size}",
                        f"{dec[size]:.0f} vs {mot[size]:.0f} frames/s ({dec[size] / mot[size]:.1f}x)", dec[size] >= mot[size]))
    if 112 in sizes:
        targets.append(("substitute (with its bank look-up) at least as fast as decision at 112x112",
                        f"{sub[112]:.0f} vs {dec[112]:.0f} frames/s ({sub[112] / dec[112]:.1f}x)", sub[112] >= dec[112]))
    if 224 in sizes:
        targets.append(("substitute at least 1,000 frames/s at 224x224", f"{sub[224]:.0f} frames/s", sub[224] >= 1000))
    return {"speed": speed, "cost": cost, "targets": targets, "threads": threads}


def markdown(res: dict, when: str, mach: dict) -> str:
    lines = [START, "## The releases on the camera: decision, substitute and motion (side by side)", "",
             f"Generated by `python bench/bench_decision.py --update-doc` ({when}, {mach['cpu']}, {mach['cores']} cores, "
             f"torch threads {res['threads']}, onnxruntime {mach['onnxruntime']}, load average {mach['load_avg_1m']}). "
             "One `[1,3,16,H,W]` clip per call through onnxruntime; the exported models are timed in turn in one "
             "process, so the ratio holds under load even where the absolute rates move. The substitute's bank "
             f"({BANK[0]}, clips of {BANK[1]}x{BANK[1]}) is inside the graph: the descriptor, the draw, the look-up and the "
             "placement of the bank clip are timed with the embedding. FLOPs: "
             "`torch.utils.flop_counter` on one 16x112x112 clip (convolutions and matrix products).", "",
             "| target | measured | status |", "|---|---|---|"]
    lines += [f"| {t} | {m} | {'**pass**' if ok else '**not met**'} |" for t, m, ok in res["targets"]]
    lines += ["", table(res["speed"], ["encoder", "size", "ort_fps"], {"ort_fps": "{:.0f}"}), "",
              table(res["cost"], ["model", "gflops_per_clip", "flops_ratio_fT_over_model"],
                    {"gflops_per_clip": "{:.4g}", "flops_ratio_fT_over_model": "{:.0f}"}), END]
    return "\n".join(lines)


def update_doc(block: str, doc: Path = DOC) -> None:
    update_section(doc, START, END, block)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[112, 224])
    ap.add_argument("--min-time", type=float, default=2.0)
    ap.add_argument("--update-doc", action="store_true", help="rewrite the section of docs/performance.md")
    ap.add_argument("--json")
    a = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    res = run(a.sizes, a.min_time)
    mach = machine()
    block = markdown(res, time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), mach)
    print(block)
    if a.update_doc:
        update_doc(block)
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
