"""Schedules: which player moves next. Each schedule is a class registered under its name and owns its
settings (``schedule: {name, params}`` in a config; ``params`` are the class's keyword arguments).

- ``entropy``: the ECCV 2018 alternation. (a) one f_d step on the game's objective;
  (b) while f_T's validation accuracy is below ``utility_bar``: f_T and f_d on L_T;
  (c) while the weakest budget model's training accuracy is below ``budget_bar``: f_b steps.
- ``grl``: one step per player per iteration (f_d, then f_T alone, then every f_b); with
  ``game.privacy_loss=neg_ce`` and ``game.aggregate=mean`` this is gradient reversal.
- ``kbeam``: K-beam minimax (Hamm & Noh): up to ``encoder_steps`` f_d steps against the strongest
  budget model; up to ``budget_steps`` budget steps (stop when the strongest reaches the bar), then
  re-pick the strongest (lowest L_B); f_T/f_d on L_T until the bar, a plateau, or ``utility_steps``.
- ``multi_adversary``: CPGAN's schedule (Tseng & Wu, TIFS 2020): fit the closed-form reconstructors,
  train the neural decoder, pick the adversary that reconstructs best on validation, step f_d
  against it, then f_T.

The encoder's objective is the game's (privacy loss, adversaries, aggregation, ``gamma``); schedules
that pick a strongest adversary (``picks_strongest``) pass it to ``encoder_move`` and need
``game.against=strongest`` to have it used. Inner loops are capped so a step has bounded cost;
restarting (every R steps or on plateau) is handled by the game for every schedule.
"""

from __future__ import annotations

import logging
import math
from typing import Sequence

import torch

from ..config import IsBool, Range, Rule
from ..models.reconstructors import is_closed_form
from ..registry import register_schedule
from .losses import adversary_loss

log = logging.getLogger(__name__)


class Schedule:
    """Base: ``__call__(game, batches, val_batches) -> dict``; stateful schedules save state.

    ``picks_strongest``: the schedule picks one budget model for the encoder to play against.
    """

    picks_strongest = False
    #: the values each of the schedule's settings (``schedule.params``) may take; a test keeps it in
    #: step with ``__init__``'s parameters
    param_rules: dict[str, Rule] = {}

    def __call__(self, game, batches, val_batches) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


@register_schedule("entropy")
class EntropySchedule(Schedule):
    """Wu et al.'s alternation (ECCV 2018): one f_d step, then f_T (with f_d) while its validation
    accuracy is under ``utility_bar`` (at most ``max_utility_steps``), then f_b while the weakest budget
    model's training accuracy is under ``budget_bar`` (at most ``max_budget_steps``)."""

    param_rules = {"utility_bar": Range(0), "budget_bar": Range(0),  # accuracy bars: above 1 never reached
                   "max_utility_steps": Range(0, integer=True), "max_budget_steps": Range(0, integer=True),
                   "monitor": IsBool()}

    def __init__(self, utility_bar: float = 0.85, budget_bar: float = 0.99, max_utility_steps: int = 5, max_budget_steps: int = 5,
                 monitor: bool = True):
        self.utility_bar, self.budget_bar = utility_bar, budget_bar
        self.max_utility_steps, self.max_budget_steps = max_utility_steps, max_budget_steps
        self.monitor = bool(monitor)  # f_T's validation accuracy every step, even when no utility step reads it

    def __call__(self, game, batches, val_batches) -> dict:
        # (a) encoder step: minimise L_T + gamma * agg_i L_priv(f_b^i); f_T and f_b frozen
        logs = dict(game.encoder_move(batches))
        # (b) utility steps: f_T (with f_d) on L_T while validation accuracy is under the bar
        n_u = 0
        if self.max_utility_steps > 0 or self.monitor:
            acc = game.utility_accuracy(next(val_batches)) if val_batches is not None else 0.0
            while acc < self.utility_bar and n_u < self.max_utility_steps:
                logs.update({k + "_b": v for k, v in game.utility_move(batches, with_encoder=True).items()})
                n_u += 1
                acc = game.utility_accuracy(next(val_batches)) if val_batches is not None else logs.get("acc/utility_train_b", 0.0)
            logs["acc/utility_val"] = acc
        # (c) budget steps: minimise L_B over f_b while the weakest model is under the bar; f_d frozen
        n_b = 0
        while n_b < self.max_budget_steps:
            b = game.budget_move(batches)
            logs.update(b)
            n_b += 1
            if b.get("acc/budget_train_min", 0.0) >= self.budget_bar:
                break
        logs["n/utility_steps"], logs["n/budget_steps"] = n_u, n_b
        return logs


@register_schedule("grl")
class GRLSchedule(Schedule):
    """One step per player per iteration: f_d on the game's objective, f_T alone on L_T, every f_b on
    L_B. With ``game.privacy_loss=neg_ce, game.aggregate=mean`` the f_d step is gradient reversal,
    ``L_T - gamma * mean_i L_B^i``. No settings."""

    def __call__(self, game, batches, val_batches) -> dict:
        # encoder step: minimise L_T + gamma * agg_i L_priv(f_b^i) (neg_ce: the reversed adversary gradient)
        logs = dict(game.encoder_move(batches))
        # utility step: minimise L_T over f_T only
        logs.update({k + "_u": v for k, v in game.utility_move(batches, with_encoder=False).items()})
        # budget step: minimise L_B over every f_b^i; f_d frozen
        logs.update(game.budget_move(batches))
        if val_batches is not None:
            logs["acc/utility_val"] = game.utility_accuracy(next(val_batches))
        return logs


@register_schedule("kbeam")
class KBeamSchedule(Schedule):
    """K-beam minimax (Hamm & Noh; Wu et al.'s journal version): up to ``encoder_steps`` f_d steps
    against the strongest budget model (stopping once it is no better than a uniform guess), up to
    ``budget_steps`` f_b steps (until the strongest reaches ``budget_bar``), re-pick the strongest
    (lowest L_B), then f_T and f_d on L_T until ``utility_bar``, a ``plateau`` of validation accuracy,
    or ``utility_steps``. Play it with ``game.against=strongest`` (and ``game.privacy_loss=neg_ce``)."""

    picks_strongest = True
    param_rules = {"utility_bar": Range(0), "budget_bar": Range(0), "encoder_steps": Range(0, integer=True),
                   "budget_steps": Range(0, integer=True), "utility_steps": Range(0, integer=True),
                   "plateau": Range(0, integer=True)}

    def __init__(self, utility_bar: float = 0.85, budget_bar: float = 0.99, encoder_steps: int = 5,
                 budget_steps: int = 20, utility_steps: int = 5, plateau: int = 10):
        self.utility_bar, self.budget_bar = utility_bar, budget_bar
        self.encoder_steps, self.budget_steps, self.utility_steps = encoder_steps, budget_steps, utility_steps
        self.plateau = plateau
        self.strongest = 0

    def __call__(self, game, batches, val_batches) -> dict:
        logs: dict = {}
        # (a) encoder steps: minimise L_T + gamma * L_priv of the strongest budget model; others frozen
        chance = None
        for n_e in range(1, self.encoder_steps + 1):
            e = game.encoder_move(batches, strongest=self.strongest)
            logs.update(e)
            if not e:
                break
            # stop once the strongest model is no better than a uniform guess
            chance = chance or math.log(max(2, _num_outputs(game)))
            if -e.get("loss/privacy", 0.0) >= chance:
                break
        logs["n/encoder_steps"] = n_e if self.encoder_steps else 0
        # (b) budget steps: every f_b^k on L_B until the strongest reaches the bar; re-pick it
        for n_b in range(1, self.budget_steps + 1):
            b = game.budget_move(batches)
            logs.update(b)
            if b.get("acc/budget_train_max", 0.0) >= self.budget_bar:
                break
        losses = [b.get(f"loss/budget_{i}", math.inf) for i in range(len(game.budget))]
        self.strongest = int(min(range(len(losses)), key=lambda i: losses[i]))
        logs["n/budget_steps"], logs["strongest"] = n_b, self.strongest
        # (c) utility steps: f_T and f_d on L_T until the bar, a plateau, or the cap
        best, since, n_u = -1.0, 0, 0
        acc = game.utility_accuracy(next(val_batches)) if val_batches is not None else 0.0
        while acc < self.utility_bar and n_u < self.utility_steps and since < self.plateau:
            logs.update({k + "_c": v for k, v in game.utility_move(batches, with_encoder=True).items()})
            n_u += 1
            acc = game.utility_accuracy(next(val_batches)) if val_batches is not None else 0.0
            best, since = (acc, 0) if acc > best else (best, since + 1)
        logs["acc/utility_val"], logs["n/utility_steps"] = acc, n_u
        return logs

    def state_dict(self) -> dict:
        return {"strongest": self.strongest}

    def load_state_dict(self, state: dict) -> None:
        self.strongest = int(state.get("strongest", 0))


def _num_outputs(game) -> int:
    last = [m for m in game.budget.models[0].modules() if hasattr(m, "out_features")]
    return last[-1].out_features if last else 2


# ---------------------------------------------------------------------------------------------- CPGAN
def pick_strongest(val_errors: Sequence[float]) -> int:
    """Index of the adversary with the lowest validation reconstruction error (NaN never wins;
    ties go to the first)."""
    if not len(val_errors):
        raise ValueError("pick_strongest: no adversaries")
    vals = [math.inf if (v is None or math.isnan(float(v))) else float(v) for v in val_errors]
    return int(min(range(len(vals)), key=lambda i: vals[i]))


@register_schedule("multi_adversary")
class MultiAdversarySchedule(Schedule):
    """CPGAN's schedule (Tseng & Wu, TIFS 2020) against reconstruction adversaries f_b: an NN decoder
    and closed-form regressors (:mod:`privacam.models.reconstructors`). The paper's privatizer loss
    ``lambda * CE - MSE`` is the game's ``L_T + gamma * neg_mse`` of the strongest adversary with
    ``gamma = 1 / lambda``; a neural decoder can be under-trained, so it is never trusted alone: the
    strongest of all adversaries is picked every step. One top-level step:

    1. remember the step's training inputs in a buffer of the ``buffer_size`` most recent ones;
    2. fit every closed-form reconstructor on (f_d(x), x) over the buffer (no gradients);
    3. train the neural decoder(s) for ``decoder_steps`` steps (``budget_move`` on those models only);
    4. measure each adversary's reconstruction MSE on a validation batch and pick the lowest;
    5. ``encoder_steps`` f_d steps on the game's objective (``game.against=strongest``);
    6. ``utility_steps`` steps of f_T (and f_d with it, ``utility_with_encoder``) on L_T.

    Args:
        encoder_steps: f_d steps per top-level step.
        decoder_steps: NN-decoder steps per top-level step.
        utility_steps: f_T steps per top-level step.
        buffer_size: recent training inputs the closed-form adversaries are fitted on.
        utility_with_encoder: f_d also moves on L_T during the utility steps.
    """

    picks_strongest = True
    param_rules = {"encoder_steps": Range(0, integer=True), "decoder_steps": Range(0, integer=True),
                   "utility_steps": Range(0, integer=True), "buffer_size": Range(1, integer=True),
                   "utility_with_encoder": IsBool()}

    def __init__(self, encoder_steps: int = 1, decoder_steps: int = 2, utility_steps: int = 1, buffer_size: int = 512,
                 utility_with_encoder: bool = True):
        self.encoder_steps, self.decoder_steps, self.utility_steps = encoder_steps, decoder_steps, utility_steps
        self.buffer_size = int(buffer_size)
        self.utility_with_encoder = utility_with_encoder
        self.strongest = 0
        self.buffer: torch.Tensor | None = None

    # ----------------------------------------------------------------------------- pieces
    def remember(self, x: torch.Tensor) -> None:
        """Append a batch of inputs to the buffer, keeping the ``buffer_size`` most recent."""
        x = x.detach()
        self.buffer = x if self.buffer is None else torch.cat([self.buffer.to(x.device), x])[-self.buffer_size:]

    @torch.no_grad()
    def _codes(self, game, x: torch.Tensor) -> torch.Tensor:
        was = game.encoder.training
        game.encoder.eval()
        try:
            return game.encoder(x)
        finally:
            game.encoder.train(was)

    @torch.no_grad()
    def fit_closed_form(self, game) -> list[int]:
        """Fit every closed-form adversary on (f_d(x), x) over the buffer; returns their indices."""
        idx = [i for i, m in enumerate(game.budget.models) if is_closed_form(m)]
        if idx and self.buffer is not None:
            x = self.buffer.to(game.device)
            z = self._codes(game, x)
            for i in idx:
                game.budget.models[i].fit(z, x)
        return idx

    @torch.no_grad()
    def validation_errors(self, game, batch: dict) -> list[float]:
        """Each adversary's mean reconstruction MSE on ``batch`` (all players in eval mode)."""
        batch = game._to_device(batch)
        x, target = game._private_view(batch)
        z = self._codes(game, x)
        was = game.budget.training
        game.budget.eval()
        try:
            return [float(adversary_loss(m(z).float(), target, reconstruction=True).mean()) for m in game.budget.models]
        finally:
            game.budget.train(was)

    # ----------------------------------------------------------------------------- one step
    def __call__(self, game, batches, val_batches) -> dict:
        if not game.budget.reconstruction:
            raise ValueError("the multi_adversary schedule needs reconstruction adversaries (budget.names: decoder, ridge, rff_ridge)")
        logs: dict = {}
        first = next(batches)
        x = first.get("privacy_input", first["input"])
        self.remember(x)
        # (1) closed-form adversaries: least squares on the buffer of (f_d(x), x); f_d frozen
        closed = self.fit_closed_form(game)
        # (2) decoder steps: minimise the reconstruction MSE over the NN decoder(s); f_d frozen
        trained = [i for i in range(len(game.budget)) if i not in closed]
        for _ in range(self.decoder_steps if trained else 0):
            logs.update(game.budget_move(batches, models=trained))
        # (3) strongest adversary: the lowest reconstruction MSE on a validation batch
        val_batch = next(val_batches) if val_batches is not None else first
        errors = self.validation_errors(game, val_batch)
        self.strongest = pick_strongest(errors)
        for i, e in enumerate(errors):
            logs[f"mse/val_{i}"] = e
        logs["mse/val_best"] = errors[self.strongest]
        logs["strongest"] = self.strongest
        # (4) privatizer steps: minimise L_T - gamma * MSE(x, R_k(f_d(x))) of the strongest R_k; f_T, f_b frozen
        for _ in range(self.encoder_steps):
            logs.update(game.encoder_move(batches, strongest=self.strongest))
        # (5) utility steps: minimise L_T over f_T (and f_d); f_b untouched
        for _ in range(self.utility_steps):
            logs.update({k + "_u": v for k, v in game.utility_move(batches, with_encoder=self.utility_with_encoder).items()})
        logs["acc/utility_val"] = game.utility_accuracy(val_batch)
        logs["n/closed_form"], logs["n/decoder_steps"] = len(closed), self.decoder_steps if trained else 0
        return logs

    def state_dict(self) -> dict:
        return {"strongest": self.strongest, "buffer": None if self.buffer is None else self.buffer.cpu()}

    def load_state_dict(self, state: dict) -> None:
        self.strongest = int(state.get("strongest", 0))
        self.buffer = state.get("buffer")
