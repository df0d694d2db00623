"""The floor the task itself sets: what an attacker that knows only each clip's true task label(s)
identifies.

Where every person does every action equally often, knowing the action says nothing about who it
is: the floor is chance. Where actions follow people (one person always bends, another always waves),
the action alone names the person, and no release that keeps the action can hide it. The audit
reports this floor beside chance at every pooling level, so a release is never blamed for what the
task reveals, nor credited for hiding it.

The attacker is a table: from the training split's (task labels, private label) pairs it estimates
``P(private | task labels)`` by counting, smoothed towards the training prior ``P(private)`` with
``alpha`` pseudo-counts (a Dirichlet prior of strength ``alpha`` centred on the prior; a combination of
task labels never seen in training gets the prior itself). Its per-clip scores are
log-probabilities ``[N, num_private]``, the form every attacker gives
(:func:`privacam.evaluate.protocol.attacker_scores`), so they are pooled per clip, per video and per
person from k clips exactly like an attacker's (:func:`privacam.evaluate.pooling.score`, summed
log-probabilities). Several tasks (the trained task plus every unseen one) are used together as one
joint label. A missing task label (:data:`privacam.data.base.UNLABELLED`, ``-1``) is a value of its
own: the attacker knows that the label is missing. For multi-label private attributes the scores are
the smoothed ``P(attribute | task labels)`` per attribute (averaged when pooled, as attribute scores are).

Pure NumPy: nothing here trains a network or reads data. Typical use, with the audit's plan::

    floor = task_floor(train_tasks, train_private, test_tasks, num_private)
    levels = pooling.score(floor, plan)        # {level: {"value", "interval", ...}}
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from ..errors import ConfigError


def joint_labels(tasks: Mapping[str, Sequence[int]] | np.ndarray | Sequence[int], names: Sequence[str] | None = None) -> np.ndarray:
    """Task labels as one ``[N, M]`` integer array: a dict (task name -> ``[N]`` labels; ``names``
    picks and orders the tasks), an ``[N, M]`` array or one ``[N]`` vector (``M = 1``)."""
    if isinstance(tasks, Mapping):
        keys = list(names) if names is not None else list(tasks)
        missing = [k for k in keys if k not in tasks]
        if missing:
            raise ConfigError(f"task floor: no labels for task {missing[0]!r}; tasks given: {', '.join(tasks) or 'none'}")
        if not keys:
            raise ConfigError("task floor: no task named; give at least one task's labels")
        cols = [np.asarray(tasks[k].numpy() if hasattr(tasks[k], "numpy") else tasks[k]).reshape(-1) for k in keys]
        return np.stack(cols, 1).astype(np.int64)
    a = np.asarray(tasks.numpy() if hasattr(tasks, "numpy") else tasks)
    return (a[:, None] if a.ndim == 1 else a).astype(np.int64)


class TaskFloor:
    """``P(private | task labels)`` counted on training pairs (module docstring).

    Args:
        num_private: private classes (attributes when ``multilabel``).
        alpha: pseudo-counts of the prior in every task-label combination (> 0).
        multilabel: private labels are multi-hot attribute vectors.
    """

    def __init__(self, num_private: int, alpha: float = 1.0, multilabel: bool = False):
        if not alpha > 0:
            raise ConfigError(f"task floor: alpha must be above 0 (got {alpha}); it is the prior's pseudo-count")
        self.num_private, self.alpha, self.multilabel = int(num_private), float(alpha), bool(multilabel)
        self.prior: np.ndarray | None = None
        self.table: dict[tuple, np.ndarray] = {}
        self.counts: dict[tuple, float] = {}

    def fit(self, tasks, private, weights=None) -> "TaskFloor":
        """Count the training pairs; ``weights`` (one per pair) weighs them (e.g. every video the same)."""
        t = joint_labels(tasks)
        p = np.asarray(private.numpy() if hasattr(private, "numpy") else private)
        w = np.ones(len(t)) if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
        if not (len(t) == len(p) == len(w)) or not len(t):
            raise ConfigError(f"task floor: {len(t)} task labels, {len(p)} private labels and {len(w)} weights; "
                              f"give one of each per training clip (and at least one)")
        target = p.astype(np.float64) if self.multilabel else np.eye(self.num_private)[p.astype(np.int64)]
        if target.shape[1] != self.num_private:
            raise ConfigError(f"task floor: private labels have {target.shape[1]} attributes, expected {self.num_private}")
        mass = (w[:, None] * target)
        k = self.num_private
        # the prior: add-one smoothed (multi-label: a Beta(1, 1) per attribute)
        self.prior = (mass.sum(0) + 1.0) / (w.sum() + (2.0 if self.multilabel else k))
        keys, inv = np.unique(t, axis=0, return_inverse=True)
        inv = inv.reshape(-1)
        sums = np.zeros((len(keys), k))
        np.add.at(sums, inv, mass)
        n = np.bincount(inv, weights=w, minlength=len(keys))
        self.table = {tuple(int(v) for v in key): (sums[i] + self.alpha * self.prior) / (n[i] + self.alpha)
                      for i, key in enumerate(keys)}
        self.counts = {tuple(int(v) for v in key): float(n[i]) for i, key in enumerate(keys)}
        return self

    def proba(self, tasks) -> np.ndarray:
        """``P(private | task labels)`` of every clip ``[N, num_private]`` (the prior for unseen labels)."""
        if self.prior is None:
            raise ConfigError("task floor: fit it on the training pairs before scoring")
        t = joint_labels(tasks)
        width = len(next(iter(self.table))) if self.table else t.shape[1]
        if t.shape[1] != width:
            raise ConfigError(f"task floor: fitted on {width} task(s) per clip, scored with {t.shape[1]}; give the same tasks")
        return np.stack([self.table.get(tuple(int(v) for v in row), self.prior) for row in t]) if len(t) else np.zeros((0, self.num_private))

    def scores(self, tasks) -> np.ndarray:
        """Per-clip scores in the attackers' form: log-probabilities ``[N, num_private]``
        (multi-label: the attribute probabilities)."""
        q = self.proba(tasks)
        return q if self.multilabel else np.log(np.clip(q, 1e-300, None))


def task_floor(train_tasks, train_private, test_tasks, num_private: int, *, alpha: float = 1.0,
               multilabel: bool = False, weights=None) -> np.ndarray:
    """The floor's per-test-clip scores (log-probabilities ``[N, num_private]``; attribute
    probabilities when ``multilabel``), from the training split's (task labels, private label) pairs.

    Args:
        train_tasks, test_tasks: one task's labels ``[N]``, several tasks' ``[N, M]`` (the trained task
            and every unseen one, used together) or a dict task name -> labels (every task in it).
        train_private: the training clips' private labels (``[N]`` ints or ``[N, A]`` multi-hot).
        num_private: private classes (attributes).
        alpha: the prior's pseudo-counts per task-label combination.
        weights: one per training pair (default: every clip the same).
    """
    if isinstance(train_tasks, Mapping) and isinstance(test_tasks, Mapping):
        names = list(train_tasks)
        train_tasks, test_tasks = joint_labels(train_tasks, names), joint_labels(test_tasks, names)
    return TaskFloor(num_private, alpha, multilabel).fit(train_tasks, train_private, weights).scores(test_tasks)


__all__ = ["TaskFloor", "joint_labels", "task_floor"]
