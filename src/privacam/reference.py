"""The reference a run's audit is normalised by (``raw`` and NAG in its summary).

A pixel-level release (video or image frames) is compared with the raw data: the same audit with
E = identity (:func:`privacam.evaluate.runner.raw_reference`). A feature-level release is a cut
through one network, and raw images are no fair reference for it: the rest of the network would be
retrained on pixels through an adapter, and on the embedded image data that reference never learned
(26.7 % against a 25 % chance). Its reference is the *unprotected network*: the same config trained
at ``game.gamma=0`` and audited the same way, as docs/feature_privacy.md does by hand. It is trained
once per (config, data fingerprint, audit overrides) and cached under ``$PRIVACAM_CACHE/unprotected``.

A reference that scores no better than chance on its own task is not used for NAG
(:func:`privacam.evaluate.protocol.reference_refusal`): the audit says so instead.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from . import runs
from .audits import AuditSummary, current_summary
from .config import apply_overrides, dump_config
from .evaluate.runner import evaluate_run
from .train import train

log = logging.getLogger(__name__)


def cache_root() -> Path:
    return Path(os.environ.get("PRIVACAM_CACHE", Path.home() / ".cache" / "privacam"))


def unprotected_reference(run_dir: str | Path, *, overrides: list[str] | None = None,
                          device: str = "auto") -> AuditSummary | None:
    """The audit summary of the unprotected network of a feature-level run (trained and audited once,
    then cached), with ``reference`` saying what it is; None when the run is itself unprotected
    (``game.gamma`` is 0).

    Args:
        run_dir: the run.
        overrides: the audit's overrides (``eval.*``), applied to the reference's audit too.
        device: for the reference's audit.
    """
    run_dir = Path(run_dir)
    cfg = runs.load_run_config(run_dir)
    meta = runs.read_meta(run_dir)
    if cfg.game.gamma == 0:
        return None
    ref_cfg = apply_overrides(cfg, ["game.gamma=0"])
    key = hashlib.sha1("\n".join([dump_config(ref_cfg), str(meta.get("data_fingerprint")), *sorted(overrides or [])]).encode()).hexdigest()[:16]
    ref_dir = cache_root() / "unprotected" / f"{meta.get('dataset', 'data')}_{key}"
    what = f"the unprotected network ({cfg.encoder.name} at game.gamma=0, {ref_dir})"
    summary = current_summary(ref_dir / runs.EVAL) if (ref_dir / runs.ENCODER).exists() else None
    if summary is not None:
        log.info("reference: %s, from the cache", what)
    else:
        if not (ref_dir / runs.ENCODER).exists():
            log.info("reference: training %s", what)
            train(ref_cfg, ref_dir, resume=runs.holds_run(ref_dir))
        summary = evaluate_run(ref_dir, overrides=overrides, raw=False, device=device)
    summary.reference = what
    return summary


def reference_for(run_dir: str | Path, *, overrides: list[str] | None = None,
                  device: str = "auto") -> bool | AuditSummary:
    """What :func:`~privacam.evaluate.runner.evaluate_run` takes as ``raw`` for this run: ``True`` (the
    raw-data reference) for pixel-level releases; the unprotected network's audit for a feature-level
    run; ``False`` (none) for a feature-level run that is itself the unprotected network."""
    meta = runs.read_meta(run_dir)
    if meta.get("task") != "feature":
        return True
    ref = unprotected_reference(run_dir, overrides=overrides, device=device)
    if ref is None:
        log.info("%s is the unprotected network (game.gamma=0): its audit has no reference", run_dir)
        return False
    return ref
