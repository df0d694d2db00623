"""The run directory: the one contract between training and everything that reads a run.

A run directory holds::

    config.yaml     the resolved config (reloads into the same Config)
    run.json        shapes, encoded shape, dataset, class names, the release's kind ("task")
    metrics.jsonl   one JSON object per logged step
    checkpoints/    last.pt (resumable) and final.pt (the trained players), atomic writes
    encoder.pt      the trained f_d's state_dict (when training finished)
    selection.json  with ``train.select=val_probe``: every candidate checkpoint's validation score and
                    the one shipped (checkpoints/best.pt holds it)
    eval/           the audit (summary.json, one JSON per attacker), written by ``privacam evaluate``

The trainer writes it through the functions here; the audit, deployment and reports read it through
them too, and never import the trainer or the game. Run directories written before the config
carried ``schedule: {name, params}`` are upgraded when read (:func:`upgrade_legacy_config`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from .config import Config, dump_config, from_dict
from .errors import ConfigError, PrivacamError
from .models.common import Standardised
from .players import Shapes, budget_labels, build_budget_models, build_encoder, build_utility, is_reconstruction
from .utils import atomic_write_text, load_checkpoint, read_json, write_json

CONFIG = "config.yaml"
META = "run.json"
METRICS = "metrics.jsonl"
ENCODER = "encoder.pt"
SELECTION = "selection.json"
CHECKPOINTS = "checkpoints"
LAST = "last.pt"
FINAL = "final.pt"
EVAL = "eval"


# ---------------------------------------------------------------------------------------------- writing
def write_config(run_dir: str | Path, cfg: Config) -> None:
    """Write the resolved config (``config.yaml``), creating the directory."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / CONFIG, dump_config(cfg))


def write_meta(run_dir: str | Path, meta: dict) -> None:
    """Write ``run.json`` (what the players were sized for and what the labels mean)."""
    write_json(Path(run_dir) / META, meta)


def append_metrics(run_dir: str | Path, record: dict) -> None:
    """Append one logged step to ``metrics.jsonl``."""
    with open(Path(run_dir) / METRICS, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def truncate_metrics(run_dir: str | Path, lines: int) -> None:
    """Keep the first ``lines`` metric lines (those logged before the checkpoint a run resumes from)."""
    p = Path(run_dir) / METRICS
    if p.exists():
        atomic_write_text(p, "".join(p.read_text().splitlines(keepends=True)[:lines]))


def release_kind(encoder: nn.Module, input_kind: str) -> str:
    """What a run releases, recorded as ``task`` in ``run.json`` and in the audit's summary:
    ``video`` or ``image`` frames (the input's kind), ``feature`` maps (Li & Cavallaro) or a ``cpgan``
    code (Tseng & Wu)."""
    releases = getattr(encoder, "releases", "image")
    return {"code": "cpgan", "feature": "feature"}.get(releases, input_kind)


def write_selection(run_dir: str | Path, record: dict) -> None:
    """Write ``selection.json`` (the candidates of checkpoint selection and the one chosen)."""
    write_json(Path(run_dir) / SELECTION, record)


# ---------------------------------------------------------------------------------------------- reading
def _require(run_dir: Path) -> None:
    if not (run_dir / CONFIG).exists():
        raise PrivacamError(f"{run_dir} is not a run directory (no {CONFIG}); train one with `privacam train --out {run_dir}`")


def load_run_config(run_dir: str | Path) -> Config:
    """The run's resolved config (legacy run directories upgraded, see :func:`upgrade_legacy_config`)."""
    run_dir = Path(run_dir)
    _require(run_dir)
    path = run_dir / CONFIG
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML ({str(e).splitlines()[0]})") from None
    return from_dict(Config, upgrade_legacy_config(data))


def upgrade_legacy_config(data: dict) -> dict:
    """Map a config dict of an earlier version onto today's keys, keeping its behaviour.

    Earlier run directories carry ``task`` and a flat ``schedule`` section holding every schedule's
    settings. The schedule keeps only the settings it reads, under ``schedule.params``; what used to be
    hard-coded per schedule becomes the encoder objective's settings: GRL's ``grl_lambda`` is
    ``game.gamma`` with ``neg_ce`` averaged over the adversaries; K-beam plays ``neg_ce`` against the
    strongest; CPGAN (``task: cpgan``) plays ``neg_mse`` against the strongest with its ``kbeam_*`` step
    counts. A dict without those keys is returned unchanged.
    """
    sched = data.get("schedule") or {}
    if "task" not in data and "params" in sched:
        return data
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    task = data.pop("task", None)
    game = data.setdefault("game", {})
    name = sched.get("name", "entropy")
    old = {k: v for k, v in sched.items() if k != "name"}
    if "params" in old:
        params = old["params"]
    elif name == "entropy":
        params = {k: old[k] for k in ("utility_bar", "budget_bar", "max_utility_steps", "max_budget_steps") if k in old}
    elif name == "grl":
        params = {}
        game.update(gamma=old.get("grl_lambda", 1.0), privacy_loss="neg_ce", aggregate="mean")
    elif name == "kbeam":
        params = {k: old[k] for k in ("utility_bar", "budget_bar") if k in old}
        params.update({new: old[k] for k, new in (("kbeam_encoder_steps", "encoder_steps"), ("kbeam_budget_steps", "budget_steps"),
                                                  ("kbeam_utility_steps", "utility_steps"), ("kbeam_plateau", "plateau")) if k in old})
        game.update(privacy_loss="neg_ce", against="strongest")
    elif name == "multi_adversary":
        params = {new: old[k] for k, new in (("kbeam_encoder_steps", "encoder_steps"), ("kbeam_budget_steps", "decoder_steps"),
                                             ("kbeam_utility_steps", "utility_steps")) if k in old}
        game.update(privacy_loss="neg_mse", against="strongest")
    else:
        params = {}
    data["schedule"] = {"name": name, "params": params}
    if task == "cpgan":
        budget = data.setdefault("budget", {})
        budget["names"] = list(budget.get("names") or ["decoder", "ridge", "rff_ridge"])
        budget["m"] = len(budget["names"])
        budget["paper_widths"] = False
    return data


def read_meta(run_dir: str | Path) -> dict:
    """``run.json`` of a run."""
    run_dir = Path(run_dir)
    _require(run_dir)
    return read_json(run_dir / META)


def read_metrics(run_dir: str | Path) -> list[dict]:
    """Every logged step of ``metrics.jsonl`` (empty when none was logged)."""
    p = Path(run_dir) / METRICS
    if not p.exists():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


def shapes_of(meta: dict) -> Shapes:
    """The :class:`~privacam.players.Shapes` a run's players were sized for."""
    return Shapes(**meta["shapes"])


def load_encoder(run_dir: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, Config, dict]:
    """The trained (frozen, eval-mode) encoder f_d of a run, with its config and ``run.json``.

    Returns:
        ``(encoder, cfg, meta)``.
    """
    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    meta = read_meta(run_dir)
    weights = run_dir / ENCODER
    if not weights.exists():
        raise PrivacamError(f"{run_dir} has no {ENCODER} (training did not finish); resume it with `privacam train --out {run_dir} --resume`")
    enc = build_encoder(cfg, meta["shapes"]["in_channels"], meta["shapes"])
    enc.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    enc.to(device).eval()
    for p in enc.parameters():
        p.requires_grad_(False)
    return enc, cfg, meta


def load_players(run_dir: str | Path, cfg: Config, meta: dict) -> tuple[nn.Module | None, dict[str, nn.Module]]:
    """The run's trained f_T and budget classifiers f_b from ``checkpoints/final.pt``.

    Budget models are keyed by :func:`~privacam.players.budget_labels`; a run trained with
    ``game.standardise_budget`` gets them wrapped so that they see the release as the game showed it.
    Reconstruction adversaries (CPGAN) are not returned: the audit's own reconstruction attackers
    replace them. ``(None, {})`` when the run has no final checkpoint.
    """
    ck = Path(run_dir) / CHECKPOINTS / FINAL
    if not ck.exists():
        return None, {}
    state = load_checkpoint(ck)["game"]
    shapes, zshape = shapes_of(meta), tuple(meta["encoded_shape"])
    util = build_utility(cfg, shapes, zshape, weights=False)
    util.load_state_dict(state["utility"])
    advs: dict[str, Any] = {}
    if not is_reconstruction(cfg):
        for i, (label, m) in enumerate(zip(budget_labels(cfg), build_budget_models(cfg, shapes, zshape))):
            prefix = f"models.{i}."
            m.load_state_dict({k[len(prefix):]: v for k, v in state["budget"].items() if k.startswith(prefix)})
            advs[label] = Standardised(m) if cfg.game.standardise_budget else m
    return util, advs
