"""The released splits the audit works on: the frozen f_d's releases of train / val / test, encoded
once, held compactly (:class:`~privacam.evaluate.releases.ReleaseStore`) with their label columns.

- :class:`Encoded`: the entries of one released split (store rows, label columns, ids, videos, which
  clip and which probing view each entry is);
- :func:`encode_split`: release a dataset through f_d, ``views`` times (the probing attacker);
- :class:`Sealed`: the test split, unreadable until it is opened.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import PrivacamError

#: the label columns every sample carries (``Encoded.utility`` and ``Encoded.private``)
UTILITY, PRIVATE = "utility", "private"


class Encoded:
    """One encoded split: released inputs and label columns, one entry per released clip.

    Attributes:
        x: the releases (a :class:`~privacam.evaluate.releases.ReleaseStore`: bit-packed binary,
            uint8 images or float16 features), possibly shared with other splits; ``rows`` says which.
        labels: the label columns of this split's entries, by name: ``utility`` and ``private`` always
            (what the samples carry), more where the data labels more (e.g. further tasks); a model is
            fitted on one column, named where it is fitted (``fit_classifier(..., labels=name)``).
        ids: sample ids.
        scale: multiply the stored values by this to get the released values.
        norm: ``(mean, std)`` per channel: what retrained models see (train statistics).
        videos: the video every clip was cut from (None: the data has no video ids).
        clip: which clip of the split each entry is a release of (the probing views of one clip
            share it); None: every entry is its own clip.
        view: which release (probing view) each entry is.
        rows: the store rows of the entries (None: all rows, in order).
    """

    def __init__(self, x: Any, utility: torch.Tensor | None = None, private: torch.Tensor | None = None,
                 ids: list | None = None, scale: float = 1.0, norm: tuple | None = None, videos: list | None = None,
                 clip: torch.Tensor | None = None, view: torch.Tensor | None = None, rows: torch.Tensor | None = None,
                 *, labels: dict[str, torch.Tensor] | None = None):
        cols = dict(labels or {})
        if utility is not None:
            cols[UTILITY] = utility
        if private is not None:
            cols[PRIVATE] = private
        self.x = x
        self.labels: dict[str, torch.Tensor] = cols
        self.ids = list(ids) if ids is not None else []
        self.scale = scale
        self.norm = norm
        self.videos = videos
        self.clip = clip
        self.view = view
        self.rows = rows
        self._groups = None

    # -- label columns
    def label(self, name: str) -> torch.Tensor:
        """The label column ``name`` (``utility``, ``private``, ...)."""
        try:
            return self.labels[name]
        except KeyError:
            raise PrivacamError(f"the release has no label column {name!r} (it has {', '.join(self.labels)})") from None

    @property
    def utility(self) -> torch.Tensor:
        return self.labels[UTILITY]

    @property
    def private(self) -> torch.Tensor:
        return self.labels[PRIVATE]

    def replace(self, **changes) -> "Encoded":
        """A copy with some attributes replaced (the store and untouched columns shared)."""
        kw = {"labels": dict(self.labels), "ids": self.ids, "scale": self.scale, "norm": self.norm,
              "videos": self.videos, "clip": self.clip, "view": self.view, "rows": self.rows}
        kw.update(changes)
        return Encoded(self.x, **kw)

    # -- rows
    def __len__(self) -> int:
        return len(self.rows) if self.rows is not None else len(self.x)

    def _store_rows(self, idx: torch.Tensor) -> torch.Tensor:
        return self.rows[idx] if self.rows is not None else idx

    def store_rows(self) -> torch.Tensor:
        """The store rows of every entry, in order."""
        return self._store_rows(torch.arange(len(self)))

    def batch(self, idx: torch.Tensor, device: torch.device, raw: bool = False) -> torch.Tensor:
        x = self.x[self._store_rows(torch.as_tensor(idx))].to(device).float() * self.scale
        if self.norm is not None and not raw:
            mean, std = self.norm
            x = (x - mean.to(device)) / std.to(device)
        return x

    def dense(self) -> torch.Tensor:
        """Every release of this split as one stored-dtype tensor (uint8 / float16)."""
        return self.x[self.store_rows()]

    @property
    def num_views(self) -> int:
        return int(self.view.max()) + 1 if self.view is not None and len(self.view) else 1

    def subset(self, idx) -> "Encoded":
        """The entries ``idx`` (sharing the store; label columns, ids and indices taken along)."""
        idx = torch.as_tensor(idx, dtype=torch.long)
        pick = lambda v: None if v is None else v[idx]  # noqa: E731
        items = idx.tolist()
        return Encoded(self.x, ids=[self.ids[i] for i in items], scale=self.scale, norm=self.norm,
                       videos=None if self.videos is None else [self.videos[i] for i in items],
                       clip=pick(self.clip), view=pick(self.view), rows=self._store_rows(idx),
                       labels={k: v[idx] for k, v in self.labels.items()})

    def view_rows(self, view: int = 0) -> "Encoded":
        """The entries of one release (probing view) of the split."""
        if self.view is None or self.num_views == 1:
            return self
        return self.subset(torch.nonzero(self.view == view).flatten())

    def items(self) -> list[int]:
        """The dataset item of every entry (its clip index; entries in order where there is none)."""
        return self.clip.tolist() if self.clip is not None else list(range(len(self)))

    def epoch_order(self, g: torch.Generator) -> torch.Tensor:
        """The entries of one training epoch, shuffled: every clip once, each in one of its releases
        drawn at random (an epoch costs the same whatever the number of probing views)."""
        if self.clip is None or self.num_views == 1:
            return torch.randperm(len(self), generator=g)
        if self._groups is None:
            order = torch.argsort(self.clip, stable=True)
            clips, counts = torch.unique_consecutive(self.clip[order], return_counts=True)
            starts = torch.cumsum(counts, 0) - counts
            self._groups = (order, starts, counts)
        order, starts, counts = self._groups
        pick = starts + (torch.rand(len(counts), generator=g) * counts).long().clamp_max(counts - 1)
        return order[pick][torch.randperm(len(counts), generator=g)]

    def features(self, name: str, fn: Callable[[torch.Tensor], torch.Tensor], chunk: int = 256) -> np.ndarray:
        """``fn`` of every release, computed once per store (shared by the splits and the attackers
        that use the same features) and returned for this split's entries: ``[N, D]`` float32."""
        cache = self.x.__dict__.setdefault("features", {}) if hasattr(self.x, "__dict__") else {}
        if name not in cache:
            n = len(self.x)
            parts = [fn(self.x[torch.arange(s, min(n, s + chunk))].float() * self.scale).float().numpy()
                     for s in range(0, n, chunk)]
            cache[name] = np.concatenate(parts).astype(np.float32)
        rows = self.rows.numpy() if self.rows is not None else slice(None)
        return cache[name][rows]

    def shape_args(self) -> dict:
        """What a model factory is sized by: ``in_channels``, ``size`` and ``clip_len`` of the release."""
        x = self.x
        return {"in_channels": int(x.shape[1]), "size": int(x.shape[-1]), "clip_len": int(x.shape[2]) if x.dim() == 5 else 0}


def concat_encoded(parts: Sequence[Encoded]) -> Encoded:
    """The entries of several splits as one split (clip indices kept distinct); splits held in
    different stores are copied into one. Label columns held by every part are kept."""
    from .releases import ReleaseStore

    first = parts[0]
    stores: list = []
    for e in parts:
        if not any(e.x is st for st in stores):
            stores.append(e.x)
    offsets, off = [], 0
    for st in stores:
        offsets.append(off)
        off += len(st)
    store = stores[0] if len(stores) == 1 else ReleaseStore.concat(stores)
    clip, view, rows, off = [], [], [], 0
    for e in parts:
        c = e.clip if e.clip is not None else torch.arange(len(e))
        clip.append(c + off)
        off += int(c.max()) + 1 if len(c) else 0
        view.append(e.view if e.view is not None else torch.zeros(len(e), dtype=torch.long))
        base = offsets[next(i for i, st in enumerate(stores) if e.x is st)]
        rows.append(e._store_rows(torch.arange(len(e))) + base)
    videos = None if any(e.videos is None for e in parts) else [v for e in parts for v in e.videos]
    names = [k for k in first.labels if all(k in e.labels for e in parts)]
    return Encoded(store, ids=[i for e in parts for i in e.ids], scale=first.scale, norm=first.norm, videos=videos,
                   clip=torch.cat(clip), view=torch.cat(view), rows=torch.cat(rows),
                   labels={k: torch.cat([e.labels[k] for e in parts]) for k in names})


def channel_stats(enc: Encoded, chunk: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of a released split, shaped to broadcast over a batch.

    Retrained models see standardised releases: a low-contrast release must not pass for a private
    one just because an attacker trained on raw pixel values fails to converge.
    """
    c = enc.x.shape[1]
    s1 = torch.zeros(c, dtype=torch.float64)
    s2 = torch.zeros(c, dtype=torch.float64)
    n = 0
    for i in range(0, len(enc), chunk):
        x = enc.x[enc._store_rows(torch.arange(i, min(len(enc), i + chunk)))].double() * enc.scale
        x = x.transpose(0, 1).reshape(c, -1)
        s1 += x.sum(1)
        s2 += (x * x).sum(1)
        n += x.shape[1]
    mean = s1 / max(n, 1)
    std = (s2 / max(n, 1) - mean ** 2).clamp_min(0).sqrt().clamp_min(1e-3)
    shape = (1, c) + (1,) * (enc.x.dim() - 2)
    return mean.float().reshape(shape), std.float().reshape(shape)


class Sealed:
    """Holds a test split; reading it before :meth:`open` raises (selection never sees test)."""

    def __init__(self, value: Encoded):
        self._value = value
        self.is_open = False

    def open(self) -> Encoded:
        self.is_open = True
        return self._value

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name == "is_open":
            raise AttributeError(name)
        raise PrivacamError("the test split is sealed until every model is selected on validation")


@torch.no_grad()
def encode_split(encoder: nn.Module, dataset, *, batch_size: int = 32, device: torch.device | str = "cpu",
                 views: int = 1, desc: str = "encode", seed: int | None = None, pack: bool = True) -> Encoded:
    """Release a dataset through the frozen encoder f_d, ``views`` times (the probing attacker).

    Each view sets the dataset's epoch (new clip offsets where clips are sampled at random) and,
    with ``seed``, reseeds a randomised encoder's own draws (``probing.reseed``), so every view is a
    new release of the same clips; the views of a clip share its ``clip`` index. Releases are held
    compactly (:class:`~privacam.evaluate.releases.ReleaseStore`: bit-packed when binary).
    """
    from tqdm.auto import tqdm

    from ..data.base import collate
    from .probing import reseed
    from .releases import ReleaseStore

    device = torch.device(device)
    encoder = encoder.to(device).eval()
    releases = getattr(encoder, "releases", "image")
    stores, us, ps, ids, vids, clip, view = [], [], [], [], [], [], []
    n = len(dataset)
    for v in range(views):
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(v)
        if seed is not None:
            reseed(encoder, seed, v)
        xs = []
        for start in tqdm(range(0, n, batch_size), desc=desc, leave=False, disable=None):
            b = collate([dataset[i] for i in range(start, min(n, start + batch_size))])
            z = encoder(b["input"].to(device)).float().cpu()
            if releases == "image":
                z = (z.clamp(0, 1) * 255 + 0.5).to(torch.uint8)
            else:
                z = z.half()
            xs.append(z)
            us.append(b["utility"])
            ps.append(b["private"])
            ids.extend(b["id"])
            vids.extend(b["video"] if "video" in b else [None] * len(b["id"]))
        stores.append(ReleaseStore(torch.cat(xs), pack=pack))
        clip.append(torch.arange(n))
        view.append(torch.full((n,), v, dtype=torch.long))
    if views > 1 and hasattr(dataset, "set_epoch"):
        dataset.set_epoch(0)  # the dataset's items are view 0 again (the reconstruction audit pairs them)
    store = ReleaseStore.concat(stores)
    videos = None if any(v is None for v in vids) else [str(v) for v in vids]
    return Encoded(store, torch.cat(us), torch.cat(ps), ids, 1 / 255 if store.dtype == torch.uint8 else 1.0,
                   videos=videos, clip=torch.cat(clip), view=torch.cat(view))


def with_videos(enc: Encoded, kind: str) -> Encoded:
    """Clips of a video dataset whose samples name no video are each their own video (the embedded
    data: every clip is a separate recording); images have no videos."""
    if enc.videos is None and kind == "video":
        enc.videos = [str(i) for i in enc.ids]
    return enc


def cap_test_clips(enc: Encoded, cap: int) -> tuple[Encoded, dict]:
    """At most ``cap`` clips of every test video, evenly spaced over the clips the data gives in
    their order (the first and the last kept). With the per-clip score weighing every test video the
    same (:mod:`.pooling`), a long recording neither dominates the score nor rewards an attacker for
    a prior over who records long. Returns the entries and ``{"cap", "clips_per_video": [min, max]}``."""
    if enc.videos is None or not len(enc):
        return enc, {}
    rows_of: dict = {}
    for i, v in enumerate(enc.videos):
        rows_of.setdefault(v, []).append(i)
    keep = []
    for rows in rows_of.values():
        if len(rows) > cap:
            rows = [rows[j] for j in np.unique(np.round(np.linspace(0, len(rows) - 1, cap)).astype(int))]
        keep.extend(rows)
    keep.sort()
    counts = [min(len(r), cap) for r in rows_of.values()]
    info = {"cap": int(cap), "clips_per_video": [min(counts), max(counts)], "dropped_clips": len(enc) - len(keep)}
    if len(keep) == len(enc):
        return enc, info
    return enc.subset(keep), info


__all__ = ["Encoded", "PRIVATE", "Sealed", "UTILITY", "cap_test_clips", "channel_stats", "concat_encoded",
           "encode_split", "with_videos"]
