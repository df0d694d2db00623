"""Entry points of the audit: evaluate a run directory, or a named encoder (baselines).

The raw-data reference (E = identity) is computed with the same protocol and cached per dataset
and attacker set (under ``$PRIVACAM_CACHE/raw``, default ``~/.cache/privacam/raw``), so it is not
recomputed for every encoder. A run's trained players are read through :mod:`privacam.runs`: the
audit never imports the trainer or the game.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from pathlib import Path

import yaml

from .. import runs
from ..config import Config, apply_overrides, dump_config, to_dict
from ..data import apply_data_spec, data_fingerprint, make_splits
from ..errors import ConfigError
from ..models.encoders import IdentityEncoder
from ..registry import create_encoder
from ..utils import atomic_write_text, read_json, resolve_device, seed_everything, write_json
from .protocol import AuditSpec, FitConfig, add_raw, audit, reference_refusal

log = logging.getLogger(__name__)


def parse_encoder_spec(spec: str) -> tuple[str, dict]:
    """``"downsample:factor=4,upsample=true"`` -> ``("downsample", {"factor": 4, "upsample": True})``."""
    name, _, rest = spec.partition(":")
    params = {}
    for item in filter(None, rest.split(",")):
        if "=" not in item:
            raise ConfigError(f"encoder spec {spec!r}: {item!r} is not key=value (e.g. downsample:factor=4)")
        k, v = item.split("=", 1)
        params[k.strip()] = yaml.safe_load(v)
    return name.strip(), params


def audit_spec(cfg: Config) -> AuditSpec:
    e = cfg.eval
    fit = FitConfig(epochs=e.epochs, patience=e.patience, batch_size=e.batch_size, lr=e.lr, seed=e.seed,
                    min_epochs=e.min_epochs)
    ufit = dataclasses.replace(fit, epochs=e.utility_epochs, lr=e.utility_lr, batch_size=e.utility_batch_size,
                               patience=max(e.patience, e.utility_epochs // 3), frames_per_clip=0, min_epochs=1)
    return AuditSpec(attackers=list(e.attackers), utility_model=e.utility_model or cfg.utility.name,
                     utility_params=dict(e.utility_params if e.utility_model else cfg.utility.params),
                     fit=fit, utility_fit=ufit, reconstruction=e.reconstruction, views=e.views, val_mode=e.val_mode,
                     val_fraction=e.val_fraction, refit=e.refit, pool=e.pool, person_k=list(e.person_k),
                     trials=e.trials, bootstrap=e.bootstrap, test_clips=e.test_clips)


def _cache_dir() -> Path:
    return Path(os.environ.get("PRIVACAM_CACHE", Path.home() / ".cache" / "privacam"))


def raw_reference(cfg: Config, splits, spec: AuditSpec, *, device, out_dir: Path | None = None, use_cache: bool = True) -> dict:
    """The raw-data reference summary (E = identity), from the cache when possible."""
    # the data's fingerprint: a relabelled manifest (same path, same row count) is another reference
    fingerprint = splits.meta.get("fingerprint") or data_fingerprint(splits)
    key = hashlib.sha1(json.dumps({"data": to_dict(cfg)["data"], "seed": cfg.train.seed, "spec": spec.fingerprint(), "fingerprint": fingerprint,
                                   "n": [len(splits.train), len(splits.val), len(splits.test)]}, sort_keys=True).encode()).hexdigest()[:16]
    cached = _cache_dir() / "raw" / f"{splits.name}_{key}.json"
    if use_cache and cached.exists():
        log.info("raw reference from cache %s", cached)
        return read_json(cached)
    target = out_dir or (_cache_dir() / "raw" / f"{splits.name}_{key}")
    seed_everything(spec.fit.seed)
    raw_spec = dataclasses.replace(spec, reconstruction=False)
    summary = audit(IdentityEncoder(int(splits.train[0]["input"].shape[0])), splits, raw_spec, out_dir=target, device=device,
                    encoder_info={"name": "identity", "params": {}})
    write_json(cached, summary)
    return summary


def _with_raw(summary: dict, raw: dict, out_dir: Path) -> dict:
    u, p = summary["utility"], summary["privacy"]
    if "retrained" in raw.get("utility", {}) and "value" in u:
        u["raw"] = raw["utility"]["retrained"]
    add_raw(p, raw["privacy"], reference_refusal(raw))
    if raw.get("reference"):
        p["reference"] = raw["reference"]
    write_json(out_dir / "summary.json", summary)
    return summary


def evaluate_encoder(encoder, cfg: Config, splits, out_dir: str | Path, *, encoder_info: dict, utility_model=None,
                     training_adversaries=None, raw: bool | dict = True, device: str = "auto") -> dict:
    """Audit ``encoder`` with ``cfg.eval`` and add the raw reference; returns the summary."""
    dev = resolve_device(device if device != "auto" else cfg.train.device)
    out_dir = Path(out_dir)
    spec = audit_spec(cfg)
    seed_everything(cfg.eval.seed)
    summary = audit(encoder, splits, spec, out_dir=out_dir, device=dev, encoder_info=encoder_info,
                    utility_model=utility_model, training_adversaries=training_adversaries)
    if raw is True and cfg.eval.raw_reference:
        raw = raw_reference(cfg, splits, spec, device=dev)
    if isinstance(raw, dict):
        summary = _with_raw(summary, raw, out_dir)
    return summary


def evaluate_run(run_dir: str | Path, *, out_dir: str | Path | None = None, overrides: list[str] | None = None,
                 data: str | None = None, raw: bool | dict = True, device: str = "auto") -> dict:
    """Audit the trained encoder of a run (writes ``RUN/eval/summary.json`` by default).

    The summary's ``encoder`` block names the run and how it was trained: schedule, gamma, the number
    of budget models ``m`` and what it releases (``task``, from ``run.json``).
    """
    run_dir = Path(run_dir)
    if out_dir is None:
        runs.check_no_writer(run_dir, "audit it")  # the audit writes RUN/eval: one writer at a time
    encoder, cfg, meta = runs.load_encoder(run_dir)
    cfg = apply_overrides(cfg, overrides or [])
    audit_spec(cfg)  # a bad eval setting fails before the data is built
    if data:
        cfg.data = apply_data_spec(cfg.data, data)
    splits = make_splits(cfg.data, seed=cfg.train.seed)
    util, advs = runs.load_players(run_dir, cfg, meta)
    if raw is True and meta.get("task") == "feature":
        # raw pixels are no reference for a feature map: the unprotected network is (privacam.reference)
        log.warning("%s: a feature-level run is compared with its unprotected network, not with raw images; "
                    "`privacam evaluate` trains and caches it (privacam.reference.unprotected_reference)", run_dir)
        raw = False
    info = {"name": cfg.encoder.name, "params": dict(cfg.encoder.params), "run": str(run_dir),
            "schedule": cfg.schedule.name, "gamma": cfg.game.gamma, "m": cfg.budget.m, "task": meta.get("task"),
            "stamp": runs.stamp(run_dir), "data_fingerprint": splits.meta.get("fingerprint")}
    trained_on = meta.get("data_fingerprint")
    if trained_on and splits.meta.get("fingerprint") not in (None, trained_on) and not data:
        log.warning("%s: the data of %s changed since the run was trained (fingerprint %s, trained on %s): the audit "
                    "uses today's labels", run_dir, cfg.data.root or cfg.data.name, splits.meta.get("fingerprint"), trained_on)
    return evaluate_encoder(encoder, cfg, splits, Path(out_dir) if out_dir else run_dir / runs.EVAL, encoder_info=info,
                            utility_model=util, training_adversaries=advs, raw=raw, device=device)


def evaluate_named(spec: str, cfg: Config, out_dir: str | Path, *, raw: bool | dict = True, device: str = "auto",
                   splits=None) -> dict:
    """Audit a registered encoder by name (a baseline such as ``downsample:factor=4``)."""
    name, params = parse_encoder_spec(spec)
    audit_spec(cfg)  # a bad eval setting fails before the data is built
    splits = splits or make_splits(cfg.data, seed=cfg.train.seed)
    in_ch = int(splits.train[0]["input"].shape[0])
    encoder = create_encoder(name, in_channels=in_ch, **params)
    encoder.eval()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "config.yaml", dump_config(cfg))
    return evaluate_encoder(encoder, cfg, splits, out_dir / "eval", encoder_info={"name": name, "params": params},
                            raw=raw, device=device)
