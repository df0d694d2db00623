"""The run directory: the one contract between training and everything that reads a run.

A run directory holds::

    config.yaml     the resolved config (reloads into the same Config)
    run.json        shapes, encoded shape, dataset, class names, the release's kind ("task")
    metrics.jsonl   one JSON object per logged step
    checkpoints/    last.pt (resumable) and final.pt (the trained players), atomic writes
    encoder.pt      the trained f_d's state_dict (when training finished)
    selection.json  with ``train.select=val_probe``: every candidate checkpoint's validation score and
                    the one shipped (checkpoints/best.pt holds it)
    eval/           the audit, written by ``privacam evaluate`` (its files: :mod:`privacam.audits`)
    config_history.jsonl   what overrides changed when the run was resumed, and at which step
    .lock           the process that is writing the run (one writer at a time; see :func:`claim`)

The trainer writes it through the functions here; the audit, deployment and reports read it through
them too, and never import the trainer or the game. Run directories written before the config
carried ``schedule: {name, params}`` are upgraded when read (:func:`upgrade_legacy_config`).
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import shlex
import socket
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from .config import Config, dump_config, from_dict
from .errors import CheckpointError, ConfigError, PrivacamError
from .models.common import Standardised
from .players import Shapes, budget_labels, build_budget_models, build_encoder, build_utility, is_reconstruction
from .utils import append_line, aside_path, atomic_write_text, load_checkpoint, read_json, write_failure, write_json

CONFIG = "config.yaml"
META = "run.json"
METRICS = "metrics.jsonl"
ENCODER = "encoder.pt"
SELECTION = "selection.json"
CHECKPOINTS = "checkpoints"
LAST = "last.pt"
FINAL = "final.pt"
EVAL = "eval"
HISTORY = "config_history.jsonl"
LOCK = ".lock"
#: the files whose presence means a directory holds a run (training started there)
RUN_FILES = (CONFIG, META, METRICS, CHECKPOINTS, ENCODER)

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------- ownership
def holds_run(run_dir: str | Path) -> bool:
    """Whether ``run_dir`` holds a run (any of :data:`RUN_FILES`: training started there)."""
    run_dir = Path(run_dir)
    return run_dir.is_dir() and any((run_dir / f).exists() for f in RUN_FILES)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


class RunLock:
    """``RUN/.lock``: the process id (and host) of the one process writing a run directory.

    :meth:`acquire` creates the file exclusively; a lock left by a process that no longer exists on
    this host (killed, crashed machine) is taken over with a warning; a live owner is a one-line
    :class:`PrivacamError`. :meth:`release` removes it (only if it is still this process's).
    """

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / LOCK
        self.held = False

    def _owner(self) -> dict:
        try:
            return json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}

    def acquire(self) -> "RunLock":
        me = {"pid": os.getpid(), "host": socket.gethostname(), "since": datetime.datetime.now().isoformat(timespec="seconds")}
        try:
            return self._acquire(me)
        except OSError as e:  # a read-only or full disk: nothing was written
            raise write_failure(self.path, e) from None

    def _acquire(self, me: dict) -> "RunLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self._owner()
                pid, host = owner.get("pid"), owner.get("host")
                if not isinstance(pid, int) or (host == me["host"] and not _pid_alive(pid)):
                    log.warning("%s: taking over a stale lock of process %s (started %s), which no longer runs",
                                self.path.parent, pid, owner.get("since", "?"))
                    self.path.unlink(missing_ok=True)
                    continue
                where = "" if host == me["host"] else f" on host {host}"
                raise PrivacamError(
                    f"{self.path.parent} is being written by process {pid}{where} (since {owner.get('since', '?')}; "
                    f"{self.path}): one run directory has one writer; wait for it, or use another --out"
                ) from None
            try:
                with os.fdopen(fd, "w") as f:
                    f.write(json.dumps(me))
            except OSError:
                self.path.unlink(missing_ok=True)
                raise
            if self._owner().get("pid") == me["pid"]:  # a racing take-over may have replaced it
                self.held = True
                return self
        raise PrivacamError(f"{self.path}: could not take the run directory's lock (another process keeps taking it)")

    def release(self) -> None:
        if self.held and self._owner().get("pid") == os.getpid():
            self.path.unlink(missing_ok=True)
        self.held = False

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def check_no_writer(run_dir: str | Path, doing: str = "audit it") -> None:
    """Raise a one-line :class:`PrivacamError` when another live process holds the run's lock (a
    training in progress): nothing else writes into a run directory meanwhile."""
    lock = RunLock(run_dir)
    owner = lock._owner() if lock.path.exists() else {}
    pid = owner.get("pid")
    if isinstance(pid, int) and pid != os.getpid() and owner.get("host") == socket.gethostname() and _pid_alive(pid):
        raise PrivacamError(f"{run_dir} is being written by process {pid} (a training, since {owner.get('since', '?')}; "
                            f"{lock.path}): {doing} when it has finished")


def move_aside(run_dir: str | Path) -> Path:
    """Move every entry of ``run_dir`` but its lock into a new sibling ``<name>.replaced-<time>``
    (never deleted); returns that directory."""
    run_dir = Path(run_dir)
    aside = aside_path(run_dir)
    aside.mkdir()
    for entry in sorted(run_dir.iterdir()):
        if entry.name != LOCK:
            entry.rename(aside / entry.name)
    return aside


def claim(run_dir: str | Path, *, resume: bool = False, overwrite: bool = False) -> RunLock:
    """Take ``run_dir`` for one training process and return its held :class:`RunLock`.

    - ``resume``: the directory must hold a run (else a one-line error: nothing to resume).
    - a directory that holds a run and no ``resume``: refused, unless ``overwrite``, which moves the
      old run aside (:func:`move_aside`) rather than deleting it.
    - another live process writing it: refused (:class:`RunLock`).

    Raises:
        PrivacamError: one line naming the directory and the way out.
    """
    run_dir = Path(run_dir)
    if resume and overwrite:
        raise PrivacamError("--resume continues a run and --overwrite replaces it: give one of them")
    if run_dir.exists() and not run_dir.is_dir():
        raise PrivacamError(f"{run_dir} is a file, not a run directory; give another --out")
    if resume and not holds_run(run_dir):
        raise PrivacamError(f"{run_dir} holds no run to resume (no {CONFIG}); check the path, or drop --resume to start a new run there")
    lock = RunLock(run_dir).acquire()
    try:
        if holds_run(run_dir) and not resume:
            if not overwrite:
                raise PrivacamError(
                    f"{run_dir} already holds a run ({CONFIG}, {CHECKPOINTS}/...); continue it with --resume, give a new "
                    f"--out, or replace it with --overwrite (the old run is moved aside, not deleted)"
                )
            aside = move_aside(run_dir)
            log.warning("%s: the run that was there is moved to %s (--overwrite)", run_dir, aside)
    except BaseException:
        lock.release()
        raise
    return lock


# ---------------------------------------------------------------------------------------------- writing
def write_config(run_dir: str | Path, cfg: Config, history: list[dict] | None = None) -> None:
    """Write the resolved config (``config.yaml``), creating the directory. ``history``: the
    run's :data:`HISTORY` records, repeated as comments at the top (what a resume changed)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    head = ""
    for h in history or []:
        changes = "; ".join(f"{k}: {v['from']!r} -> {v['to']!r}" for k, v in h["changed"].items())
        head += f"# resumed at step {h['step']} ({h['stage']}): {changes}\n"
    atomic_write_text(run_dir / CONFIG, head + dump_config(cfg))


def config_changes(old: Config, new: Config) -> dict[str, dict]:
    """``{"encoder.lr": {"from": 0.001, "to": 0.0001}, ...}``: every leaf key whose value differs."""

    def flat(d: dict, prefix: str = "") -> dict:
        out = {}
        for k, v in d.items():
            if isinstance(v, dict) and v:
                out.update(flat(v, f"{prefix}{k}."))
            else:
                out[prefix + k] = v
        return out

    a, b = flat(yaml.safe_load(dump_config(old))), flat(yaml.safe_load(dump_config(new)))
    return {k: {"from": a.get(k), "to": b.get(k)} for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


def read_history(run_dir: str | Path) -> list[dict]:
    """The run's :data:`HISTORY` records (empty when it was never resumed with changes)."""
    p = Path(run_dir) / HISTORY
    if not p.exists():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


def record_resume(run_dir: str | Path, cfg: Config, *, step: int, stage: str, changed: dict) -> None:
    """Append what a resume changed (at ``step``) to :data:`HISTORY` and rewrite ``config.yaml``
    with the config the run now trains with."""
    run_dir = Path(run_dir)
    rec = {"step": int(step), "stage": stage, "time": datetime.datetime.now().isoformat(timespec="seconds"), "changed": changed}
    append_line(run_dir / HISTORY, json.dumps(rec, default=str))
    write_config(run_dir, cfg, read_history(run_dir))


def write_meta(run_dir: str | Path, meta: dict) -> None:
    """Write ``run.json`` (what the players were sized for and what the labels mean)."""
    write_json(Path(run_dir) / META, meta)


def append_metrics(run_dir: str | Path, record: dict) -> None:
    """Append one logged step to ``metrics.jsonl`` (a failed write leaves no half line)."""
    append_line(Path(run_dir) / METRICS, json.dumps(record))


def truncate_metrics(run_dir: str | Path, lines: int) -> None:
    """Keep the first ``lines`` metric lines (those logged before the checkpoint a run resumes from)."""
    p = Path(run_dir) / METRICS
    if p.exists():
        atomic_write_text(p, "".join(p.read_text().splitlines(keepends=True)[:lines]))


def file_sha1(path: str | Path) -> str:
    """The SHA-1 of a file's bytes (hex, 16 characters)."""
    import hashlib

    return hashlib.sha1(Path(path).read_bytes()).hexdigest()[:16]


def write_encoder(run_dir: str | Path, state: dict) -> None:
    """Write ``encoder.pt`` (f_d's state_dict, atomically) and stamp it in ``run.json``
    (``encoder_sha1``): :func:`load_encoder` refuses an ``encoder.pt`` that another run wrote."""
    from .utils import save_checkpoint

    run_dir = Path(run_dir)
    save_checkpoint(run_dir / ENCODER, state)
    write_meta(run_dir, {**read_meta(run_dir), "encoder_sha1": file_sha1(run_dir / ENCODER)})


def stamp(run_dir: str | Path) -> dict:
    """What identifies the trained encoder of a run: ``{"run_id", "encoder_sha1", "data_fingerprint"}``
    (from ``run.json``). An audit records it; a run trained again or resumed gets another one, so
    an audit of the earlier encoder is known to be stale (:func:`privacam.audits.check_audit`)."""
    meta = read_meta(run_dir)
    return {k: meta.get(k) for k in ("run_id", "encoder_sha1", "data_fingerprint")}


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
def retrain_command(run_dir: str | Path) -> str:
    """A command that trains ``run_dir`` again from the start and is accepted there: with the run's own
    config and ``--overwrite`` (the damaged run is moved aside, not deleted) when the directory holds
    one, else a plain ``privacam train --out``."""
    run_dir = Path(run_dir)
    q = shlex.quote(str(run_dir))
    if (run_dir / CONFIG).is_file():
        return f"privacam train {shlex.quote(str(run_dir / CONFIG))} --out {q} --overwrite"
    if holds_run(run_dir):
        return f"privacam train --out {q} --overwrite"
    return f"privacam train --out {q}"


def _require(run_dir: Path) -> None:
    if not (run_dir / CONFIG).exists():
        raise PrivacamError(f"{run_dir} is not a run directory (no {CONFIG}); train one with `{retrain_command(run_dir)}`")


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
    """``run.json`` of a run (shapes, class lists); a missing or damaged file is one clear line."""
    run_dir = Path(run_dir)
    _require(run_dir)
    p = run_dir / META
    if not p.is_file():
        raise PrivacamError(f"{run_dir} has no {META} (training did not start properly); train it again with "
                            f"`{retrain_command(run_dir)}`")
    try:
        meta = read_json(p)
    except (ValueError, UnicodeDecodeError) as e:
        raise PrivacamError(f"{p} is damaged ({type(e).__name__}); train the run again with `{retrain_command(run_dir)}`") from None
    if not isinstance(meta, dict) or "shapes" not in meta:
        raise PrivacamError(f"{p} is not a privacam {META} (no 'shapes'); train the run again with `{retrain_command(run_dir)}`")
    return meta


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
    if meta.get("encoder_sha1") and file_sha1(weights) != meta["encoder_sha1"]:
        raise CheckpointError(f"encoder {weights} is not the one {run_dir} trained (its {META} stamps another: the file was "
                              f"replaced, damaged, or two runs shared the directory); write it again from the run's last checkpoint with "
                              f"`privacam train --out {shlex.quote(str(run_dir))} --resume`")
    state = load_checkpoint(weights, what="encoder", fix=f"write it again from the run's last checkpoint with `privacam train --out {shlex.quote(str(run_dir))} --resume`")
    try:
        enc.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as e:
        raise CheckpointError(f"encoder {weights} does not fit the encoder of {run_dir / CONFIG} "
                              f"({str(e).splitlines()[0][:120]}); was the config edited? retrain the run") from None
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
    state = load_checkpoint(ck, what="checkpoint", fix=f"write it again from the run's last checkpoint with `privacam train --out {shlex.quote(str(run_dir))} --resume`")["game"]
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
