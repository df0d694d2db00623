"""A sweep over any config key: for each value, train a run, audit it with the same protocol as
``privacam evaluate``, then draw one report of all of them as ``privacam report`` does.

Nothing is measured here that the audit does not measure: each point is a run directory with its
``eval/summary.json`` (utility, retrained attackers, reconstruction attackers when ``eval.reconstruction``),
and ``sweep.json`` only lists them. A CPGAN trade-off is ``--key game.gamma`` (the paper's
``lambda = 1 / gamma``).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Sequence

from . import runs
from .audits import current_summary, summary_path
from .config import Config, apply_overrides
from .errors import ConfigError
from .evaluate.runner import evaluate_run
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


def run_sweep(cfg: Config, *, key: str, values: Sequence[str], out: str | Path, resume: bool = False,
              overwrite: bool = False, command: str | None = None) -> dict:
    """Train ``cfg`` with ``key=value`` into ``out/<value>/`` for every value, audit each run, report all.

    Args:
        cfg: the base config (every override already applied).
        key: a config key (``game.gamma``, ``encoder.params.code_dim``, ...).
        values: its values as written on the command line (parsed as YAML, as overrides are).
        out: sweep directory; gets one run per value, ``sweep.json``, ``report.html`` and ``report.png``.
        resume: continue runs from their checkpoints and keep audits that are already written.
        overwrite: a run directory that already holds a run is moved aside (not deleted) and trained again.
        command: the command line that ran the sweep, recorded in ``sweep.json``.

    Returns:
        The content of ``sweep.json``: ``{"key", "values", "points": [{"value", "run", "summary"}], "report", "command"}``.
    """
    out = Path(out)
    labels = [value_label(v) for v in values]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"sweep values {', '.join(values)} give the same run directory twice")
    configs = [apply_overrides(cfg, [f"{key}={v}"]) for v in values]  # every value checked before any training
    points = []
    for v, label, cfg_v in zip(values, labels, configs):
        run_dir = out / label
        summary = summary_path(run_dir / runs.EVAL)
        log.info("sweep %s=%s: %s", key, v, run_dir)
        if not (resume and current_summary(summary) is not None):
            train(cfg_v, run_dir, resume=resume and runs.holds_run(run_dir), overwrite=overwrite)
            evaluate_run(run_dir, raw=reference_for(run_dir))
        points.append({"value": v, "run": label, "summary": str(summary.relative_to(out))})
    html, _ = write_report([out], out / "report.html", title=f"{key} sweep")
    result = {"key": key, "values": list(values), "points": points, "report": html.name, "command": command}
    write_json(out / "sweep.json", result)
    return result
