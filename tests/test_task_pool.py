"""The task pool (evaluate/tasks.py and the models it adds to evaluate/attackers.py): models that keep
where and when things happen learn toy tasks that models pooling them away cannot; the pool is fitted
without flips, selected on validation and scored like the audit scores attackers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import one_thread
from privacam.data.base import UNLABELLED
from privacam.errors import RegistryError
from privacam.evaluate.fitting import Attacker
from privacam.evaluate.protocol import Encoded, FitConfig, channel_stats
from privacam.evaluate.releases import ReleaseStore
from privacam.evaluate.selection import carve
from privacam.evaluate.tasks import (TASK_POOL, entry_labels, fit_task_pool, make_task_model, score_task_pool, selected,
                                     task_fit_config, task_view)
from privacam.registry import ATTACKERS

T, S = 8, 16


def toy(kind: str, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Clips ``[n,3,T,S,S]`` of noise with a bright blob or bar; the label is where or when it is, or its tempo.

    - ``side``: a 3x3 blob jumping up and down in the left or the right part of the frame (the two
      classes are mirror images of each other);
    - ``when``: a still blob shown in the first or the second half of the clip;
    - ``tempo``: a bar swinging up and down slowly (period 8-10 frames) or fast (2.5-3 frames), its
      contrast drawn per clip.
    """
    g = np.random.default_rng(seed)
    x = g.uniform(0.2, 0.6, (n, 3, T, S, S)).astype(np.float32)
    y = g.integers(0, 2, n)
    for i in range(n):
        if kind == "side":
            left = int(g.integers(2, S // 2 - 4))
            x0 = left if y[i] == 0 else S - left - 3
            for t in range(T):
                y0 = int(g.integers(S // 4, 3 * S // 4 - 3))
                x[i, :, t, y0:y0 + 3, x0:x0 + 3] = 1.0
        elif kind == "when":
            x0, y0 = g.integers(1, S - 4, size=2)
            for t in (range(0, T // 2) if y[i] == 0 else range(T // 2, T)):
                x[i, :, t, y0:y0 + 3, x0:x0 + 3] = 1.0
        else:
            period = g.uniform(8, 10) if y[i] == 0 else g.uniform(2.5, 3)
            phase, x0 = g.uniform(0, 2 * np.pi), int(g.integers(1, S - 6))
            # its brightness is drawn per clip, so that the amount of motion alone does not give the tempo
            level = 0.6 + g.uniform(0.04, 0.4)
            for t in range(T):
                y0 = int(round(S / 2 - 1 + 4 * np.sin(2 * np.pi * t / period + phase)))
                x[i, :, t, max(0, y0):y0 + 2, x0:x0 + 5] = level
    return torch.from_numpy((x * 255).astype(np.uint8)), torch.as_tensor(y)


def released(x: torch.Tensor, y: torch.Tensor, prefix: str) -> Encoded:
    n = len(y)
    return Encoded(ReleaseStore(x), torch.zeros(n, dtype=torch.long), torch.zeros(n, dtype=torch.long),
                   [f"{prefix}{i}" for i in range(n)], 1 / 255, videos=[f"{prefix}{i}" for i in range(n)],
                   clip=torch.arange(n), view=torch.zeros(n, dtype=torch.long))


def pool_on(kind: str, names) -> dict:
    """Fit ``names`` on a toy task (task views, carved as the audit carves) and score them on test."""
    parts = {p: toy(kind, n, seed) for p, n, seed in (("train", 160, 1), ("val", 48, 2), ("test", 100, 3))}
    enc = {p: released(x, y, p) for p, (x, y) in parts.items()}
    stats = channel_stats(enc["train"])
    for e in enc.values():
        e.norm = stats
    views = {p: task_view(e, parts[p][1]) for p, e in enc.items()}
    split = carve(views["train"], views["val"], seed=0)
    with one_thread():
        fitted = fit_task_pool(names, split, 2, cfg=FitConfig(epochs=8, patience=4, batch_size=16, seed=0))
        out = score_task_pool(fitted, views["test"], split.train.private, bootstrap=20)
    return {n: m["test"]["clip"] for n, m in out["models"].items()} | {"_selected": out["selected"], "_value": out["value"]}


def test_models_that_keep_where_learn_left_from_right_where_one_without_cannot():
    acc = pool_on("side", ["linear_probe", "grid_probe", "shape_logistic", "c3d_grid", "tempo_logistic"])
    for name in ("linear_probe", "grid_probe", "shape_logistic", "c3d_grid"):
        assert acc[name] >= 0.9, (name, acc)
    assert acc["tempo_logistic"] <= 0.65, acc  # the amount and the tempo of the motion: nothing of where
    assert acc["_selected"] != "tempo_logistic" and acc["_value"] >= 0.9


def test_models_that_keep_when_learn_early_from_late_where_time_pooled_ones_cannot():
    acc = pool_on("when", ["grid_probe", "c3d_grid", "linear_probe", "motion_probe"])
    assert acc["grid_probe"] >= 0.9 and acc["c3d_grid"] >= 0.9, acc
    # the mean frame and the motion-energy image pool time away: the blob is the same whenever it shows
    assert acc["linear_probe"] <= 0.7 and acc["motion_probe"] <= 0.7, acc
    assert acc["_selected"] in ("grid_probe", "c3d_grid") and acc["_value"] >= 0.9


def test_models_that_keep_motion_over_time_learn_the_tempo_where_the_mean_frame_cannot():
    acc = pool_on("tempo", ["c3d_grid", "tempo_logistic", "linear_probe"])
    assert acc["c3d_grid"] >= 0.9 and acc["tempo_logistic"] >= 0.75, acc
    assert acc["linear_probe"] <= 0.65, acc  # the mean frame of a swinging bar shows no tempo


def test_task_pool_is_registered_and_fitted_without_flips(monkeypatch):
    assert all(n in ATTACKERS for n in TASK_POOL)
    seen = []

    def record(attacker, split, labels="private", *, multilabel):
        seen.append(attacker.cfg.flip)  # both pool members here are networks (NetworkAttacker)
        return {"val": 0.5}

    import privacam.evaluate.tasks as tasks

    monkeypatch.setattr(tasks, "fit_attacker", record)
    x, y = toy("side", 8, 0)
    view = task_view(released(x, y, "a"), y)
    fit_task_pool(["grid_probe", "small3d"], carve(view, view.subset([0, 1]), seed=0), 2, cfg=FitConfig(flip=True))
    assert seen == [False, False] and task_fit_config(FitConfig(flip=True)).flip is False


def test_entry_labels_task_view_and_model_factory():
    x, y = toy("side", 6, 0)
    enc = released(x, y, "a")
    enc = Encoded(enc.x, torch.zeros(12, dtype=torch.long), torch.zeros(12, dtype=torch.long), enc.ids * 2, enc.scale,
                  clip=torch.arange(6).repeat(2), view=torch.arange(2).repeat_interleave(6),
                  videos=enc.videos * 2, rows=torch.arange(6).repeat(2))
    item = torch.tensor([1, 0, UNLABELLED, 1, 1, 0])
    labels = entry_labels(enc, item)
    assert labels.tolist() == item.tolist() * 2  # every probing view of a clip has its label
    view = task_view(enc, labels)
    assert len(view) == 10 and UNLABELLED not in view.private.tolist() and view.utility.tolist() == [0] * 10
    with pytest.raises(ValueError, match="clip index 5 but only 3 item labels"):
        entry_labels(enc, item[:3])
    shape = {"in_channels": 3, "size": 16, "clip_len": 4}
    assert make_task_model("small3d", 3, shape)(torch.rand(2, 3, 4, 16, 16)).shape == (2, 3)  # a utility model
    assert make_task_model("c3d_grid", 3, shape)(torch.rand(2, 3, 4, 16, 16)).shape == (2, 3)
    with pytest.raises(RegistryError, match="unknown attacker 'nope'"):
        make_task_model("nope", 2, shape)


class _Fixed(Attacker):
    """A fitted pool member whose test scores are given."""

    level = "classical"

    def __init__(self, correct: np.ndarray):
        self.correct = correct

    def scores(self, data, *, multilabel=False):
        y = data.private.numpy()
        pred = np.where(self.correct, y, 1 - y)
        return np.log(np.eye(2)[pred] * 0.98 + 0.01)


def test_the_pool_is_selected_on_validation_not_on_test():
    x, y = toy("side", 40, 0)
    test = task_view(released(x, y, "t"), y)
    good_on_test = np.ones(40, bool)
    half = np.arange(40) % 2 == 0
    fitted = {"a": (_Fixed(good_on_test), {"val": 0.6}), "b": (_Fixed(half), {"val": 0.9}), "c": (_Fixed(half), {"val": 0.9})}
    out = score_task_pool(fitted, test, y, levels=("clip", "video"), bootstrap=50)
    assert out["selected"] == "b" == selected(fitted)  # best on validation, the first on a tie
    assert out["value"] == pytest.approx(0.5) and out["best_on_test"] == {"model": "a", "value": 1.0}
    assert set(out["levels"]) == {"clip", "video"} and out["levels"]["clip"]["interval"][0] <= 0.5
    assert out["chance"] == pytest.approx(max(float((y == 0).float().mean()), float((y == 1).float().mean())))
