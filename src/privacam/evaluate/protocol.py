"""The audit: freeze E, encode once, retrain unseen attackers, score on test (DESIGN.md).

1. Encode train / val / test once with the frozen encoder (cached in memory; image releases are
   stored as 8-bit frames, as a camera would send them).
2. Utility: the run's f_T on E(X_test), and a freshly trained f_T on E(X_train).
3. Privacy: every attacker is trained from scratch on E(X_train) with the private labels,
   selected on the validation split carved from train (best epoch, early stopping) and only then
   scored on E(X_test) — the test split stays sealed until every model is selected. The claim is
   ``A_B^N``, the best attacker's per-clip score.
4. Context: the raw-data reference (E = identity, same protocol, cached per dataset and attacker
   set), chance levels and the normalised leakage NAG.

The audit does not import the game: it does not depend on how an encoder was trained.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, PrivacamError
from ..audits import AuditSummary, Privacy, Utility, interval_text, pct, write_attacker, write_examples, write_summary
from ..registry import create_attacker, create_utility
from . import metrics

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------- data
@dataclass
class Encoded:
    """One encoded split: released inputs and labels, one entry per released clip.

    Attributes:
        x: the releases (a :class:`~privacam.evaluate.releases.ReleaseStore`: bit-packed binary,
            uint8 images or float16 features), possibly shared with other splits; ``rows`` says which.
        utility, private: labels per clip of this split.
        ids: sample ids.
        scale: multiply the stored values by this to get the released values.
        norm: ``(mean, std)`` per channel: what retrained models see (train statistics).
        videos: the video every clip was cut from (None: the data has no video ids).
        clip: which clip of the split each entry is a release of (the probing views of one clip
            share it); None: every entry is its own clip.
        view: which release (probing view) each entry is.
        rows: the store rows of the entries (None: all rows, in order).
    """

    x: Any
    utility: torch.Tensor
    private: torch.Tensor
    ids: list
    scale: float = 1.0  # multiply x.float() by this to get the released values
    norm: tuple | None = None  # (mean, std) per channel: what retrained models see (train statistics)
    videos: list | None = None
    clip: torch.Tensor | None = None
    view: torch.Tensor | None = None
    rows: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.rows) if self.rows is not None else len(self.x)

    def _store_rows(self, idx: torch.Tensor) -> torch.Tensor:
        return self.rows[idx] if self.rows is not None else idx

    def batch(self, idx: torch.Tensor, device: torch.device, raw: bool = False) -> torch.Tensor:
        x = self.x[self._store_rows(torch.as_tensor(idx))].to(device).float() * self.scale
        if self.norm is not None and not raw:
            mean, std = self.norm
            x = (x - mean.to(device)) / std.to(device)
        return x

    def dense(self) -> torch.Tensor:
        """Every release of this split as one stored-dtype tensor (uint8 / float16)."""
        return self.x[self._store_rows(torch.arange(len(self)))]

    @property
    def num_views(self) -> int:
        return int(self.view.max()) + 1 if self.view is not None and len(self.view) else 1

    def subset(self, idx) -> "Encoded":
        """The entries ``idx`` (sharing the store; labels, ids and indices taken along)."""
        idx = torch.as_tensor(idx, dtype=torch.long)
        pick = lambda v: None if v is None else v[idx]  # noqa: E731
        return Encoded(self.x, self.utility[idx], self.private[idx], [self.ids[i] for i in idx.tolist()], self.scale,
                       self.norm, None if self.videos is None else [self.videos[i] for i in idx.tolist()],
                       pick(self.clip), pick(self.view), self._store_rows(idx))

    def view_rows(self, view: int = 0) -> "Encoded":
        """The entries of one release (probing view) of the split."""
        if self.view is None or self.num_views == 1:
            return self
        return self.subset(torch.nonzero(self.view == view).flatten())

    def epoch_order(self, g: torch.Generator) -> torch.Tensor:
        """The entries of one training epoch, shuffled: every clip once, each in one of its releases
        drawn at random (an epoch costs the same whatever the number of probing views)."""
        if self.clip is None or self.num_views == 1:
            return torch.randperm(len(self), generator=g)
        if getattr(self, "_groups", None) is None:
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


def concat_encoded(parts: Sequence[Encoded]) -> Encoded:
    """The entries of several splits as one split (clip indices kept distinct); splits held in
    different stores are copied into one."""
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
    return Encoded(store, torch.cat([e.utility for e in parts]), torch.cat([e.private for e in parts]),
                   [i for e in parts for i in e.ids], first.scale, first.norm, videos, torch.cat(clip), torch.cat(view),
                   torch.cat(rows))


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
    """Holds the test split; reading it before :meth:`open` raises (selection never sees test)."""

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


# ---------------------------------------------------------------------------------------- fitting
@dataclass
class FitConfig:
    """How one model is fitted on a released split.

    ``min_epochs``: no epoch before this many is selected, and patience counts only after them (a
    fit selected at epoch 0 with validation at chance has not started learning).
    """

    epochs: int = 15
    patience: int = 4
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    frames_per_clip: int = 4  # frame-level models train on this many random frames per clip
    flip: bool = True  # horizontal-flip augmentation (frame-consistent)
    seed: int = 0
    min_epochs: int = 1


def _score(out: torch.Tensor, y: torch.Tensor, multilabel: bool) -> float:
    if multilabel:
        return metrics.cmap(torch.sigmoid(out.float()), y)
    return metrics.accuracy(out.float(), y)


def _loss(out: torch.Tensor, y: torch.Tensor, multilabel: bool) -> torch.Tensor:
    if multilabel:
        return F.binary_cross_entropy_with_logits(out.float(), y.float())
    return F.cross_entropy(out.float(), y)


@torch.no_grad()
def predict(model: nn.Module, data: Encoded, device: torch.device, batch_size: int = 64, frames: bool = False,
            raw: bool = False) -> torch.Tensor:
    """Logits ``[N,K]`` (or per-frame ``[N,T,K]`` with ``frames``). ``raw``: feed the release
    unstandardised (the run's own f_T and f_b were trained on it as it is)."""
    model.eval()
    outs = []
    for s in range(0, len(data), batch_size):
        x = data.batch(torch.arange(s, min(len(data), s + batch_size)), device, raw=raw)
        outs.append((model.frame_logits(x) if frames else model(x)).float().cpu())
    return torch.cat(outs)


def fit_classifier(model: nn.Module, train: Encoded, val: Encoded | None, labels: str, *, multilabel: bool,
                   cfg: FitConfig, device: torch.device, desc: str = "fit", fixed_epochs: int | None = None) -> dict:
    """Train ``model`` on ``train`` and keep the epoch with the best validation score.

    Every epoch visits each training clip once, in one of its releases (probing views) drawn at
    random. Epochs before ``cfg.min_epochs`` are never selected. Only train and validation data reach
    this function. With ``fixed_epochs`` (a refit on train + validation after selection) it runs that
    many epochs of the same schedule without validation and keeps the last.

    Returns:
        the selection record: best epoch, best validation score, epochs run, seconds, the learning
        curve (train loss and validation score per epoch) and ``still_rising`` (the best epoch was
        the last one of a fit that used all its epochs: more epochs may find more).
    """
    from tqdm.auto import tqdm

    t0 = time.time()
    g = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, cfg.epochs))
    y_train = getattr(train, labels)
    y_val = getattr(val, labels) if val is not None else None
    framewise = getattr(model, "level", "") == "frame" and train.x.dim() == 5 and cfg.frames_per_clip > 0
    best, best_state, best_epoch, since = -1.0, None, -1, 0
    n_epochs = cfg.epochs if fixed_epochs is None else max(1, int(fixed_epochs))
    first = min(max(1, int(cfg.min_epochs)), n_epochs) - 1  # the first epoch that may be selected (at most the last)
    curve: list[dict] = []
    epoch = 0
    for epoch in tqdm(range(n_epochs), desc=desc, leave=False, disable=None):
        model.train()
        perm = train.epoch_order(g)
        n = len(perm)
        bs = min(cfg.batch_size, n)
        total, batches = torch.zeros(()), 0
        for s in range(0, n - bs + 1, bs):
            idx = perm[s:s + bs]
            x = train.batch(idx, device)
            if framewise and x.shape[2] > cfg.frames_per_clip:  # a random subset of frames per clip
                t = torch.randperm(x.shape[2], generator=g)[: cfg.frames_per_clip].sort().values
                x = x[:, :, t.to(device)]
            if cfg.flip and x.dim() >= 4 and x.shape[-1] > 1 and torch.rand(1, generator=g).item() < 0.5:
                x = x.flip(-1)
            out = model(x)
            loss = _loss(out, y_train[idx].to(device), multilabel)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach().float().cpu()
            batches += 1
        sched.step()
        point = {"epoch": epoch, "loss": round(float(total) / max(1, batches), 5)}
        curve.append(point)
        if fixed_epochs is not None:
            continue
        score = _score(predict(model, val, device), y_val, multilabel)
        point["val"] = round(score, 5)
        if epoch < first:
            continue
        if score > best + 1e-6:
            best, best_epoch, since = score, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            since += 1
            if since >= cfg.patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    if fixed_epochs is not None:
        return {"epochs_run": epoch + 1, "seconds": round(time.time() - t0, 2), "curve": curve}
    rising = best_epoch == epoch and epoch + 1 == n_epochs and epoch > first
    return {"best_epoch": best_epoch, "val": best, "epochs_run": epoch + 1, "seconds": round(time.time() - t0, 2),
            "curve": curve, "still_rising": bool(rising)}


# ---------------------------------------------------------------------------------------- audit
@dataclass
class AuditSpec:
    """What to audit with (the ``eval`` section of a config).

    Attributes:
        attackers: registered attacker names (CNNs, probes and classical attackers).
        views: releases of the attacker's training split (the probing attacker; >= 1).
        val_mode: ``auto`` (hold out whole training videos when the data's validation split shares
            videos with train) or ``data`` (the data's validation split as it is).
        val_fraction: share of each private class's training videos held out for selection.
        refit: after selection on held-out videos, fit again on train + validation.
        pool: the headline level (``auto``: per video, per clip without video ids; ``clip``,
            ``video``, ``person@K``, ``person@all``).
        person_k: the k of the ``person@k`` levels (``person@all`` is always scored).
        trials: random draws of k clips per person; bootstrap: replicates for the 95 % intervals.
        test_clips: at most this many clips of every test video are scored, evenly spaced over the
            clips the data gives (:func:`cap_test_clips`).
    """

    attackers: Sequence[str]
    utility_model: str = "small3d"
    utility_params: dict | None = None
    fit: FitConfig = None  # type: ignore[assignment]
    utility_fit: FitConfig = None  # type: ignore[assignment]
    reconstruction: bool = False
    views: int = 1
    val_mode: str = "auto"
    val_fraction: float = 0.25
    refit: bool = True
    pool: str = "auto"
    person_k: Sequence[int] = (1, 3, 5)
    trials: int = 200
    bootstrap: int = 1000
    test_clips: int = 4

    def __post_init__(self):
        from .pooling import parse_level

        self.fit = self.fit or FitConfig()
        self.utility_fit = self.utility_fit or FitConfig()
        if int(self.views) < 1:
            raise ConfigError(f"eval.views must be at least 1 (got {self.views}): it is how many times the attacker "
                              "releases its training split; use eval.views=1 for a single release")
        if int(self.fit.min_epochs) < 1:
            raise ConfigError(f"eval.min_epochs must be at least 1 (got {self.fit.min_epochs}); 1 lets every epoch be selected")
        if self.val_mode not in ("auto", "data"):
            raise ConfigError(f"eval.val_mode {self.val_mode!r} is not one of auto, data")
        if not 0.0 < float(self.val_fraction) < 1.0:
            raise ConfigError(f"eval.val_fraction must be between 0 and 1 (got {self.val_fraction})")
        bad = [k for k in self.person_k if isinstance(k, bool) or not isinstance(k, int) or k < 1]
        if bad:
            raise ConfigError(f"eval.person_k must list whole numbers >= 1 (got {bad[0]!r}); e.g. eval.person_k=[1,3,5]")
        if int(self.trials) < 1 or int(self.bootstrap) < 1:
            raise ConfigError("eval.trials and eval.bootstrap must be at least 1")
        if isinstance(self.test_clips, bool) or int(self.test_clips) < 1:
            raise ConfigError(f"eval.test_clips must be at least 1 (got {self.test_clips}): it caps the clips scored per "
                              "test video; e.g. eval.test_clips=4")
        if self.pool != "auto":
            parse_level(self.pool)

    def fingerprint(self) -> str:
        d = {"attackers": list(self.attackers), "utility": self.utility_model, "up": self.utility_params or {},
             "fit": asdict(self.fit), "ufit": asdict(self.utility_fit), "views": self.views, "val_mode": self.val_mode,
             "val_fraction": self.val_fraction, "refit": self.refit, "pool": self.pool,
             "person_k": list(self.person_k), "trials": self.trials, "bootstrap": self.bootstrap,
             "test_clips": self.test_clips, "equal_clips": 1}
        return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


def _shape_args(enc: Encoded) -> dict:
    x = enc.x
    return {"in_channels": int(x.shape[1]), "size": int(x.shape[-1]), "clip_len": int(x.shape[2]) if x.dim() == 5 else 0}


def _with_videos(enc: Encoded, kind: str) -> Encoded:
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


def fit_attacker(make: Callable[[], Any], split, *, multilabel: bool, cfg: FitConfig, device: torch.device,
                 desc: str = "fit") -> tuple[Any, dict]:
    """Fit one attacker f_b on the selection split: train on ``split.train``, select on ``split.val``,
    then (``split.pool``) fit again on train + validation with the selected setting.

    Gradient attackers (``nn.Module``) go through :func:`fit_classifier` (selected epoch; the refit
    runs that many epochs). Non-gradient attackers implement ``fit_encoded`` / ``refit_encoded`` /
    ``predict_scores`` (:class:`~privacam.evaluate.classical.ClassicalAttacker`) under the same rule:
    train only, validation for selection, test sealed.

    Returns:
        the fitted model and its selection record.
    """
    model = make()
    if hasattr(model, "fit_encoded"):
        sel = model.fit_encoded(split.train, split.val, "private", multilabel=multilabel)
        if split.pool is not None:
            sel["refit"] = model.refit_encoded(split.pool, "private", multilabel=multilabel)
        return model, sel
    sel = fit_classifier(model, split.train, split.val, "private", multilabel=multilabel, cfg=cfg, device=device,
                         desc=desc)
    if split.pool is not None and sel["best_epoch"] >= 0:
        model = make()
        sel["refit"] = fit_classifier(model, split.pool, None, "private", multilabel=multilabel, cfg=cfg, device=device,
                                      desc=f"{desc} (refit)", fixed_epochs=sel["best_epoch"] + 1)
        sel["refit"].pop("curve", None)
    return model, sel


def attacker_scores(model: Any, data: Encoded, device: torch.device, multilabel: bool, raw: bool = False) -> np.ndarray:
    """Per-clip scores of an attacker: log-probabilities ``[N,K]`` (attribute logits when multi-label)."""
    if hasattr(model, "predict_scores"):
        return np.asarray(model.predict_scores(data, multilabel=multilabel), dtype=np.float64)
    logits = predict(model, data, device, raw=raw).float()
    return (logits if multilabel else F.log_softmax(logits, -1)).double().numpy()


def _level_block(per: dict[str, dict], level: str, plan, train_labels) -> dict:
    from . import pooling

    best = pooling.best_of(per, level)
    block = {"attackers": {a: r[level]["value"] for a, r in per.items()},
             "intervals": {a: r[level]["interval"] for a, r in per.items()},
             "best": best["value"], "best_attacker": best["attacker"], "interval": best["interval"],
             "chance": pooling.chance(plan, train_labels, level),
             "units": next(iter(per.values()))[level]["units"] if per else 0}
    names = plan.skipped.get(level)
    if names:
        block["skipped"] = names
    return block


def reference_refusal(raw: AuditSummary) -> str | None:
    """Why NAG must not be computed against the reference summary ``raw``, or None when it may.

    - A network reference (``raw.reference`` set: the unprotected network of a feature-level run)
      that scores no better than chance on its own task, the utility it was trained for, never
      learned: the lower end of its 95 % interval (the score itself without one) is at or below chance.
    - Any reference whose best attacker scores at or below chance has no leakage to normalise by
      (NAG's denominator is zero or negative).

    NAG against either would look like a result while meaning nothing.
    """

    def at_chance(value, iv, chance) -> bool:
        if value is None or chance is None or not np.isfinite(value):
            return False
        low = iv[0] if iv and iv[0] is not None and np.isfinite(iv[0]) else value
        return low <= chance + 1e-9

    def shown(value, iv) -> str:
        text = interval_text(iv, sep="-")
        return f"{pct(value)} %" + (f" (95 % interval {text[1:-1]} %)" if text else "")

    u, p = raw.utility or Utility(), raw.privacy or Privacy()
    own = u.has("value")
    acc, iv = (u.value, u.interval) if own else (u.retrained, u.retrained_interval)
    if raw.reference and at_chance(acc, iv, u.chance):
        return (f"NAG not computed: the reference scores {shown(acc, iv)} on its own task, no better than chance "
                f"{pct(u.chance)} %, so it never learned and leakage cannot be normalised by it")
    if at_chance(p.best, None, p.chance):
        return (f"NAG not computed: the best attacker on the reference scores {shown(p.best, None)}, "
                f"no better than chance {pct(p.chance)} %, so there is no reference leakage to normalise by")
    return None


def add_raw(privacy: Privacy, raw_privacy: Privacy, refused: str | None = None) -> Privacy:
    """Put the raw-data reference (same audit, E = identity, or the unprotected network) beside every
    level: ``raw`` and ``nag`` at the headline level and in ``levels`` (NAG with majority-class
    chance). ``refused`` (see :func:`reference_refusal`): NAG is left out (``None``) and the reason
    kept as ``nag_refused``."""
    privacy.raw = raw_privacy.best
    privacy.nag = None if refused else metrics.nag(privacy.best, privacy.raw, privacy.chance)
    if refused:
        privacy.nag_refused = refused
        log.warning("%s", refused)
    for level, block in (privacy.levels or {}).items():
        ref = (raw_privacy.levels or {}).get(level)
        if ref is not None and np.isfinite(block.best):
            block.raw = ref.best
            block.nag = None if refused else metrics.nag(block.best, ref.best, block.chance)
    return privacy


def audit(encoder: nn.Module, splits, spec: AuditSpec, *, out_dir: str | Path, device: str | torch.device = "cpu",
          encoder_info: dict | None = None, utility_model: nn.Module | None = None,
          training_adversaries: dict[str, nn.Module] | None = None, raw: AuditSummary | None = None,
          views: int | None = None) -> AuditSummary:
    """Audit a frozen encoder on ``splits``; writes one JSON per attacker and ``summary.json``.

    Args:
        encoder: the frozen f_d (or a baseline).
        splits: :class:`~privacam.data.Splits` (``splits.privacy`` for cross-dataset privacy).
        spec: attackers, utility architecture, fitting, probing and pooling settings.
        out_dir: the ``eval`` directory to write.
        utility_model: the run's trained f_T (scored as ``utility.value``), if any.
        training_adversaries: the run's budget models, scored on E(X_test) beside the attackers.
        raw: the raw-data reference's summary, for context and NAG (:func:`add_reference`).
        views: releases of the training split (default ``spec.views``).
    Returns:
        the summary (also written to ``out_dir/summary.json``).
    """
    from . import pooling
    from .probing import effective_views
    from .selection import SelectionSplit, carve

    device = torch.device(device)
    out_dir = Path(out_dir)
    (out_dir / "attackers").mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    psplits = splits.privacy or splits
    multilabel = bool(psplits.multilabel)
    bs = spec.fit.batch_size
    seed = spec.fit.seed
    views = spec.views if views is None else int(views)

    def release(sp, name: str, n_views: int, offset: int) -> Encoded:
        ds = getattr(sp, name)
        v = effective_views(encoder, ds, n_views) if n_views > 1 else 1
        enc = encode_split(encoder, ds, batch_size=bs, device=device, views=v, seed=seed * 10 + offset,
                           desc=f"encode {name}" + (f" x{v}" if v > 1 else ""))
        return _with_videos(enc, sp.kind)

    # 1. release train `views` times (the probing attacker), val / test once; test sealed until selection is over
    enc_u = {"train": release(splits, "train", views, 0), "val": release(splits, "val", 1, 1)}
    test_u = Sealed(release(splits, "test", 1, 2))
    if splits.privacy is not None:
        enc_p = {"train": release(psplits, "train", views, 3), "val": release(psplits, "val", 1, 4)}
        test_p = Sealed(release(psplits, "test", 1, 5))
    else:
        enc_p, test_p = enc_u, test_u
    for group, test in ((enc_u, test_u), (enc_p, test_p)):
        stats = channel_stats(group["train"])
        for e in (group["train"], group["val"], test._value):
            e.norm = stats
    shape = _shape_args(enc_u["train"])
    has_videos = enc_p["train"].videos is not None
    headline = pooling.headline_level(spec.pool, has_videos, multilabel, spec.person_k)
    # 2. fit the retrained utility model (one release of train) and every attacker; select on validation
    has_utility = splits.meta.get("has_utility", True) and splits.num_utility > 1
    fitted_util = None
    if has_utility:
        fitted_util = create_utility(spec.utility_model, num_classes=splits.num_utility, **shape, **(spec.utility_params or {}))
        fit_classifier(fitted_util, enc_u["train"].view_rows(0), enc_u["val"], "utility", multilabel=False,
                       cfg=spec.utility_fit, device=device, desc="fit utility")
    if spec.val_mode == "auto":
        split = carve(enc_p["train"], enc_p["val"], fraction=spec.val_fraction, seed=seed, refit=spec.refit)
    else:
        split = SelectionSplit(enc_p["train"], enc_p["val"], None, {"mode": "data", "val_clips": len(enc_p["val"])})
    fitted = {}
    for name in spec.attackers:
        make = lambda name=name: create_attacker(name, num_classes=psplits.num_private, **shape)  # noqa: E731
        model, sel = fit_attacker(make, split, multilabel=multilabel, cfg=spec.fit, device=device, desc=f"fit {name}")
        fitted[name] = (model, sel)
        log.info("attacker %s selected (%s, val %.3f, %.1fs)", name,
                 f"epoch {sel['best_epoch']}" if "best_epoch" in sel else sel.get("chosen"), sel["val"], sel["seconds"])
    # 3. selection is over: open the test splits and score every attacker at every level
    tp, test_info = cap_test_clips(test_p.open(), int(spec.test_clips))
    tu = tp if test_u is test_p else cap_test_clips(test_u.open(), int(spec.test_clips))[0]
    metric = "cmap" if multilabel else "accuracy"
    index = pooling.TestIndex.build(tp.private.numpy(), tp.videos)
    levels = pooling.available_levels(index, spec.person_k)
    plan = pooling.make_plan(index, levels, trials=spec.trials, bootstrap=spec.bootstrap, seed=seed)
    train_labels = (split.pool if split.pool is not None else split.train).view_rows(0).private  # what the attackers fit
    per: dict[str, dict] = {}
    frame_scores, warnings_ = {}, []
    for name, (model, sel) in fitted.items():
        level = getattr(model, "level", "")
        scores = attacker_scores(model, tp, device, multilabel)
        per[name] = pooling.score(scores, plan)
        rec: dict[str, Any] = {"name": name, "level": level, "selection": sel,
                               "levels": pooling.strip_boot(per[name]), "test": per[name][headline]["value"]}
        if multilabel:
            rec["cmap"] = per[name][pooling.CLIP]["value"]
            rec["per_attribute_f1"] = dict(zip(psplits.private_classes, [float(v) for v in metrics.per_attribute_f1(scores, tp.private)]))
        else:
            rec["clip_accuracy"] = per[name][pooling.CLIP]["value"]
            if level == "frame" and tp.x.dim() == 5:
                rec["frame_accuracy"] = metrics.frame_accuracy(predict(model, tp, device, frames=True), tp.private)
                frame_scores[name] = rec["frame_accuracy"]
        rec["params"] = sum(p.numel() for p in model.parameters())
        write_attacker(out_dir, name, rec)
        if sel.get("still_rising"):
            unit = "round" if "chosen" in sel else "epoch"
            warnings_.append(f"{name}: validation still rising at its last {unit}; more {unit}s may find more")
    # the adversaries the encoder was trained against, on the same test data and levels
    trained = {}
    for name, m in (training_adversaries or {}).items():
        m.to(device)
        trained[name] = pooling.score(attacker_scores(m, tp, device, multilabel, raw=True), plan)
    blocks = {lv: _level_block(per, lv, plan, train_labels) for lv in levels}
    for lv in levels:
        if trained:
            blocks[lv]["training_adversaries"] = {a: r[lv]["value"] for a, r in trained.items()}
    notes = [f"{lv}: {len(sk)} person(s) with fewer than {pooling.parse_level(lv)[1]} test clips skipped ("
             + ", ".join(f"{psplits.private_classes[int(k)] if int(k) < len(psplits.private_classes) else k}: {n}"
                         for k, n in sk.items()) + ")"
             for lv, sk in plan.skipped.items() if sk]
    for lv, b in blocks.items():
        if "skipped" in b:
            b["skipped"] = {psplits.private_classes[int(k)]: n for k, n in b["skipped"].items()}
    head = blocks[headline]
    utility: dict[str, Any] = {"metric": "accuracy"}
    if has_utility:
        uindex = pooling.TestIndex.build(tu.utility.numpy(), tu.videos)
        uplan = pooling.make_plan(uindex, [pooling.CLIP], bootstrap=spec.bootstrap, seed=seed)
        utility["chance"] = metrics.chance_accuracy(enc_u["train"].view_rows(0).utility, tu.utility)
        r = pooling.score(attacker_scores(fitted_util, tu, device, False), uplan)[pooling.CLIP]
        utility["retrained"], utility["retrained_interval"] = r["value"], r["interval"]
        if utility_model is not None:
            utility_model.to(device)
            r = pooling.score(attacker_scores(utility_model, tu, device, False, raw=True), uplan)[pooling.CLIP]
        utility["value"], utility["interval"] = r["value"], r["interval"]
    privacy: dict[str, Any] = {
        "metric": metric, "attackers": head["attackers"], "best": head["best"], "best_attacker": head["best_attacker"],
        "chance": head["chance"], "per_frame": frame_scores,
        "training_adversaries": head.get("training_adversaries", {}),
        "level": headline, "interval": head["interval"], "intervals": head["intervals"], "levels": blocks,
        "strongest_level": max(levels, key=lambda lv: (np.nan_to_num(blocks[lv]["best"], nan=-1.0), -levels.index(lv))),
        "views": enc_p["train"].num_views, "selection": split.info, "test_clips": test_info,
        "warnings": warnings_, "notes": notes,
        "chance_rule": "majority class of the training labels (MaSS / PASS)" if not multilabel else "mean prevalence",
    }
    summary: dict[str, Any] = {
        "encoder": encoder_info or {"name": type(encoder).__name__, "params": {}},
        "dataset": splits.name,
        "utility": utility,
        "privacy": privacy,
        "n_test": len(tp),
        "n_test_videos": index.num_videos if index.has_videos else None,
        "encoded_shape": list(enc_u["train"].x.shape[1:]),
        "cache_bytes": {k: int(getattr(e.x, "nbytes", 0)) for k, e in enc_p.items()},
        "seconds": None,
    }
    if spec.reconstruction:
        rec = reconstruction_audit(encoder, splits, enc_u, tu, device=device, seed=spec.fit.seed)
        if rec is not None:
            summary["reconstruction"] = rec
    summary["seconds"] = round(time.time() - t0, 1)
    result = AuditSummary.from_dict(summary)
    if raw is not None:
        add_reference(result, raw)
    write_summary(out_dir, result)
    _save_examples(splits, tu, out_dir)
    return result


def add_reference(summary: AuditSummary, raw: AuditSummary) -> AuditSummary:
    """The raw-data reference (or the unprotected network) beside the audit's numbers: utility ``raw``,
    privacy ``raw`` and NAG at every level (see :func:`add_raw`), and what the reference is."""
    u = summary.utility
    if raw.utility is not None and raw.utility.has("retrained") and u.has("value"):
        u.raw = raw.utility.retrained
    add_raw(summary.privacy, raw.privacy, reference_refusal(raw))
    if raw.reference:
        summary.privacy.reference = raw.reference
    return summary


def reconstruction_audit(encoder, splits, enc_u, tu, *, device, seed=0, max_frames: int = 2000) -> dict | None:
    """Attackers that rebuild the input from E(x): PSNR / SSIM on test frames (if available)."""
    try:
        from .reconstruction import reconstruction_attack
    except ImportError:  # pragma: no cover - module optional
        return None
    from ..data.base import collate

    def frames(split_ds, enc: Encoded, limit):
        xs = []
        items = _items(enc)
        for s in range(0, len(items), 64):
            xs.append(collate([split_ds[i] for i in items[s:s + 64]])["input"])
        x = torch.cat(xs)
        z = enc.dense().float() * enc.scale
        if x.dim() == 5 and z.dim() == 5 and z.shape[2] == x.shape[2]:  # per-frame pairs
            x = x.transpose(1, 2).flatten(0, 1)
            z = z.transpose(1, 2).flatten(0, 1)
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(len(x), generator=g)[:limit]
        return z[idx], x[idx]

    try:
        trz, trx = frames(splits.train, enc_u["train"].view_rows(0), max_frames)
        vz, vx = frames(splits.val, enc_u["val"], max_frames // 4)
        tz, tx = frames(splits.test, tu, max_frames // 2)
        return reconstruction_attack(trz, trx, vz, vx, tz, tx, seed=seed)
    except Exception as e:  # noqa: BLE001 - the attribute audit must not be lost to this extra
        log.warning("reconstruction audit skipped: %s", e)
        return None


def _items(enc: Encoded) -> list[int]:
    """The dataset item of every entry of one release (its clip index; entries in order otherwise)."""
    return enc.clip.tolist() if enc.clip is not None else list(range(len(enc)))


def _save_examples(splits, tu: Encoded, out_dir: Path, n: int = 6) -> None:
    """Save a few test inputs beside their release (``examples.pt``) for the report."""
    from ..data.base import collate

    idx = list(range(0, len(tu), max(1, len(tu) // n)))[:n]
    items = [_items(tu)[i] for i in idx]  # the test split's items of the clips shown
    x = collate([splits.test[i] for i in items])["input"]
    z = tu.subset(idx).dense().float() * tu.scale
    write_examples(out_dir, middle_frame(x).half(), middle_frame(z).half(), items)


def middle_frame(t: torch.Tensor) -> torch.Tensor:
    """The middle frame of clips ``[N,C,T,H,W]`` (images as they are)."""
    return t[:, :, t.shape[2] // 2] if t.dim() == 5 else t
