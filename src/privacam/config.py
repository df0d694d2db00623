"""Typed configuration: YAML files map onto dataclasses; ``key.sub=value`` overrides.

The resolved config is written into every run directory. A misspelt key is an error that
suggests the nearest valid key; values are parsed as YAML scalars (``gamma=0.5``, ``x=[1,2]``).
"""

from __future__ import annotations

import dataclasses
import difflib
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
            value = yaml.safe_load(raw) if raw != "" else ""
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
    return from_dict(Config, d)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Load a YAML config (a path or a shipped config's name) and apply overrides."""
    if path is None:
        cfg = Config()
    else:
        text = read_config_text(path)
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"config {path}: invalid YAML ({str(e).splitlines()[0]})") from None
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
