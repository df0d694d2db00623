"""Typed configuration: YAML files map onto dataclasses; ``key.sub=value`` overrides.

The resolved config is written into every run directory. A misspelt key is an error that
suggests the nearest valid key; values are parsed as YAML scalars (``gamma=0.5``, ``x=[1,2]``,
``lr=1e-4``: numbers in YAML 1.2 style). Every value is checked against its range or set of choices
(:data:`RULES`) whenever a config is built, so a bad value is one line naming the key, never a
traceback later or a silently different run.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError


@dataclass
class DataConfig:
    """Where samples come from. ``name`` is a built-in dataset, ``manifest`` or ``synthetic``."""

    name: str = "synthetic"
    root: str | None = None
    clip_len: int = 16
    size: int = 32
    grey: bool = False
    val_fraction: float = 0.15
    on_bad_sample: str = "error"  # error | skip
    params: dict = field(default_factory=dict)
    # cross-dataset training: a second source for the private labels sharing the encoder
    privacy_source: dict | None = None
    # a substitution encoder's bank: None = the training split's clips; else the donors (consented or
    # synthetic people) whose every clip goes into the bank: a data spec (manifest path, NAME, NAME:ROOT) or a
    # mapping of data.* settings such as {name: synthetic, params: {seed: 1}}
    bank: str | dict | None = None
    bank_clips: int = 4  # clips taken from each bank video (at random offsets, fixed by the seed)


@dataclass
class PlayerConfig:
    """One player: a registry name, its constructor parameters and its optimizer."""

    name: str = ""
    params: dict = field(default_factory=dict)
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    weights: str | None = None  # optional user-supplied weights file


@dataclass
class EncoderConfig(PlayerConfig):
    name: str = "small_conv"
    grey: bool = False
    l1_weight: float = 0.0  # weight of L1(f_d(x), x) kept from the original code (off by default)
    l1_decay: float = 1.0  # multiplicative decay of l1_weight per top-level step


@dataclass
class UtilityConfig(PlayerConfig):
    name: str = "small3d"


@dataclass
class BudgetConfig(PlayerConfig):
    """The budget ensemble f_b^1..f_b^M.

    ``names`` lists one registry name per model (cycled to length ``m``); ``width`` of a MobileNetV2
    follows the paper's ``0.60 - 0.02 * i`` when ``paper_widths`` is true.
    """

    name: str = "small_cnn"
    names: list = field(default_factory=list)
    m: int = 2
    paper_widths: bool = False
    lr: float = 1e-3
    restart_every: int = 0  # restart every R top-level steps (0 = never)
    restart_on_plateau: int = 0  # restart when L_B has not decreased for this many steps (0 = off)
    restart_steps: int = 50  # budget updates right after a restart


@dataclass
class SubstituteConfig:
    """The substitution game's own terms (encoder ``substitute``), each an expectation over the softmax that
    draws the bank clip (see :mod:`privacam.game.substitution`): ``task`` (the substitute shows the input's
    task label), ``model`` (f_T's expected loss over the bank), ``spread`` (the identities the substitutes
    show spread over the bank), ``posterior`` (the identity posterior of an attacker who knows the drawn clip
    stays flat), ``general`` (generic motion descriptors of input and substitute agree); ``refresh``: steps
    between f_T's and f_b's logits on the bank; ``momentum``: of the posterior's running table."""

    task: float = 1.0
    model: float = 0.0
    spread: float = 0.0
    posterior: float = 1.0  # the recipe measured in docs/substitute.md: the task and the flat posterior
    general: float = 0.0
    refresh: int = 10
    momentum: float = 0.95


@dataclass
class GameConfig:
    """The encoder's objective ``L_T + gamma * agg_{i in against} privacy_loss(f_b^i)`` and how it is run.

    ``privacy_loss``: a registered privacy loss; ``against``: ``all`` budget models or the ``strongest``
    one the schedule picks (kbeam, multi_adversary); ``aggregate``: per-sample ``max`` or ``mean`` over
    them; ``gamma``: the one weight of the privacy term.
    """

    gamma: float = 1.0
    privacy_loss: str = "neg_entropy"
    against: str = "all"  # all | strongest
    aggregate: str = "max"  # max (per sample, over the ensemble) | mean
    accum_steps: int = 1
    # pooled adversaries: batches of (batch_size / pool_k) identities x pool_k clips each; every budget
    # model is also scored on the summed log-probabilities of each identity's pool_k clips (0 = off)
    pool_k: int = 0
    # budget models see E(x) standardised per channel over the batch (as the audit's retrained
    # attackers do), so f_d cannot fool them by shrinking contrast
    standardise_budget: bool = False
    # a substitution encoder's expected losses over its bank (read only with encoder `substitute`)
    substitute: SubstituteConfig = field(default_factory=SubstituteConfig)


@dataclass
class ScheduleConfig:
    """Which player moves next: a registered schedule ``name`` (entropy | grl | kbeam | multi_adversary)
    and its own settings ``params`` (checked against the schedule's parameters when the game is built)."""

    name: str = "entropy"
    params: dict = field(default_factory=dict)


@dataclass
class InitConfig:
    """Initialisation stages: f_d identity pretraining, f_T on f_d, f_b on frozen f_d."""

    encoder_steps: int = 50
    utility_steps: int = 100
    budget_steps: int = 50


@dataclass
class TrainConfig:
    steps: int = 200
    final_utility_steps: int = 0  # f_T alone on the frozen f_d after the game
    batch_size: int = 16
    seed: int = 0
    device: str = "auto"
    log_every: int = 10
    checkpoint_every: int = 25
    num_workers: int = 0
    amp: str = "off"  # off | bf16 | fp16
    channels_last: bool = False
    compile: bool = False
    # which checkpoint the run ships: "last", or "val_probe" (the best validation score, utility accuracy
    # minus a fast probing attacker's identity NAG, both on the validation split only; never test)
    select: str = "last"
    select_every: int = 0  # candidates every N game steps (0 = every checkpoint_every), plus the end


@dataclass
class EvalConfig:
    """The audit: retrained attackers (``attackers``) and the retrained utility model.

    The probing attacker releases its training split ``views`` times; attackers are selected on
    held-out training videos (``val_mode``, ``val_fraction``, ``refit``) after at least ``min_epochs``
    epochs; scores are reported per clip (every test video weighing the same, at most ``test_clips``
    clips of each), per video and per person from ``person_k`` clips, with the headline at ``pool``
    and 95 % bootstrap intervals (see docs/audit.md). Every training video gives the attacker the
    same number of clips.
    """

    attackers: list = field(default_factory=lambda: [
        "linear_probe", "motion_probe", "small_cnn_a", "resnet_tiny", "shufflenet_a", "c3d_tiny",
        "mhi_logistic", "mhi_boosted", "profile_logistic", "profile_boosted", "hog_logistic", "hog_boosted",
        "combo_logistic", "combo_boosted"])
    epochs: int = 15
    patience: int = 4
    min_epochs: int = 3
    views: int = 8
    val_mode: str = "auto"  # auto | data
    val_fraction: float = 0.25
    refit: bool = True
    pool: str = "auto"  # auto | clip | video | person@K | person@all
    person_k: list = field(default_factory=lambda: [1, 3, 5])
    trials: int = 200
    bootstrap: int = 1000
    test_clips: int = 4  # at most this many evenly spaced clips scored per test video
    batch_size: int = 32
    lr: float = 2e-3
    # the utility model the audit retrains on every release (None: the run's utility model; a run whose
    # f_T has no parameters, such as decision_readout, names a trainable one here)
    utility_model: str | None = None
    utility_params: dict = field(default_factory=dict)
    utility_epochs: int = 25
    utility_lr: float = 3e-3
    utility_batch_size: int = 16
    reconstruction: bool = True
    raw_reference: bool = True
    seed: int = 0
    # the models retrained per task the data labels (task:<name> columns) and, with utility_model, for the
    # trained task; the best on validation is reported (docs/tasks.md); []: no task is measured
    task_pool: list = field(default_factory=lambda: [
        "shape_logistic", "tempo_logistic", "c3d_grid", "grid_probe", "energy_probe", "mhi_logistic"])


@dataclass
class Config:
    """A whole run: data, the three players, the game and its schedule, training and the audit."""

    data: DataConfig = field(default_factory=DataConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    utility: UtilityConfig = field(default_factory=UtilityConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    game: GameConfig = field(default_factory=GameConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    init: InitConfig = field(default_factory=InitConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


# ------------------------------------------------------------------ YAML
class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader reading numbers as YAML 1.2 does: ``1e-4`` is a float, not a string."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def yaml_load(text: str) -> Any:
    """Parse YAML text (a file or one override value) with YAML 1.2 numbers."""
    return yaml.load(text, Loader=_Loader)


# ------------------------------------------------------------------ conversion
def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"config key {key!r} must be a mapping, got {value!r}")
        return from_dict(tp, value, prefix=key + ".")
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        if isinstance(value, dict) and any(a is dict or typing.get_origin(a) is dict for a in args):
            return dict(value)  # str | dict: a mapping stays one
        return _coerce(value, args[0], key)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"config key {key!r} must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
            raise ConfigError(f"config key {key!r} must be an integer, got {value!r}")
        return int(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key {key!r} must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if isinstance(value, bool):  # YAML 1.1 reads off/on/no/yes as booleans (train.amp=off)
            return "on" if value else "off"
        if not isinstance(value, str):
            raise ConfigError(f"config key {key!r} must be a string, got {value!r}")
        return value
    if tp is list or origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"config key {key!r} must be a list, got {value!r}")
        return list(value)
    if tp is dict or origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key {key!r} must be a mapping, got {value!r}")
        return dict(value)
    return value


#: keys of earlier versions, with what replaced them (run directories written by them are upgraded
#: by :func:`privacam.runs.load_run_config`; a user's config gets this hint instead)
REMOVED_KEYS = {
    "task": "the adversaries decide: budget.names of reconstructors (decoder, ridge, rff_ridge) play CPGAN's game",
    "schedule.grl_lambda": "the one privacy weight is game.gamma",
    "schedule.utility_bar": "schedule settings live under schedule.params",
    "schedule.budget_bar": "schedule settings live under schedule.params",
    "schedule.max_utility_steps": "schedule settings live under schedule.params",
    "schedule.max_budget_steps": "schedule settings live under schedule.params",
    "schedule.kbeam_encoder_steps": "use schedule.params.encoder_steps (kbeam, multi_adversary)",
    "schedule.kbeam_budget_steps": "use schedule.params.budget_steps (kbeam) or decoder_steps (multi_adversary)",
    "schedule.kbeam_utility_steps": "use schedule.params.utility_steps (kbeam, multi_adversary)",
    "schedule.kbeam_plateau": "use schedule.params.plateau (kbeam)",
}


def _unknown_key(key: str, valid: list[str], prefix: str) -> ConfigError:
    if prefix + key in REMOVED_KEYS:
        return ConfigError(f"config key '{prefix}{key}' was removed: {REMOVED_KEYS[prefix + key]}")
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    hint = f"; did you mean '{prefix}{close[0]}'?" if close else ""
    return ConfigError(f"unknown config key '{prefix}{key}'{hint} (valid here: {', '.join(valid)})")


def from_dict(cls: type, data: dict, prefix: str = "") -> Any:
    """Build dataclass ``cls`` from a nested dict, rejecting unknown keys with a suggestion."""
    types = _field_types(cls)
    kwargs = {}
    for k, v in (data or {}).items():
        if k not in types:
            raise _unknown_key(k, list(types), prefix)
        kwargs[k] = _coerce(v, types[k], prefix + k)
    return cls(**kwargs)


def to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def apply_overrides(cfg: Config, overrides: list[str]) -> Config:
    """Apply ``a.b=value`` overrides (values parsed as YAML) to a copy of ``cfg``."""
    d = to_dict(cfg)
    for ov in overrides:
        if "=" not in ov:
            raise ConfigError(f"override {ov!r} is not of the form key.sub=value")
        key, raw = ov.split("=", 1)
        try:
            value = yaml_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        parts = key.strip().split(".")
        node = d
        cls: Any = Config
        for i, p in enumerate(parts):
            types = _field_types(cls) if cls is not None else None
            is_last = i == len(parts) - 1
            if types is not None and p not in types:
                raise _unknown_key(p, list(types), ".".join(parts[:i]) + ("." if i else ""))
            if is_last:
                node[p] = value
            else:
                nxt = types[p] if types is not None else None
                if nxt is not None and not dataclasses.is_dataclass(nxt):
                    # free-form mapping such as encoder.params.width
                    if node.get(p) is None:
                        node[p] = {}
                    cls = None
                else:
                    cls = nxt
                node = node[p]
    return check_values(from_dict(Config, d))


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Load a YAML config (a path or a shipped config's name) and apply overrides."""
    if path is None:
        cfg = Config()
    else:
        text = read_config_text(path)
        try:
            data = yaml_load(text) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"config {path}: invalid YAML ({str(e).splitlines()[0]})") from None
        if not isinstance(data, dict):
            raise ConfigError(
                f"config {path}: the top level is a {type(data).__name__}, not a mapping; write sections "
                f"such as 'train:' and 'encoder:' at the top level (see `privacam configs`)"
            )
        cfg = from_dict(Config, data)
    return apply_overrides(cfg, overrides or [])


def shipped_configs() -> dict[str, str]:
    """Shipped config names -> their first comment line (the command that runs them)."""
    out = {}
    for p in sorted(resources.files("privacam.configs").iterdir(), key=lambda p: p.name):
        if p.name.endswith(".yaml"):
            first = p.read_text().splitlines()[0].lstrip("# ").strip()
            out[p.name[:-5]] = first
    return out


def read_config_text(path: str | Path) -> str:
    p = Path(path)
    if p.is_file():
        return p.read_text()
    name = str(path)[:-5] if str(path).endswith(".yaml") else str(path)
    res = resources.files("privacam.configs") / f"{name}.yaml"
    if res.is_file():
        return res.read_text()
    close = difflib.get_close_matches(name, list(shipped_configs()), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ConfigError(f"config {path!r} is neither a file nor a shipped config{hint} (see `privacam configs`)")


def dump_config(cfg: Config) -> str:
    """The config as YAML (what a run directory's ``config.yaml`` holds)."""
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


# ------------------------------------------------------------------ value checks
class Rule:
    """What values a config key may take. ``check`` raises a one-line :class:`ConfigError`."""

    def check(self, key: str, value: Any, cfg: Any = None) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(frozen=True)
class Range(Rule):
    """A number in ``[lo, hi]`` (``None``: unbounded); ``lo_open`` excludes ``lo`` itself; ``integer``:
    a whole number. (Dataclass fields are coerced to their type first; free mappings such as
    ``schedule.params`` are not, so the type is checked here too.)"""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    integer: bool = False
    hi_open: bool = False

    def check(self, key, value, cfg=None):
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (self.integer and int(value) != value):
            raise ConfigError(f"config key {key!r} is {value!r}; it must be {self.text(kind=True)}")
        low_ok = self.lo is None or (value > self.lo if self.lo_open else value >= self.lo)
        high_ok = self.hi is None or (value < self.hi if self.hi_open else value <= self.hi)
        if not (low_ok and high_ok):  # NaN fails both
            raise ConfigError(f"config key {key!r} is {value!r}; it must be {self.text(kind=self.integer)}")

    def text(self, kind: bool = False) -> str:
        """``>= 0 and <= 1``; with ``kind``: ``an integer >= 0`` / ``a number >= 0``."""
        parts = []
        if self.lo is not None:
            parts.append(f"{'>' if self.lo_open else '>='} {self.lo:g}")
        if self.hi is not None:
            parts.append(f"{'<' if self.hi_open else '<='} {self.hi:g}")
        bounds = " and ".join(parts)
        if not kind:
            return bounds or "a number"
        return f"{'an integer' if self.integer else 'a number'} {bounds}".strip()


@dataclass(frozen=True)
class Pattern(Rule):
    """A string matching ``regex`` in full; ``text`` says what it may be."""

    regex: str
    text: str

    def check(self, key, value, cfg=None):
        if not isinstance(value, str) or not re.fullmatch(self.regex, value):
            raise ConfigError(f"config key {key!r} is {value!r}; use {self.text}")


@dataclass(frozen=True)
class Each(Rule):
    """A list whose every item passes ``rule`` (at least one item)."""

    rule: Rule

    def check(self, key, value, cfg=None):
        if not isinstance(value, (list, tuple)) or not value:
            raise ConfigError(f"config key {key!r} is {value!r}; give a non-empty list")
        for i, v in enumerate(value):
            self.rule.check(f"{key}[{i}]", v, cfg)


@dataclass(frozen=True)
class IsBool(Rule):
    """``true`` or ``false``."""

    def check(self, key, value, cfg=None):
        if not isinstance(value, bool):
            raise ConfigError(f"config key {key!r} is {value!r}; it must be true or false")


@dataclass(frozen=True)
class OneOf(Rule):
    """One of a fixed set of values."""

    choices: tuple

    def check(self, key, value, cfg=None):
        if value not in self.choices:
            close = difflib.get_close_matches(str(value), [str(c) for c in self.choices], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"config key {key!r} is {value!r}{hint}; choose one of {', '.join(map(str, self.choices))}")


@dataclass(frozen=True)
class Device(Rule):
    """``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` (whether it exists is checked when it is used)."""

    def check(self, key, value, cfg=None):
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", str(value)):
            raise ConfigError(f"config key {key!r} is {value!r}; use auto, cpu, cuda, cuda:N or mps")


@dataclass(frozen=True)
class Free(Rule):
    """A value checked where it is used (a path, a factory's own parameters); ``why`` says where."""

    why: str

    def check(self, key, value, cfg=None):
        pass


@dataclass(frozen=True)
class DataSpec(Rule):
    """A data spec (a manifest path, ``NAME`` or ``NAME:ROOT``, checked when the data is read) or a mapping of
    ``data.*`` settings (checked as ``data.*``)."""

    def check(self, key, value, cfg=None):
        if isinstance(value, dict):
            AsData().check(key, value, cfg)
        elif value is not None and not isinstance(value, str):
            raise ConfigError(f"{key} must be a data spec (manifest path, NAME or NAME:ROOT) or a mapping of data "
                              f"settings, got {value!r}")


class AsData(Rule):
    """A mapping of ``data.*`` settings (the cross-dataset privacy source): each checked as ``data.*``."""

    def check(self, key, value, cfg=None):
        if value is None:
            return
        sub = from_dict(DataConfig, {k: v for k, v in value.items() if k != "privacy_source"}, prefix=key + ".")
        _check_node(sub, "data", key + ".", cfg)


@dataclass(frozen=True)
class PoolK(Rule):
    """``game.pool_k``: 0 (off), or k >= 2 clips of one identity per group, with ``train.batch_size`` a
    multiple of k that holds at least two groups, on one dataset (no ``data.privacy_source``). What only
    the data can say (single-label identities, at least two of them) is checked when the batches are
    drawn (:class:`privacam.train.GroupedBatchStream`)."""

    def check(self, key, value, cfg=None):
        _COUNT.check(key, value, cfg)
        k = int(value or 0)
        if not k or cfg is None or not hasattr(cfg, "train"):
            return
        bs = cfg.train.batch_size
        if k < 2 or bs % k or bs < 2 * k:
            raise ConfigError(f"config key {key!r} is {k}: pooled adversaries need k >= 2 and train.batch_size (now {bs}) "
                              f"a multiple of k holding at least 2 groups; set train.batch_size={max(2, 2 * k)} or {key}=0")
        if cfg.data.privacy_source:
            raise ConfigError(f"config key {key!r} is {k}: pooled adversaries work with one dataset; drop "
                              f"data.privacy_source or set {key}=0")


def check_key(key: str, value: Any, cfg: Any = None) -> None:
    """Check one setting against its rule in :data:`RULES` (a one-line :class:`ConfigError`): the one
    place a setting's values are checked, whether it comes from a config or is passed in code."""
    rule = RULES.get(key)
    if rule is not None:
        rule.check(key, value, cfg)


#: a registered name (or list of names): the config knows no registry, so names are checked where
#: they are used (:func:`privacam.players.check_players`, before any work is done)
_NAME = Free("a registered name, checked by players.check_players")
_NAMES = Free("registered names, checked by players.check_players")
_COUNT = Range(0)  # steps, patience, workers: 0 allowed
_POSITIVE = Range(1)  # sizes and intervals that must be at least one
_LR = Range(0)  # a player's learning rate (0 freezes it)
_FIT_LR = Range(0, lo_open=True)  # an audit learning rate (0 would make every attacker look blind)

#: Every config key and the values it may take; booleans are checked by their type. A test keeps
#: this table and the dataclasses in step, so a new key must be added here.
RULES: dict[str, Rule] = {
    "data.name": _NAME,
    "data.root": Free("a path, checked by the dataset"),
    "data.clip_len": _POSITIVE,
    "data.size": _POSITIVE,
    "data.val_fraction": Range(0, 0.95),
    "data.on_bad_sample": OneOf(("error", "skip")),
    "data.params": Free("the dataset's options, checked by the dataset (docs/datasets.md)"),
    "data.privacy_source": AsData(),
    "data.bank": DataSpec(),
    "data.bank_clips": _POSITIVE,
    "encoder.name": _NAME,
    "utility.name": _NAME,
    "budget.name": _NAME,
    "budget.names": _NAMES,
    "budget.m": _POSITIVE,
    "budget.restart_every": _COUNT,
    "budget.restart_on_plateau": _COUNT,
    "budget.restart_steps": _COUNT,
    "encoder.l1_weight": Range(0),
    "encoder.l1_decay": Range(0, 1),
    "game.gamma": Range(0),
    "game.privacy_loss": _NAME,
    "game.against": OneOf(("all", "strongest")),
    "game.aggregate": OneOf(("max", "mean")),
    "game.accum_steps": _POSITIVE,
    "game.pool_k": PoolK(),
    "game.substitute.task": Range(0),
    "game.substitute.model": Range(0),
    "game.substitute.spread": Range(0),
    "game.substitute.posterior": Range(0),
    "game.substitute.general": Range(0),
    "game.substitute.refresh": _POSITIVE,
    "game.substitute.momentum": Range(0, 1, hi_open=True),
    "schedule.name": _NAME,
    "schedule.params": Free("the schedule's own settings: each schedule's param_rules (privacam.game.schedules), "
                            "checked by players.check_players"),
    "init.encoder_steps": _COUNT,
    "init.utility_steps": _COUNT,
    "init.budget_steps": _COUNT,
    "train.steps": _COUNT,
    "train.final_utility_steps": _COUNT,
    "train.batch_size": _POSITIVE,
    "train.seed": Range(0),
    "train.device": Device(),
    "train.log_every": _POSITIVE,
    "train.checkpoint_every": _COUNT,
    "train.num_workers": _COUNT,
    "train.amp": OneOf(("off", "bf16", "fp16")),
    "train.select": OneOf(("last", "val_probe")),
    "train.select_every": _COUNT,
    "eval.attackers": _NAMES,
    "eval.epochs": _POSITIVE,
    "eval.min_epochs": _POSITIVE,
    "eval.views": _POSITIVE,
    "eval.val_mode": OneOf(("auto", "data")),
    "eval.val_fraction": Range(0, 1, lo_open=True, hi_open=True),
    "eval.pool": Pattern(r"auto|clip|video|person@(?:[1-9][0-9]*|all)", "auto, clip, video, person@K (K >= 1) or person@all"),
    "eval.person_k": Each(Range(1, integer=True)),
    "eval.trials": _POSITIVE,
    "eval.bootstrap": _POSITIVE,
    "eval.test_clips": _POSITIVE,
    "eval.utility_model": Free("a registered utility model (default: the run's), checked by the audit"),
    "eval.utility_params": Free("the audit's utility model parameters, checked by its factory"),
    "eval.patience": _POSITIVE,
    "eval.batch_size": _POSITIVE,
    "eval.lr": _FIT_LR,
    "eval.utility_epochs": _POSITIVE,
    "eval.utility_lr": _FIT_LR,
    "eval.utility_batch_size": _POSITIVE,
    "eval.seed": Range(0),
    "eval.task_pool": _NAMES,
}
for _player in ("encoder", "utility", "budget"):  # the settings every player shares
    RULES.setdefault(f"{_player}.params", Free(f"the {_player}'s factory parameters, checked by the factory"))
    RULES.setdefault(f"{_player}.optimizer", OneOf(("adam", "adamw", "sgd")))
    RULES.setdefault(f"{_player}.lr", _LR)
    RULES.setdefault(f"{_player}.weight_decay", Range(0))
    RULES.setdefault(f"{_player}.weights", Free("a weights file, read when the player is built"))


def config_keys(cls: type = Config, prefix: str = "") -> dict[str, Any]:
    """Every leaf key of the config tree (``"train.steps"``) and its type."""
    out = {}
    for name, tp in _field_types(cls).items():
        if dataclasses.is_dataclass(tp):
            out.update(config_keys(tp, prefix + name + "."))
        else:
            out[prefix + name] = tp
    return out


def _check_node(node: Any, section: str, prefix: str, root: Any) -> None:
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        if dataclasses.is_dataclass(value):
            _check_node(value, f"{section}.{f.name}" if section else f.name, f"{prefix}{f.name}.", root)
            continue
        rule = RULES.get(f"{section}.{f.name}" if section else f.name)
        if rule is not None:
            rule.check(prefix + f.name, value, root)


def check_values(cfg: Config) -> Config:
    """Check every value of ``cfg`` against :data:`RULES`; returns ``cfg``.

    Raises:
        ConfigError: one line naming the key, the value and what it may be.
    """
    _check_node(cfg, "", "", cfg)
    return cfg
