"""CPGAN's multiple-adversary schedule (Tseng & Wu, TIFS 2020) on the shared game.

CPGAN trains a compressing privatizer G (f_d) with a utility classifier C (f_T) against several
reconstruction adversaries R_i (f_b): an NN decoder and two closed-form regressors (linear ridge and
RFF kernel ridge, see :mod:`privacam.models.compress`). The privatizer loss of the paper is
``lambda * CE(C(z), y) - MSE(x, R(z))``; dividing by lambda gives the game's encoder objective
``L_T - gamma * L_B^k`` with ``gamma = 1 / lambda`` (``game.gamma`` in the config), where ``L_B^k`` is the
per-sample MSE of the adversary k that reconstructs best on validation. A neural decoder can be
under-trained, so it is never trusted alone: the strongest of all adversaries is picked every step.

One top-level step (``multi_adversary``):

1. remember the step's training inputs in a buffer of the ``buffer_size`` most recent ones;
2. fit every closed-form reconstructor on (f_d(x), x) over the buffer (no gradients);
3. train the neural decoder(s) for ``decoder_steps`` steps (``budget_move`` on those models only);
4. measure each adversary's reconstruction MSE on a validation batch and pick the lowest;
5. ``encoder_steps`` f_d steps on ``L_T - gamma * L_B^strongest`` (f_T and f_b frozen);
6. ``utility_steps`` steps of f_T (and f_d with it, ``utility_with_encoder``) on L_T.
"""

from __future__ import annotations

import logging
import math
from typing import Sequence

import torch

from ..registry import register_schedule
from .schedules import Schedule

log = logging.getLogger(__name__)


def pick_strongest(val_errors: Sequence[float]) -> int:
    """Index of the adversary with the lowest validation reconstruction error (NaN never wins;
    ties go to the first)."""
    if not len(val_errors):
        raise ValueError("pick_strongest: no adversaries")
    vals = [math.inf if (v is None or math.isnan(float(v))) else float(v) for v in val_errors]
    return int(min(range(len(vals)), key=lambda i: vals[i]))


def is_closed_form(model: torch.nn.Module) -> bool:
    """Closed-form adversaries are fitted (``fit(z, x)``) rather than trained by gradient steps."""
    return callable(getattr(model, "fit", None)) and not any(True for _ in model.parameters())


class MultiAdversarySchedule(Schedule):
    """CPGAN's schedule: fit closed-form adversaries, train the decoder, pick the strongest on
    validation, then step the privatizer f_d against it (see the module docstring).

    Args:
        encoder_steps: f_d steps per top-level step.
        decoder_steps: NN-decoder steps per top-level step.
        utility_steps: f_T steps per top-level step.
        buffer_size: recent training inputs the closed-form adversaries are fitted on.
        utility_with_encoder: f_d also moves on L_T during the utility steps.
        weight: privacy weight of the f_d step (default: the game's ``gamma`` = 1/lambda).
    """

    def __init__(self, encoder_steps: int = 1, decoder_steps: int = 2, utility_steps: int = 1, buffer_size: int = 512,
                 utility_with_encoder: bool = True, weight: float | None = None):
        self.encoder_steps, self.decoder_steps, self.utility_steps = encoder_steps, decoder_steps, utility_steps
        self.buffer_size = int(buffer_size)
        self.utility_with_encoder = utility_with_encoder
        self.weight = weight
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
        from .losses import adversary_loss

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
            raise ValueError("the multi_adversary schedule needs reconstruction adversaries (task: cpgan)")
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
            logs.update(game.encoder_move(batches, "kbeam", target_model=self.strongest, weight=self.weight))
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


@register_schedule("multi_adversary")
def multi_adversary(encoder_steps: int = 1, decoder_steps: int = 2, utility_steps: int = 1, buffer_size: int = 512,
                    utility_with_encoder: bool = True, weight: float | None = None) -> Schedule:
    """CPGAN: f_d steps against the adversary (NN decoder, linear ridge, RFF kernel ridge) that
    reconstructs best on validation; all settings have defaults (``schedule_params`` maps none)."""
    return MultiAdversarySchedule(encoder_steps, decoder_steps, utility_steps, buffer_size, utility_with_encoder, weight)
