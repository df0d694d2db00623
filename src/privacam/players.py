"""Build the three players from a config and the registries: the encoder f_d, the utility model f_T
and the budget adversaries f_b (classifiers of the private labels, or reconstructors of the input).

Shared by training (the game is assembled from these in :mod:`privacam.builders`), the audit (which
rebuilds a run's trained players through :mod:`privacam.runs`) and deployment. No game import: the
players are plain modules, sized by :class:`Shapes`.

:func:`check_players` rejects a player or schedule key that would have no effect, before any work is done.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch
from torch import nn

from .config import BudgetConfig, Config, PlayerConfig
from .errors import ConfigError
from .models.common import load_weights as load_state
from .registry import (ADVERSARIES, ATTACKERS, DATASETS, ENCODERS, RECONSTRUCTORS, SCHEDULES, UTILITY_MODELS,
                       create_encoder, create_utility)

log = logging.getLogger(__name__)


@dataclass
class Shapes:
    """What the players must be sized for."""

    in_channels: int
    size: int
    clip_len: int  # 0 for images
    num_utility: int
    num_private: int
    multilabel: bool = False

    def as_dict(self) -> dict:
        return dict(self.__dict__)


#: what an encoder factory may be told about the data (when it takes the parameter and the config does not set it)
DATA_PARAMS = {"num_classes": "num_utility", "clip_len": "clip_len"}


def build_encoder(cfg: Config, in_channels: int = 3, shapes: "Shapes | dict | None" = None) -> nn.Module:
    """f_d from ``cfg.encoder`` (and its ``weights`` file, if any).

    An encoder whose factory takes ``num_classes`` or ``clip_len`` (the ``decision`` family) gets them
    from ``shapes`` (the utility classes, the clip length; 0 = images) unless ``encoder.params`` sets them.
    """
    params = dict(cfg.encoder.params)
    takes = ENCODERS.parameters(cfg.encoder.name) or []
    if shapes is not None:
        sd = shapes.as_dict() if isinstance(shapes, Shapes) else dict(shapes)
        for key, field in DATA_PARAMS.items():
            if key in takes and key not in params and field in sd:
                params[key] = int(sd[field])
    enc = create_encoder(cfg.encoder.name, in_channels=in_channels, grey=cfg.encoder.grey, **params)
    load_weights(enc, cfg.encoder, "encoder")
    return enc


def encoded_shape(encoder: nn.Module, shapes: Shapes) -> tuple[int, ...]:
    """Shape of one released sample (without batch), found by a dry run."""
    if shapes.clip_len:
        x = torch.rand(1, shapes.in_channels, shapes.clip_len, shapes.size, shapes.size)
    else:
        x = torch.rand(1, shapes.in_channels, shapes.size, shapes.size)
    was = encoder.training
    encoder.eval()
    with torch.no_grad():
        z = encoder(x)
    encoder.train(was)
    return tuple(z.shape[1:])


def _released_size(zshape: tuple[int, ...]) -> int:
    return int(zshape[-1]) if len(zshape) >= 3 else 1


def build_utility(cfg: Config, shapes: Shapes, zshape: tuple[int, ...], *, weights: bool = True) -> nn.Module:
    """f_T from ``cfg.utility``, sized for a release of shape ``zshape`` (``weights``: load the
    user's ``utility.weights`` file, if any)."""
    m = create_utility(cfg.utility.name, in_channels=zshape[0], num_classes=shapes.num_utility,
                       size=_released_size(zshape), clip_len=shapes.clip_len, **cfg.utility.params)
    if weights:
        load_weights(m, cfg.utility, "utility")
    return m


# ---------------------------------------------------------------------------------------------- f_b
def budget_registry(cfg: Config):
    """The registry ``budget.names`` come from: reconstructors (CPGAN) or private-label classifiers.

    Raises:
        ConfigError: the names mix both kinds, or one is in neither registry.
    """
    names = list(cfg.budget.names) or [cfg.budget.name]
    recon = [n for n in names if n in RECONSTRUCTORS]
    if not recon:
        for n in names:
            ADVERSARIES.get(n)  # unknown name -> one-line error listing the valid ones
        return ADVERSARIES
    if len(recon) != len(names):
        other = next(n for n in names if n not in RECONSTRUCTORS)
        raise ConfigError(f"budget.names mixes reconstructors ({', '.join(recon)}) with {other!r}: the budget models "
                          f"either classify the private labels or rebuild the input, not both")
    return RECONSTRUCTORS


def is_reconstruction(cfg: Config) -> bool:
    """The budget models rebuild the input (CPGAN) rather than classify the private labels."""
    return budget_registry(cfg) is RECONSTRUCTORS


def budget_specs(cfg: Config) -> list[tuple[str, dict]]:
    """(name, params) of each budget model: ``budget.names`` cycled to ``budget.m``.

    A MobileNetV2's ``width`` follows the paper's ``0.60 - 0.02 * i`` when ``budget.paper_widths``.
    Each model gets the keys of ``budget.params`` its factory takes (see :func:`check_config`).
    """
    b = cfg.budget
    names = list(b.names) or [b.name]
    registry = budget_registry(cfg)
    specs = []
    for i in range(b.m):
        name = names[i % len(names)]
        takes = registry.parameters(name)
        params = {k: v for k, v in b.params.items() if takes is None or k in takes}
        if b.paper_widths and name == "mobilenet_v2":
            params["width"] = round(0.60 - 0.02 * i, 2)
        specs.append((name, params))
    return specs


def budget_labels(cfg: Config) -> list[str]:
    """One name per budget model for reports: ``<name>_<i>`` (``_w<width>`` for paper-width MobileNets)."""
    out = []
    for i, (name, params) in enumerate(budget_specs(cfg)):
        width = f"_w{params['width']}" if "width" in params and name == "mobilenet_v2" else ""
        out.append(f"{name}_{i}{width}")
    return out


def build_budget_models(cfg: Config, shapes: Shapes, zshape: tuple[int, ...]) -> list[nn.Module]:
    """The budget models f_b^1..f_b^M (classifiers, or reconstructors of the input for CPGAN)."""
    registry = budget_registry(cfg)
    if registry is RECONSTRUCTORS:
        # a clip code [C, T, h, w] is reconstructed frame by frame
        per_frame = tuple(zshape[:1]) + tuple(zshape[2:]) if shapes.clip_len and len(zshape) == 4 else tuple(zshape)
        in_dim, out_shape = int(math.prod(per_frame)), (shapes.in_channels, shapes.size, shapes.size)
        return [registry.create(name, in_dim=in_dim, out_shape=out_shape, **params) for name, params in budget_specs(cfg)]
    return [registry.create(name, in_channels=zshape[0], num_classes=shapes.num_private, size=_released_size(zshape), **params)
            for name, params in budget_specs(cfg)]


# ---------------------------------------------------------------------------------------------- weights
def load_weights(module: nn.Module, pc: PlayerConfig, player: str) -> None:
    """Load a user's ``<player>.weights`` file into ``module``: tensors whose name and shape match
    (:func:`privacam.models.common.load_weights`)."""
    if pc.weights:
        load_state(module, pc.weights, what=f"{player}.weights", keep="matching")


# ---------------------------------------------------------------------------------------------- checks
def check_players(cfg: Config) -> Config:
    """Reject names that are not registered and player or schedule keys that would have no effect.

    Checked: the players' names and parameters, ``budget.params`` (every key taken by at least one
    budget model), ``budget.names`` against ``budget.m``, ``budget.weights`` (never read), ``budget.paper_widths`` (needs a
    ``mobilenet_v2``), the schedule's ``params`` (taken by that schedule), the dataset and the audit's
    attackers, and the values of the schedule's ``params`` (its ``param_rules``). The encoder objective's settings are checked with the game
    (:func:`privacam.builders.check_config`). Returns ``cfg``.

    Raises:
        ConfigError: one line naming the key and the valid choices.
    """
    ENCODERS.check(cfg.encoder.name, cfg.encoder.params, key="encoder.params")
    UTILITY_MODELS.check(cfg.utility.name, cfg.utility.params, key="utility.params")
    if cfg.eval.utility_model:
        UTILITY_MODELS.check(cfg.eval.utility_model, cfg.eval.utility_params, key="eval.utility_params")
    elif cfg.eval.utility_params:
        raise ConfigError("eval.utility_params is read only with eval.utility_model; set it or remove them")
    if not cfg.eval.utility_model and cfg.utility.name == "decision_readout":
        raise ConfigError("utility decision_readout has no parameters for the audit to retrain; set "
                          "eval.utility_model (e.g. small3d for clips, small_cnn_image for images)")
    if cfg.utility.name == "decision_readout" and cfg.train.final_utility_steps:
        raise ConfigError(f"train.final_utility_steps={cfg.train.final_utility_steps} trains f_T alone after the game, and "
                          "utility decision_readout has no parameters to train; set train.final_utility_steps=0 (or pick a "
                          "utility model with parameters, e.g. utility.name=small3d)")
    registry = budget_registry(cfg)
    names = list(cfg.budget.names) or [cfg.budget.name]
    used = names[: cfg.budget.m]
    if len(used) < len(names):
        raise ConfigError(f"budget.names lists {len(names)} models but budget.m={cfg.budget.m} builds only "
                          f"{', '.join(used)}: set budget.m={len(names)} or drop names")
    takes = [registry.parameters(n) for n in used]
    for k in cfg.budget.params:
        if not any(t is None or k in t for t in takes):
            raise ConfigError(f"budget.params.{k} is taken by none of the budget models ({', '.join(used)}); "
                              f"their parameters: {', '.join(sorted({p for t in takes for p in (t or [])}))}")
    if cfg.budget.names and cfg.budget.name != BudgetConfig.name:
        raise ConfigError(f"budget.name {cfg.budget.name!r} is not read when budget.names is given; remove it or "
                          f"list it in budget.names")
    if cfg.budget.weights:
        raise ConfigError("budget.weights is not read: budget models start from scratch (and restart); remove it")
    if cfg.budget.paper_widths and "mobilenet_v2" not in used:
        raise ConfigError("budget.paper_widths only sets the widths of mobilenet_v2 budget models, and there is none")
    SCHEDULES.check(cfg.schedule.name, cfg.schedule.params, key="schedule.params")
    rules = getattr(SCHEDULES.get(cfg.schedule.name), "param_rules", {})
    for k, v in cfg.schedule.params.items():
        if k in rules:
            rules[k].check(f"schedule.params.{k}", v)
    DATASETS.get(cfg.data.name)
    for a in cfg.eval.attackers:
        ATTACKERS.get(a)
    for a in cfg.eval.task_pool:  # attackers or utility models (privacam.evaluate.tasks.make_task_model)
        if a not in UTILITY_MODELS:
            ATTACKERS.get(a)
    return cfg
