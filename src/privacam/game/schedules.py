"""Schedules: which player moves next (the three strategies of Wu et al.'s journal version).

- ``entropy``: the ECCV 2018 alternation. (a) one f_d step on ``L_T + gamma * max_i L_priv^i``;
  (b) while f_T's validation accuracy is below ``utility_bar``: f_T and f_d on L_T;
  (c) while the weakest budget model's training accuracy is below ``budget_bar``: f_b steps.
- ``grl``: gradient reversal; one step per player per iteration, f_d on ``L_T - lambda * mean_i L_B^i``.
- ``kbeam``: K-beam minimax (Hamm & Noh): up to ``encoder_steps`` f_d steps against the strongest
  budget model; up to ``budget_steps`` budget steps (stop when the strongest reaches the bar), then
  re-pick the strongest; f_T/f_d on L_T until the bar, a plateau, or ``utility_steps``.

Inner loops are capped so a step has bounded cost; restarting (every R steps or on plateau) is
handled by the game for every schedule.
"""

from __future__ import annotations

import math

from ..registry import register_schedule


class Schedule:
    """Base: ``__call__(game, batches, val_batches) -> dict``; stateful schedules save state."""

    def __call__(self, game, batches, val_batches) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def _merge(logs: dict, new: dict) -> dict:
    logs.update(new)
    return logs


class EntropySchedule(Schedule):
    def __init__(self, utility_bar: float = 0.85, budget_bar: float = 0.99, max_utility_steps: int = 5, max_budget_steps: int = 5):
        self.utility_bar, self.budget_bar = utility_bar, budget_bar
        self.max_utility_steps, self.max_budget_steps = max_utility_steps, max_budget_steps

    def __call__(self, game, batches, val_batches) -> dict:
        # (a) encoder step: minimise L_T + gamma * max_i L_priv(f_b^i); f_T and f_b frozen
        logs = dict(game.encoder_move(batches, "game"))
        # (b) utility steps: f_T (with f_d) on L_T while validation accuracy is under the bar
        n_u = 0
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


class GRLSchedule(Schedule):
    def __init__(self, grl_lambda: float = 1.0, **_ignored):
        self.grl_lambda = grl_lambda

    def __call__(self, game, batches, val_batches) -> dict:
        # encoder step: minimise L_T - lambda * mean_i L_B^i (reversed adversary gradient)
        logs = dict(game.encoder_move(batches, "grl", weight=self.grl_lambda))
        # utility step: minimise L_T over f_T only
        logs.update({k + "_u": v for k, v in game.utility_move(batches, with_encoder=False).items()})
        # budget step: minimise L_B over every f_b^i; f_d frozen
        logs.update(game.budget_move(batches))
        if val_batches is not None:
            logs["acc/utility_val"] = game.utility_accuracy(next(val_batches))
        return logs


class KBeamSchedule(Schedule):
    def __init__(self, utility_bar: float = 0.85, budget_bar: float = 0.99, encoder_steps: int = 5,
                 budget_steps: int = 20, utility_steps: int = 5, plateau: int = 10, weight: float | None = None):
        self.utility_bar, self.budget_bar = utility_bar, budget_bar
        self.encoder_steps, self.budget_steps, self.utility_steps = encoder_steps, budget_steps, utility_steps
        self.plateau = plateau
        self.weight = weight
        self.strongest = 0

    def __call__(self, game, batches, val_batches) -> dict:
        logs: dict = {}
        # (a) encoder steps: maximise the strongest budget model's L_B (minus L_T); others frozen
        chance = None
        for n_e in range(1, self.encoder_steps + 1):
            e = game.encoder_move(batches, "kbeam", target_model=self.strongest, weight=self.weight)
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


@register_schedule("entropy")
def entropy(utility_bar: float = 0.85, budget_bar: float = 0.99, max_utility_steps: int = 5, max_budget_steps: int = 5) -> Schedule:
    return EntropySchedule(utility_bar, budget_bar, max_utility_steps, max_budget_steps)


@register_schedule("grl")
def grl(grl_lambda: float = 1.0) -> Schedule:
    return GRLSchedule(grl_lambda)


@register_schedule("kbeam")
def kbeam(utility_bar: float = 0.85, budget_bar: float = 0.99, encoder_steps: int = 5, budget_steps: int = 20,
          utility_steps: int = 5, plateau: int = 10, weight: float | None = None) -> Schedule:
    return KBeamSchedule(utility_bar, budget_bar, encoder_steps, budget_steps, utility_steps, plateau, weight)


def schedule_params(sched_cfg) -> dict:
    """Map the flat ``schedule.*`` config onto the chosen schedule's keyword arguments."""
    if sched_cfg.name == "entropy":
        return dict(utility_bar=sched_cfg.utility_bar, budget_bar=sched_cfg.budget_bar,
                    max_utility_steps=sched_cfg.max_utility_steps, max_budget_steps=sched_cfg.max_budget_steps)
    if sched_cfg.name == "grl":
        return dict(grl_lambda=sched_cfg.grl_lambda)
    if sched_cfg.name == "kbeam":
        return dict(utility_bar=sched_cfg.utility_bar, budget_bar=sched_cfg.budget_bar,
                    encoder_steps=sched_cfg.kbeam_encoder_steps, budget_steps=sched_cfg.kbeam_budget_steps,
                    utility_steps=sched_cfg.kbeam_utility_steps, plateau=sched_cfg.kbeam_plateau)
    if sched_cfg.name == "multi_adversary":  # CPGAN: the kbeam_* step counts are reused
        return dict(encoder_steps=sched_cfg.kbeam_encoder_steps, decoder_steps=sched_cfg.kbeam_budget_steps,
                    utility_steps=sched_cfg.kbeam_utility_steps)
    return {}
