"""Assemble the game from a :class:`~privacam.config.Config`: the players (built by
:mod:`privacam.players`), one optimizer each, the encoder objective and the schedule.

Used by the trainer; the audit and deployment rebuild players through :mod:`privacam.runs` and never
import this module (or the game).
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from dataclasses import asdict

from .config import Config, DataConfig, PlayerConfig, SubstituteConfig, check_values
from .errors import ConfigError
from .game import AdversarialGame, BudgetEnsemble, Restarter
from .game.game import check_objective
from .players import Shapes, build_budget_models, build_encoder, build_utility, check_players, encoded_shape, is_reconstruction
from .models.substitute import is_substitute
from .registry import ENCODERS, SCHEDULES

log = logging.getLogger(__name__)


def check_config(cfg: Config) -> Config:
    """Every check a config gets before training: every value against its rule
    (:data:`privacam.config.RULES`, also for a config built in code), the players and the schedule
    (:func:`~privacam.players.check_players`) and the encoder objective
    (:func:`~privacam.game.game.check_objective`). Returns ``cfg``.

    Raises:
        ConfigError: one line naming the key that is unknown or would have no effect.
    """
    check_values(cfg)
    check_players(cfg)
    check_objective(privacy_loss=cfg.game.privacy_loss, against=cfg.game.against, aggregate=cfg.game.aggregate,
                    reconstruction=is_reconstruction(cfg), schedule=SCHEDULES.get(cfg.schedule.name))
    check_substitution(cfg)
    return cfg


def needs_bank(cfg: Config) -> bool:
    """Whether the config's encoder releases clips of a bank (the trainer then reads one)."""
    return ENCODERS.get(cfg.encoder.name) is ENCODERS.get("substitute")


def check_substitution(cfg: Config) -> None:
    """The substitution settings (``game.substitute.*``, ``data.bank``, ``data.bank_clips``) are read only
    with a substitution encoder, which trains with ``tau > 0`` on one dataset.

    Raises:
        ConfigError: one line naming the key and the fix.
    """
    if not needs_bank(cfg):
        changed = [f"game.substitute.{k}" for k, v in asdict(cfg.game.substitute).items()
                   if v != getattr(SubstituteConfig(), k)]
        changed += [f"data.{k}" for k in ("bank", "bank_clips") if getattr(cfg.data, k) != getattr(DataConfig(), k)]
        if changed:
            raise ConfigError(f"{changed[0]} is read only by the substitute encoder (encoder.name=substitute), and "
                              f"this config trains {cfg.encoder.name!r}; remove it")
        return
    tau = cfg.encoder.params.get("tau", 0.05)
    if not isinstance(tau, (int, float)) or isinstance(tau, bool) or not tau > 0:
        raise ConfigError(f"encoder.params.tau={tau!r}: the substitute encoder trains with a softmax temperature "
                          f"tau > 0 (e.g. 0.05); a deterministic release (tau=0) is a deployment choice")
    if cfg.data.privacy_source:
        raise ConfigError("data.privacy_source: the substitute encoder spreads the identities of one dataset over "
                          "its bank; train it on one dataset (remove data.privacy_source)")


def make_optimizer(params, pc: PlayerConfig) -> torch.optim.Optimizer:
    """The player's optimizer (``adam`` | ``adamw`` | ``sgd``) over its trainable parameters."""
    params = [p for p in params if p.requires_grad]
    if not params:  # fixed baselines: a no-op optimizer keeps the game uniform
        params = [nn.Parameter(torch.zeros(1), requires_grad=False)]
    name = pc.optimizer.lower()
    if name == "adam":
        return torch.optim.Adam(params, lr=pc.lr, weight_decay=pc.weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=pc.lr, weight_decay=pc.weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=pc.lr, momentum=0.9, weight_decay=pc.weight_decay)
    raise ConfigError(f"unknown optimizer {pc.optimizer!r}; valid: adam, adamw, sgd")


def to_channels_last(module: nn.Module) -> nn.Module:
    """Store every conv weight channels-last, in place: 4-D weights (2D convs) ``channels_last``,
    5-D weights (3D convs) ``channels_last_3d``; other tensors untouched. Values are unchanged."""
    for m in module.modules():
        for p in list(m.parameters(recurse=False)) + list(m.buffers(recurse=False)):
            fmt = {4: torch.channels_last, 5: torch.channels_last_3d}.get(p.dim())
            if fmt is not None:
                p.data = p.data.contiguous(memory_format=fmt)
    return module


def build_game(cfg: Config, shapes: Shapes, device: torch.device, generator: torch.Generator | None = None,
               distributed: bool = False, bank: tuple | None = None) -> AdversarialGame:
    """Everything the game needs, sized for ``shapes``.

    The budget models classify the private labels, or rebuild the input when ``budget.names`` are
    reconstructors (CPGAN). ``cfg.train.channels_last`` stores conv weights channels-last (GPU tensor
    cores); ``cfg.train.compile`` compiles each player in place (``nn.Module.compile``, so state dicts
    keep their keys); ``distributed`` builds a :class:`~privacam.distributed.DistributedGame` that keeps
    the players identical over ``torch.distributed`` ranks. ``bank``: ``(clips, utility, private)`` of a
    substitution encoder's bank (:func:`privacam.data.bank.read_bank`), filled before the optimizers exist.
    """
    check_config(cfg)
    encoder = build_encoder(cfg, shapes.in_channels, shapes)
    if is_substitute(encoder):
        if bank is None:
            raise ConfigError("the substitute encoder needs a bank of clips: privacam train reads it from the training "
                              "split (or data.bank); from your own loop, call encoder.set_bank(clips, utility, private)")
        encoder.set_bank(*bank)
    zshape = encoded_shape(encoder, shapes)
    utility = build_utility(cfg, shapes, zshape)
    budget = BudgetEnsemble(build_budget_models(cfg, shapes, zshape), reconstruction=is_reconstruction(cfg))
    for m in (encoder, utility, budget):
        m.to(device)
        if cfg.train.channels_last:
            to_channels_last(m)
    if cfg.train.compile:
        for m in (encoder, utility, *budget.models):
            m.compile()
    optimizers = {
        "encoder": make_optimizer(encoder.parameters(), cfg.encoder),
        "utility": make_optimizer(utility.parameters(), cfg.utility),
        "budget": make_optimizer(budget.parameters(), cfg.budget),
    }
    if shapes.multilabel and cfg.game.privacy_loss == "neg_entropy":
        log.info("multi-label private labels: using per-attribute negative entropy")
    game_cls = AdversarialGame
    if distributed:
        from .distributed import DistributedGame

        game_cls = DistributedGame
    return game_cls(
        encoder=encoder, utility=utility, budget=budget, optimizers=optimizers,
        privacy_loss=cfg.game.privacy_loss, gamma=cfg.game.gamma, aggregate=cfg.game.aggregate, against=cfg.game.against,
        multilabel=shapes.multilabel, schedule=cfg.schedule.name, schedule_params=dict(cfg.schedule.params),
        restarter=Restarter(cfg.budget.restart_every, cfg.budget.restart_on_plateau),
        restart_steps=cfg.budget.restart_steps, accum_steps=cfg.game.accum_steps,
        standardise_budget=cfg.game.standardise_budget, pool_k=cfg.game.pool_k, substitute=cfg.game.substitute,
        l1_weight=cfg.encoder.l1_weight, l1_decay=cfg.encoder.l1_decay,
        device=device, amp=cfg.train.amp, generator=generator,
    )
