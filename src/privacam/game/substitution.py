"""The substitution game (PASS, ICML 2025, carried to video): the encoder's objective when f_d releases a
bank clip drawn from ``p(j | x) = softmax(cos(f(x), e_j) / tau)``.

The release is a draw, so no gradient passes through it; every term is therefore an **expectation over the
softmax** ``sum_j p(j | x) * loss(j)``, exact over the whole bank, and its gradient reaches the embedding net
``f`` and the bank embeddings ``e_j`` through ``p``. The terms (weights are ``game.substitute.*``):

- ``task``: ``-log sum_j p(j | x) [y_j = y]``, the chance that the substitute shows the input's task label.
- ``model``: f_T's expected loss over the bank, ``sum_j p(j | x) CE(f_T(bank_j), y)`` (f_T's logits on the
  bank are refreshed every ``refresh`` steps: the bank is fixed and f_T is frozen during the encoder's move).
- ``spread``: the identities shown by the substitutes spread over the bank: ``KL(r_y || q(x))``, where
  ``q(x)`` is the distribution of the bank's identities under ``p(. | x)`` and ``r_y`` their distribution
  among the bank clips of the input's task label (so the term never fights the task).
- ``posterior``: the attacker who knows which bank clip was drawn (the strongest possible: the release is a
  function of the index) holds the posterior ``P(s | j)`` of the input's identity ``s``, estimated from the
  encoder's own choices (a running table of ``E[p(j | x) | s]``); the term is the expected negative entropy
  of that posterior, so choices move to bank clips that many people's inputs share.
- ``general``: what the clip says beyond its label: the expected squared distance between frozen, generic
  descriptors (:func:`~privacam.models.substitute.clip_descriptor`: where, how much and how the clip moves)
  of the input and of the substitute, standardised over the bank.
- the budget ensemble (``game.gamma``, the game's privacy loss and aggregation, pooled adversaries with
  ``game.pool_k``): each f_b's expected privacy loss over the bank (its logits on the bank refreshed with
  f_T's); f_b itself trains on real draws.
"""

from __future__ import annotations

import math
import torch
import torch.nn.functional as F

from ..config import SubstituteConfig
from ..models.common import standardise_channels
from .ensemble import BudgetEnsemble


class SubstituteObjective:
    """The encoder's expected losses over the bank, and the state they keep (the posterior table, f_T's
    and f_b's cached logits on the bank), saved with the game so a resumed run continues exactly."""

    def __init__(self, weights: SubstituteConfig | dict | None = None):
        self.w = weights if isinstance(weights, SubstituteConfig) else SubstituteConfig(**(weights or {}))
        self.table: torch.Tensor | None = None  # [S, N]: running E[p(j | x) | identity s]
        self.seen: torch.Tensor | None = None  # [S]: running frequency of each identity
        self.cache: dict[str, torch.Tensor] = {}  # f_T / f_b logits on the bank
        self.cached_at = -1

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        return {"table": self.table, "seen": self.seen, "cache": dict(self.cache), "cached_at": self.cached_at}

    def load_state_dict(self, s: dict) -> None:
        self.table, self.seen = s.get("table"), s.get("seen")
        self.cache, self.cached_at = dict(s.get("cache") or {}), int(s.get("cached_at", -1))

    # ------------------------------------------------------------------ the bank's logits
    @torch.no_grad()
    def _refresh(self, game, need_utility: bool, need_budget: bool) -> None:
        step = game.step_count
        fresh = self.cached_at >= 0 and step - self.cached_at < self.w.refresh
        if fresh and (not need_utility or "utility" in self.cache) and (not need_budget or "budget" in self.cache):
            return
        enc = game.encoder
        models = [game.utility] if need_utility else []
        models += list(game.budget.models) if need_budget else []
        modes = [m.training for m in models]
        for m in models:
            m.eval()
        first_budget = 1 if need_utility else 0
        outs: list[list[torch.Tensor]] = [[] for _ in models]
        try:
            for s in range(0, enc.bank_size, 64):
                clips = enc.bank[s:s + 64].to(game.device).float() / 255.0
                zb = standardise_channels(clips) if game.standardise_budget else clips
                for i, m in enumerate(models):
                    outs[i].append(m(zb if i >= first_budget else clips).float())
        finally:
            for m, t in zip(models, modes):
                m.train(t)
        self.cache = {}
        if need_utility:
            self.cache["utility"] = torch.cat(outs[0])
        if need_budget:
            self.cache["budget"] = torch.stack([torch.cat(o) for o in outs[first_budget:]])
        self.cached_at = step

    # ------------------------------------------------------------------ the loss
    def encoder_loss(self, game, batch: dict, models: list[int] | None = None) -> tuple[torch.Tensor, dict]:
        """The encoder's objective on ``batch`` and its logged parts."""
        enc, w = game.encoder, self.w
        x, y, s = batch["input"], batch["utility"], batch["private"]
        bank_u, bank_s = enc.bank_utility.to(x.device), enc.bank_private.to(x.device)
        logp = enc.log_probs(x).float()
        p = logp.exp()
        loss = torch.zeros((), device=x.device)
        logs: dict[str, float] = {}
        match = (p * (bank_u[None, :] == y[:, None]).float()).sum(1)
        logs["acc/substitute_task"] = float(match.detach().mean())
        logs["substitute/entropy"] = float(-(p * logp).sum(1).mean().detach())
        if w.task > 0:
            l_task = -torch.log(match.clamp_min(1e-8)).mean()
            loss = loss + w.task * l_task
            logs["loss/substitute_task"] = l_task.item()
        need_u, need_b = w.model > 0, game.gamma > 0
        if need_u or need_b:
            self._refresh(game, need_u, need_b)
        if need_u:
            ce = -torch.log_softmax(self.cache["utility"].to(x.device), 1)[:, y].t()  # [B, N]
            l_model = (p * ce).sum(1).mean()
            loss = loss + w.model * l_model
            logs["loss/utility"] = l_model.item()
        if w.spread > 0:
            l_spread = self._spread(p, y, bank_u, bank_s)
            loss = loss + w.spread * l_spread
            logs["loss/substitute_spread"] = l_spread.item()
        post_h = self._posterior_entropy(p.detach(), s)  # kept up to date (and logged) whatever its weight
        if post_h is not None:
            l_post = -(p * post_h[None, :]).sum(1).mean()
            logs["loss/substitute_posterior"] = l_post.item()
            if w.posterior > 0:
                loss = loss + w.posterior * l_post
        if w.general > 0:
            l_gen = (p * enc.descriptor_distance(x).detach()).sum(1).mean()
            loss = loss + w.general * l_gen
            logs["loss/substitute_general"] = l_gen.item()
        if need_b:
            l_p = self._budget_term(game, p, s, models)
            loss = loss + game.gamma * l_p
            logs["loss/privacy"] = l_p.item()
        logs["loss/encoder"] = loss.item()
        return loss, logs

    def _spread(self, p: torch.Tensor, y: torch.Tensor, bank_u: torch.Tensor, bank_s: torch.Tensor) -> torch.Tensor:
        n_s = int(bank_s.max()) + 1
        n_u = int(max(int(bank_u.max()), int(y.max()))) + 1
        onehot_s = F.one_hot(bank_s, n_s).float()  # [N, S]
        q = p @ onehot_s  # [B, S]: identities the substitutes show
        counts = F.one_hot(bank_u, n_u).float().t() @ onehot_s  # [U, S]: bank identities per task label
        r = counts / counts.sum(1, keepdim=True).clamp_min(1)
        r = torch.where(counts.sum(1, keepdim=True) > 0, r, torch.full_like(r, 1.0 / n_s))[y]  # [B, S]
        return (r * (torch.log(r.clamp_min(1e-12)) - torch.log(q.clamp_min(1e-8)))).sum(1).mean()

    @torch.no_grad()
    def _posterior_entropy(self, p: torch.Tensor, s: torch.Tensor) -> torch.Tensor | None:
        """Update the running table ``E[p(j | x) | s]`` with this batch; the entropy of ``P(s | j)`` per bank
        clip, in units of its maximum (1 = the drawn clip says nothing of who the input shows)."""
        if s.dim() != 1:  # multi-label private attributes: no identity posterior
            return None
        n_s = max(int(s.max()) + 1, self.table.shape[0] if self.table is not None else 0)
        n = p.shape[1]
        if self.table is None or self.table.shape[1] != n or self.table.shape[0] < n_s:
            old = self.table
            self.table = torch.full((n_s, n), 1.0 / n, device=p.device)
            self.seen = torch.zeros(n_s, device=p.device)
            if old is not None and old.shape[1] == n:
                self.table[: old.shape[0]] = old
        m = self.w.momentum
        onehot = F.one_hot(s, self.table.shape[0]).float()  # [B, S]
        present = onehot.sum(0) > 0
        mean = (onehot.t() @ p) / onehot.sum(0).clamp_min(1)[:, None]
        self.table[present] = m * self.table[present] + (1 - m) * mean[present]
        self.seen = m * self.seen + (1 - m) * onehot.mean(0)
        joint = self.table * self.seen.clamp_min(1e-6)[:, None]  # [S, N] ∝ P(s) P(j | s)
        post = joint / joint.sum(0, keepdim=True).clamp_min(1e-12)
        return -(post * torch.log(post.clamp_min(1e-12))).sum(0) / math.log(max(2, self.table.shape[0]))

    def _budget_term(self, game, p: torch.Tensor, s: torch.Tensor, models: list[int] | None) -> torch.Tensor:
        bank_logits = self.cache["budget"].to(p.device)  # [M, N, S]
        idx = range(bank_logits.shape[0]) if models is None else models
        b, n = p.shape
        per = []
        for i in idx:
            lg = bank_logits[i]
            rows = lg[None].expand(b, n, lg.shape[1]).reshape(b * n, -1)
            target = s.repeat_interleave(n) if s.dim() == 1 else s.repeat_interleave(n, dim=0)
            l = game._privacy_loss(rows, target, game.multilabel).reshape(b, n)
            per.append((p * l).sum(1))
            if game.pool_k >= 2:  # the pooled adversary: expected summed log-probabilities of each identity's clips
                expected = p @ torch.log_softmax(lg, 1)  # [B, S]
                k = game.pool_k
                pooled = expected.reshape(b // k, k, -1).sum(1).repeat_interleave(k, dim=0)
                per.append(game._privacy_loss(pooled, s, game.multilabel))
        return BudgetEnsemble.aggregate(torch.stack(per), game.aggregate)


__all__ = ["SubstituteObjective"]
