"""Build players, optimizers and the game from a :class:`~privacam.config.Config`.

Shared by training, evaluation (which rebuilds the encoder of a run) and deployment.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import nn

from .config import Config, PlayerConfig
from .errors import ConfigError, PrivacamError
from .game import AdversarialGame, BudgetEnsemble, Restarter
from .game.schedules import schedule_params
from .registry import create_adversary, create_encoder, create_utility

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


def build_encoder(cfg: Config, in_channels: int = 3) -> nn.Module:
    enc = create_encoder(cfg.encoder.name, in_channels=in_channels, grey=cfg.encoder.grey, **cfg.encoder.params)
    _maybe_load(enc, cfg.encoder, "encoder")
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


def build_utility(cfg: Config, shapes: Shapes, zshape: tuple[int, ...]) -> nn.Module:
    m = create_utility(cfg.utility.name, in_channels=zshape[0], num_classes=shapes.num_utility,
                       size=_released_size(zshape), clip_len=shapes.clip_len, **cfg.utility.params)
    _maybe_load(m, cfg.utility, "utility")
    return m


def budget_specs(cfg: Config) -> list[tuple[str, dict]]:
    """(name, params) of each budget model: ``budget.names`` cycled to ``budget.m``."""
    b = cfg.budget
    names = list(b.names) or [b.name]
    specs = []
    for i in range(b.m):
        name = names[i % len(names)]
        params = dict(b.params)
        if b.paper_widths and name == "mobilenet_v2":
            params["width"] = round(0.60 - 0.02 * i, 2)
        specs.append((name, params))
    return specs


def build_budget(cfg: Config, shapes: Shapes, zshape: tuple[int, ...], reconstruction: bool = False) -> BudgetEnsemble:
    models = [
        create_adversary(name, in_channels=zshape[0], num_classes=shapes.num_private, size=_released_size(zshape), **params)
        for name, params in budget_specs(cfg)
    ]
    return BudgetEnsemble(models, reconstruction=reconstruction)


def make_optimizer(params, pc: PlayerConfig) -> torch.optim.Optimizer:
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


def _maybe_load(module: nn.Module, pc: PlayerConfig, player: str) -> None:
    if not pc.weights:
        return
    from .utils import load_checkpoint

    state = load_checkpoint(pc.weights, what=f"{player}.weights", fix="give a state_dict saved with torch.save")
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    own = module.state_dict()
    kept = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    module.load_state_dict(kept, strict=False)
    log.info("%s: loaded %d/%d tensors from %s", player, len(kept), len(own), pc.weights)


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
               reconstruction: bool = False, distributed: bool = False) -> AdversarialGame:
    """Everything the game needs, sized for ``shapes``.

    ``cfg.train.channels_last`` stores conv weights channels-last (GPU tensor cores);
    ``cfg.train.compile`` compiles each player in place (``nn.Module.compile``, so state dicts keep
    their keys); ``distributed`` builds a :class:`~privacam.distributed.DistributedGame` that keeps
    the players identical over ``torch.distributed`` ranks.
    """
    encoder = build_encoder(cfg, shapes.in_channels)
    zshape = encoded_shape(encoder, shapes)
    utility = build_utility(cfg, shapes, zshape)
    if reconstruction:  # CPGAN: the adversaries rebuild the input from the code
        from .models.compress import build_reconstructors

        budget = build_reconstructors(cfg, shapes, zshape)
    else:
        budget = build_budget(cfg, shapes, zshape)
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
    loss = cfg.game.privacy_loss
    if shapes.multilabel and loss == "neg_entropy":
        log.info("multi-label private labels: using per-attribute negative entropy")
    game_cls = AdversarialGame
    if distributed:
        from .distributed import DistributedGame

        game_cls = DistributedGame
    return game_cls(
        encoder=encoder, utility=utility, budget=budget, optimizers=optimizers,
        privacy_loss=loss, gamma=cfg.game.gamma, aggregate=cfg.game.aggregate, multilabel=shapes.multilabel,
        schedule=cfg.schedule.name, schedule_params=schedule_params(cfg.schedule),
        restarter=Restarter(cfg.budget.restart_every, cfg.budget.restart_on_plateau),
        restart_steps=cfg.budget.restart_steps, accum_steps=cfg.game.accum_steps,
        standardise_budget=cfg.game.standardise_budget,
        l1_weight=cfg.encoder.l1_weight, l1_decay=cfg.encoder.l1_decay,
        device=device, amp=cfg.train.amp, generator=generator,
    )
