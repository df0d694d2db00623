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

from .. import runs
from ..audits import (AuditSummary, audit_identity, claim_audit_dir, read_examples, read_summary, save_summary,
                      write_examples, write_identity, write_summary)
from ..config import Config, apply_overrides, dump_config, to_dict, yaml_load
from ..data import apply_data_spec, data_fingerprint, make_splits
from ..errors import ConfigError, PrivacamError
from ..executors import Executor
from ..models.encoders import IdentityEncoder
from ..registry import create_encoder
from ..utils import atomic_write_text, resolve_device, seed_everything, versions
from .external import external_kind, load_external_encoder
from .protocol import AuditSpec, FitConfig, add_reference, audit, middle_frame

log = logging.getLogger(__name__)


def parse_encoder_spec(spec: str) -> tuple[str, dict]:
    """``"downsample:factor=4,upsample=true"`` -> ``("downsample", {"factor": 4, "upsample": True})``."""
    name, _, rest = spec.partition(":")
    params = {}
    for item in filter(None, rest.split(",")):
        if "=" not in item:
            raise ConfigError(f"encoder spec {spec!r}: {item!r} is not key=value (e.g. downsample:factor=4)")
        k, v = item.split("=", 1)
        params[k.strip()] = yaml_load(v)  # numbers as YAML 1.2 reads them: 1e-4 is a float
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
                     trials=e.trials, bootstrap=e.bootstrap, test_clips=e.test_clips, task_pool=list(e.task_pool))


def _cache_dir() -> Path:
    return Path(os.environ.get("PRIVACAM_CACHE", Path.home() / ".cache" / "privacam"))


def raw_reference(cfg: Config, splits, spec: AuditSpec, *, device, out_dir: Path | None = None,
                  use_cache: bool = True, executor: Executor | None = None) -> AuditSummary:
    """The raw-data reference summary (E = identity), from the cache when possible (a killed reference
    audit resumes from its finished units)."""
    # the data's fingerprint: a relabelled manifest (same path, same row count) is another reference
    fingerprint = splits.meta.get("fingerprint") or data_fingerprint(splits)
    key = hashlib.sha1(json.dumps({"data": to_dict(cfg)["data"], "seed": cfg.train.seed, "spec": spec.fingerprint(), "fingerprint": fingerprint,
                                   "n": [len(splits.train), len(splits.val), len(splits.test)]}, sort_keys=True).encode()).hexdigest()[:16]
    cached = _cache_dir() / "raw" / f"{splits.name}_{key}.json"
    if use_cache and cached.exists():
        log.info("raw reference from cache %s", cached)
        return read_summary(cached)
    target = out_dir or (_cache_dir() / "raw" / f"{splits.name}_{key}")
    seed_everything(spec.fit.seed)
    raw_spec = dataclasses.replace(spec, reconstruction=False)
    info = {"name": "identity", "params": {}}
    write_identity(target, audit_identity(info, splits.name, cfg.data.root))
    summary = audit(IdentityEncoder(int(splits.train[0]["input"].shape[0])), splits, raw_spec, out_dir=target, device=device,
                    encoder_info=info, executor=executor)
    save_summary(cached, summary)
    return summary


def evaluate_encoder(encoder, cfg: Config, splits, out_dir: str | Path, *, encoder_info: dict, utility_model=None,
                     training_adversaries=None, raw: bool | AuditSummary = True, device: str = "auto", raw_splits=None,
                     command: str | None = None, executor: Executor | None = None) -> AuditSummary:
    """Audit ``encoder`` with ``cfg.eval`` and add the raw reference; returns the summary.

    ``raw_splits``: the data the raw reference is measured on, when ``splits`` are not the raw data
    (an already released dataset). The summary's ``provenance`` holds ``command`` (the command line
    that asked for the audit, when there was one) and the versions that ran it. ``executor``: where the
    audit's units run (default: in this process, one after the other)."""
    dev = resolve_device(device if device != "auto" else cfg.train.device)
    out_dir = Path(out_dir)
    spec = audit_spec(cfg)
    seed_everything(cfg.eval.seed)
    summary = audit(encoder, splits, spec, out_dir=out_dir, device=dev, encoder_info=encoder_info,
                    utility_model=utility_model, training_adversaries=training_adversaries, executor=executor)
    if raw is True and cfg.eval.raw_reference:
        raw = raw_reference(cfg, raw_splits or splits, spec, device=dev, executor=executor)
    if isinstance(raw, AuditSummary):
        add_reference(summary, raw)
        write_summary(out_dir, summary)
    extra = ("onnxruntime",) if (encoder_info.get("source") or {}).get("kind") == "onnx" else ()
    d = cfg.data
    summary.data = {"name": d.name, "root": str(d.root) if d.root else None, "size": d.size, "clip_len": d.clip_len}
    summary.provenance = {"command": command, "versions": versions(extra)}
    write_summary(out_dir, summary)
    return summary


def evaluate_run(run_dir: str | Path, *, out_dir: str | Path | None = None, overrides: list[str] | None = None,
                 data: str | None = None, raw: bool | AuditSummary = True, device: str = "auto",
                 command: str | None = None, executor: Executor | None = None, overwrite: bool = False) -> AuditSummary:
    """Audit the trained encoder of a run (writes ``RUN/eval/summary.json`` by default).

    The summary's ``encoder`` block names the run and how it was trained: schedule, gamma, the number
    of budget models ``m`` and what it releases (``task``, from ``run.json``). ``out_dir`` (the audit
    folder itself): refused when it holds another audit, unless ``overwrite`` (it is moved aside);
    the same audit there resumes. A run's own ``RUN/eval`` is always the run's: audited again in place.
    """
    run_dir = Path(run_dir)
    if out_dir is None:
        runs.check_no_writer(run_dir, "audit it")  # the audit writes RUN/eval: one writer at a time
    elif _trained_run(out_dir):
        raise PrivacamError(f"--out {out_dir} is a run directory: the audit of {run_dir} would be written among its "
                            f"files; give an audit folder (default {Path(run_dir) / runs.EVAL})")
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
    target = Path(out_dir) if out_dir else run_dir / runs.EVAL
    identity = audit_identity(info, splits.name, cfg.data.root)
    if out_dir is None:
        write_identity(target, identity)  # the run's own audit: audited again in place
    else:
        claim_audit_dir(target, identity, overwrite=overwrite)
    return evaluate_encoder(encoder, cfg, splits, target, encoder_info=info, utility_model=util,
                            training_adversaries=advs, raw=raw, device=device, command=command, executor=executor)


def evaluate_named(spec: str, cfg: Config, out_dir: str | Path, *, raw: bool | AuditSummary = True, device: str = "auto",
                   splits=None, label: str | None = None, command: str | None = None, executor: Executor | None = None,
                   overwrite: bool = False) -> AuditSummary:
    """Audit an encoder named by ``spec``: a registered one (a baseline such as ``downsample:factor=4``),
    a user's factory (``path/to/file.py:make``, ``package.module:make``) or an ONNX file
    (``model.onnx``); see :mod:`privacam.evaluate.external` for what the last two must take and return."""
    audit_spec(cfg)  # a bad eval setting fails before the data is built
    splits = splits or make_splits(cfg.data, seed=cfg.train.seed)
    sample = splits.train[0]["input"]
    if external_kind(spec):
        dev = resolve_device(device if device != "auto" else cfg.train.device)
        encoder, source = load_external_encoder(spec, sample.shape, device=str(dev))
        name, params = ("onnx" if source["kind"] == "onnx" else "user"), {}
        if source["kind"] == "factory":
            head, _, fn = spec.rpartition(":")
            default_label = f"user {Path(head).name}:{fn}"
        else:
            default_label = f"onnx {Path(spec).name}"
        info = {"name": name, "params": params, "label": label or default_label, "source": source}
    else:
        name, params = parse_encoder_spec(spec)
        encoder = create_encoder(name, in_channels=int(sample.shape[0]), **params)
        info = {"name": name, "params": params, **({"label": label} if label else {})}
    encoder.eval()
    out_dir = take_output(out_dir, audit_identity(info, splits.name, cfg.data.root), cfg, overwrite=overwrite)
    return evaluate_encoder(encoder, cfg, splits, out_dir / runs.EVAL, encoder_info=info, raw=raw, device=device,
                            command=command, executor=executor)


def _trained_run(path: str | Path) -> bool:
    """Whether ``path`` holds a run that training wrote (not only the config.yaml of an audit's output)."""
    return any((Path(path) / f).exists() for f in runs.RUN_FILES if f != runs.CONFIG)


def take_output(out_dir: str | Path, identity: dict, cfg: Config, *, overwrite: bool = False) -> Path:
    """Take ``OUT`` for the audit ``identity`` of an encoder or a release (``OUT/config.yaml``,
    ``OUT/eval``): never a trained run's folder (its config.yaml and its own audit stay), refused when
    it holds another audit unless ``overwrite`` (moved aside, not deleted); the same audit resumes."""
    out_dir = Path(out_dir)
    if _trained_run(out_dir):
        raise PrivacamError(f"--out {out_dir} holds a trained run ({runs.CONFIG}, {runs.CHECKPOINTS}/ ...): this audit "
                            f"would replace its {runs.CONFIG} and its own audit; give another --out (audit the run "
                            f"itself with `privacam evaluate {out_dir}`)")
    claim_audit_dir(out_dir / runs.EVAL, identity, overwrite=overwrite, owner=out_dir)
    atomic_write_text(out_dir / runs.CONFIG, dump_config(cfg))
    return out_dir


#: what the summary of ``--released`` says about probing (the audit's threat model)
RELEASED_PROBING = ("off: the tool that made the release is not available to the auditor, so no attacker can "
                    "release its own training data again; attackers train on the one release given")


def evaluate_released(released: str | Path, cfg: Config, out_dir: str | Path, *, raw: bool | AuditSummary = True,
                      device: str = "auto", label: str | None = None, command: str | None = None,
                      executor: Executor | None = None, overwrite: bool = False) -> AuditSummary:
    """Audit data that any tool has already anonymised (``privacam evaluate --released``).

    ``cfg.data`` is the raw manifest; ``released`` a manifest of the same rows (ids, labels, split)
    pointing at the released files (:func:`privacam.data.released.pair_manifests` refuses any
    mismatch, naming the row). The release is audited with the same attackers and fitting as every
    encoder, on the same clips of the same split, at ``data.size``; the raw reference comes from the
    raw manifest. Writes ``OUT/config.yaml`` and ``OUT/eval/`` (``summary.json``, attackers,
    examples of raw and released frames).
    """
    from ..data.released import pair_manifests, released_splits

    if cfg.data.name != "manifest" or not cfg.data.root:
        raise ConfigError(f"--released needs --data RAW.csv, the manifest of the raw data it releases (got dataset {cfg.data.name!r})")
    if cfg.data.privacy_source:
        raise ConfigError("--released audits one manifest; drop data.privacy_source")
    audit_spec(cfg)  # a bad eval setting fails before the data is built
    if cfg.eval.reconstruction:  # the audit pairs a release with its own input: here the input is the release
        log.info("--released: no reconstruction attack (it needs each raw frame beside its release)")
        cfg = dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, reconstruction=False))
    pairing = pair_manifests(cfg.data.root, released)
    raw_splits = make_splits(cfg.data, seed=cfg.train.seed)
    rel = released_splits(raw_splits, released, pairing)
    sample = rel.train[0]["input"]
    first = next(iter(pairing["paths"].values()))
    info = {"name": "released", "params": {}, "label": label or f"released {Path(released).resolve().parent.name}",
            "released": str(released), "raw": str(cfg.data.root), "rows": pairing["rows"],
            "paired_by": pairing["paired_by"], "probing": RELEASED_PROBING,
            "release_size": _frame_size(first), "audit_size": [int(sample.shape[-2]), int(sample.shape[-1])]}
    out_dir = take_output(out_dir, audit_identity(info, rel.name, cfg.data.root), cfg, overwrite=overwrite)
    # the release is made already: the audit's encoder passes it on unchanged (8-bit, as it was sent)
    encoder = IdentityEncoder(int(sample.shape[0])).eval()
    summary = evaluate_encoder(encoder, cfg, rel, out_dir / runs.EVAL, encoder_info=info, raw=raw, device=device,
                               raw_splits=raw_splits, command=command, executor=executor)
    _raw_examples(raw_splits, out_dir / runs.EVAL)
    return summary


def _frame_size(path: str) -> list[int]:
    """Height and width of the first frame of a released video, frame folder or image."""
    from ..data.video import decode_frames, kind_of_path, load_image

    try:
        if kind_of_path(Path(path)) == "image":
            a = load_image(path)
        else:
            a = decode_frames(path, [0])[0]
        return [int(a.shape[0]), int(a.shape[1])]
    except Exception:  # noqa: BLE001 - informative only
        return []


def _raw_examples(raw_splits, eval_dir: Path) -> None:
    """The audit saved the released test clips beside themselves: put the raw frames of the same clips
    (the same items of the raw test split) beside them."""
    from ..data.base import collate

    ex = read_examples(eval_dir)
    if ex is None:
        return
    items = ex["items"].tolist()
    x = collate([raw_splits.test[i] for i in items])["input"]
    bank = (ex["bank"], ex.get("bank_moved")) if "bank" in ex else None
    write_examples(eval_dir, middle_frame(x).half(), ex["released"], items, bank=bank)  # atomic, as every audit file
