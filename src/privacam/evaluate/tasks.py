"""Tasks a release was never trained for: a pool of models retrained per task, the best chosen on
validation (docs/tasks.md).

A release that keeps what a clip says beyond its trained label still supports tasks nobody trained
it for: where the person stands, how fast they move. The audit measures that by retraining, for each
task the data labels (``task:<name>`` columns, :attr:`privacam.data.Splits.tasks`), a **pool** of
models on the fixed release, selecting the best of them on validation data carved from train (never
test), and scoring it on test. One model is not enough: a network that ends in global pooling
(``small3d``, the audit's utility model) throws away where and when things happen, so it cannot tell
left from right even on raw clips. :data:`TASK_POOL` holds models that keep them.

Tasks are fitted without horizontal-flip augmentation (:func:`task_fit_config`): a flipped clip of a
person standing on the left shows them on the right, so flipping would teach the model wrong labels.

The pieces, for the audit to call:

- :func:`entry_labels`: a split's per-item task labels (:func:`privacam.data.base.item_tasks`) for
  every entry of its release (probing views included);
- :func:`task_view`: a released split whose ``private`` field holds a task's labels (unlabelled
  entries dropped), so the audit's own fitting (:func:`~privacam.evaluate.selection.carve`,
  :func:`~privacam.evaluate.protocol.fit_attacker`) fits and selects task models unchanged;
- :func:`make_task_model`: a pool member by name (attacker registry, else utility registry);
- :func:`fit_task_pool` / :func:`score_task_pool`: fit and select every model of the pool on one task,
  then score them on test at the pooling levels asked for, with 95 % intervals and chance.

The audit runs each (task, pool member) as a unit (:mod:`.units`, kind ``task``: the task's label
column ``task:<name>`` of the release cache, entries without a label left out by :func:`labelled`)
and assembles every task from the members' per-clip test scores (:func:`pool_result`).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from ..data.base import UNLABELLED
from ..registry import ATTACKERS, UTILITY_MODELS, create_attacker, create_utility
from . import pooling
from .encoded import Encoded
from .fitting import Attacker, FitConfig, NetworkAttacker, attacker_scores, fit_attacker

log = logging.getLogger(__name__)

#: The default task pool, chosen by measurement on raw clips of synthetic, synthetic_cues and the
#: Weizmann derived tasks (docs/tasks.md, ``python bench/task_pool.py``): ``shape_logistic`` (where the
#: figure is and how large), ``tempo_logistic`` (how fast it moves) and ``c3d_grid`` (a 3D CNN that
#: keeps a 4x4x4 grid) together are, selected on validation, as good as every candidate measured on
#: every task; ``grid_probe``, ``energy_probe`` and ``mhi_logistic`` (pixels and motion, where and
#: when) cost seconds and keep the pool from resting on three models where a release is not raw.
TASK_POOL = (
    "shape_logistic",
    "tempo_logistic",
    "c3d_grid",
    "grid_probe",
    "energy_probe",
    "mhi_logistic",
)


def task_fit_config(cfg: FitConfig) -> FitConfig:
    """``cfg`` without horizontal flips (the module docstring says why)."""
    return dataclasses.replace(cfg, flip=False)


def entry_labels(enc: Encoded, item_labels: torch.Tensor) -> torch.Tensor:
    """The label of every entry of a released split from its dataset items' labels: entry ``i`` is a
    release of item ``enc.clip[i]`` (:func:`~privacam.evaluate.protocol.encode_split`); without clip
    indices, entries are the items in order."""
    item_labels = torch.as_tensor(item_labels).long()
    idx = enc.clip if enc.clip is not None else torch.arange(len(enc))
    if len(idx) and int(idx.max()) >= len(item_labels):
        raise ValueError(f"entry_labels: the release has clip index {int(idx.max())} but only {len(item_labels)} item labels; "
                         f"call it on a split as encode_split returned it (before carving or subsetting)")
    return item_labels[idx]


def task_view(enc: Encoded, labels: torch.Tensor) -> Encoded:
    """``enc`` with ``labels`` (one per entry) as its ``private`` field and entries without a label
    (:data:`~privacam.data.base.UNLABELLED`) left out: the audit's fitting and selection code,
    which reads ``private``, then fits a task model as it fits an attacker."""
    labels = torch.as_tensor(labels).long()
    if len(labels) != len(enc):
        raise ValueError(f"task_view: {len(labels)} labels for {len(enc)} entries")
    view = enc.replace(labels={**enc.labels, "private": labels})
    keep = labels != UNLABELLED
    return view if bool(keep.all()) else view.subset(torch.nonzero(keep).flatten())


def make_task_model(name: str, num_classes: int, shape: Mapping[str, int], **params: Any):
    """A pool member: the attacker registered as ``name``, else the utility model (``small3d`` ...).
    ``shape``: ``in_channels``, ``size``, ``clip_len`` of the release (arguments a factory does not
    take are left out for utility models)."""
    if name in ATTACKERS:
        return create_attacker(name, num_classes=num_classes, **shape, **params)
    if name in UTILITY_MODELS:
        takes = UTILITY_MODELS.parameters(name)
        kw = {k: v for k, v in shape.items() if takes is None or k in takes}
        return create_utility(name, num_classes=num_classes, **kw, **params)
    ATTACKERS.get(name)  # the one-line error listing the valid names
    raise AssertionError("unreachable")


def release_shape(enc: Encoded) -> dict[str, int]:
    """``in_channels``, ``size`` and ``clip_len`` of a release (what the model factories take)."""
    x = enc.x
    return {"in_channels": int(x.shape[1]), "size": int(x.shape[-1]), "clip_len": int(x.shape[2]) if x.dim() == 5 else 0}


def fit_task_pool(names: Sequence[str], split, num_classes: int, *, cfg: FitConfig, device: torch.device | str = "cpu",
                  desc: str = "task") -> dict[str, tuple[Any, dict]]:
    """Fit and select every model of the pool on one task's selection split.

    Args:
        names: pool members (:func:`make_task_model`).
        split: a :class:`~privacam.evaluate.selection.SelectionSplit` of task views (:func:`task_view`
            of train and validation, carved by :func:`~privacam.evaluate.selection.carve`).
        num_classes: the task's classes.
        cfg: the fitting settings; flips are switched off (:func:`task_fit_config`).
    Returns:
        ``{name: (fitted model, selection record)}``; the record's ``val`` is the validation score
        the pool is selected on.
    """
    device = torch.device(device)
    cfg = task_fit_config(cfg)
    out = {}
    for name in names:
        out[name] = fit_pool_member(name, split, num_classes, cfg=cfg, device=device, desc=f"{desc} {name}")
        log.info("%s: %s val %.3f", desc, name, out[name][1]["val"])
    return out


def pool_member(name: str, num_classes: int, shape: Mapping[str, int], *, cfg: FitConfig,
                device: torch.device | str = "cpu", desc: str = "task", progress: bool | None = None) -> Attacker:
    """A pool member ready to fit (:func:`make_task_model`): a classical model as it is, a network in a
    :class:`~privacam.evaluate.fitting.NetworkAttacker` fitted with ``cfg``."""
    make = lambda: make_task_model(name, num_classes, shape)  # noqa: E731
    model = make()
    return model if isinstance(model, Attacker) else NetworkAttacker(make, cfg, device, desc=desc, model=model,
                                                                     progress=progress)


def fit_pool_member(name: str, split, num_classes: int, *, cfg: FitConfig, device: torch.device | str = "cpu",
                    desc: str = "task") -> tuple[Attacker, dict]:
    """One pool member fitted and selected on ``split`` (:func:`~privacam.evaluate.fitting.fit_attacker`):
    a classical model as it is, a network in a :class:`~privacam.evaluate.fitting.NetworkAttacker`."""
    attacker = pool_member(name, num_classes, release_shape(split.train), cfg=cfg, device=device, desc=desc)
    return attacker, fit_attacker(attacker, split, multilabel=False)


# ---------------------------------------------------------------------------------------- in the audit
def labelled(enc: Encoded, column: str) -> Encoded:
    """The entries of ``enc`` that have a label in ``column`` (not :data:`~privacam.data.base.UNLABELLED`)."""
    y = enc.label(column)
    keep = y != UNLABELLED
    return enc if bool(keep.all()) else enc.subset(torch.nonzero(keep).flatten())


def labelled_split(split, column: str):
    """A :class:`~privacam.evaluate.selection.SelectionSplit` with only the entries labelled in ``column``
    (the same held-out videos: the split is carved before, on the private labels, as for attackers)."""
    return dataclasses.replace(split, train=labelled(split.train, column), val=labelled(split.val, column),
                               pool=None if split.pool is None else labelled(split.pool, column))


def chosen_member(vals: Mapping[str, float]) -> str:
    """The member with the best validation score (the first in pool order on a tie): what is reported."""
    best = max(vals.values())
    return next(n for n, v in vals.items() if v >= best - 1e-12)


def pool_result(scores: Mapping[str, np.ndarray], vals: Mapping[str, float], test: Encoded, column: str, train_labels,
                *, bootstrap: int = 1000, seed: int = 0) -> dict:
    """One task (or the trained task) from its pool members' per-clip test scores.

    Args:
        scores: member -> per-clip log-probabilities on ``test`` (its labelled entries, in order).
        vals: member -> validation score, in pool order: the member reported is chosen on these alone.
        test: the test split's labelled entries (:func:`labelled`) the scores are of.
        column: the label column (``utility``, ``task:<name>``).
        train_labels: the training labels of the task (for chance: the majority class).
    Returns:
        ``{"model", "value", "interval", "chance", "models": {member: {"val", "test", "interval"}},
        "units", "videos"}``: per clip, every test video weighing the same (its chance weighed alike),
        95 % interval by bootstrap over test videos.
    """
    if not len(test):
        return {"value": None, "interval": None, "chance": None, "model": None, "models": {}, "units": 0, "videos": 0,
                "skipped": f"no test clip has a label for {column}"}
    index = pooling.TestIndex.build(test.label(column).numpy(), test.videos)
    plan = pooling.make_plan(index, [pooling.CLIP], bootstrap=bootstrap, seed=seed)
    per = {n: pooling.score(np.asarray(s, dtype=np.float64), plan)[pooling.CLIP] for n, s in scores.items()}
    chosen = chosen_member({n: vals[n] for n in vals if n in per}) if per else None
    return {
        "value": per[chosen]["value"] if chosen else None,
        "interval": per[chosen]["interval"] if chosen else None,
        "chance": pooling.chance(plan, np.asarray(train_labels), pooling.CLIP),
        "model": chosen,
        "models": {n: {"val": float(vals[n]), "test": per[n]["value"], "interval": per[n]["interval"]} for n in per},
        "units": len(test), "videos": index.num_videos if index.has_videos else None,
    }


def selected(fitted: Mapping[str, tuple[Any, dict]]) -> str:
    """The pool member with the best validation score (the first in pool order on a tie)."""
    return chosen_member({n: sel["val"] for n, (_, sel) in fitted.items()})


def score_task_pool(fitted: Mapping[str, tuple[Any, dict]], test: Encoded, train_labels, *,
                    levels: Sequence[str] = (pooling.CLIP,), device: torch.device | str = "cpu",
                    bootstrap: int = 1000, seed: int = 0) -> dict:
    """Score a fitted pool on a task's test view (:func:`task_view`), after selection is over.

    Args:
        fitted: from :func:`fit_task_pool`.
        test: the test split's task view (scored here for the first time).
        train_labels: the task labels the models were fitted on (for chance: the majority class).
        levels: pooling levels (``clip``, ``video``; tasks are not pooled per person).
    Returns:
        ``{"selected": name chosen on validation, "value", "interval"`` (its score at the first level),
        ``"levels": {level: {"value", "interval", "chance"}}`` of the selected model,
        ``"models": {name: {"val", "test": {level: value}}}``, ``"best_on_test"`` (for reference only:
        picked on test, not a claim), ``"chance"`` and ``"n_test"``}.
    """
    device = torch.device(device)
    index = pooling.TestIndex.build(test.private.numpy(), test.videos)
    levels = [lv for lv in levels if lv == pooling.CLIP or (lv == pooling.VIDEO and index.has_videos)]
    plan = pooling.make_plan(index, levels, bootstrap=bootstrap, seed=seed)
    per = {name: pooling.score(attacker_scores(model, test, device, False), plan) for name, (model, _) in fitted.items()}
    chosen = selected(fitted)
    chance = {lv: pooling.chance(plan, np.asarray(train_labels), lv) for lv in levels}
    head = levels[0]
    best_test = pooling.best_of(per, head)
    return {
        "selected": chosen,
        "value": per[chosen][head]["value"],
        "interval": per[chosen][head]["interval"],
        "level": head,
        "chance": chance[head],
        "levels": {lv: {"value": per[chosen][lv]["value"], "interval": per[chosen][lv]["interval"], "chance": chance[lv]}
                   for lv in levels},
        "models": {n: {"val": float(fitted[n][1]["val"]), "test": {lv: per[n][lv]["value"] for lv in levels}} for n in per},
        "best_on_test": {"model": best_test["attacker"], "value": best_test["value"]},
        "n_test": len(test),
    }



__all__ = ["TASK_POOL", "chosen_member", "entry_labels", "fit_pool_member", "fit_task_pool", "labelled", "labelled_split",
           "make_task_model", "pool_member", "pool_result", "release_shape", "score_task_pool", "selected",
           "task_fit_config", "task_view"]
