"""A sweep over any config key: for each value, train a run, audit it with the same protocol as
``privacam evaluate``, then draw one report of all of them as ``privacam report`` does.

Nothing is measured here that the audit does not measure: each point is a run directory with its
``eval/summary.json`` (utility, retrained attackers, reconstruction attackers when ``eval.reconstruction``),
and ``sweep.json`` only lists them. A CPGAN trade-off is ``--key game.gamma`` (the paper's
``lambda = 1 / gamma``).

The runs are independent train-then-audit chains: an :class:`~privacam.executors.Executor` runs them
(``--workers N``: local processes, ``--ray``: Ray tasks; by default one after the other here). The
references NAG is normalised by are put beside every audit afterwards, once per reference
(:func:`add_references`), so that two chains never compute the same reference at the same time. The
job functions here (:func:`train_and_audit_job`, :func:`named_audit_job`, :func:`raw_reference_job`) serve
any workflow of such chains (``scripts/weizmann_doc.py``).
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Sequence

from . import runs
from .audits import AuditSummary, current_summary, read_summary, summary_path, write_summary
from .config import Config, apply_overrides
from .errors import ConfigError
from .evaluate.runner import evaluate_named, evaluate_run, raw_reference
from .evaluate.scoring import add_reference
from .executors import Executor, Inline, Job, WorkerContext
from .reference import reference_for
from .report import write_report
from .train import train
from .utils import write_json

log = logging.getLogger(__name__)


def value_label(value: str) -> str:
    """The run directory name of one value (``0.1`` -> ``0.1``, ``[a, b]`` -> ``a_b``)."""
    label = re.sub(r"[^A-Za-z0-9.+-]+", "_", str(value).strip()).strip("_")
    if not label:
        raise ConfigError(f"sweep value {value!r} gives no usable run directory name")
    return label


# ---------------------------------------------------------------------------------------- jobs
def train_and_audit_job(shared, payload: dict, ctx: WorkerContext) -> dict:
    """One chain: train ``payload["cfg"]`` into ``payload["run"]`` (resumed where it holds a run and
    ``resume``; skipped where ``skip_train`` and its encoder exists), then audit it without a reference
    (:func:`add_references` adds it). Returns ``{"run", "seconds": {"train", "audit"}}``."""
    run_dir = Path(payload["run"])
    seconds = {}
    t = time.time()
    if not (payload.get("skip_train") and (run_dir / runs.ENCODER).exists()):
        cfg = payload["cfg"]
        if ctx.device.startswith("cuda") and cfg.train.device == "auto":
            cfg.train.device = ctx.device
        train(cfg, run_dir, resume=bool(payload.get("resume")) and runs.holds_run(run_dir),
              overwrite=bool(payload.get("overwrite")))
        seconds["train"] = round(time.time() - t, 1)
    t = time.time()
    evaluate_run(run_dir, overrides=payload.get("overrides"), raw=False, device=ctx.device, command=payload.get("command"))
    seconds["audit"] = round(time.time() - t, 1)
    return {"run": str(run_dir), "seconds": seconds}


def named_audit_job(shared, payload: dict, ctx: WorkerContext) -> dict:
    """The audit of a named encoder (a baseline) into ``payload["out"]``, without a reference."""
    t = time.time()
    evaluate_named(payload["spec"], payload["cfg"], payload["out"], raw=False, device=ctx.device)
    return {"out": str(payload["out"]), "seconds": {"audit": round(time.time() - t, 1)}}


def raw_reference_job(shared, payload: dict, ctx: WorkerContext) -> dict:
    """The raw-data reference (E = identity) audited into ``payload["out"]`` (not the shared cache)."""
    from .data import make_splits
    from .evaluate.runner import audit_spec

    cfg = payload["cfg"]
    t = time.time()
    raw_reference(cfg, make_splits(cfg.data, seed=cfg.train.seed), audit_spec(cfg), device=ctx.device,
                  out_dir=Path(payload["out"]), use_cache=False)
    return {"out": str(payload["out"]), "seconds": {"audit": round(time.time() - t, 1)}}


def run_jobs(jobs: list[Job], executor: Executor | None = None) -> dict[str, dict]:
    """Run independent chains; returns each job's result (with its wall ``seconds`` in ``took``)."""
    executor = executor or Inline()
    out = {}
    for ev in executor.run(jobs):
        if ev.kind == "done":
            out[ev.job.name] = {**ev.result, "took": round(ev.seconds, 1)}
            log.info("%s done in %.0f s", ev.job.name, ev.seconds)
    return out


def add_references(eval_dirs: Sequence[str | Path], raw: AuditSummary | None = None) -> None:
    """Put each audit's reference beside it (``raw`` and NAG): ``raw`` where given (one raw-data audit
    for all), else each run's own (:func:`privacam.reference.reference_for`: the raw data, cached once
    per data and audit settings, or a feature-level run's unprotected network). Audits of fixed
    encoders with no ``raw`` are left as they are."""
    for d in eval_dirs:
        s = read_summary(d)
        ref = raw
        if ref is None and s.encoder and s.encoder.run:
            ref = reference_for(s.encoder.run)
            if ref is True:
                ref = _raw_of_run(s.encoder.run)
        if isinstance(ref, AuditSummary):
            add_reference(s, ref)
            write_summary(d, s)


def _raw_of_run(run_dir: str | Path) -> AuditSummary | None:
    """The raw-data reference of a run's audit settings (cached per data and settings)."""
    from .data import make_splits
    from .evaluate.runner import audit_spec
    from .utils import resolve_device

    cfg = runs.load_run_config(run_dir)
    if not cfg.eval.raw_reference:
        return None
    return raw_reference(cfg, make_splits(cfg.data, seed=cfg.train.seed), audit_spec(cfg),
                         device=resolve_device(cfg.train.device))


# ---------------------------------------------------------------------------------------- the sweep
def run_sweep(cfg: Config, *, key: str, values: Sequence[str], out: str | Path, resume: bool = False,
              overwrite: bool = False, command: str | None = None, executor: Executor | None = None) -> dict:
    """Train ``cfg`` with ``key=value`` into ``out/<value>/`` for every value, audit each run, report all.

    Args:
        cfg: the base config (every override already applied).
        key: a config key (``game.gamma``, ``encoder.params.code_dim``, ...).
        values: its values as written on the command line (parsed as YAML, as overrides are).
        out: sweep directory; gets one run per value, ``sweep.json``, ``report.html`` and ``report.png``.
        resume: continue runs from their checkpoints and keep audits that are already written.
        overwrite: a run directory that already holds a run is moved aside (not deleted) and trained again.
        command: the command line that ran the sweep, recorded in ``sweep.json``.
        executor: where the chains run (default: one after the other in this process).

    Returns:
        The content of ``sweep.json``: ``{"key", "values", "points": [{"value", "run", "summary"}], "report", "command"}``.
    """
    out = Path(out)
    labels = [value_label(v) for v in values]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"sweep values {', '.join(values)} give the same run directory twice")
    configs = [apply_overrides(cfg, [f"{key}={v}"]) for v in values]  # every value checked before any training
    points, jobs = [], []
    for v, label, cfg_v in zip(values, labels, configs):
        run_dir = out / label
        summary = summary_path(run_dir / runs.EVAL)
        log.info("sweep %s=%s: %s", key, v, run_dir)
        if not (resume and current_summary(summary) is not None):
            jobs.append(Job(f"{key}={v}", train_and_audit_job,
                            {"cfg": cfg_v, "run": str(run_dir), "resume": resume, "overwrite": overwrite}, gpu=True))
        points.append({"value": v, "run": label, "summary": str(summary.relative_to(out))})
    done = run_jobs(jobs, executor)
    add_references([Path(r["run"]) / runs.EVAL for r in done.values()])
    html, _ = write_report([out], out / "report.html", title=f"{key} sweep")
    result = {"key": key, "values": list(values), "points": points, "report": html.name, "command": command}
    if executor is not None:
        result["executor"] = executor.describe()
    write_json(out / "sweep.json", result)
    return result
