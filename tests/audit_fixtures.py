"""Tiny Weizmann-like data for the audit's tests: a manifest of frame folders in which each person's
identity is carried by shape and motion only (no colour, no background).

Person ``p`` is a bright rectangle of a size of its own that moves with an amplitude and period of
its own; the action (the utility label) is the direction of the motion. Like the shared Weizmann
subset, every (person, action) recording is cut in time into a ``train`` part and a ``test`` part,
so validation must be carved from the training videos. Imported by the tests (not a conftest).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from conftest_data import write_csv


def person_clip(person: int, action: int, n: int, size: int = 16, seed: int = 0) -> np.ndarray:
    """``n`` frames ``[n,H,W,3]`` uint8 of one person doing one action."""
    rng = np.random.default_rng([seed, person, action])
    h = 2 + person  # body height and width grow with the person index
    w = 1 + (person % 3)
    amp, period = 1.5 + 0.8 * person, 5 + 2 * person
    phase = rng.uniform(0, 2 * np.pi)
    cy, cx = size / 2 + rng.uniform(-1, 1), size / 2 + rng.uniform(-1, 1)
    frames = np.zeros((n, size, size, 3), np.uint8)
    for t in range(n):
        d = amp * np.sin(2 * np.pi * t / period + phase)
        y, x = (cy + d, cx) if action == 0 else (cy, cx + d)
        y0, x0 = int(round(y - h / 2)), int(round(x - w / 2))
        frames[t, max(0, y0):max(0, y0 + h), max(0, x0):max(0, x0 + w)] = 220
    noise = rng.integers(0, 20, frames.shape, dtype=np.uint8)
    return np.clip(frames.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def write_people(root: Path, persons: int = 4, actions: int = 2, frames: int = 48, test_frames: int = 16,
                 size: int = 16, tasks: dict | None = None, follow: bool = False) -> Path:
    """Write the frame folders and ``manifest.csv`` (``path,utility,private,split``); returns the CSV.

    ``tasks``: task name -> ``fn(person, action, split)`` giving the class name of the column
    ``task:<name>`` ("" for no label). ``follow``: actions follow people (person ``p`` does only action
    ``p % actions``) instead of every person doing every action."""
    from PIL import Image

    rows = []
    tasks = tasks or {}
    for p in range(persons):
        for a in range(actions):
            if follow and a != p % actions:
                continue
            clip = person_clip(p, a, frames, size)
            cut = frames - test_frames
            for split, part in (("train", clip[:cut]), ("test", clip[cut:])):
                folder = root / "frames" / f"p{p}_a{a}_{split}"
                folder.mkdir(parents=True, exist_ok=True)
                for i, f in enumerate(part):
                    Image.fromarray(f).save(folder / f"{i:04d}.png")
                rows.append([f"frames/p{p}_a{a}_{split}", f"action{a}", f"person{p}", split]
                            + [fn(p, a, split) for fn in tasks.values()])
    return write_csv(root / "manifest.csv", ["path", "utility", "private", "split"] + [f"task:{t}" for t in tasks], rows)
