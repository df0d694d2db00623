"""The demo: the whole story on the embedded data, on a CPU (``privacam demo``).

Trains the default release (substitution, config ``demo``) and the decision release as its reference
(config ``demo_decision``), audits them, the raw data and the downsampling and blur baselines with the
same retrained attacker pool and task pool, writes every ``eval/summary.json`` under ``--out``, the
HTML report with the trade-off figure, and prints the summary table.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from . import runs
from .audits import AuditSummary, audit_is_current, read_summary_if
from .config import load_config
from .data import apply_data_spec, make_splits
from .evaluate.runner import audit_spec, evaluate_named, evaluate_run, raw_reference
from .report import load_points, markdown_table, write_report
from .train import train
from .utils import atomic_write_text, process_seconds, resolve_device, write_json

log = logging.getLogger(__name__)

#: baselines evaluated beside the learned releases (the paper's Method 1); blur and 8x downsampling, which
#: leaked identity at the raw rate with the lowest utility, left the demo when the task pool joined its audits
#: (the 15-minute budget); `privacam evaluate --encoder blur:sigma=2` audits them the same way
DEMO_BASELINES = ["downsample:factor=2", "downsample:factor=4"]
QUICK_OVERRIDES = [
    "data.params={num_actors: 8, clips_per_pair: 5}", "train.steps=30", "init.encoder_steps=10",
    "init.utility_steps=30", "init.budget_steps=15", "eval.epochs=6", "eval.utility_epochs=8", "eval.patience=3",
    "eval.attackers=[linear_probe, motion_probe, resnet_tiny, c3d_tiny, mhi_logistic, profile_logistic, hog_logistic, "
    "combo_logistic]",
]
QUICK_BASELINES = ["downsample:factor=4", "blur:sigma=2"]
#: trained beside the demo's own config (when it is ``demo``): the decision release, the reference corner
REFERENCES = ["demo_decision"]


def _done(eval_dir: Path, resume: bool) -> AuditSummary | None:
    """The summary already written in the audit directory ``eval_dir`` when resuming, else None."""
    summary = read_summary_if(eval_dir) if resume else None
    if summary is not None:
        if audit_is_current(summary):
            log.info("resume: reusing %s", summary.path)
            return summary
        log.warning("resume: %s audits an encoder its run no longer holds; auditing again", summary.path)
    return None


def timing_line(timings: dict, resumed: bool = False) -> str:
    """One line with the demo's wall time, so that README quotes it from the run, not by hand."""
    import torch

    training = sum(v for k, v in timings.items() if k == "train" or k.startswith("train "))
    audits = sum(v for k, v in timings.items() if k not in ("total", "process") and not (k == "train" or k.startswith("train ")))
    line = (f"Wall time: {timings['total']:.0f} s in all (training {training:.0f} s, audits {audits:.0f} s), "
            f"{torch.get_num_threads()} torch threads")
    if timings.get("process") is not None:
        line += (f"; {timings['process']:.0f} s from the command's start (the interpreter and library imports "
                 "included)")
    return line + (" (resumed: reused parts are not counted)." if resumed else ".")


def run_demo(out: str | Path, *, quick: bool = False, config: str | None = None, data: str | None = None,
             overrides: list[str] | None = None, baselines: list[str] | None = None, resume: bool = False,
             overwrite: bool = False, executor=None, references: list[str] | None = None) -> dict:
    """Run the demo; returns ``{"points": [summary dicts], "report": path, "table": markdown}``.

    ``resume``: continue a killed demo in ``out``: training resumes from its last checkpoint and
    every audit whose ``summary.json`` exists is reused (its time is then not counted).
    ``overwrite``: ``out`` may hold an earlier demo: its anonymizer run is moved aside, not deleted.
    ``executor``: where the audits' units run (default: in this process).
    ``references``: configs trained and audited beside it into ``out/<name>`` (default: the decision
    release when the config is the demo's own and not ``quick``), with the data but not the overrides.
    """
    t0 = time.time()
    out = Path(out)
    ov = (QUICK_OVERRIDES if quick else []) + list(overrides or [])
    cfg = load_config(config or "demo", ov)
    if data:
        cfg.data = apply_data_spec(cfg.data, data)
    audit_spec(cfg)  # a bad eval setting fails now, not after the training
    device = resolve_device(cfg.train.device)
    splits = make_splits(cfg.data, seed=cfg.train.seed)
    timings = {}
    # 1. the learned anonymizer
    t = time.time()
    run_dir = train(cfg, out / "anonymizer", splits=splits, resume=resume and runs.holds_run(out / "anonymizer"),
                    overwrite=overwrite)
    timings["train"] = round(time.time() - t, 1)
    if references is None:
        references = REFERENCES if (config or "demo") == "demo" and not quick else []
    trained = [run_dir]
    for name in references:  # the reference releases, trained on the same data and splits
        t = time.time()
        ref_cfg = load_config(name)
        ref_cfg.data = cfg.data
        ref_dir = out / name
        trained.append(train(ref_cfg, ref_dir, splits=splits, resume=resume and runs.holds_run(ref_dir),
                             overwrite=overwrite))
        timings[f"train {name}"] = round(time.time() - t, 1)
    # 2. the raw-data reference, written under --out like every other point
    t = time.time()
    spec = audit_spec(cfg)
    raw = _done(out / "raw" / runs.EVAL, resume)
    if raw is None:
        raw = raw_reference(cfg, splits, spec, device=device, out_dir=out / "raw" / "eval", use_cache=False,
                            executor=executor)
        timings["raw"] = round(time.time() - t, 1)
    # 3. the audits of the trained releases
    for trained_dir in trained:
        t = time.time()
        if _done(trained_dir / runs.EVAL, resume) is None:
            evaluate_run(trained_dir, raw=raw, executor=executor)
            timings["anonymizer_eval" if trained_dir == run_dir else f"{trained_dir.name}_eval"] = round(time.time() - t, 1)
    # 4. baselines, same protocol
    for b in baselines if baselines is not None else (QUICK_BASELINES if quick else DEMO_BASELINES):
        t = time.time()
        b_out = out / b.replace(":", "_").replace(",", "_").replace("=", "")
        if _done(b_out / runs.EVAL, resume) is None:
            evaluate_named(b, cfg, b_out, raw=raw, device=str(device), splits=splits, executor=executor)
            timings[b] = round(time.time() - t, 1)
    title = ("privacam demo: embedded actors-and-actions data" if splits.name == "synthetic"
             else f"privacam: {Path(cfg.data.root).parent.name if splits.name == 'manifest' and cfg.data.root else splits.name}")
    html_path, png = write_report([out], out / "report.html", title=title)
    points = load_points([out])
    table = markdown_table(points)
    timings["total"] = round(time.time() - t0, 1)
    process = process_seconds()
    timings["process"] = round(process, 1) if process is not None else None
    atomic_write_text(out / "summary.md", table + "\n\n" + timing_line(timings, resume) + "\n")
    write_json(out / "demo.json", {"quick": quick, "resumed": resume, "seconds": timings, "report": str(html_path), "figure": str(png)})
    return {"points": points, "report": html_path, "figure": png, "table": table, "seconds": timings}
