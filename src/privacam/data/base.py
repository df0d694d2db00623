"""The data contract shared by every dataset.

A sample is a dict ``{"input": clip [C,T,H,W] or image [C,H,W] float in [0,1], "utility": int,
"private": int or multi-hot float vector, "id": str}`` and optionally ``"video": str`` (the recording a
clip was cut from; the audit pools the clips of one video) and ``"tasks": {name: int}`` (labels of
further tasks, the ``task:<name>`` columns of a manifest; :data:`UNLABELLED` where a sample has no label
for a task; only data with tasks carry the key). A dataset factory returns :class:`Splits`: train / val
/ test datasets plus the class lists, so models can be sized without touching files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch
from torch.utils.data import Dataset

from ..errors import ConfigError, DataError

#: the task label of a sample that has none for that task (an empty ``task:<name>`` cell)
UNLABELLED = -1


def data_fingerprint(splits: "Splits") -> str:
    """A short hash of what the data says: class lists, every record's path, segment and labels per
    split, the size and modification time of its files (every frame of a frame folder), and the bytes
    of the files the labels were read from (``meta["label_files"]``). A relabelled manifest, a moved
    row, an edited label file or a frame edited in place gives another fingerprint; caches keyed on it
    (the raw reference) are then recomputed, and run files stamped with it can be checked."""
    import hashlib
    import json

    h = hashlib.sha1()
    h.update(json.dumps([splits.name, splits.kind, list(splits.utility_classes), list(splits.private_classes),
                         bool(splits.multilabel)], default=str).encode())
    if splits.tasks:  # data without tasks keeps the fingerprint it had before tasks existed
        h.update(json.dumps({"tasks": {k: list(v) for k, v in sorted(splits.tasks.items())}}).encode())
    for f in splits.meta.get("label_files", []):
        p = Path(f)
        h.update(p.read_bytes() if p.is_file() else f"missing:{f}".encode())
    from .video.decoding import content_signature

    signatures: dict[str, list] = {}  # a video carved into several records is read once
    for part in (splits.train, splits.val, splits.test):
        records = getattr(part, "records", None)
        if records is None:
            h.update(f"n={len(part)}".encode())
            for name, labels in sorted((getattr(part, "tasks", None) or {}).items()):
                h.update(json.dumps([name, [int(v) for v in labels]]).encode())
            continue
        for r in records:
            private = r.private.tolist() if hasattr(r.private, "tolist") else r.private
            if r.path not in signatures:
                signatures[r.path] = content_signature(r.path)
            row = [r.path, int(r.utility), private, r.start, r.end, r.box, signatures[r.path]]
            if getattr(r, "tasks", None):
                row.append(sorted(r.tasks.items()))
            h.update(json.dumps(row, default=str).encode())
    if splits.privacy is not None:
        h.update(data_fingerprint(splits.privacy).encode())
    return h.hexdigest()[:16]


@dataclass
class Splits:
    """Train/val/test datasets and what their labels mean.

    Attributes:
        train, val, test: datasets yielding sample dicts. ``val`` is carved from train, never test.
        utility_classes: names of the utility (task) classes, index = label.
        private_classes: names of the private classes, or of the attributes when ``multilabel``.
        multilabel: private labels are multi-hot float vectors (cMAP is the metric).
        kind: "video" (inputs [C,T,H,W]) or "image" (inputs [C,H,W]).
        name: dataset name for reports.
        privacy: optional second Splits with the private labels of another dataset (cross-dataset
            training, journal version of Wu et al.); its utility labels are ignored.
        tasks: further tasks the data labels (tasks a release was never trained for): task name ->
            class names, index = label (samples carry ``"tasks": {name: label}``); empty: none.
    """

    train: Dataset
    val: Dataset
    test: Dataset
    utility_classes: list[str]
    private_classes: list[str]
    multilabel: bool = False
    kind: str = "video"
    name: str = ""
    privacy: "Splits | None" = None
    meta: dict = field(default_factory=dict)
    tasks: dict[str, list[str]] = field(default_factory=dict)

    @property
    def num_utility(self) -> int:
        return len(self.utility_classes)

    @property
    def num_private(self) -> int:
        return len(self.private_classes)


class TensorSampleDataset(Dataset):
    """In-memory samples: uint8 inputs ``[N,C,(T,)H,W]`` and integer or multi-hot labels.

    Used by the synthetic data and by the encoded caches of the evaluation. ``tasks`` (task name ->
    integer labels ``[N]``) adds ``"tasks"`` to every sample.
    """

    def __init__(
        self,
        inputs: torch.Tensor,
        utility: torch.Tensor,
        private: torch.Tensor,
        ids: Sequence[str] | None = None,
        scale: float | None = None,
        tasks: dict[str, torch.Tensor] | None = None,
    ):
        assert len(inputs) == len(utility) == len(private), "inputs and labels differ in length"
        self.inputs = inputs
        self.utility = utility.long()
        self.private = private if private.dim() > 1 else private.long()
        self.ids = list(ids) if ids is not None else [str(i) for i in range(len(inputs))]
        self.scale = (1.0 / 255.0 if inputs.dtype == torch.uint8 else 1.0) if scale is None else scale
        self.tasks = {k: torch.as_tensor(v).long() for k, v in (tasks or {}).items()}
        assert all(len(v) == len(inputs) for v in self.tasks.values()), "inputs and task labels differ in length"

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, i: int) -> dict:
        x = self.inputs[i]
        x = x.float() * self.scale if self.scale != 1.0 or x.dtype != torch.float32 else x
        out = {"input": x, "utility": self.utility[i], "private": self.private[i], "id": self.ids[i]}
        if self.tasks:
            out["tasks"] = {k: v[i] for k, v in self.tasks.items()}
        return out

    def subset(self, idx: Sequence[int] | torch.Tensor) -> "TensorSampleDataset":
        idx = torch.as_tensor(idx, dtype=torch.long)
        return TensorSampleDataset(
            self.inputs[idx], self.utility[idx], self.private[idx], [self.ids[i] for i in idx.tolist()], self.scale,
            {k: v[idx] for k, v in self.tasks.items()},
        )


def collate(samples: list[dict]) -> dict:
    """Stack sample dicts into a batch dict (ids stay a list; a dict-valued field, such as
    ``"tasks"``, becomes a dict of stacked values)."""
    out = {}
    for k in samples[0]:
        vals = [s[k] for s in samples]
        if isinstance(vals[0], torch.Tensor):
            out[k] = torch.stack(vals)
        elif isinstance(vals[0], (int, float)):
            out[k] = torch.tensor(vals)
        elif isinstance(vals[0], dict):
            out[k] = collate(vals)
        else:
            out[k] = vals
    return out


def item_tasks(dataset, names: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
    """The task labels of every item of ``dataset`` (task name -> ``[len(dataset)]`` long tensor,
    :data:`UNLABELLED` where an item has none), read without loading any input.

    Works on :class:`TensorSampleDataset` and on the record datasets of :mod:`privacam.data.video`
    (which carry each record's ``tasks``); other datasets are read sample by sample. ``names``
    restricts (and orders) the tasks; a name no item has is all :data:`UNLABELLED`.
    """
    n = len(dataset)
    if isinstance(getattr(dataset, "tasks", None), dict):
        found = dict(dataset.tasks)
    elif getattr(dataset, "records", None) is not None:
        recs = dataset.records
        item_rec = [it[0] for it in dataset.items] if getattr(dataset, "items", None) is not None else range(len(recs))
        keys = sorted({k for r in recs for k in (getattr(r, "tasks", None) or {})})
        found = {k: torch.tensor([int((recs[j].tasks or {}).get(k, UNLABELLED)) for j in item_rec], dtype=torch.long)
                 for k in keys}
    else:
        per = [dataset[i].get("tasks", {}) for i in range(n)]
        keys = sorted({k for t in per for k in t})
        found = {k: torch.tensor([int(t.get(k, UNLABELLED)) for t in per], dtype=torch.long) for k in keys}
    if names is None:
        return found
    return {k: found[k] if k in found else torch.full((n,), UNLABELLED, dtype=torch.long) for k in names}


def stratified_split(keys: Sequence, fractions: Sequence[float], seed: int) -> list[list[int]]:
    """Deterministic split of indices into len(fractions) parts, stratified on ``keys``.

    Every stratum contributes to each part in proportion (at least one sample to the first part).
    """
    g = torch.Generator().manual_seed(seed)
    groups: dict = {}
    for i, k in enumerate(keys):
        groups.setdefault(k, []).append(i)
    parts: list[list[int]] = [[] for _ in fractions]
    total = sum(fractions)
    for k in sorted(groups, key=str):
        idx = groups[k]
        perm = [idx[j] for j in torch.randperm(len(idx), generator=g).tolist()]
        counts = _part_counts(len(perm), [f / total for f in fractions])
        start = 0
        for p, c in enumerate(counts):
            parts[p].extend(perm[start:start + c])
            start += c
    return [sorted(p) for p in parts]


def _part_counts(n: int, fracs: Sequence[float]) -> list[int]:
    """Split ``n`` items by ``fracs`` (largest remainder); every part with a positive fraction gets
    at least one item while there are enough items, taken from the largest part."""
    raw = [f * n for f in fracs]
    counts = [int(r) for r in raw]
    for i in sorted(range(len(fracs)), key=lambda i: raw[i] - counts[i], reverse=True)[: n - sum(counts)]:
        counts[i] += 1
    for i, f in enumerate(fracs):
        if f > 0 and counts[i] == 0 and n >= sum(1 for g in fracs if g > 0):
            j = max(range(len(counts)), key=lambda j: counts[j])
            counts[j] -= 1
            counts[i] += 1
    return counts


def dataset_root(data_cfg, name: str) -> Path:
    """``data.root`` of a dataset that reads files: a one-line error when it is missing or not a folder."""
    if not data_cfg.root:
        raise ConfigError(f"dataset {name!r} needs data.root (e.g. --data {name}:/path/to/{name}); see docs/datasets.md")
    root = Path(data_cfg.root).expanduser()
    if not root.is_dir():
        raise DataError(f"{name}: data.root {root} is not a folder; point it at the {name} folder laid out as in docs/datasets.md")
    return root
