"""The game object: players, their optimizers, and the primitive moves the schedules combine.

Objective (Wu et al.; one form for all three methods)::

    min_{f_d, f_T}  L_T(f_T(f_d(x)), y_T)  +  gamma * agg_{i in A} L_priv(f_b^i(f_d(x)))
    min_{f_b^i}     L_B(f_b^i(f_d(x)), y_B)        for every budget model i

The encoder's objective has four settings and no others: the registered privacy loss ``L_priv``,
the adversaries ``A`` it is applied to (``all``, or the ``strongest`` one the schedule picked), the
aggregation ``agg`` over them (per-sample ``max`` or ``mean``) and the one weight ``gamma``. The
methods are settings of it: Wu et al.'s entropy game is (``neg_entropy``, all, max); gradient
reversal is (``neg_ce``, all, mean); K-beam is (``neg_ce``, strongest); CPGAN is (``neg_mse``,
strongest).

Each move updates exactly one set of players; the others are frozen (``requires_grad`` off,
eval mode) so their parameters and running statistics do not move.
"""

from __future__ import annotations

import contextlib
import logging
import math
from typing import Any, Callable, Iterable, Iterator

import torch
from torch import nn

from ..config import SubstituteConfig
from ..errors import ConfigError, NonFiniteLossError
from ..models.common import standardise_channels
from ..models.substitute import is_substitute
from ..registry import PRIVACY_LOSSES, SCHEDULES
from .ensemble import BudgetEnsemble, Restarter
from .losses import adversary_loss, check_groups, correct, pool_logits
from .losses import privacy_loss as get_privacy_loss
from .substitution import SubstituteObjective

log = logging.getLogger(__name__)

Batches = Iterator[dict]

#: A parameter beyond this magnitude overflows float32 within a few layers: the update that put it
#: there blew up, even if the value is still finite (weights near 1e30 were once kept as "good").
WEIGHT_LIMIT = 1e15


def first_nonfinite(named: Iterable[tuple[str, torch.Tensor | None]], limit: float | None = None) -> str | None:
    """The name of the first floating-point tensor holding a NaN or an Inf (or, with ``limit``, a value
    whose magnitude exceeds it); ``None`` when all are fine. One device synchronisation for all."""
    named = [(n, t) for n, t in named if t is not None and t.is_floating_point() and t.numel()]
    if not named:
        return None
    peaks = torch.stack([t.detach().abs().amax().float() for _, t in named])
    ok = torch.isfinite(peaks) if limit is None else peaks <= limit  # NaN fails both
    if bool(ok.all()):
        return None
    return named[int((~ok).nonzero()[0])][0]


def _player_of(metric: str) -> str:
    """The player whose move logged ``metric`` (``loss/budget_1`` -> ``budget``)."""
    name = metric.split("/", 1)[-1] if not metric.startswith("restart/") else "budget"
    for player in ("utility", "budget"):
        if name.startswith(player):
            return player
    return "encoder"


AGAINST = ("all", "strongest")
AGGREGATES = ("max", "mean")


def check_objective(*, privacy_loss: str, against: str, aggregate: str, reconstruction: bool, schedule: Any) -> None:
    """Raise a one-line :class:`ConfigError` when the encoder objective's settings do not fit.

    The privacy loss must score the kind of adversaries (``reconstruction`` or classification);
    ``against="strongest"`` needs a schedule (object or class) that picks one (``picks_strongest``).
    """
    kind = "reconstruction" if reconstruction else "classification"
    if kind not in PRIVACY_LOSSES.tags(privacy_loss):
        valid = ", ".join(n for n in PRIVACY_LOSSES.list() if kind in PRIVACY_LOSSES.tags(n))
        raise ConfigError(f"game.privacy_loss {privacy_loss!r} does not score {kind} adversaries (budget.names); "
                          f"valid here: {valid}")
    if aggregate not in AGGREGATES:
        raise ConfigError(f"game.aggregate {aggregate!r} is unknown; valid: {', '.join(AGGREGATES)}")
    if against not in AGAINST:
        raise ConfigError(f"game.against {against!r} is unknown; valid: {', '.join(AGAINST)}")
    if against == "strongest" and not getattr(schedule, "picks_strongest", False):
        picking = [n for n in SCHEDULES.list() if getattr(SCHEDULES.get(n), "picks_strongest", False)]
        raise ConfigError(f"game.against=strongest needs a schedule that picks the strongest adversary "
                          f"({', '.join(picking)}); use game.against=all with this one")


class AdversarialGame:
    """One three-player game for Wu et al., Li & Cavallaro and CPGAN.

    Args:
        encoder: f_d (what is released). Fixed baselines (``trainable=False``) are never updated.
        utility: f_T on f_d's output.
        budget: the ensemble f_b^1..f_b^M.
        optimizers: ``{"encoder": ..., "utility": ..., "budget": ...}`` — one per player.
        privacy_loss: registered L_priv name minimised by f_d (``neg_entropy``, ``ce_uniform``, ``neg_ce``,
            ``neg_mse``, ...); it must score the kind of adversaries in ``budget``.
        gamma: weight of the privacy term (the only one).
        aggregate: ``max`` (per-sample max over the adversaries) or ``mean``.
        against: ``all`` budget models, or the ``strongest`` one the schedule picked (K-beam, CPGAN).
        multilabel: private labels are multi-hot (sigmoid outputs, BCE).
        schedule: a registered schedule name (``entropy``, ``grl``, ``kbeam``, ``multi_adversary``) or
            schedule object.
        schedule_params: keyword arguments of the schedule.
        restarter: when to restart the budget models; ``restart_steps`` budget updates follow.
        accum_steps: micro-batches accumulated per update (effective batch = accum x batch).
        l1_weight, l1_decay: optional ``l1_weight * L1(f_d(x), x)`` term of the original code.
        device, amp: where to run; ``amp`` in {off, bf16, fp16}.
        generator: seeds the budget restarts, so a resumed run restarts identically.
        pool_k: pooled adversaries: batches hold groups of ``pool_k`` clips of one identity, and every
            budget model is also scored (and trained) on each group's summed log-probabilities, so the
            encoder must remove what survives averaging over a person's clips (0 = off).
        substitute: the weights of a substitution encoder's expected losses (``game.substitute``, see
            :mod:`privacam.game.substitution`); read only when ``encoder`` releases bank clips.
    """

    def __init__(
        self,
        *,
        encoder: nn.Module,
        utility: nn.Module,
        budget: BudgetEnsemble,
        optimizers: dict[str, torch.optim.Optimizer],
        privacy_loss: str = "neg_entropy",
        gamma: float = 1.0,
        aggregate: str = "max",
        against: str = "all",
        multilabel: bool = False,
        schedule: str | Any = "entropy",
        schedule_params: dict | None = None,
        restarter: Restarter | None = None,
        restart_steps: int = 50,
        accum_steps: int = 1,
        l1_weight: float = 0.0,
        l1_decay: float = 1.0,
        device: str | torch.device = "cpu",
        amp: str = "off",
        generator: torch.Generator | None = None,
        standardise_budget: bool = False,
        pool_k: int = 0,
        substitute: "SubstituteConfig | dict | None" = None,
    ):
        self.encoder, self.utility, self.budget = encoder, utility, budget
        self.optimizers = optimizers
        self.privacy_loss_name = privacy_loss
        self._privacy_loss = get_privacy_loss(privacy_loss)
        self.gamma = gamma
        self.aggregate = aggregate
        self.against = against
        self.multilabel = multilabel
        self.schedule = SCHEDULES.create(schedule, **(schedule_params or {})) if isinstance(schedule, str) else schedule
        check_objective(privacy_loss=privacy_loss, against=against, aggregate=aggregate,
                        reconstruction=budget.reconstruction, schedule=self.schedule)
        self.restarter = restarter or Restarter()
        self.restart_steps = restart_steps
        self.accum_steps = max(1, int(accum_steps))
        self.l1_weight, self.l1_decay = l1_weight, l1_decay
        self.device = torch.device(device)
        self.amp = amp
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=(amp == "fp16"))
        self.generator = generator or torch.Generator().manual_seed(0)
        self.standardise_budget = standardise_budget
        if pool_k and (pool_k < 2 or budget.reconstruction or multilabel):
            raise ConfigError(f"game.pool_k={pool_k}: pooled adversaries need pool_k >= 2 and single-label private "
                              f"classes (not reconstruction or multi-label); use game.pool_k=0")
        self.pool_k = int(pool_k)
        # a substitution encoder (a bank clip drawn by a softmax) plays with expected losses over the bank
        self.substitution = SubstituteObjective(substitute) if is_substitute(encoder) else None
        self.step_count = 0
        self.last_budget_loss: float | None = None

    # ------------------------------------------------------------------ helpers
    @property
    def encoder_trainable(self) -> bool:
        return bool(getattr(self.encoder, "trainable", True)) and any(p.requires_grad for p in self.encoder.parameters())

    def _autocast(self):
        if self.amp == "off":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.amp == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    @contextlib.contextmanager
    def _frozen(self, *modules: nn.Module):
        saved = []
        for m in modules:
            saved.append((m, m.training, [(p, p.requires_grad) for p in m.parameters()]))
            m.eval()
            for p in m.parameters():
                p.requires_grad_(False)
        try:
            yield
        finally:
            for m, training, flags in saved:
                m.train(training)
                for p, rg in flags:
                    p.requires_grad_(rg)

    def _check(self, value: torch.Tensor, player: str, name: str) -> None:
        if not torch.isfinite(value).all():
            raise NonFiniteLossError(self.step_count, player, name, self._lr(player))

    #: check every player's gradients before its optimizer steps (the distributed game averages them
    #: inside that step, so it relies on the weight check after it, which sees the same on every rank)
    check_local_grads = True

    def _lr(self, player: str) -> float | None:
        opt = self.optimizers.get(player)
        return float(opt.param_groups[0]["lr"]) if opt is not None and opt.param_groups else None

    def _module(self, player: str) -> nn.Module:
        return {"encoder": self.encoder, "utility": self.utility, "budget": self.budget}[player]

    def _loss_owner(self, player: str, loss: torch.Tensor, batch: dict) -> tuple[str, str]:
        """(player to blame, what) for a loss of ``player``'s move: f_d when f_d's own output on the
        batch is already non-finite (it moved first), else ``player``."""
        name = f"{player} loss"
        if player == "encoder" or bool(torch.isfinite(loss).all()):
            return player, name
        with torch.no_grad(), self._autocast():
            z = self.encoder(batch.get("privacy_input", batch["input"]) if player == "budget" else batch["input"])
        if not bool(torch.isfinite(z).all()):
            return "encoder", f"{name} (the encoder's output on the batch is already non-finite)"
        return player, name

    def _check_update(self, players: tuple[str, ...], when: str) -> None:
        """Stop before a non-finite gradient is applied (``when="gradient"``), or when an update left a
        non-finite or blown-up weight or buffer (``"update"``; ``"checkpoint"`` before one is written),
        so that the checkpoint on disk stays finite."""
        for player in players:
            m = self._module(player)
            if when == "gradient":
                if not self.check_local_grads or self.scaler.is_enabled():  # fp16: the scaler skips inf steps
                    continue
                bad = first_nonfinite((n, p.grad) for n, p in m.named_parameters())
            else:
                bad = first_nonfinite(m.named_parameters(), WEIGHT_LIMIT) or first_nonfinite(m.named_buffers())
            if bad is not None:
                what = {"gradient": f"gradient of {bad}", "update": f"value of {bad} after its update"}.get(when, f"value of {bad}")
                raise NonFiniteLossError(self.step_count, player, what, self._lr(player))

    def check_finite(self) -> None:
        """Raise :class:`NonFiniteLossError` when any player holds a non-finite or blown-up weight or
        buffer (called before a checkpoint is written)."""
        self._check_update(("encoder", "utility", "budget"), "checkpoint")

    def _move(self, player: str, batches: Batches, compute: Callable[[dict], tuple[torch.Tensor, dict]]) -> dict:
        """One optimizer update of ``player`` with ``accum_steps`` accumulated micro-batches."""
        opt = self.optimizers[player]
        opt.zero_grad(set_to_none=True)
        logs: dict[str, float] = {}
        for _ in range(self.accum_steps):
            batch = self._to_device(next(batches))
            with self._autocast():
                loss, metrics = compute(batch)
            self._check(loss.detach(), *self._loss_owner(player, loss.detach(), batch))
            self.scaler.scale(loss / self.accum_steps).backward()
            for k, v in metrics.items():
                logs[k] = logs.get(k, 0.0) + float(v) / self.accum_steps
        self._check_update((player,), "gradient")
        self.scaler.step(opt)
        self.scaler.update()
        self._check_update((player,), "update")
        return logs

    def _to_device(self, batch: dict) -> dict:
        return {k: (v.to(self.device, non_blocking=True) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}

    def _private_view(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """(input, private target) for the privacy terms; cross-dataset batches carry their own."""
        x = batch.get("privacy_input", batch["input"])
        if self.budget.reconstruction:
            return x, x
        return x, batch.get("privacy_private", batch.get("private"))

    def _budget_outputs(self, z: torch.Tensor, models: list[int] | None = None) -> list[torch.Tensor]:
        idx = range(len(self.budget)) if models is None else models
        if self.standardise_budget and not self.budget.reconstruction:
            z = standardise_channels(z)
        return [self.budget.models[i](z) for i in idx]

    def _pooled(self, outs: list[torch.Tensor], target: torch.Tensor) -> list[torch.Tensor]:
        """``outs`` plus, with ``pool_k``, each model's pooled logits over the batch's identity groups."""
        if self.pool_k < 2:
            return outs
        check_groups(target, self.pool_k)
        return outs + [pool_logits(o, self.pool_k) for o in outs]

    # ------------------------------------------------------------------ moves
    def encoder_move(self, batches: Batches, *, strongest: int | None = None) -> dict:
        """f_d step on ``L_T + gamma * agg_{i in A} L_priv(f_b^i(f_d(x)))``; f_T and f_b frozen.

        ``strongest``: the budget model the schedule picked; the privacy term uses it alone when the
        game plays ``against="strongest"`` (and ignores it against ``all``).
        """
        if not self.encoder_trainable:
            return {}
        models = None
        if self.against == "strongest":
            if strongest is None:
                raise ValueError("encoder_move: a game against the strongest adversary needs strongest=<index>")
            models = [strongest]

        def compute(batch):
            if self.substitution is not None:  # the release is a draw: expected losses over the bank
                return self.substitution.encoder_loss(self, batch, models)
            x = batch["input"]
            z = self.encoder(x)
            logs = {}
            loss = torch.zeros((), device=z.device)
            if "utility" in batch and batch["utility"] is not None:
                out_t = self.utility(z)
                l_t = adversary_loss(out_t, batch["utility"]).mean()
                loss = loss + l_t
                logs["loss/utility"] = l_t.item()
                logs["acc/utility_train"] = correct(out_t, batch["utility"]).mean().item()
            xp, yp = self._private_view(batch)
            zp = z if xp is x else self.encoder(xp)
            outs = self._pooled(self._budget_outputs(zp, models), yp)
            per = torch.stack([self._privacy_loss(o.float(), yp, self.multilabel) for o in outs])
            l_p = BudgetEnsemble.aggregate(per, self.aggregate)
            loss = loss + self.gamma * l_p
            logs["loss/privacy"] = l_p.item()
            if self.l1_weight > 0 and z.shape == x.shape:
                l1 = (z - x).abs().mean()
                loss = loss + self.l1_weight * l1
                logs["loss/l1"] = l1.item()
            logs["loss/encoder"] = loss.item()
            return loss, logs

        self.encoder.train()
        with self._frozen(self.utility, self.budget):
            return self._move("encoder", batches, compute)

    def utility_move(self, batches: Batches, with_encoder: bool = True) -> dict:
        """f_T step on L_T (and f_d with it when ``with_encoder``); f_b untouched."""
        train_enc = with_encoder and self.encoder_trainable

        def compute(batch):
            if train_enc:
                z = self.encoder(batch["input"])
            else:
                with torch.no_grad():
                    z = self.encoder(batch["input"])
            out = self.utility(z)
            l_t = adversary_loss(out, batch["utility"]).mean()
            return l_t, {"loss/utility": l_t.item(), "acc/utility_train": correct(out, batch["utility"]).mean().item()}

        self.utility.train()
        ctx = contextlib.nullcontext() if train_enc else self._frozen(self.encoder)
        if train_enc:
            self.encoder.train()
        with ctx:
            logs = self._move("utility", batches, compute) if not train_enc else self._joint_move(batches, compute)
        return logs

    def _joint_move(self, batches: Batches, compute) -> dict:
        # f_T and f_d on L_T: one backward, both optimizers step
        opt_u, opt_e = self.optimizers["utility"], self.optimizers["encoder"]
        opt_u.zero_grad(set_to_none=True)
        opt_e.zero_grad(set_to_none=True)
        logs: dict[str, float] = {}
        with self._frozen(self.budget):
            for _ in range(self.accum_steps):
                batch = self._to_device(next(batches))
                with self._autocast():
                    loss, metrics = compute(batch)
                self._check(loss.detach(), *self._loss_owner("utility", loss.detach(), batch))
                self.scaler.scale(loss / self.accum_steps).backward()
                for k, v in metrics.items():
                    logs[k] = logs.get(k, 0.0) + float(v) / self.accum_steps
        self._check_update(("encoder", "utility"), "gradient")
        self.scaler.step(opt_u)
        self.scaler.step(opt_e)
        self.scaler.update()
        self._check_update(("encoder", "utility"), "update")
        return logs

    def budget_move(self, batches: Batches, models: list[int] | None = None) -> dict:
        """f_b step: every (or the listed) budget model on L_B with f_d frozen."""
        idx = list(range(len(self.budget))) if models is None else models
        idx = [i for i in idx if any(p.requires_grad for p in self.budget.models[i].parameters())]
        if not idx:  # closed-form adversaries only (CPGAN): nothing to train by gradient
            return {}

        def compute(batch):
            xp, yp = self._private_view(batch)
            with torch.no_grad():
                z = self.encoder(xp)
            outs = self._budget_outputs(z, idx)
            pooled = self._pooled(outs, yp)[len(outs):]
            losses = [adversary_loss(o.float(), yp, self.multilabel, self.budget.reconstruction).mean() for o in outs]
            pooled_losses = [adversary_loss(o, yp).mean() for o in pooled]
            logs = {"loss/budget": torch.stack(losses).mean().item()}
            if pooled:
                logs["loss/budget_pooled"] = torch.stack(pooled_losses).mean().item()
                logs["acc/budget_pooled_train_max"] = max(correct(o, yp).mean().item() for o in pooled)
            if not self.budget.reconstruction:
                accs = [correct(o, yp, self.multilabel).mean().item() for o in outs]
                logs["acc/budget_train_min"] = min(accs)
                logs["acc/budget_train_max"] = max(accs)
            for i, l in zip(idx, losses):
                logs[f"loss/budget_{i}"] = l.item()
            return torch.stack(losses + pooled_losses).sum(), logs

        self.budget.train()
        with self._frozen(self.encoder, self.utility):
            logs = self._move("budget", batches, compute)
        self.last_budget_loss = logs["loss/budget"]
        return logs

    def encoder_identity_move(self, batches: Batches) -> dict:
        """Initialisation (1): f_d towards the identity by reconstruction (MSE of frames); nothing for a
        substitution encoder (its release is a bank clip, not a transform of the input)."""
        if not self.encoder_trainable or self.substitution is not None:
            return {}

        def compute(batch):
            x = batch["input"]
            z = self.encoder(x)
            if z.shape != x.shape:
                target = x.mean(dim=1, keepdim=True) if z.shape[1] == 1 else x
                if z.shape != target.shape:
                    return torch.zeros((), requires_grad=True, device=x.device), {}
            else:
                target = x
            l = ((z - target) ** 2).mean()
            return l, {"loss/identity": l.item()}

        self.encoder.train()
        with self._frozen(self.utility, self.budget):
            return self._move("encoder", batches, compute)

    @torch.no_grad()
    def utility_accuracy(self, batch: dict) -> float:
        """f_T's accuracy on one (validation) batch, in eval mode."""
        batch = self._to_device(batch)
        modes = (self.encoder.training, self.utility.training)
        self.encoder.eval()
        self.utility.eval()
        try:
            with self._autocast():
                out = self.utility(self.encoder(batch["input"]))
            return correct(out.float(), batch["utility"]).mean().item()
        finally:
            self.encoder.train(modes[0])
            self.utility.train(modes[1])

    @torch.no_grad()
    def recalibrate_utility_bn(self, batches: Batches, n_batches: int) -> int:
        """Recompute f_T's batch-norm statistics as plain averages over ``n_batches`` of the release.

        During training the running statistics are moving averages of the last few batches, taken
        while f_d still changed; the deployed f_T (eval mode) then sees other statistics than the
        ones it was trained with. Only the statistics change (no parameter moves). Returns the number
        of batch-norm layers recalibrated.
        """
        bns = [m for m in self.utility.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if not bns or n_batches <= 0:
            return 0
        momenta = [m.momentum for m in bns]
        modes = (self.encoder.training, self.utility.training)
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # cumulative average
        self.encoder.eval()
        self.utility.train()
        try:
            for _ in range(n_batches):
                batch = self._to_device(next(batches))
                with self._autocast():
                    self.utility(self.encoder(batch["input"]))
        finally:
            for m, mom in zip(bns, momenta):
                m.momentum = mom
            self.encoder.train(modes[0])
            self.utility.train(modes[1])
        return len(bns)

    def restart_budget(self, batches: Batches, steps: int | None = None) -> dict:
        """Re-initialise the budget models and their optimizer state, then retrain them."""
        self.budget.restart(self.generator)
        opt = self.optimizers["budget"]
        opt.state.clear()
        logs: dict[str, float] = {}
        for _ in range(self.restart_steps if steps is None else steps):
            logs = self.budget_move(batches)
        log.debug("budget models restarted at step %d", self.step_count)
        return {f"restart/{k}": v for k, v in logs.items()}

    # ------------------------------------------------------------------ top level
    def step(self, batches: Batches, val_batches: Batches | None = None) -> dict:
        """One top-level step of the schedule (and a restart when due); returns named metrics."""
        logs = self.schedule(self, batches, val_batches)
        restarted = self.restarter.should_restart(self.step_count + 1, self.last_budget_loss)
        if restarted:
            logs.update(self.restart_budget(batches))
        logs["restarted"] = int(restarted)
        self.step_count += 1
        self.l1_weight *= self.l1_decay
        for k, v in logs.items():
            if isinstance(v, float) and math.isnan(v):
                raise NonFiniteLossError(self.step_count, _player_of(k), k, self._lr(_player_of(k)))
        return logs

    def state_dict(self) -> dict:
        st = {
            "encoder": self.encoder.state_dict(),
            "utility": self.utility.state_dict(),
            "budget": self.budget.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "scaler": self.scaler.state_dict(),
            "schedule": self.schedule.state_dict(),
            "restarter": self.restarter.state_dict(),
            "step_count": self.step_count,
            "generator": self.generator.get_state(),
            "l1_weight": self.l1_weight,
            "last_budget_loss": self.last_budget_loss,
        }
        gen = self._encoder_generator()
        if gen is not None:
            st["encoder_generator"] = gen.get_state()
        if self.substitution is not None:
            st["substitution"] = self.substitution.state_dict()
        return st

    def _encoder_generator(self) -> torch.Generator | None:
        """The release's own random draws (a randomised motion encoder), resumed with the game."""
        gen = getattr(self.encoder, "generator", None)
        return gen if isinstance(gen, torch.Generator) else None

    def load_state_dict(self, s: dict) -> None:
        self.encoder.load_state_dict(s["encoder"])
        self.utility.load_state_dict(s["utility"])
        self.budget.load_state_dict(s["budget"])
        for k, o in self.optimizers.items():
            o.load_state_dict(s["optimizers"][k])
        if s.get("scaler"):
            self.scaler.load_state_dict(s["scaler"])
        self.schedule.load_state_dict(s["schedule"])
        self.restarter.load_state_dict(s["restarter"])
        self.step_count = int(s["step_count"])
        self.generator.set_state(s["generator"])
        gen = self._encoder_generator()
        if gen is not None and "encoder_generator" in s:
            gen.set_state(s["encoder_generator"].cpu())
        self.l1_weight = float(s["l1_weight"])
        self.last_budget_loss = s["last_budget_loss"]
        if self.substitution is not None and "substitution" in s:
            self.substitution.load_state_dict(s["substitution"])
