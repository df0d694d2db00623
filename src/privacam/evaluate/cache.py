"""The release cache: everything the units of an audit are fitted and scored on, encoded once.

The frozen f_d releases the training split ``eval.views`` times (the probing attacker) and the
validation and test splits once (:func:`release`). A :class:`ReleaseCache` holds those releases per
*group* of splits: ``utility`` (the data's own splits) and ``privacy`` (the same splits, or the privacy
source of a cross-dataset run), with every label column, plus ``extras`` (tensors a unit kind needs
beside the releases, e.g. the frame pairs of the reconstruction threat).

The cache is the frozen input of every unit (:mod:`.units`): its :attr:`~ReleaseCache.digest` hashes
every byte of it, so a unit computed on it is reused only where the releases, the labels and the
clips are the same. It goes to worker processes once (:meth:`~ReleaseCache.share`: into shared memory,
not copied per unit) or into Ray's object store once (:meth:`~ReleaseCache.to_parts` with numpy arrays,
read without a copy by every task).
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from .encoded import Encoded, Sealed, cap_test_clips, channel_stats, encode_split, with_videos
from .releases import ReleaseStore

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
#: the prefix of a task's label column (``task:<name>``, as the manifest names it)
TASK = "task:"


def task_column(name: str) -> str:
    """The label column of task ``name`` in a released split (``task:position``)."""
    return f"{TASK}{name}"


class ReleaseCache:
    """The released splits of an audit, by group (``utility``, ``privacy``), the test splits sealed.

    Attributes:
        groups: ``{group: {"train": Encoded, "val": Encoded, "test": Sealed}}``; the privacy group is the
            utility group itself unless the data has a separate privacy source.
        info: what units are sized and labelled by: ``kind`` (video / image), ``multilabel`` (private
            labels), ``num_classes`` per label column, ``shape`` (model factory arguments),
            ``has_utility``, ``private_classes``, ``tasks`` (task name -> class names; each task's labels
            are the column ``task:<name>`` of the utility group's splits).
        extras: tensors some unit kinds need beside the releases (hashed into the digest too).
    """

    def __init__(self, groups: dict[str, dict[str, Any]], info: dict, extras: dict[str, torch.Tensor] | None = None):
        self.groups = groups
        self.info = info
        self.extras = dict(extras or {})
        self._digest: str | None = None
        self._memo: dict = {}

    def __getstate__(self) -> dict:
        """What goes to a worker: the releases (their tensors through shared memory), not what this
        process derived from them (each worker opens the test split itself, after its own selection)."""
        return {k: v for k, v in self.__dict__.items() if k != "_memo"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._memo = {}

    # -- reading
    def split(self, group: str, name: str) -> Encoded:
        """``train`` or ``val`` of a group (the test split: :meth:`open_test`)."""
        if name == "test":
            raise ValueError("the test split is sealed: open it with open_test() once the model is selected")
        return self.groups[group][name]

    def open_test(self, group: str, cap: int) -> tuple[Encoded, dict]:
        """Open a group's test split (only once the models that score it are selected): at most
        ``cap`` clips of every test video (:func:`~.encoded.cap_test_clips`), and the record of the cap."""
        key = ("test", group, int(cap))
        if key not in self._memo:
            self._memo[key] = cap_test_clips(self.groups[group]["test"].open(), int(cap))
        return self._memo[key]

    def memo(self, key, make):
        """A value derived from the cache (a selection split, ...), computed once per process."""
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]

    def stores(self) -> list[ReleaseStore]:
        """Every distinct store, in a fixed order."""
        out: list = []
        for g in sorted(self.groups):
            for s in SPLITS:
                st = _encoded(self.groups[g][s]).x
                if not any(st is o for o in out):
                    out.append(st)
        return out

    @property
    def nbytes(self) -> int:
        return sum(st.nbytes for st in self.stores()) + sum(int(t.numel() * t.element_size()) for t in self.extras.values())

    # -- identity
    @property
    def digest(self) -> str:
        """A hash of every byte of the releases: the stores, the label columns, ids, videos, clips,
        views, rows, scales and standardisation of every split (the extras: :meth:`extra_digest`).

        The task columns (``task:<name>``) and their classes are not in it: a unit that reads one adds
        its :meth:`label_digest`, so a task relabelled in the manifest recomputes the units of that task
        (and the floors), not every unit of the audit."""
        if self._digest is None:
            h = hashlib.sha256()
            h.update(repr(sorted((k, v) for k, v in self.info.items() if k != "tasks")).encode())
            stores = self.stores()
            for st in stores:
                _hash_store(h, st)
            for g in sorted(self.groups):
                for s in SPLITS:
                    e = _encoded(self.groups[g][s])
                    h.update(f"{g}/{s}/store{next(i for i, st in enumerate(stores) if st is e.x)}".encode())
                    _hash_encoded(h, e)
            self._digest = h.hexdigest()[:24]
        return self._digest

    def label_digest(self, group: str, column: str) -> str:
        """A hash of one label column of a group's splits (train, val, test) and, for a task, its classes."""
        h = hashlib.sha256()
        if column.startswith(TASK):
            h.update(repr((self.info.get("tasks") or {}).get(column[len(TASK):])).encode())
        for s in SPLITS:
            e = _encoded(self.groups[group][s])
            _hash_tensor(h, e.labels.get(column))
        return h.hexdigest()[:24]

    def task_names(self) -> list[str]:
        """The tasks the data labels beside the trained one (``info["tasks"]``), in the data's order."""
        return list((self.info.get("tasks") or {}))

    def extra_digest(self, prefix: str) -> str:
        """A hash of the extras whose names start with ``prefix`` (what one unit kind reads beside the releases)."""
        h = hashlib.sha256()
        for k in sorted(self.extras):
            if k.startswith(prefix):
                h.update(k.encode())
                _hash_tensor(h, self.extras[k])
        return h.hexdigest()[:24]

    # -- sharing
    def share(self) -> "ReleaseCache":
        """Move every tensor and store into shared memory (in place): worker processes started with the
        cache map the same memory instead of copying it."""
        for st in self.stores():
            st.share_memory()
        for g in self.groups.values():
            for s in SPLITS:
                e = _encoded(g[s])
                for t in _tensors(e):
                    t.share_memory_()
        for t in self.extras.values():
            t.share_memory_()
        return self

    def to_parts(self, arrays: str = "torch") -> dict:
        """The cache as plain data: stores, label columns and indices as ``torch`` tensors or ``numpy``
        arrays (for Ray's object store, whose numpy arrays every task reads without a copy), the rest
        as lists and numbers. :meth:`from_parts` rebuilds it."""
        conv = (lambda t: t) if arrays == "torch" else (lambda t: t.numpy() if isinstance(t, torch.Tensor) else t)
        stores = self.stores()
        groups = {}
        for g, splits in self.groups.items():
            if splits is self.groups.get("utility") and g != "utility":
                groups[g] = "utility"  # the same splits: sent once
                continue
            groups[g] = {s: _encoded_parts(_encoded(splits[s]), stores, conv) for s in SPLITS}
        return {"stores": [st.parts(conv) for st in stores], "groups": groups, "info": self.info,
                "extras": {k: conv(v) for k, v in self.extras.items()}, "digest": self.digest}

    @classmethod
    def from_parts(cls, parts: dict) -> "ReleaseCache":
        stores = [ReleaseStore.from_parts(p) for p in parts["stores"]]
        groups: dict = {}
        for g, splits in parts["groups"].items():
            if isinstance(splits, str):
                continue
            groups[g] = {s: _encoded_from_parts(splits[s], stores) for s in SPLITS}
            groups[g]["test"] = Sealed(groups[g]["test"])
        for g, splits in parts["groups"].items():
            if isinstance(splits, str):
                groups[g] = groups[splits]
        cache = cls(groups, parts["info"], {k: _tensor(v) for k, v in parts["extras"].items()})
        cache._digest = parts.get("digest")
        return cache


# ---------------------------------------------------------------------------------------- releasing
def release(encoder: nn.Module, splits, *, views: int, batch_size: int, seed: int, device: torch.device,
            extras: dict | None = None) -> ReleaseCache:
    """Release ``splits`` through the frozen ``encoder``: the training split ``views`` times (fewer
    where the releases would be identical, :func:`~.probing.effective_views`), validation and test once;
    per group, every split standardised by the statistics of its training releases."""
    from .probing import effective_views

    from ..data.base import item_tasks
    from .tasks import entry_labels

    def one(sp, name: str, n_views: int, offset: int) -> Encoded:
        ds = getattr(sp, name)
        v = effective_views(encoder, ds, n_views) if n_views > 1 else 1
        enc = encode_split(encoder, ds, batch_size=batch_size, device=device, views=v, seed=seed * 10 + offset,
                           desc=f"encode {name}" + (f" x{v}" if v > 1 else ""))
        tasks = getattr(sp, "tasks", None) or {}
        if tasks:  # every task's labels, per released entry (probing views included): label columns task:<name>
            for t, item in item_tasks(ds, list(tasks)).items():
                enc.labels[task_column(t)] = entry_labels(enc, item)
        return with_videos(enc, sp.kind)

    utility = {"train": one(splits, "train", views, 0), "val": one(splits, "val", 1, 1),
               "test": Sealed(one(splits, "test", 1, 2))}
    psplits = splits.privacy or splits
    if splits.privacy is not None:
        privacy = {"train": one(psplits, "train", views, 3), "val": one(psplits, "val", 1, 4),
                   "test": Sealed(one(psplits, "test", 1, 5))}
    else:
        privacy = utility
    for group in ({id(utility): utility, id(privacy): privacy}).values():
        stats = channel_stats(group["train"])
        for e in (group["train"], group["val"], group["test"]._value):
            e.norm = stats
    info = {"kind": splits.kind, "multilabel": bool(psplits.multilabel), "shape": utility["train"].shape_args(),
            "num_classes": {"utility": int(splits.num_utility), "private": int(psplits.num_private)},
            "has_utility": bool(splits.meta.get("has_utility", True) and splits.num_utility > 1),
            "private_classes": list(psplits.private_classes),
            "tasks": {t: list(c) for t, c in (getattr(splits, "tasks", None) or {}).items()}}
    return ReleaseCache({"utility": utility, "privacy": privacy}, info, extras)


# ---------------------------------------------------------------------------------------- helpers
def _encoded(v) -> Encoded:
    return v._value if isinstance(v, Sealed) else v


def _tensors(e: Encoded) -> list[torch.Tensor]:
    out = list(e.labels.values()) + [t for t in (e.clip, e.view, e.rows) if t is not None]
    if e.norm is not None:
        out += list(e.norm)
    return out


def _hash_tensor(h, t) -> None:
    if t is None:
        h.update(b"none")
        return
    a = t.detach().cpu().contiguous().numpy() if isinstance(t, torch.Tensor) else np.ascontiguousarray(t)
    h.update(f"{a.dtype}{a.shape}".encode())
    h.update(a.tobytes())


def _hash_store(h, st: ReleaseStore) -> None:
    for k, v in st.parts(lambda t: t).items():
        h.update(k.encode())
        if isinstance(v, (torch.Tensor, np.ndarray)):
            _hash_tensor(h, v)
        else:
            h.update(repr(v).encode())


def _hash_encoded(h, e: Encoded) -> None:
    h.update(repr([e.scale, e.ids, e.videos]).encode())
    for k in sorted(k for k in e.labels if not k.startswith(TASK)):  # task columns: ReleaseCache.label_digest
        h.update(k.encode())
        _hash_tensor(h, e.labels[k])
    for t in (e.clip, e.view, e.rows, *(e.norm or (None, None))):
        _hash_tensor(h, t)


def _encoded_parts(e: Encoded, stores: list, conv) -> dict:
    opt = lambda t: None if t is None else conv(t)  # noqa: E731
    return {"store": next(i for i, st in enumerate(stores) if st is e.x), "labels": {k: conv(v) for k, v in e.labels.items()},
            "ids": e.ids, "scale": e.scale, "norm": None if e.norm is None else [conv(t) for t in e.norm],
            "videos": e.videos, "clip": opt(e.clip), "view": opt(e.view), "rows": opt(e.rows)}


def _tensor(v):
    if v is None or isinstance(v, torch.Tensor):
        return v
    with warnings.catch_warnings():  # Ray's arrays are read-only views of its object store; nothing writes them
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(v)


def _encoded_from_parts(p: dict, stores: list) -> Encoded:
    return Encoded(stores[p["store"]], ids=p["ids"], scale=p["scale"],
                   norm=None if p["norm"] is None else tuple(_tensor(t) for t in p["norm"]), videos=p["videos"],
                   clip=_tensor(p["clip"]), view=_tensor(p["view"]), rows=_tensor(p["rows"]),
                   labels={k: _tensor(v) for k, v in p["labels"].items()})


__all__ = ["ReleaseCache", "TASK", "release", "task_column"]
