"""The audit: freeze E, encode once, retrain unseen attackers, score on test (DESIGN.md, docs/audit.md).

:func:`audit` is the list of its phases:

1. **release** (:mod:`.cache`): train ``eval.views`` times (the probing attacker), validation and test
   once, with the frozen encoder; the test split is sealed;
2. **plan** (:mod:`.units`): the units: the trained task's pool (the retrained utility model and the
   task pool), every attacker on the private labels, every task the data labels times every member of
   the task pool, the task-label floors, the reconstruction threat; the headline level is checked
   before anything is fitted;
3. **units** (:mod:`.units`, run by an :class:`~privacam.executors.Executor`): each unit fits its model
   on the training side, selects it on validation carved from train, refits it, and only then opens the
   test split and keeps its per-clip scores; a unit already computed for the same inputs is reused;
4. **assemble** (:mod:`.scoring`): every level, 95 % interval, chance, the floors and the best of N
   from those scores, each task's pool member chosen on validation, the run's own trained models
   beside them;
5. **context** (:mod:`.scoring`): the raw-data reference (privacy, utility and every task) and NAG;
6. **write** (:mod:`privacam.audits`): ``summary.json``, one record per attacker, examples.

The audit does not import the game: it does not depend on how an encoder was trained.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from ..audits import AuditSummary, write_examples, write_summary
from ..executors import Executor
from .cache import ReleaseCache, release
from .encoded import Encoded, Sealed, cap_test_clips, channel_stats, concat_encoded, encode_split  # noqa: F401
from .fitting import FitConfig, attacker_scores, fit_attacker, fit_classifier, predict  # noqa: F401
from .scoring import add_raw, add_reference, assemble, reference_refusal  # noqa: F401
from .tasks import TASK_POOL
from .units import plan_units, run_units

log = logging.getLogger(__name__)


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
        task_pool: the models retrained on every task the data labels, and beside ``utility_model`` on
            the trained task; the best on validation is reported (docs/tasks.md). Empty: no task is
            measured and the trained task is the utility model's alone.
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
    task_pool: Sequence[str] = TASK_POOL

    def __post_init__(self):
        from ..config import check_key

        self.fit = self.fit or FitConfig()
        self.utility_fit = self.utility_fit or FitConfig()
        # the settings' values are checked by their rules beside the config (one place for both)
        for key, value in (("eval.views", self.views), ("eval.min_epochs", self.fit.min_epochs),
                           ("eval.val_mode", self.val_mode), ("eval.val_fraction", self.val_fraction),
                           ("eval.person_k", list(self.person_k)), ("eval.trials", self.trials),
                           ("eval.bootstrap", self.bootstrap), ("eval.test_clips", self.test_clips),
                           ("eval.pool", self.pool)):
            check_key(key, value)

    def fingerprint(self) -> str:
        d = {"attackers": list(self.attackers), "utility": self.utility_model, "up": self.utility_params or {},
             "fit": asdict(self.fit), "ufit": asdict(self.utility_fit), "views": self.views, "val_mode": self.val_mode,
             "val_fraction": self.val_fraction, "refit": self.refit, "pool": self.pool,
             "person_k": list(self.person_k), "trials": self.trials, "bootstrap": self.bootstrap,
             "test_clips": self.test_clips, "equal_clips": 1, "units": 2, "task_pool": list(self.task_pool)}
        return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]



def audit(encoder: nn.Module, splits, spec: AuditSpec, *, out_dir: str | Path, device: str | torch.device = "cpu",
          encoder_info: dict | None = None, utility_model: nn.Module | None = None,
          training_adversaries: dict[str, nn.Module] | None = None, raw: AuditSummary | None = None,
          views: int | None = None, executor: Executor | None = None, progress: bool | None = None) -> AuditSummary:
    """Audit a frozen encoder on ``splits``; writes the units, one record per attacker and ``summary.json``.

    Args:
        encoder: the frozen f_d (or a baseline).
        splits: :class:`~privacam.data.Splits` (``splits.privacy`` for cross-dataset privacy).
        spec: attackers, utility architecture, fitting, probing and pooling settings.
        out_dir: the ``eval`` directory to write (its finished units are reused where their inputs are
            the same: a killed audit resumes).
        utility_model: the run's trained f_T (scored as ``utility.value``), if any.
        training_adversaries: the run's budget models, scored on E(X_test) beside the attackers.
        raw: the raw-data reference's summary, for context and NAG (:func:`add_reference`).
        views: releases of the training split (default ``spec.views``).
        executor: where the units run (default: one after the other in this process).
        progress: show the progress bar over the units (None: where the terminal takes one).
    Returns:
        the summary (also written to ``out_dir/summary.json``).
    """
    t0 = time.time()
    device = torch.device(device)
    out_dir = Path(out_dir)
    timing = {}
    cache = release(encoder, splits, views=spec.views if views is None else int(views), batch_size=spec.fit.batch_size,
                    seed=spec.fit.seed, device=device)                                          # 1. release
    if spec.reconstruction:
        cache.extras.update(reconstruction_pairs(splits, cache, spec))
    timing["release"] = round(time.time() - t0, 1)
    units = plan_units(cache, spec)                                                             # 2. plan
    check_headline(cache, spec)
    t = time.time()
    ran = run_units(units, cache, out_dir, executor=executor, device=str(device), progress=progress)  # 3. units
    timing["units"] = round(time.time() - t, 1)
    t = time.time()
    summary = assemble(cache, spec, ran.results, units, eval_dir=out_dir, device=device, dataset=splits.name,  # 4.
                       encoder_info=encoder_info or {"name": type(encoder).__name__, "params": {}},
                       utility_model=utility_model, training_adversaries=training_adversaries)
    if raw is not None:
        add_reference(summary, raw)                                                             # 5. context
    timing["assemble"] = round(time.time() - t, 1)
    summary.seconds = round(time.time() - t0, 1)                                                # 6. write
    summary.executor = {**ran.executor, "computed": len(ran.computed), "reused": len(ran.reused), "phases": timing}
    summary.unit_seconds = {u.name: ran.seconds.get(u.name, 0.0) for u in units}
    write_summary(out_dir, summary)
    save_examples(splits, cache, spec, out_dir, encoder=encoder)
    return summary


def check_headline(cache: ReleaseCache, spec: AuditSpec) -> str:
    """The headline level ``eval.pool`` asks for, checked against the training split before any fit."""
    from . import pooling

    has_videos = cache.split("privacy", "train").videos is not None
    return pooling.headline_level(spec.pool, has_videos, bool(cache.info["multilabel"]), spec.person_k)


def reconstruction_pairs(splits, cache: ReleaseCache, spec: AuditSpec, max_frames: int = 2000) -> dict[str, torch.Tensor]:
    """The (release, input) frame pairs the reconstruction threat fits on (train, val) and is scored on
    (test, at most ``eval.test_clips`` clips per video): extras of the cache, hashed with it."""
    from ..data.base import collate

    seed = spec.fit.seed

    def frames(split_ds, enc: Encoded, limit):
        xs = []
        items = enc.items()
        for s in range(0, len(items), 64):
            xs.append(collate([split_ds[i] for i in items[s:s + 64]])["input"])
        x = torch.cat(xs)
        z = enc.dense().float() * enc.scale
        if x.dim() == 5 and z.dim() == 5 and z.shape[2] == x.shape[2]:  # per-frame pairs
            x = x.transpose(1, 2).flatten(0, 1)
            z = z.transpose(1, 2).flatten(0, 1)
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(len(x), generator=g)[:limit]
        return z[idx].contiguous(), x[idx].contiguous()

    out = {}
    tu, _ = cache.open_test("utility", spec.test_clips)  # frames only: no attacker is selected on them
    for name, ds, enc, limit in (("train", splits.train, cache.split("utility", "train").view_rows(0), max_frames),
                                 ("val", splits.val, cache.split("utility", "val"), max_frames // 4),
                                 ("test", splits.test, tu, max_frames // 2)):
        out[f"reconstruction/{name}_z"], out[f"reconstruction/{name}_x"] = frames(ds, enc, limit)
    return out


def save_examples(splits, cache: ReleaseCache, spec: AuditSpec, out_dir: Path, n: int = 6,
                  encoder: nn.Module | None = None) -> None:
    """Save a few test inputs beside their releases (``examples.pt``) for the report and the card:
    the same clips, with their items in the test split. Where ``encoder`` releases clips of a bank
    (:func:`bank_indices`), the bank index of each release shown is saved with them."""
    from ..data.base import collate

    tu, _ = cache.open_test("utility", spec.test_clips)
    idx = list(range(0, len(tu), max(1, len(tu) // n)))[:n]
    items = [tu.items()[i] for i in idx]  # the test split's items of the clips shown
    x = collate([splits.test[i] for i in items])["input"]
    shown = tu.subset(idx).dense()
    z = shown.float() * tu.scale
    bank = bank_indices(encoder, shown) if encoder is not None else None
    write_examples(out_dir, middle_frame(x).half(), middle_frame(z).half(), items, bank=bank)


def bank_indices(encoder: nn.Module, released: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Which bank clip each release is, for an encoder whose release is a clip of its bank (a module with
    a ``bank`` buffer of uint8 clips and a ``release`` method, the ``substitute`` encoder): ``(index,
    moved)``, the bank clip equal to the release, or where none is (a substitute moved to where the
    input's motion is) the nearest one, with ``moved`` True. None for any other encoder or release."""
    module = next((m for m in encoder.modules() if callable(getattr(m, "release", None))
                   and isinstance(getattr(m, "bank", None), torch.Tensor)), None)
    if module is None or module.bank.dtype != torch.uint8 or not len(module.bank) or released.dtype != torch.uint8:
        return None
    bank = module.bank.reshape(len(module.bank), -1)
    rel = released.reshape(len(released), -1).to(bank.device)
    if rel.shape[1] != bank.shape[1]:
        return None
    chunk = 256  # a bank may be large: compared in chunks
    dist = torch.cat([torch.cdist(rel.float(), bank[s:s + chunk].float(), p=1) for s in range(0, len(bank), chunk)], 1)
    best = dist.min(1)
    return best.indices.cpu(), (best.values > 0).cpu()


def middle_frame(t: torch.Tensor) -> torch.Tensor:
    """The middle frame of clips ``[N,C,T,H,W]`` (images as they are)."""
    return t[:, :, t.shape[2] // 2] if t.dim() == 5 else t


__all__ = ["AuditSpec", "Encoded", "FitConfig", "Sealed", "add_raw", "add_reference", "attacker_scores", "audit",
           "cap_test_clips", "channel_stats", "check_headline", "concat_encoded", "encode_split", "fit_attacker", "fit_classifier",
           "bank_indices", "middle_frame", "predict", "reconstruction_pairs", "reference_refusal", "save_examples"]
