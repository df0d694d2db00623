"""The audit directory: the one contract between the audit and everything that reads it.

An audit directory (``RUN/eval`` for a run, ``OUT/eval`` for a named encoder or a release) holds::

    summary.json          the audit's summary (:class:`AuditSummary`; DESIGN.md's contract keys and more)
    audit.json            what is audited (encoder and data), written when the audit starts: a later
                          audit into the same directory is the same audit (it resumes) or another one
                          (refused without --overwrite, see :func:`claim_audit_dir`)
    units/<name>.json     one result per unit of the audit (an attacker's fit, selection, refit and its
                          per-clip test scores; the retrained utility model; ...) with the digest of its
                          inputs: a killed audit run again reuses every unit whose inputs are the same
    attackers/<name>.json one record per attacker (selection, score per level), for readers
    examples.pt           a few test inputs beside their releases (the same clips, in the same order)

The audit writes these files through the functions here, and every reader (report, card, tables,
scripts, the demo, sweeps, the references) reads them through them: summary.json is read into a typed
:class:`AuditSummary`, never by string keys elsewhere (``tests/test_architecture.py`` checks this).

:class:`AuditSummary` keeps the JSON of earlier versions as it is: every key it does not declare is kept
(``extra``) and written back, keys absent from the file stay absent, and the order of the keys is kept.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from .errors import PrivacamError
from .utils import read_json, write_json

log = logging.getLogger(__name__)

SUMMARY = "summary.json"
IDENTITY = "audit.json"
UNITS = "units"
ATTACKERS = "attackers"
EXAMPLES = "examples.pt"
#: the version of summary.json this module writes (files without ``schema_version`` are version 1; version 3
#: added ``tasks``, the trained task's pool in ``utility`` and the task-label floors in ``privacy``)
SCHEMA_VERSION = 3
#: the summary's keys that are timings, not results: a summary less these is the same whatever the
#: executor, the number of workers and the machine's load
TIMING_KEYS = ("seconds", "executor", "unit_seconds", "provenance")


# ---------------------------------------------------------------------------------------------- records
@dataclass
class Record:
    """A JSON object with declared fields (``None`` when absent) and every other key kept in ``extra``.

    Which keys are present, and their order, is remembered: :meth:`to_dict` writes back what
    :meth:`from_dict` read (a key holding ``null`` stays, an absent key stays absent), then the fields
    set since, then the keys it does not declare.
    """

    #: fields holding another record: name -> class, or ("dict", class) for a mapping of records
    NESTED: ClassVar[dict] = {}

    def __post_init__(self):
        present = []
        for f in dataclasses.fields(self):
            if f.name == "extra":
                continue
            if getattr(self, f.name) is _UNSET:
                object.__setattr__(self, f.name, None)
            else:
                present.append(f.name)
        object.__setattr__(self, "_order", present)

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        order = self.__dict__.get("_order")
        if order is not None and name != "extra" and name in self._field_names() and name not in order:
            order.append(name)

    @classmethod
    def _field_names(cls) -> set[str]:
        return {f.name for f in dataclasses.fields(cls) if f.name != "extra"}

    @classmethod
    def from_dict(cls, d: dict | None):
        """The record of a JSON object (``None`` for ``None``)."""
        if d is None:
            return None
        if isinstance(d, cls):
            return d
        if not isinstance(d, dict):
            raise TypeError(f"{cls.__name__}: expected a JSON object, got {type(d).__name__}")
        names = cls._field_names()
        known, extra = {}, {}
        for k, v in d.items():
            if k in names:
                known[k] = _load(cls.NESTED.get(k), v)
            else:
                extra[k] = v
        obj = cls(**known, extra=extra)
        object.__setattr__(obj, "_order", list(d))
        return obj

    def to_dict(self) -> dict:
        """The JSON object (keys in the order read, then those set since, then the undeclared ones)."""
        out = {}
        for k in self._order:
            if k in self._field_names():
                out[k] = _dump(getattr(self, k))
            elif k in self.extra:
                out[k] = self.extra[k]
        for k, v in self.extra.items():
            out.setdefault(k, v)
        return out

    def has(self, name: str) -> bool:
        """Whether the key ``name`` is in the record (a declared field set, or an undeclared key)."""
        return name in self._order or name in self.extra

    def get(self, name: str, default: Any = None) -> Any:
        """An undeclared key's value (e.g. a newer version's), or ``default``."""
        if name in self._field_names():
            v = getattr(self, name)
            return default if v is None else v
        return self.extra.get(name, default)

    def drop(self, name: str) -> None:
        """Remove a key from the record (it is written no more)."""
        if name in self._field_names():
            object.__setattr__(self, name, None)
        if name in self._order:
            self._order.remove(name)
        self.extra.pop(name, None)


class _Unset:
    def __repr__(self) -> str:
        return "<unset>"


_UNSET: Any = _Unset()


def _unset():
    return field(default=_UNSET)


def _load(kind, v):
    if kind is None or v is None:
        return v
    if isinstance(kind, tuple):
        return {k: kind[1].from_dict(x) for k, x in v.items()}
    return kind.from_dict(v)


def _dump(v):
    if isinstance(v, Record):
        return v.to_dict()
    if isinstance(v, dict):
        return {k: _dump(x) for k, x in v.items()}
    return v


@dataclass
class EncoderInfo(Record):
    """What was audited: a registered encoder, a trained run, user code or an ONNX file, or a release."""

    name: str | None = _unset()
    params: dict | None = _unset()
    label: str | None = _unset()
    source: dict | None = _unset()  # user code or ONNX file: kind, file, sha256, ...
    run: str | None = _unset()  # a trained run: its folder and how it was trained
    schedule: str | None = _unset()
    gamma: float | None = _unset()
    m: int | None = _unset()
    task: str | None = _unset()
    stamp: dict | None = _unset()
    data_fingerprint: str | None = _unset()
    released: str | None = _unset()  # data another tool released: its manifest, the raw one, how they pair
    raw: str | None = _unset()
    rows: int | None = _unset()
    paired_by: str | None = _unset()
    probing: str | None = _unset()
    release_size: list | None = _unset()
    audit_size: list | None = _unset()
    extra: dict = field(default_factory=dict)

    @property
    def display(self) -> str:
        """The label if any, else the name."""
        return str(self.label or self.name)


@dataclass
class Utility(Record):
    """Utility: the run's own f_T (``value``) and a retrained one, beside raw data and chance.

    ``retrained`` is the best of the trained task's pool (``eval.utility_model`` and ``eval.task_pool``),
    selected on validation: ``model`` names it, ``models`` holds every member's validation and test
    score (schema 3; earlier summaries retrained ``eval.utility_model`` alone and have neither).
    """

    metric: str | None = _unset()
    chance: float | None = _unset()
    retrained: float | None = _unset()
    retrained_interval: list | None = _unset()
    value: float | None = _unset()
    interval: list | None = _unset()
    raw: float | None = _unset()
    model: str | None = _unset()
    models: dict | None = _unset()
    extra: dict = field(default_factory=dict)

    @property
    def shown(self) -> float | None:
        """What a table shows as the utility: the run's f_T, else the retrained one."""
        return self.value if self.value is not None else self.retrained


@dataclass
class Score(Record):
    """One score with its 95 % interval (bootstrap over test videos)."""

    value: float | None = _unset()
    interval: list | None = _unset()
    extra: dict = field(default_factory=dict)


@dataclass
class Level(Record):
    """One identification level (per clip, per video, per person from k clips).

    ``floor`` and ``floor_all`` (schema 3): the task-label floor at this level, what an attacker that
    knows only the trained task's label of each test clip (``floor``), or it and every unseen task's
    (``floor_all``), identifies, pooled like an attacker; context beside chance, never an attacker.
    ``nag_floor``: the leakage beyond that floor, max(0, (best - floor) / (raw - floor)).
    """

    NESTED: ClassVar[dict] = {"floor": Score, "floor_all": Score}

    attackers: dict | None = _unset()
    intervals: dict | None = _unset()
    best: float | None = _unset()
    best_attacker: str | None = _unset()
    interval: list | None = _unset()
    chance: float | None = _unset()
    units: int | None = _unset()
    skipped: dict | None = _unset()
    training_adversaries: dict | None = _unset()
    raw: float | None = _unset()
    nag: float | None = _unset()
    floor: Score | None = _unset()
    floor_all: Score | None = _unset()
    nag_floor: float | None = _unset()
    extra: dict = field(default_factory=dict)


@dataclass
class Privacy(Record):
    """Privacy: the best retrained attacker at the headline level, every level, context and records."""

    NESTED: ClassVar[dict] = {"levels": ("dict", Level), "floor": Score, "floor_all": Score}

    metric: str | None = _unset()
    attackers: dict | None = _unset()
    best: float | None = _unset()
    best_attacker: str | None = _unset()
    chance: float | None = _unset()
    per_frame: dict | None = _unset()
    training_adversaries: dict | None = _unset()
    level: str | None = _unset()
    interval: list | None = _unset()
    intervals: dict | None = _unset()
    levels: dict | None = _unset()
    strongest_level: str | None = _unset()
    views: int | None = _unset()
    selection: dict | None = _unset()
    test_clips: dict | None = _unset()
    warnings: list | None = _unset()
    notes: list | None = _unset()
    chance_rule: str | None = _unset()
    raw: float | None = _unset()
    nag: float | None = _unset()
    nag_refused: str | None = _unset()
    reference: str | None = _unset()
    floor: Score | None = _unset()  # the task-label floors at the headline level (schema 3; see Level)
    floor_all: Score | None = _unset()
    nag_floor: float | None = _unset()
    floor_knows: dict | None = _unset()  # {"floor": [tasks], "floor_all": [tasks]}: what each floor knows
    extra: dict = field(default_factory=dict)

    @property
    def headline(self) -> str:
        return self.level or "clip"

    def floor_at(self, level: str | None = None, which: str = "floor") -> float | None:
        """The task-label floor (``floor`` or ``floor_all``) at ``level`` (default the headline), or None."""
        b = (self.levels or {}).get(level or self.headline)
        f = getattr(b, which, None) if b is not None else None
        return f.value if f is not None else None

    def level_blocks(self) -> dict[str, Level]:
        """Every level; a summary written before levels existed has its per-clip numbers as one."""
        if self.levels:
            return self.levels
        return {"clip": Level(best=self.best, interval=self.interval, best_attacker=self.best_attacker,
                              chance=self.chance, raw=self.raw, nag=self.nag, attackers=self.attackers)}


@dataclass
class Reconstruction(Record):
    """The reconstruction threat: the best of the fresh reconstructors (by validation MSE)."""

    attackers: dict | None = _unset()
    best_attacker: str | None = _unset()
    mse: float | None = _unset()
    psnr: float | None = _unset()
    ssim: float | None = _unset()
    extra: dict = field(default_factory=dict)


@dataclass
class Task(Record):
    """A task the release was never trained for (a ``task:<name>`` column of the data), schema 3: the
    best of the task pool retrained on the release, selected on validation, scored on test per clip
    (every test video weighing the same) with its 95 % interval, beside chance and the raw data."""

    metric: str | None = _unset()
    classes: list | None = _unset()
    value: float | None = _unset()
    interval: list | None = _unset()
    chance: float | None = _unset()
    raw: float | None = _unset()
    model: str | None = _unset()
    models: dict | None = _unset()  # member -> {"val", "test", "interval"}
    units: int | None = _unset()  # labelled test clips scored
    videos: int | None = _unset()
    extra: dict = field(default_factory=dict)


@dataclass
class AuditSummary(Record):
    """``summary.json`` (DESIGN.md's contract; fractions in [0, 1]).

    ``path`` and ``label`` are not written: the file it was read from and its name in tables.
    """

    NESTED: ClassVar[dict] = {"encoder": EncoderInfo, "utility": Utility, "privacy": Privacy,
                              "reconstruction": Reconstruction, "tasks": ("dict", Task)}

    encoder: EncoderInfo | None = _unset()
    dataset: str | None = _unset()
    utility: Utility | None = _unset()
    privacy: Privacy | None = _unset()
    n_test: int | None = _unset()
    n_test_videos: int | None = _unset()
    encoded_shape: list | None = _unset()
    cache_bytes: dict | None = _unset()
    seconds: float | None = _unset()
    reconstruction: Reconstruction | None = _unset()
    tasks: dict | None = _unset()  # task name -> Task (schema 3; absent: the data labels no further task)
    data: dict | None = _unset()
    provenance: dict | None = _unset()
    reference: str | None = _unset()  # a network reference (privacam.reference): what it is
    executor: dict | None = _unset()  # how the units ran: {"name", "workers", ...}
    unit_seconds: dict | None = _unset()  # seconds of every unit of the audit
    schema_version: int | None = _unset()
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "path", None)
        object.__setattr__(self, "label", None)

    @property
    def version(self) -> int:
        return int(self.schema_version or 1)

    def results(self) -> dict:
        """The summary less its timing fields (:data:`TIMING_KEYS`, at any depth): what must be the same
        whatever ran it."""
        return _without(self.to_dict(), TIMING_KEYS)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> "AuditSummary":
        return cls.from_dict(json.loads(text))


def _without(o: Any, keys) -> Any:
    if isinstance(o, dict):
        return {k: _without(v, keys) for k, v in o.items() if k not in keys}
    if isinstance(o, list):
        return [_without(v, keys) for v in o]
    return o


# ---------------------------------------------------------------------------------------------- files
def summary_path(eval_dir: str | Path) -> Path:
    return Path(eval_dir) / SUMMARY


def is_audit_dir(path: str | Path) -> bool:
    """Whether ``path`` holds an audit (its summary or the record of one that started)."""
    p = Path(path)
    return (p / SUMMARY).is_file() or (p / IDENTITY).is_file()


def read_summary(path: str | Path) -> AuditSummary:
    """``summary.json`` (or an audit directory holding it) as an :class:`AuditSummary` with its ``path``."""
    p = Path(path)
    if p.is_dir():
        p = p / SUMMARY
    if not p.is_file():
        raise PrivacamError(f"{p}: no such audit summary; run `privacam evaluate` first")
    try:
        s = AuditSummary.from_dict(read_json(p))
    except (ValueError, TypeError, UnicodeDecodeError) as e:
        raise PrivacamError(f"{p} is not an audit summary ({type(e).__name__}); audit again with `privacam evaluate`") from None
    s.path = str(p)
    return s


def write_summary(eval_dir: str | Path, summary: AuditSummary) -> Path:
    """Write ``eval_dir/summary.json`` (atomically), stamped with :data:`SCHEMA_VERSION`."""
    return save_summary(summary_path(eval_dir), summary)


def save_summary(path: str | Path, summary: AuditSummary) -> Path:
    """Write a summary to the file ``path`` (a cache entry; in an audit directory use :func:`write_summary`)."""
    summary.schema_version = SCHEMA_VERSION
    write_json(path, summary.to_dict())
    return Path(path)


def read_summary_if(path: str | Path) -> AuditSummary | None:
    """The summary at ``path`` (a file or an audit directory), or None where there is none."""
    p = Path(path)
    if (p / SUMMARY if p.is_dir() else p).is_file():
        return read_summary(p)
    return None


def find_summaries(paths: list[str | Path]) -> list[Path]:
    """Every ``summary.json`` of an audit under ``paths`` (sorted, de-duplicated).

    Raises:
        PrivacamError: a path that does not exist, or that holds no audit, named (a report never drops
            a path it was given).
    """
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_file() and p.name == SUMMARY:
            here = [p]
        elif p.is_dir():
            here = [q for q in p.rglob(SUMMARY) if ATTACKERS not in q.parts and UNITS not in q.parts
                    and ".cache" not in q.parts]
        elif p.exists():
            raise PrivacamError(f"{p} is not an audit summary ({SUMMARY}); give run directories, eval directories or "
                                f"{SUMMARY} files")
        else:
            raise PrivacamError(f"{p} does not exist; give run directories, eval directories or {SUMMARY} files")
        if not here:
            raise PrivacamError(f"{p} holds no audit (no eval/{SUMMARY}); audit it first ({_audit_hint(p)}), or leave "
                                f"it out of the report")
        found += here
    return sorted(set(q.resolve() for q in found))


def _audit_hint(p: Path) -> str:
    """A command that audits ``p``: ``privacam evaluate RUN`` for a run with a trained encoder."""
    import shlex

    from . import runs

    if (p / runs.ENCODER).is_file() and (p / runs.CONFIG).is_file():
        return f"`privacam evaluate {shlex.quote(str(p))}`"
    return "`privacam evaluate RUN`, or `privacam evaluate --encoder NAME --out DIR` for a registered encoder"


def write_attacker(eval_dir: str | Path, name: str, record: dict) -> None:
    write_json(Path(eval_dir) / ATTACKERS / f"{name}.json", record)


def read_attacker(eval_dir: str | Path, name: str) -> dict:
    return read_json(Path(eval_dir) / ATTACKERS / f"{name}.json")


def examples_path(eval_dir: str | Path) -> Path:
    return Path(eval_dir) / EXAMPLES


def write_examples(eval_dir: str | Path, inputs, released, items: list[int], bank=None) -> None:
    """Save a few test inputs beside their releases: ``items`` are the test split's item indices of
    the clips shown, so that whoever replaces ``input`` (the raw frames of a released manifest) takes
    the same clips. ``bank``: for a release that is a clip of a bank (the ``substitute`` encoder), the
    bank index of each release shown (-1 where none matched), saved as ``bank`` (and ``bank_moved``:
    True where the release is the bank clip moved, so that the index is the nearest clip's)."""
    import torch

    from .utils import save_checkpoint

    d = {"input": inputs, "released": released, "items": torch.as_tensor(items, dtype=torch.long)}
    if bank is not None:
        index, moved = bank if isinstance(bank, tuple) else (bank, None)
        d["bank"] = torch.as_tensor(index, dtype=torch.long)
        d["bank_moved"] = (torch.zeros(len(d["bank"]), dtype=torch.bool) if moved is None
                           else torch.as_tensor(moved, dtype=torch.bool))
    save_checkpoint(examples_path(eval_dir), d)


def read_examples(eval_dir: str | Path) -> dict | None:
    """``examples.pt`` (``input``, ``released``, ``items``; ``bank`` and ``bank_moved`` for a bank's
    release) or None when the audit saved none."""
    from .utils import load_checkpoint

    p = examples_path(eval_dir)
    if not p.is_file():
        return None
    return load_checkpoint(p, what="example file", fix="delete it (the report then leaves its examples out)")


# ---------------------------------------------------------------------------------------------- units
def unit_path(eval_dir: str | Path, name: str) -> Path:
    return Path(eval_dir) / UNITS / f"{name}.json"


def write_unit(eval_dir: str | Path, name: str, result: dict) -> None:
    """Write one unit's result (atomically: a killed audit leaves whole units or none)."""
    write_json(unit_path(eval_dir, name), result)


def read_unit(eval_dir: str | Path, name: str, digest: str) -> dict | None:
    """The result of unit ``name`` when one was written for these inputs (``digest``), else None (none
    written, written for other inputs, or damaged)."""
    p = unit_path(eval_dir, name)
    if not p.is_file():
        return None
    try:
        rec = read_json(p)
    except (ValueError, UnicodeDecodeError, OSError):
        log.warning("%s is damaged; computing the unit again", p)
        return None
    if not isinstance(rec, dict) or rec.get("digest") != digest:
        log.info("%s was computed for other inputs; computing it again", p)
        return None
    return rec


def unit_names(eval_dir: str | Path) -> list[str]:
    d = Path(eval_dir) / UNITS
    return sorted(p.stem for p in d.glob("*.json")) if d.is_dir() else []


# ---------------------------------------------------------------------------------------------- identity
def write_identity(eval_dir: str | Path, identity: dict) -> None:
    write_json(Path(eval_dir) / IDENTITY, identity)


def read_identity(eval_dir: str | Path) -> dict | None:
    """What the audit in ``eval_dir`` audits: its ``audit.json``, or for an audit written before that
    file existed, the encoder and data of its summary."""
    p = Path(eval_dir)
    if (p / IDENTITY).is_file():
        try:
            return read_json(p / IDENTITY)
        except (ValueError, OSError):
            return None
    s = read_summary_if(p)
    if s is None:
        return None
    return audit_identity(s.encoder.to_dict() if s.encoder else {}, s.dataset, (s.data or {}).get("root"))


#: what names the audited encoder in an audit's identity (the rest of its record describes it)
_IDENTITY_KEYS = ("name", "params", "run", "released")


def audit_identity(encoder_info: dict, dataset: str | None, data_root: str | None = None) -> dict:
    """What an audit is of: the encoder (a registered one and its parameters, a run's folder, a user's
    file, a released manifest) and the data (paths resolved). Two audits with the same identity are the
    same audit, whatever their settings, labels or the training of the run (a re-run resumes it; other
    settings recompute the units whose inputs they change)."""
    info = encoder_info or {}
    enc = {k: info[k] for k in _IDENTITY_KEYS if info.get(k) is not None}
    for k in ("run", "released"):
        if k in enc:
            enc[k] = str(Path(enc[k]).expanduser().resolve())
    source = info.get("source") or {}
    if source:
        enc["source"] = {"kind": source.get("kind"), "spec": source.get("spec"),
                         "file": str(Path(source["file"]).expanduser().resolve()) if source.get("file") else None}
    root = str(Path(data_root).expanduser().resolve()) if data_root and Path(str(data_root)).exists() else data_root
    return {"encoder": enc, "dataset": dataset, "data_root": str(root) if root else None}


def describe(identity: dict) -> str:
    enc = identity.get("encoder") or {}
    what = enc.get("label") or (f"run {enc['run']}" if enc.get("run") else enc.get("name"))
    params = enc.get("params") or {}
    if params and not enc.get("label"):
        what = f"{what} {','.join(f'{k}={v}' for k, v in params.items())}"
    return f"{what} on {identity.get('dataset')}" + (f" ({identity['data_root']})" if identity.get("data_root") else "")


def claim_audit_dir(eval_dir: str | Path, identity: dict, *, overwrite: bool = False, owner: str | Path | None = None) -> None:
    """Take ``eval_dir`` for the audit ``identity`` (:func:`audit_identity`) before any work is done.

    - empty, missing, or holding the same audit (the same identity): taken; its finished units are
      reused where their inputs are the same (resume);
    - holding another audit (another run's, another encoder's, other data): refused in one line,
      unless ``overwrite``, which moves the folder ``owner`` (default ``eval_dir``) aside as
      ``<name>.replaced-<time>`` (never deleted), as ``privacam train --overwrite`` does.

    Writes ``audit.json``.
    """
    from .runs import move_aside

    eval_dir = Path(eval_dir)
    old = read_identity(eval_dir) if eval_dir.is_dir() else None
    if old is not None and not same_audit(old, identity):
        owner = Path(owner or eval_dir)
        if not overwrite:
            raise PrivacamError(f"{owner} holds another audit ({describe(old)}), not one of {describe(identity)}; give "
                                f"another --out, or replace it with --overwrite (it is moved aside, not deleted)")
        aside = move_aside(owner)
        log.warning("%s: the audit that was there is moved to %s (--overwrite)", owner, aside)
    write_identity(eval_dir, identity)


def same_audit(a: dict, b: dict) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


# ---------------------------------------------------------------------------------------------- currency
def audit_is_current(summary: AuditSummary) -> bool:
    """Whether an audit describes the encoder its run holds now (True when the summary or the run
    carries no stamp, e.g. written by an earlier version, or the run is gone)."""
    from . import runs

    enc = summary.encoder or EncoderInfo()
    rec, run = enc.stamp, enc.run
    if not rec or not run or not (Path(run) / runs.META).exists():
        return True
    now = runs.stamp(run)
    return all(rec.get(k) == now.get(k) for k in ("run_id", "encoder_sha1") if now.get(k))


def check_audit(summary: AuditSummary, path: str | Path) -> None:
    """Raise a one-line :class:`PrivacamError` when the audit at ``path`` describes an encoder its run
    no longer holds (the run was trained again or resumed since)."""
    if not audit_is_current(summary):
        run = summary.encoder.run
        raise PrivacamError(f"{path} audits an encoder that {run} no longer holds (the run was trained again or "
                            f"resumed since); audit it again with `privacam evaluate {run}`")


def current_summary(path: str | Path) -> AuditSummary | None:
    """The summary at ``path`` if there is one and it describes the encoder its run holds now."""
    s = read_summary_if(path)
    if s is not None and audit_is_current(s):
        return s
    return None


# ---------------------------------------------------------------------------------------------- formats
def finite(v) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def pct(v, missing: str = "–", digits: int = 1) -> str:
    """A fraction as a percentage (``0.4123`` -> ``41.2``); ``missing`` for None or NaN."""
    return f"{100 * v:.{digits}f}" if finite(v) else missing


def nag_text(v, missing: str = "–") -> str:
    """A NAG with two decimals; ``missing`` for None or NaN."""
    return f"{v:.2f}" if finite(v) else missing


def interval_text(iv, *, digits: int = 1, sep: str = ", ", missing: str = "") -> str:
    """``[lo, hi]`` as ``[38.2, 52.1]`` (``sep="-"``, ``digits=0``: ``[38-52]``); ``missing`` when absent."""
    if not iv or any(not finite(v) for v in iv):
        return missing
    return f"[{100 * iv[0]:.{digits}f}{sep}{100 * iv[1]:.{digits}f}]"


def floor_words(p: "Privacy") -> str:
    """What the task-label floor columns are (from ``privacy.floor_knows``), in one line: the tables
    ``privacam evaluate`` prints, the report and the card say it the same way."""
    knows = p.floor_knows or {}
    name = lambda t: "the trained task" if t == "utility" else t  # noqa: E731
    words = ("floor: an attacker that knows only each test clip's label of "
             + ", ".join(map(name, knows.get("floor") or ["utility"])))
    if knows.get("floor_all"):
        words += f"; +tasks: of {', '.join(map(name, knows['floor_all']))}"
    return words + "; pooled like an attacker (context, not an attacker); NAG/floor = max(0, (best - floor) / (raw - floor))"


def level_words(level: str) -> str:
    """``"video"`` -> ``"per video"``, ``"person@5"`` -> ``"per person from 5 clips"``."""
    kind, _, k = level.partition("@")
    if kind == "person":
        return "per person from all clips" if k == "all" else f"per person from {k} clip{'s' if k != '1' else ''}"
    return f"per {kind}"



__all__ = [
    "ATTACKERS", "AuditSummary", "EXAMPLES", "EncoderInfo", "IDENTITY", "Level", "Privacy", "Reconstruction",
    "Record", "SCHEMA_VERSION", "Score", "Task", "SUMMARY", "TIMING_KEYS", "UNITS", "Utility", "audit_identity", "audit_is_current",
    "check_audit", "claim_audit_dir", "current_summary", "examples_path", "find_summaries", "floor_words", "interval_text",
    "is_audit_dir", "level_words", "nag_text", "pct", "read_identity", "read_summary", "read_summary_if",
    "read_unit", "summary_path", "unit_path", "write_attacker", "write_identity", "write_summary", "write_unit",
]
