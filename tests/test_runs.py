"""The run directory contract: run directories written before ``schedule: {name, params}`` (with ``task``
and a flat schedule section) still load, upgraded to the settings that reproduce what they ran."""

import pytest
import yaml

from privacam.builders import check_config
from privacam.config import Config, dump_config
from privacam.errors import PrivacamError
from privacam.runs import load_run_config, upgrade_legacy_config

FLAT = {"utility_bar": 0.8, "budget_bar": 0.9, "max_utility_steps": 2, "max_budget_steps": 3, "grl_lambda": 0.7,
        "kbeam_encoder_steps": 4, "kbeam_budget_steps": 6, "kbeam_utility_steps": 2, "kbeam_plateau": 5}


def _old_run(tmp_path, schedule: str, task: str = "video", **sections) -> dict:
    """A config.yaml as the previous version wrote it."""
    d = yaml.safe_load(dump_config(Config()))
    d["task"] = task
    d["schedule"] = {"name": schedule, **FLAT}
    for k, v in sections.items():
        d[k].update(v)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(d, sort_keys=False))
    return d


@pytest.mark.parametrize("schedule,params,game", [
    ("entropy", {"utility_bar": 0.8, "budget_bar": 0.9, "max_utility_steps": 2, "max_budget_steps": 3},
     {"privacy_loss": "neg_entropy", "against": "all", "aggregate": "max", "gamma": 1.0}),
    ("grl", {}, {"privacy_loss": "neg_ce", "against": "all", "aggregate": "mean", "gamma": 0.7}),  # lambda was the weight
    ("kbeam", {"utility_bar": 0.8, "budget_bar": 0.9, "encoder_steps": 4, "budget_steps": 6, "utility_steps": 2, "plateau": 5},
     {"privacy_loss": "neg_ce", "against": "strongest", "gamma": 1.0}),
])
def test_legacy_run_config_keeps_what_the_run_did(tmp_path, schedule, params, game):
    _old_run(tmp_path, schedule)
    cfg = load_run_config(tmp_path)
    assert cfg.schedule.name == schedule and cfg.schedule.params == params
    assert {k: getattr(cfg.game, k) for k in game} == game
    assert check_config(cfg) is cfg


def test_legacy_cpgan_run_plays_neg_mse_against_the_strongest_reconstructor(tmp_path):
    _old_run(tmp_path, "multi_adversary", task="cpgan", budget={"names": ["decoder", "ridge", "rff_ridge"]},
             encoder={"name": "cpgan_mlp"}, utility={"name": "code_mlp"}, game={"privacy_loss": "neg_mse"})
    cfg = load_run_config(tmp_path)
    assert cfg.schedule.params == {"encoder_steps": 4, "decoder_steps": 6, "utility_steps": 2}
    assert (cfg.game.privacy_loss, cfg.game.against) == ("neg_mse", "strongest")
    assert cfg.budget.m == 3  # every listed reconstructor was built, whatever budget.m said
    assert check_config(cfg) is cfg


def test_current_configs_pass_unchanged():
    d = yaml.safe_load(dump_config(Config()))
    assert upgrade_legacy_config(d) is d


def test_not_a_run_directory_says_how_to_make_one(tmp_path):
    with pytest.raises(PrivacamError, match="not a run directory .*privacam train --out"):
        load_run_config(tmp_path)
