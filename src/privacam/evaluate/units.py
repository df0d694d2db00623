"""The units of an audit: independent jobs, each a pure function of the frozen release cache and its spec.

A unit is one model the audit fits: an attacker's fit on the private labels with its selection and
refit, the retrained utility model, one reconstructor of the reconstruction threat. It reads the release cache
(:class:`~privacam.evaluate.cache.ReleaseCache`) and nothing else, seeds itself, and returns a record
that keeps what the summary is assembled from: the selection record and its **per-clip scores on the
test split** (so levels, bootstrap intervals and the best-of-N are recomputed from them), the
parameter count, its level and seconds. Its result is written to ``eval/units/<name>.json`` with the
digest of its inputs (:meth:`UnitSpec.digest`: the cache's digest, the model and its parameters, the
label column, the fit settings, the selection rule, the seed): an audit run again with the same inputs
reuses every unit it finds, and recomputes a unit whose inputs changed (another release, another
manifest, other settings).

Unit kinds are a small registry (:func:`unit_kind`): ``attacker``, ``utility``, ``task`` (one member
of the task pool on one task's labels: a task the data labels, or the trained task), ``floor`` (the
task-label floor: what knowing only the task labels of a clip identifies) and ``reconstruction``; a
kind is a function ``(spec, cache, device) -> record``. A new kind is one more function and one more
line in :func:`plan_units`.

Each unit opens the test split only once its own model is selected (per unit, the test split stays
sealed until selection is over); no unit reads another unit's result. Every unit computes on one CPU
thread (:data:`UNIT_THREADS`), so that its result is the same on every machine and executor.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..audits import read_unit, write_unit
from ..executors import Executor, Inline, Job, WorkerContext
from ..utils import seed_everything
from . import metrics
from .cache import TASK, ReleaseCache, task_column
from .fitting import FitConfig, NetworkAttacker, fit_attacker, make_attacker

log = logging.getLogger(__name__)

#: the version of a unit's record: units written by another version are computed again
UNIT_SCHEMA = 2
#: the CPU threads every unit computes on, whatever runs it: torch's CPU kernels (and OpenMP / BLAS)
#: sum in an order that depends on the thread count, so a unit's scores would otherwise depend on the
#: machine and the executor; the audit uses several cores by running units side by side (--workers, --ray)
UNIT_THREADS = 1


@dataclass(frozen=True)
class UnitSpec:
    """What one unit is: everything its result depends on besides the release cache.

    Attributes:
        kind: a key of :data:`UNIT_KINDS`.
        name: its file name in ``eval/units`` (unique in the audit).
        model: the registered model (an attacker, a utility model).
        params: the model factory's extra parameters.
        labels: the label column it is fitted on (``private``, ``utility``, ...).
        group: the released splits it reads (``privacy`` or ``utility``).
        fit: :class:`~privacam.evaluate.fitting.FitConfig` as a dict.
        selection: how its validation split is made: ``{"val_mode", "val_fraction", "refit"}`` for the
            attackers (:func:`~privacam.evaluate.selection.carve`), ``{}`` for the data's validation split.
        test_clips: the test clips scored per video (``eval.test_clips``).
        seed: seeds every draw of the unit (its model's initialisation included).
        network: it trains a network (it takes a GPU where there is one).
        extras: the cache's extras it reads.
        cost: a relative estimate of its time (long units start first).
    """

    kind: str
    name: str
    model: str = ""
    params: dict = field(default_factory=dict)
    labels: str = "private"
    group: str = "privacy"
    fit: dict = field(default_factory=dict)
    selection: dict = field(default_factory=dict)
    test_clips: int = 4
    seed: int = 0
    network: bool = True
    extras: tuple = ()
    cost: float = 1.0

    def inputs(self) -> dict:
        """What the result depends on (besides the cache): every field but the name and the cost."""
        d = dataclasses.asdict(self)
        d.pop("cost")
        d["extras"] = list(self.extras)
        return d

    def task_columns(self) -> list[str]:
        """The task label columns (``task:<name>``) it reads: its own label column, and a floor's columns."""
        cols = [self.labels, *(self.params.get("columns") or ())] if self.kind == "floor" else [self.labels]
        return sorted({c for c in cols if c.startswith(TASK)})

    def digest(self, cache: ReleaseCache) -> str:
        """A hash of the unit's inputs: the spec, the cache's digest (and of the extras and the task label
        columns it reads, which the cache's digest leaves out), the version of the record."""
        doc = {"unit": self.inputs(), "cache": cache.digest, "schema": UNIT_SCHEMA,
               "extras": {k: cache.extra_digest(k) for k in self.extras}}
        cols = self.task_columns()
        if cols:
            doc["labels"] = {c: cache.label_digest(self.group, c) for c in cols}
        return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:24]


#: unit kind -> ``fn(spec, cache, device) -> record``
UNIT_KINDS: dict[str, Callable[[UnitSpec, ReleaseCache, str], dict]] = {}


def unit_kind(name: str):
    """Register a unit kind: ``@unit_kind("attacker") def fn(spec, cache, device) -> dict``."""

    def deco(fn):
        UNIT_KINDS[name] = fn
        return fn

    return deco


@contextlib.contextmanager
def unit_threads(n: int = UNIT_THREADS):
    """Compute on ``n`` CPU threads (torch, OpenMP and BLAS pools), restoring the process's afterwards."""
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with threadpool_limits(n):
            yield
    finally:
        torch.set_num_threads(before)


def run_unit(cache: ReleaseCache, spec: UnitSpec, ctx: WorkerContext) -> dict:
    """Run one unit (in this process or a worker): seeded, on :data:`UNIT_THREADS` CPU threads, on the
    device its kind asks for; returns its record with ``seconds`` and where it ran. The same inputs give
    the same record wherever and after whatever it runs."""
    t0 = time.time()
    seed_everything(spec.seed)  # its own draws only: no unit depends on which ran before it, or where
    device = ctx.device_for(spec.network)
    with unit_threads():
        rec = UNIT_KINDS[spec.kind](spec, cache, device)
    rec.update({"name": spec.name, "kind": spec.kind, "spec": spec.inputs(), "seconds": round(time.time() - t0, 2),
                "device": str(device), "executor": ctx.executor})
    return rec


def _run_job(cache: ReleaseCache, spec: UnitSpec, ctx: WorkerContext) -> dict:
    return run_unit(_cache_of(cache), spec, ctx)


_CACHES: dict = {}


def _cache_of(shared) -> ReleaseCache:
    """The cache a job was given: the cache itself, or its parts (Ray), rebuilt once per worker process."""
    if isinstance(shared, ReleaseCache):
        return shared
    key = shared["digest"]
    if key not in _CACHES:
        _CACHES.clear()
        _CACHES[key] = ReleaseCache.from_parts(shared)
    return _CACHES[key]


# ---------------------------------------------------------------------------------------- kinds
def selection_split(cache: ReleaseCache, group: str, how: dict, seed: int):
    """The split a unit fits and selects on: carved from the training side (``how``: see
    :attr:`UnitSpec.selection`), or the data's validation split as it is. Computed once per process."""
    from .selection import SelectionSplit, carve

    def make():
        train, val = cache.split(group, "train"), cache.split(group, "val")
        if how.get("val_mode") == "auto":
            return carve(train, val, fraction=how["val_fraction"], seed=seed, refit=how["refit"])
        if how.get("val_mode") == "data":
            return SelectionSplit(train, val, None, {"mode": "data", "val_clips": len(val)})
        return SelectionSplit(train.view_rows(0), val, None, {"mode": "data", "val_clips": len(val)})

    return cache.memo(("selection", group, json.dumps(how, sort_keys=True), seed), make)


def _is_multilabel(cache: ReleaseCache, spec: UnitSpec) -> bool:
    return cache.split(spec.group, "train").label(spec.labels).dim() > 1


def _fit_and_score(attacker, spec: UnitSpec, cache: ReleaseCache, split) -> dict:
    """Fit and select on the training side, then (only then) open the test split and score it."""
    multilabel = _is_multilabel(cache, spec)
    sel = fit_attacker(attacker, split, spec.labels, multilabel=multilabel)
    test, _ = cache.open_test(spec.group, spec.test_clips)
    scores = np.asarray(attacker.scores(test, multilabel=multilabel), dtype=np.float64)
    rec: dict[str, Any] = {"level": attacker.level, "selection": sel, "params": int(attacker.num_params()),
                           "scores": scores.tolist()}
    frames = None if multilabel else attacker.frame_scores(test)
    if frames is not None:
        rec["frame_accuracy"] = metrics.frame_accuracy(frames, test.label(spec.labels))
    return rec


@unit_kind("attacker")
def attacker_unit(spec: UnitSpec, cache: ReleaseCache, device: str) -> dict:
    """An attacker retrained from scratch on the label column (the private labels), selected on held-out
    training data, refitted on all of it, scored per test clip."""
    attacker = make_attacker(spec.model, num_classes=cache.info["num_classes"][spec.labels], shape=cache.info["shape"],
                             cfg=FitConfig(**spec.fit), device=device, progress=False)
    split = selection_split(cache, spec.group, spec.selection, spec.seed)
    return _fit_and_score(attacker, spec, cache, split)


@unit_kind("utility")
def utility_unit(spec: UnitSpec, cache: ReleaseCache, device: str) -> dict:
    """A utility model retrained on one release of the training split, selected on the data's validation
    split, scored per test clip (shows that some model can do the task from the release)."""
    from ..registry import create_utility

    make = lambda: create_utility(spec.model, num_classes=cache.info["num_classes"][spec.labels],  # noqa: E731
                                  **cache.info["shape"], **spec.params)
    attacker = NetworkAttacker(make, FitConfig(**spec.fit), device, desc=f"fit {spec.model}", model=make(), progress=False)
    split = selection_split(cache, spec.group, spec.selection, spec.seed)
    return _fit_and_score(attacker, spec, cache, split)


def label_classes(cache: ReleaseCache, column: str) -> int:
    """The classes of a label column: ``utility``, ``private`` or a task's ``task:<name>``."""
    if column.startswith(TASK):
        return len(cache.info["tasks"][column[len(TASK):]])
    return int(cache.info["num_classes"][column])


@unit_kind("task")
def task_unit(spec: UnitSpec, cache: ReleaseCache, device: str) -> dict:
    """One member of the task pool (``spec.model``) retrained on one task's labels (``spec.labels``: a
    ``task:<name>`` column, or ``utility`` for the trained task's pool) with the fit settings of the
    spec (no horizontal flips, :func:`~privacam.evaluate.tasks.task_fit_config`), selected on validation,
    refitted where the selection held out training videos, scored per labelled test clip. Entries
    without a label for the task are left out of fitting, selection and scoring."""
    from .tasks import labelled, labelled_split, pool_member

    column = spec.labels
    split = labelled_split(selection_split(cache, spec.group, spec.selection, spec.seed), column)
    empty = [n for n, e in (("training", split.train), ("validation", split.val)) if not len(e)]
    if empty:
        return {"level": "task", "skipped": f"no {empty[0]} clip has a label for {column}", "params": 0, "scores": []}
    attacker = pool_member(spec.model, label_classes(cache, column), cache.info["shape"], cfg=FitConfig(**spec.fit),
                           device=device, desc=f"fit {spec.model} on {column}", progress=False)
    sel = fit_attacker(attacker, split, column, multilabel=False)
    test = labelled(cache.open_test(spec.group, spec.test_clips)[0], column)  # opened once it is selected
    scores = np.asarray(attacker.scores(test), dtype=np.float64) if len(test) else np.zeros((0, 1))
    return {"level": getattr(attacker, "level", "") or "task", "selection": sel, "params": int(attacker.num_params()),
            "scores": scores.tolist()}


@unit_kind("floor")
def floor_unit(spec: UnitSpec, cache: ReleaseCache, device: str) -> dict:
    """The task-label floor (:func:`~privacam.evaluate.floor.task_floor`): an attacker that knows only the
    labels of ``spec.params["columns"]`` of each clip (the trained task; or it and every other task),
    counted on the pairs the attackers are fitted on, its per-test-clip log-probabilities scored and
    pooled like an attacker's."""
    from .floor import task_floor

    cols = list(spec.params["columns"])
    split = selection_split(cache, spec.group, spec.selection, spec.seed)
    train = (split.pool if split.pool is not None else split.train).view_rows(0)
    test, _ = cache.open_test(spec.group, spec.test_clips)
    multilabel = bool(cache.info["multilabel"])
    scores = task_floor({c: train.label(c) for c in cols}, train.private, {c: test.label(c) for c in cols},
                        len(cache.info["private_classes"]), multilabel=multilabel)
    return {"level": "floor", "params": 0, "scores": np.asarray(scores, dtype=np.float64).tolist()}


@unit_kind("reconstruction")
def reconstruction_unit(spec: UnitSpec, cache: ReleaseCache, device: str) -> dict:
    """One fresh reconstructor (``spec.model``: ridge, kernel ridge or a decoder) that rebuilds the input
    from the release: fitted on train pairs, selected on validation, MSE / PSNR / SSIM on test pairs."""
    from .reconstruction import reconstruction_attack

    x = {k: cache.extras[f"reconstruction/{k}"] for k in ("train_z", "train_x", "val_z", "val_x", "test_z", "test_x")}
    try:
        res = reconstruction_attack(x["train_z"], x["train_x"], x["val_z"], x["val_x"], x["test_z"], x["test_x"],
                                    attackers=(spec.model,), seed=spec.seed)["attackers"][spec.model]
    except Exception as e:  # noqa: BLE001 - the attribute audit must not be lost to this extra
        log.warning("reconstruction attacker %s skipped: %s", spec.model, e)
        res = None
    return {"reconstruction": res, "level": "reconstruction", "params": 0}


# ---------------------------------------------------------------------------------------- the plan
#: the units' relative costs, which set the order they start in (the longest first, so that two workers end
#: together and a killed audit has its long units written). Measured on the Weizmann audit of the default run
#: (bench/bench_audit_units.py, one thread; seconds per unit): the trained task's model, with its own longer
#: fit, about 36 s; the kernel ridge reconstructor about 24 s (its kernel is quadratic in the training
#: clips), the decoder 14 s, the ridge 10 s; a frame CNN 5-24 s, a clip CNN 6-7 s, a classical attacker 0.4-6 s
UTILITY_COST = 9.0
RECONSTRUCTION_COSTS = {"ridge": 2.5, "kernel_ridge": 6.0, "decoder": 3.5}


def attacker_cost(name: str) -> float:
    from ..registry import ATTACKERS

    tags = ATTACKERS.tags(name) if name in ATTACKERS else set()
    if "classical" in tags:
        return 1.5 if name.endswith("_boosted") else 0.6
    return {"frame": 4.0, "clip": 3.0, "probe": 1.0}.get(next(iter(tags), ""), 2.0)


def is_network(name: str) -> bool:
    from ..registry import ATTACKERS

    return "classical" not in (ATTACKERS.tags(name) if name in ATTACKERS else set())


def selection_rule(spec) -> dict:
    """How the attackers' validation split is made (:attr:`UnitSpec.selection`) from the audit's settings."""
    if spec.val_mode == "auto":
        return {"val_mode": "auto", "val_fraction": float(spec.val_fraction), "refit": bool(spec.refit)}
    return {"val_mode": "data"}


def unit_slug(name: str) -> str:
    """A task's name as part of a unit's file name (other characters than letters, digits, ``_`` and ``-``
    replaced, with a short hash of the name where any was)."""
    import re

    slug = re.sub(r"[^A-Za-z0-9_-]", "_", name)
    return slug if slug == name else f"{slug}-{hashlib.sha1(name.encode()).hexdigest()[:6]}"


#: the file names of the floors' units: the trained task alone, and with every other task
FLOOR_UNITS = {"floor": "floor.task", "floor_all": "floor.all"}


def plan_units(cache: ReleaseCache, spec) -> list[UnitSpec]:
    """The units of an audit (``spec``: :class:`~privacam.evaluate.protocol.AuditSpec`): the trained task's
    pool (``eval.utility_model`` with its own settings and every member of ``eval.task_pool``, where the
    data has a task), every attacker on the private labels, each task the data labels times every member
    of the task pool, the task-label floors, the reconstruction threat (where its frame pairs are in the
    cache)."""
    from .tasks import task_fit_config

    units = []
    seed = int(spec.fit.seed)
    task_fit = dataclasses.asdict(task_fit_config(spec.fit))
    pool = list(dict.fromkeys(spec.task_pool or ()))
    if cache.info["has_utility"]:
        units.append(UnitSpec("utility", f"utility.{spec.utility_model}", spec.utility_model, dict(spec.utility_params or {}),
                              "utility", "utility", dataclasses.asdict(spec.utility_fit), {}, int(spec.test_clips), seed,
                              True, (), UTILITY_COST))
        # the rest of the trained task's pool: selected on the utility model's validation split, so that
        # every member's validation score is on the same clips
        for name in pool:
            if name != spec.utility_model:
                units.append(UnitSpec("task", f"utility.{name}", name, {}, "utility", "utility", task_fit, {},
                                      int(spec.test_clips), seed, is_network(name), (), attacker_cost(name)))
    how = selection_rule(spec)
    for name in spec.attackers:
        units.append(UnitSpec("attacker", f"attacker.{name}", name, {}, "private", "privacy", dataclasses.asdict(spec.fit),
                              how, int(spec.test_clips), seed, is_network(name), (), attacker_cost(name)))
    tasks = cache.task_names()
    for task in tasks:  # selected on validation carved from train exactly as the attackers are
        for name in pool:
            units.append(UnitSpec("task", f"task.{unit_slug(task)}.{name}", name, {}, task_column(task), "utility",
                                  task_fit, how, int(spec.test_clips), seed, is_network(name), (), attacker_cost(name)))
    if cache.groups["privacy"] is cache.groups["utility"]:  # the task labels are of the people the attackers name
        known = (["utility"] if cache.info["has_utility"] else [])
        floors = {"floor": known, "floor_all": known + [task_column(t) for t in tasks] if tasks else []}
        for which, cols in floors.items():
            if cols:
                units.append(UnitSpec("floor", FLOOR_UNITS[which], "task_floor", {"columns": cols}, "private", "privacy",
                                      {}, how, int(spec.test_clips), seed, False, (), 0.05))
    if "reconstruction/train_z" in cache.extras:
        from .reconstruction import ATTACKERS as RECONSTRUCTORS

        cost = RECONSTRUCTION_COSTS
        for name in RECONSTRUCTORS:
            units.append(UnitSpec("reconstruction", f"reconstruction.{name}", name, {}, "", "utility", {}, {},
                                  int(spec.test_clips), seed, False, ("reconstruction",), cost.get(name, 1.0)))
    return units


@dataclass
class UnitRun:
    """The results of an audit's units and what computing them cost."""

    results: dict[str, dict]
    computed: list[str]
    reused: list[str]
    seconds: dict[str, float]
    executor: dict


def run_units(units: list[UnitSpec], cache: ReleaseCache, eval_dir: str | Path, *, executor: Executor | None = None,
              device: str = "cpu", progress: bool | None = None) -> UnitRun:
    """Every unit's result: read from ``eval_dir/units`` where one was written for the same inputs,
    computed by ``executor`` (default: in this process) otherwise, each written as soon as it is done
    (a killed audit keeps every finished unit). One progress bar over the units names the ones running
    and estimates the time left."""
    from tqdm.auto import tqdm

    executor = executor or Inline(device)
    results: dict[str, dict] = {}
    reused, todo = [], []
    for u in units:
        digest = u.digest(cache)
        rec = read_unit(eval_dir, u.name, digest)
        if rec is not None:
            results[u.name] = rec
            reused.append(u.name)
        else:
            todo.append((u, digest))
    if reused:
        log.info("%d of %d units reused from %s (same inputs): %s", len(reused), len(units), Path(eval_dir) / "units",
                 ", ".join(reused))
    seconds: dict[str, float] = {}
    digests = {u.name: d for u, d in todo}
    jobs = [Job(u.name, _run_job, u, gpu=u.network, cost=u.cost) for u, _ in todo]
    shared = _shared_for(executor, cache) if jobs else None
    if jobs:
        executor.prepare(shared)
    # the bar moves by each unit's estimated cost (a CNN weighs more than a logistic regression): its
    # time left is an estimate over what remains; it names the units running
    disable = (None if progress is None else not progress) if jobs else True
    bar = tqdm(total=sum(j.cost for j in jobs), desc=f"audit: {len(jobs)} units", disable=disable,
               bar_format="{desc} {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]{postfix}")
    try:
        for ev in executor.run(jobs, shared):
            if ev.kind == "done":
                rec = dict(ev.result)
                rec["digest"] = digests[ev.job.name]
                write_unit(eval_dir, ev.job.name, rec)
                results[ev.job.name] = rec
                seconds[ev.job.name] = round(ev.seconds, 2)
                bar.update(ev.job.cost)
                log.info("unit %s done in %.1f s", ev.job.name, ev.seconds)
            bar.set_postfix_str(", ".join(ev.running)[:60], refresh=True)
    finally:
        bar.close()
    return UnitRun(results, [j.name for j in jobs], reused, seconds, executor.describe())


def _shared_for(executor: Executor, cache: ReleaseCache):
    """What the executor sends its workers: the cache itself in this process or to forked workers (they
    share its memory), the cache in shared memory for spawned ones, its parts as numpy arrays for Ray's
    object store."""
    if executor.name == "local" and not executor.forks:
        return cache.share()
    if executor.name == "ray":
        return cache.to_parts("numpy")
    return cache


__all__ = ["FLOOR_UNITS", "UNIT_KINDS", "UNIT_SCHEMA", "UnitRun", "UnitSpec", "label_classes", "plan_units", "run_unit",
           "run_units", "selection_rule", "selection_split", "unit_kind", "unit_slug"]
