"""Training throughput (clips/s) of each schedule on the default config (32x32, 16 frames).

Clips/s counts every clip a top-level game step draws from the batch stream (all moves of the
step, restarts included), timed over ``--steps`` game steps after one warm-up step. Only game
steps are timed: the players are built (``Trainer._setup``) and ``AdversarialGame.step`` is called
directly, so the initialisation stages (``init.*``) never run. The players start untrained, so the
schedules' inner loops run to their caps (``schedule.params.max_*_steps``): a step here is the longest a
step gets. Torch threads: ``OMP_NUM_THREADS`` when set, else every core. On a CPU shared with other
jobs use ``OMP_NUM_THREADS=1``: with more threads than free cores every parallel op waits for
descheduled threads (an earlier reading of 60 s per entropy step, taken with 2 threads at load
average 6.9 on 2 cores, was about 3.3 s per step with one thread).

    python bench/bench_train.py [--steps 4]
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import torch

from _common import machine, setup_threads, table


class _Counting:
    def __init__(self, stream):
        self.stream, self.clips = stream, 0

    def __iter__(self):
        return self

    def __next__(self):
        b = next(self.stream)
        self.clips += int(b["input"].shape[0])
        return b


#: each schedule with the encoder objective it is played with (K-beam caps as in default.yaml's comment)
SCHEDULES = {
    "entropy": [],
    "grl": ["schedule={name: grl}", "game.privacy_loss=neg_ce", "game.aggregate=mean"],
    "kbeam": ["schedule={name: kbeam, params: {encoder_steps: 2, budget_steps: 5, utility_steps: 2}}",
              "game.privacy_loss=neg_ce", "game.against=strongest"],
}


def run(steps: int = 4, schedules=("entropy", "grl", "kbeam"), extra=()) -> list[dict]:
    from privacam.config import load_config
    from privacam.train import Trainer

    setup_threads()
    rows = []
    for name in schedules:
        cfg = load_config("default", [*SCHEDULES[name], "train.device=cpu", *extra])
        tr = Trainer(cfg, Path(tempfile.mkdtemp(prefix="privacam-bench-")) / name)
        tr._setup()
        g = tr.game
        stream = _Counting(tr.train_stream)
        g.step(stream, tr.val_stream)  # warm-up
        stream.clips = 0
        t = time.perf_counter()
        for _ in range(steps):
            g.step(stream, tr.val_stream)
        dt = time.perf_counter() - t
        rows.append({"schedule": name, "steps": steps, "clips": stream.clips, "seconds": dt,
                     "clips_per_s": stream.clips / dt, "s_per_step": dt / steps})
        logging.info("%s", rows[-1])
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--json")
    a = ap.parse_args()
    rows = run(a.steps)
    print(json.dumps(machine()))
    print(table(rows, ["schedule", "steps", "clips", "seconds", "clips_per_s", "s_per_step"], {"seconds": "{:.1f}", "clips_per_s": "{:.1f}"}))
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
