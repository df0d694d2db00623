"""Fitting a model on a released split: the one interface every attacker of the audit has, networks
and classical models alike (as the estimators of adversarial-robustness-toolbox share one).

:class:`Attacker` is fitted on a label column of the training side only: :meth:`~Attacker.fit` on
train, with its setting (epoch, C, boosting rounds) selected on validation; :meth:`~Attacker.refit`
on train + validation with that setting; then :meth:`~Attacker.scores` on any split (the audit opens
test only after selection). :class:`NetworkAttacker` is a network trained by gradient steps
(:func:`fit_classifier`); :class:`~privacam.evaluate.classical.ClassicalAttacker` a classical model on
hand-made features; :func:`make_attacker` gives either from the attacker registry.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import metrics
from .encoded import Encoded


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
                   cfg: FitConfig, device: torch.device, desc: str = "fit", fixed_epochs: int | None = None,
                   progress: bool | None = None) -> dict:
    """Train ``model`` on the label column ``labels`` of ``train`` and keep the epoch with the best
    validation score.

    Every epoch visits each training clip once, in one of its releases (probing views) drawn at
    random. Epochs before ``cfg.min_epochs`` are never selected. Only train and validation data reach
    this function. With ``fixed_epochs`` (a refit on train + validation after selection) it runs that
    many epochs of the same schedule without validation and keeps the last. ``progress``: show a bar
    over the epochs (None: where the terminal takes one).

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
    y_train = train.label(labels)
    y_val = val.label(labels) if val is not None else None
    framewise = getattr(model, "level", "") == "frame" and train.x.dim() == 5 and cfg.frames_per_clip > 0
    best, best_state, best_epoch, since = -1.0, None, -1, 0
    n_epochs = cfg.epochs if fixed_epochs is None else max(1, int(fixed_epochs))
    first = min(max(1, int(cfg.min_epochs)), n_epochs) - 1  # the first epoch that may be selected (at most the last)
    curve: list[dict] = []
    epoch = 0
    epochs = range(n_epochs)
    if progress is not False:  # a unit in a worker makes no bar at all (the audit has one over its units)
        epochs = tqdm(epochs, desc=desc, leave=False, disable=None if progress is None else not progress)
    for epoch in epochs:
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


def module_scores(model: nn.Module, data: Encoded, device: torch.device, multilabel: bool,
                  raw: bool = False) -> np.ndarray:
    """Per-clip scores of a network: log-probabilities ``[N,K]`` (attribute logits when multi-label).
    ``raw``: the release unstandardised (the run's own f_T and f_b, trained on it as it is)."""
    logits = predict(model, data, device, raw=raw).float()
    return (logits if multilabel else F.log_softmax(logits, -1)).double().numpy()


# ---------------------------------------------------------------------------------------- attackers
class Attacker:
    """The interface of every model the audit fits on a label column of a released split.

    Subclasses set ``level`` (``frame``, ``clip``, ``probe``, ``classical``) and implement:

    - :meth:`fit`: fit on ``train`` (every probing view), select the setting on ``val``; returns the
      selection record (``val`` score, ``curve``, ``seconds``, ``still_rising``, and the setting);
    - :meth:`refit`: fit again on ``pool`` (train + validation) with the selected setting; returns its
      record, or None when there is nothing to refit;
    - :meth:`scores`: per-clip scores ``[N,K]`` of any split (log-probabilities; attribute scores
      when multi-label).
    """

    level = ""

    def fit(self, train: Encoded, val: Encoded, labels: str = "private", *, multilabel: bool = False) -> dict:
        raise NotImplementedError

    def refit(self, pool: Encoded, labels: str = "private", *, multilabel: bool = False,
              selection: dict | None = None) -> dict | None:
        raise NotImplementedError

    def scores(self, data: Encoded, *, multilabel: bool = False) -> np.ndarray:
        raise NotImplementedError

    def num_params(self) -> int:
        """Trainable numbers of the fitted model (0 for models without tensors)."""
        return 0

    def frame_scores(self, data: Encoded) -> torch.Tensor | None:
        """Per-frame logits ``[N,T,K]`` of a frame-level network (None for every other attacker)."""
        return None


class NetworkAttacker(Attacker):
    """A network (``make()`` builds it fresh) trained by gradient steps (:func:`fit_classifier`): the
    selected setting is the epoch; the refit trains a fresh network that many epochs on train +
    validation.

    Args:
        make: builds the untrained network.
        cfg: how it is fitted.
        device: where it is fitted and scored.
        desc: the name on progress bars.
        model: the network ``make()`` already built, if any (it is fitted first).
        progress: show a bar over the epochs (None: where the terminal takes one).
    """

    def __init__(self, make: Callable[[], nn.Module], cfg: FitConfig, device: torch.device | str, desc: str = "fit",
                 model: nn.Module | None = None, progress: bool | None = None):
        self.make, self.cfg, self.device, self.desc, self.progress = make, cfg, torch.device(device), desc, progress
        self.model = model

    @property
    def level(self) -> str:  # type: ignore[override]
        return getattr(self.model, "level", "")

    def fit(self, train, val, labels="private", *, multilabel=False):
        if self.model is None:
            self.model = self.make()
        return fit_classifier(self.model, train, val, labels, multilabel=multilabel, cfg=self.cfg, device=self.device,
                              desc=self.desc, progress=self.progress)

    def refit(self, pool, labels="private", *, multilabel=False, selection=None):
        if not selection or selection.get("best_epoch", -1) < 0:
            return None
        self.model = self.make()
        rec = fit_classifier(self.model, pool, None, labels, multilabel=multilabel, cfg=self.cfg, device=self.device,
                             desc=f"{self.desc} (refit)", fixed_epochs=selection["best_epoch"] + 1, progress=self.progress)
        rec.pop("curve", None)
        return rec

    def scores(self, data, *, multilabel=False):
        return module_scores(self.model, data, self.device, multilabel)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def frame_scores(self, data):
        if self.level == "frame" and data.x.dim() == 5:
            return predict(self.model, data, self.device, frames=True)
        return None


def make_attacker(name: str, *, num_classes: int, shape: dict, cfg: FitConfig, device: torch.device | str,
                  progress: bool | None = None) -> Attacker:
    """The registered attacker ``name`` sized for a release of ``shape`` (:meth:`Encoded.shape_args`):
    a classical model as it is, a network wrapped in a :class:`NetworkAttacker`."""
    from ..registry import create_attacker

    make = lambda: create_attacker(name, num_classes=num_classes, **shape)  # noqa: E731
    model = make()
    if isinstance(model, Attacker):
        return model
    return NetworkAttacker(make, cfg, device, desc=f"fit {name}", model=model, progress=progress)


def fit_attacker(attacker: Attacker, split, labels: str = "private", *, multilabel: bool) -> dict:
    """Fit one attacker on the selection split: train on ``split.train``, select on ``split.val``,
    then (``split.pool``) fit again on train + validation with the selected setting. Only the
    training side reaches it: the test split is sealed until it is selected.

    Returns:
        the selection record (with ``refit`` where it was refitted).
    """
    sel = attacker.fit(split.train, split.val, labels, multilabel=multilabel)
    if split.pool is not None:
        rec = attacker.refit(split.pool, labels, multilabel=multilabel, selection=sel)
        if rec is not None:
            sel["refit"] = rec
    return sel


def attacker_scores(model: Any, data: Encoded, device: torch.device, multilabel: bool, raw: bool = False) -> np.ndarray:
    """Per-clip scores of a fitted attacker or of a trained network (``raw``: see :func:`module_scores`)."""
    if isinstance(model, Attacker):
        return np.asarray(model.scores(data, multilabel=multilabel), dtype=np.float64)
    return module_scores(model, data, device, multilabel, raw=raw)


__all__ = ["Attacker", "FitConfig", "NetworkAttacker", "attacker_scores", "fit_attacker", "fit_classifier",
           "make_attacker", "module_scores", "predict"]
