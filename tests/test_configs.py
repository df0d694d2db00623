"""Shipped configs: each loads into the typed config, starts with the command that runs it, and names
only registered parts with parameters their factories take; the paper set-ups carry the paper's
hyperparameters (SEEDS.md §1)."""

from __future__ import annotations

import inspect
import shlex

import pytest

from privacam.builders import budget_specs
from privacam.cli import _resolve_config, build_parser, main
from privacam.config import Config, load_config, read_config_text, shipped_configs
from privacam.models.compress import RECONSTRUCTORS
from privacam.registry import (
    ADVERSARIES,
    ATTACKERS,
    DATASETS,
    ENCODERS,
    PRIVACY_LOSSES,
    SCHEDULES,
    UTILITY_MODELS,
    _ensure_builtins,
)

_ensure_builtins()
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
    if cfg.task == "cpgan":  # reconstruction adversaries, built by models.compress
        assert set(cfg.budget.names) <= set(RECONSTRUCTORS)
    else:
        for budget_name, params in budget_specs(cfg):
            assert budget_name in ADVERSARIES, budget_name
            assert not _takes(ADVERSARIES, budget_name, params), (budget_name, params)
    # the game, the data and the audit
    assert cfg.schedule.name in SCHEDULES
    assert cfg.game.privacy_loss in PRIVACY_LOSSES
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
    cfg = _resolve_config(args.config, args.data, list(args.overrides) + extra)
    if args.data and ":" in args.data:
        assert (cfg.data.name, cfg.data.root) == tuple(args.data.split(":", 1))


def test_sbu_has_the_paper_hyperparameters():
    cfg = load_config("sbu")
    assert cfg.task == "video" and cfg.data.name == "sbu" and cfg.data.privacy_source is None
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
    cfg = _resolve_config(args.config, args.data, list(args.overrides) + extra)
    assert (cfg.data.name, cfg.data.root) == ("ucf101", "/data/ucf101")
    assert cfg.data.privacy_source["root"] == "/data/vispr" and cfg.data.privacy_source["name"] == "vispr"


def _common_paper_settings(cfg):
    assert cfg.encoder.name == "transform_net" and cfg.utility.name == "c3d"
    widths = [p["width"] for _, p in budget_specs(cfg)]
    assert cfg.budget.paper_widths and cfg.budget.m == 8
    assert widths == [round(0.60 - 0.02 * i, 2) for i in range(8)]
    assert cfg.budget.restart_every == 100
    assert cfg.schedule.name == "entropy" and (cfg.schedule.utility_bar, cfg.schedule.budget_bar) == (0.85, 0.99)
    assert cfg.game.privacy_loss == "neg_entropy" and cfg.game.aggregate == "max"
    assert (cfg.encoder.optimizer, cfg.utility.optimizer, cfg.budget.optimizer) == ("adam", "adam", "adam")
    assert (cfg.encoder.lr, cfg.utility.lr, cfg.budget.lr) == (1e-4, 1e-5, 1e-2)
    assert cfg.train.batch_size * cfg.game.accum_steps == 160
    assert cfg.train.device == "auto" and cfg.train.amp == "bf16"
