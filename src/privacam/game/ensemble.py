"""The budget ensemble f_b^1..f_b^M: per-sample max of the privacy loss, and restarting."""

from __future__ import annotations

import logging
from typing import Callable, Sequence

import torch
from torch import nn

from ..models.common import reset_parameters

log = logging.getLogger(__name__)


class BudgetEnsemble(nn.Module):
    """M budget models f_b^i trained on the private labels; the encoder fights the most confident.

    Args:
        models: the M adversaries (each maps a batch to logits, or to a reconstruction).
        reconstruction: adversaries rebuild the input (CPGAN) instead of classifying.
    """

    def __init__(self, models: Sequence[nn.Module], *, reconstruction: bool = False):
        super().__init__()
        if not models:
            raise ValueError("a budget ensemble needs at least one model")
        self.models = nn.ModuleList(models)
        self.reconstruction = reconstruction

    def __len__(self) -> int:
        return len(self.models)

    def forward(self, z: torch.Tensor) -> list[torch.Tensor]:
        return [m(z) for m in self.models]

    @staticmethod
    def aggregate(per_model: torch.Tensor, how: str = "max") -> torch.Tensor:
        """Combine a ``[M, B]`` per-model, per-sample privacy loss into one scalar.

        ``max``: per sample, the model whose loss is highest — for negative entropy the most
        confident one — then the batch mean (Wu et al.). ``mean``: average over models and batch.
        """
        if how == "max":
            return per_model.max(dim=0).values.mean()
        if how == "mean":
            return per_model.mean()
        raise ValueError(f"unknown ensemble aggregate {how!r}; valid: max, mean")

    def restart(self, generator: torch.Generator | None = None) -> None:
        """Re-initialise every budget model randomly (Wu et al.'s restarting)."""
        for m in self.models:
            reset_parameters(m, generator)


class Restarter:
    """Decides when the budget models restart: every R steps and/or when L_B stops decreasing.

    Args:
        every: restart every ``every`` top-level steps (0 = never).
        plateau: restart when L_B has not reached a new minimum for ``plateau`` steps (0 = off).
    """

    def __init__(self, every: int = 0, plateau: int = 0):
        self.every, self.plateau = every, plateau
        self.best = float("inf")
        self.since_best = 0
        self.count = 0

    def should_restart(self, step: int, budget_loss: float | None) -> bool:
        due = self.every > 0 and step > 0 and step % self.every == 0
        if self.plateau > 0 and budget_loss is not None:
            if budget_loss < self.best - 1e-4:
                self.best, self.since_best = budget_loss, 0
            else:
                self.since_best += 1
            if self.since_best >= self.plateau:
                due = True
        if due:
            self.best, self.since_best = float("inf"), 0
            self.count += 1
        return due

    def state_dict(self) -> dict:
        return {"best": self.best, "since_best": self.since_best, "count": self.count}

    def load_state_dict(self, s: dict) -> None:
        self.best, self.since_best, self.count = float(s["best"]), int(s["since_best"]), int(s["count"])
