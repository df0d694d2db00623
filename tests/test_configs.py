"""Shipped configs: each loads into the typed config, starts with the command that runs it, names
only registered parts with parameters their factories take and has no key without effect; the paper
set-ups carry the paper's hyperparameters (SEEDS.md §1)."""

from __future__ import annotations

import inspect
import shlex

import pytest

from conftest import GAME
from privacam.builders import check_config
from privacam.cli import build_parser, main
from privacam.cli.common import resolve_config
from privacam.config import Config, load_config, read_config_text, shipped_configs
from privacam.errors import ConfigError
from privacam.players import budget_specs, is_reconstruction
from privacam.registry import (
    ADVERSARIES,
    ATTACKERS,
    DATASETS,
    ENCODERS,
    PRIVACY_LOSSES,
    RECONSTRUCTORS,
    SCHEDULES,
    UTILITY_MODELS,
)

NAMES = list(shipped_configs())
PAPER = ("sbu", "ucf101_vispr")


def _takes(registry, name: str, keys) -> list[str]:
    """The keys that the factory registered as ``name`` would reject."""
    params = inspect.signature(registry.get(name)).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return []
    return [k for k in keys if k not in params]


def _command(name: str) -> list[str]:
    """The command on the config's first line (without the trailing remark in parentheses)."""
    first = read_config_text(name).splitlines()[0].lstrip("#").strip()
    return shlex.split(first.split(" (")[0])


def test_listing_includes_the_paper_setups(capsys):
    assert {"default", "demo", *PAPER} <= set(NAMES)
    assert main(["configs"]) == 0
    listed = dict(line.split("\t", 1) for line in capsys.readouterr().out.splitlines())
    assert set(listed) == set(NAMES)
    for name in PAPER:
        assert listed[name].startswith(f"privacam train {name} ") and "GPU" in listed[name]


@pytest.mark.parametrize("name", NAMES)
def test_shipped_config_loads_and_names_registered_parts(name):
    text = read_config_text(name)
    first = text.splitlines()[0]
    assert first.startswith("#") and "privacam" in first
    cfg = load_config(name)
    assert isinstance(cfg, Config)
    # players: registered, with parameters their factories take
    assert cfg.encoder.name in ENCODERS
    assert not _takes(ENCODERS, cfg.encoder.name, cfg.encoder.params)
    assert cfg.utility.name in UTILITY_MODELS
    assert not _takes(UTILITY_MODELS, cfg.utility.name, cfg.utility.params)
    registry = RECONSTRUCTORS if is_reconstruction(cfg) else ADVERSARIES
    for budget_name, params in budget_specs(cfg):
        assert budget_name in registry, budget_name
        assert not _takes(registry, budget_name, params), (budget_name, params)
    # the game, the data and the audit
    assert cfg.schedule.name in SCHEDULES
    assert not _takes(SCHEDULES, cfg.schedule.name, cfg.schedule.params)
    assert cfg.game.privacy_loss in PRIVACY_LOSSES
    assert check_config(cfg) is cfg  # and no key without effect
    assert cfg.data.name in DATASETS
    if cfg.data.privacy_source:
        assert cfg.data.privacy_source["name"] in DATASETS
    assert cfg.eval.attackers and all(a in ATTACKERS for a in cfg.eval.attackers)
    assert not set(cfg.eval.attackers) & set(ADVERSARIES.list())  # audited by unseen models only


@pytest.mark.parametrize("name", [n for n in NAMES if _command(n)[:2] == ["privacam", "train"]])
def test_first_line_command_parses(name):
    argv = _command(name)[1:]
    args, extra = build_parser().parse_known_args(argv)
    assert args.config == name and args.out
    cfg = resolve_config(args.config, args.data, list(args.overrides) + extra)
    if args.data and ":" in args.data:
        assert (cfg.data.name, cfg.data.root) == tuple(args.data.split(":", 1))


def test_sbu_has_the_paper_hyperparameters():
    cfg = load_config("sbu")
    assert cfg.data.name == "sbu" and cfg.data.privacy_source is None
    assert (cfg.data.size, cfg.data.clip_len) == (112, 16)
    assert cfg.encoder.name == "transform_net" and cfg.encoder.params == {"width": 32, "blocks": 5}
    assert cfg.utility.name == "c3d" and cfg.budget.name == "mobilenet_v2"
    assert cfg.game.gamma == 2.0
    _common_paper_settings(cfg)


def test_ucf101_vispr_has_the_paper_hyperparameters():
    cfg = load_config("ucf101_vispr")
    assert cfg.data.name == "ucf101" and (cfg.data.size, cfg.data.clip_len) == (112, 16)
    ps = cfg.data.privacy_source
    assert ps["name"] == "vispr" and ps["params"]["attributes"] in ("vispr7", "vispr17")
    assert cfg.game.gamma == 0.5
    _common_paper_settings(cfg)
    # the documented command points both sources at their folders
    args, extra = build_parser().parse_known_args(_command("ucf101_vispr")[1:])
    cfg = resolve_config(args.config, args.data, list(args.overrides) + extra)
    assert (cfg.data.name, cfg.data.root) == ("ucf101", "/data/ucf101")
    assert cfg.data.privacy_source["root"] == "/data/vispr" and cfg.data.privacy_source["name"] == "vispr"


def _common_paper_settings(cfg):
    assert cfg.encoder.name == "transform_net" and cfg.utility.name == "c3d"
    widths = [p["width"] for _, p in budget_specs(cfg)]
    assert cfg.budget.paper_widths and cfg.budget.m == 8
    assert widths == [round(0.60 - 0.02 * i, 2) for i in range(8)]
    assert cfg.budget.restart_every == 100
    assert cfg.schedule.name == "entropy"
    assert (cfg.schedule.params["utility_bar"], cfg.schedule.params["budget_bar"]) == (0.85, 0.99)
    assert cfg.game.privacy_loss == "neg_entropy" and cfg.game.aggregate == "max"
    assert (cfg.encoder.optimizer, cfg.utility.optimizer, cfg.budget.optimizer) == ("adam", "adam", "adam")
    assert (cfg.encoder.lr, cfg.utility.lr, cfg.budget.lr) == (1e-4, 1e-5, 1e-2)
    assert cfg.train.batch_size * cfg.game.accum_steps == 160
    assert cfg.train.device == "auto" and cfg.train.amp == "bf16"


@pytest.mark.parametrize("overrides,match", [
    # a schedule's settings belong to that schedule: K-beam's caps under the entropy schedule do nothing
    (["schedule.params.encoder_steps=2"], r"schedule 'entropy' takes no parameter 'encoder_steps' \(schedule.params.encoder_steps\)"),
    (["schedule={name: grl, params: {max_budget_steps: 3}}"], "schedule 'grl' takes no parameter 'max_budget_steps'"),
    # the privacy loss must score the budget models: no reconstruction loss for classifiers
    (["game.privacy_loss=neg_mse"], "does not score classification adversaries"),
    # the strongest adversary exists only for schedules that pick one
    (["game.against=strongest"], "game.against=strongest needs a schedule that picks"),
    # a budget parameter no budget model takes; a second budget name budget.m never builds
    (["budget.params={width: 4, pool: 2}"], "budget.params.pool is taken by none of the budget models"),
    (["budget.names=[small_cnn, probe]", "budget.m=1"], "budget.m=1 builds only small_cnn"),
    (["budget.name=probe"], "budget.name 'probe' is not read when budget.names is given"),
    (["budget.paper_widths=true"], "budget.paper_widths only sets the widths of mobilenet_v2"),
    (["budget.weights=/tmp/w.pt"], "budget.weights is not read"),
])
def test_a_key_without_effect_is_an_error(overrides, match):
    with pytest.raises(ConfigError, match=match):
        check_config(load_config("default", GAME + overrides))


@pytest.mark.parametrize("override,match", [
    ("task=video", "config key 'task' was removed: the adversaries decide"),
    ("schedule.kbeam_plateau=3", "was removed: use schedule.params.plateau"),
    ("schedule.grl_lambda=0.5", "was removed: the one privacy weight is game.gamma"),
])
def test_removed_keys_say_what_replaced_them(override, match):
    with pytest.raises(ConfigError, match=match):
        load_config("default", [override])


def test_cpgan_configs_play_neg_mse_against_the_strongest_reconstructor():
    cfg = load_config("cpgan_digits")
    assert is_reconstruction(cfg) and cfg.game.privacy_loss == "neg_mse" and cfg.game.against == "strongest"
    # the reconstruction loss has an effect there: a classification loss is refused
    with pytest.raises(ConfigError, match="does not score reconstruction adversaries.*neg_mse"):
        check_config(load_config("cpgan_digits", ["game.privacy_loss=neg_entropy"]))
    with pytest.raises(ConfigError, match="mixes reconstructors"):
        check_config(load_config("cpgan_digits", ["budget.names=[decoder, small_cnn, ridge]"]))


def test_each_setting_is_checked_in_one_place_whether_it_comes_from_a_config_or_from_code():
    """game.pool_k and the audit's settings have one rule each (privacam.config.RULES): a config file or
    override, a config built in code (check_config) and the audit's own spec (AuditSpec) all say the same."""
    from privacam.config import RULES, PoolK
    from privacam.evaluate.protocol import AuditSpec

    assert isinstance(RULES["game.pool_k"], PoolK)
    msg = "'game.pool_k' is 3: pooled adversaries need k >= 2 and train.batch_size (now 32) a multiple of k"
    with pytest.raises(ConfigError, match=msg.replace("(", r"\(").replace(")", r"\)")):
        load_config("default", ["game.pool_k=3"])
    cfg = load_config("default")
    cfg.game.pool_k = 3  # past the load-time check: the same rule when the game is built
    with pytest.raises(ConfigError, match=msg.replace("(", r"\(").replace(")", r"\)")):
        check_config(cfg)
    with pytest.raises(ConfigError, match="'game.pool_k' is 1"):
        load_config("default", ["game.pool_k=1", "train.batch_size=4"])
    with pytest.raises(ConfigError, match="pooled adversaries work with one dataset"):
        load_config("default", ["game.pool_k=2", "data.privacy_source={name: synthetic_image}"])
    assert load_config("default", ["game.pool_k=4", "train.batch_size=8"]).game.pool_k == 4
    for key, value in (("views", 0), ("test_clips", 0), ("val_fraction", 1.5), ("pool", "frame")):
        with pytest.raises(ConfigError) as from_config:
            load_config("default", [f"eval.{key}={value}"])
        with pytest.raises(ConfigError) as from_code:
            AuditSpec(attackers=[], **{key: value})
        assert str(from_config.value) == str(from_code.value)
