"""Shared helpers of the bench scripts: machine description, timing, markdown tables."""

from __future__ import annotations

import os
import platform
import statistics
import time
from typing import Callable

import torch


def machine() -> dict:
    """CPU model, cores, load average, torch / onnxruntime versions."""
    model = platform.processor() or "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import onnxruntime

        ort = onnxruntime.__version__
    except ImportError:
        ort = "absent"
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {"cpu": model, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "onnxruntime": ort, "python": platform.python_version(), "load_avg_1m": round(load[0], 2),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"}


def timeit(fn: Callable[[], object], *, min_time: float = 1.0, min_reps: int = 3, warmup: int = 1) -> float:
    """Median seconds per call of ``fn`` (at least ``min_reps`` calls and ``min_time`` seconds)."""
    for _ in range(warmup):
        fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_reps or time.perf_counter() - start < min_time:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
        if len(times) >= 200:
            break
    return statistics.median(times)


def table(rows: list[dict], cols: list[str], fmt: dict | None = None) -> str:
    """A markdown table of ``rows`` (dicts) over ``cols``."""
    fmt = fmt or {}

    def cell(r, c):
        v = r.get(c, "")
        if isinstance(v, float):
            return fmt.get(c, "{:.3g}").format(v)
        return str(v)

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(r, c) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def setup_threads() -> int:
    """Torch threads: ``OMP_NUM_THREADS`` when set (e.g. 1 on a shared machine), else every core."""
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    n = int(env) if env.isdigit() and int(env) > 0 else (os.cpu_count() or 1)
    torch.set_num_threads(n)
    return n


def update_section(doc, start: str, end: str, block: str) -> None:
    """Replace the part of ``doc`` between the ``start`` and ``end`` markers by ``block`` (which holds
    them), or append ``block`` when the markers are not there yet."""
    from pathlib import Path

    doc = Path(doc)
    text = doc.read_text()
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    doc.write_text(text)
