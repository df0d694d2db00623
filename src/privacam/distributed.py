"""Several processes, one game: data-parallel training through ``torch.distributed``.

Launch with ``torchrun`` (the documented path)::

    torchrun --nproc_per_node=2 -m privacam.cli train default --out runs/ddp

Each process (rank) plays the *same* game on a *different* shard of every batch stream, and after
every backward pass the gradients of the player that moves are averaged over the ranks before its
optimizer steps — the all-reduce that :class:`~torch.nn.parallel.DistributedDataParallel` would do,
done at the one place the game's moves share (``scaler.step(optimizer)``). Hand-rolled rather than
DDP-wrapped because the game freezes and unfreezes players between moves (``requires_grad``
toggling) and calls f_d several times per move, which DDP's bucketed reducer does not allow.

What keeps the ranks identical:

- every rank seeds the same way, so f_d, f_T and the budget models f_b^i start identical (rank 0's
  weights are broadcast once more for safety), and the restart generator draws the same
  re-initialisation on every rank — restarting stays identical;
- gradients of every update are averaged, so identical weights take identical steps;
- floating-point buffers (BatchNorm running statistics) are averaged after every move;
- the metrics a schedule branches on (validation accuracy of f_T, training accuracy and loss of f_b)
  are averaged, so every rank takes the same number of inner steps and the collectives line up;
- a non-finite loss on any rank stops every rank.

Batches: ``train.batch_size`` is per process (effective batch = world x batch_size). Epoch ``e``
draws one permutation of the dataset from ``(seed, e)`` — the same on every rank — and rank ``r``
takes its positions ``r, r + world, ...`` (truncated to a multiple of ``world``), so the shards are
disjoint and cover the data. Only rank 0 writes the run directory and checkpoints.

:func:`shard` spreads independent jobs (e.g. the N attackers of an evaluation) over ranks/devices.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Iterable, Sequence, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from .errors import NonFiniteLossError
from .game import AdversarialGame

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: ``rank`` of ``world`` processes (``world == 1``: not distributed)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    backend: str = ""

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def shard(items: Sequence[T] | Iterable[T], rank: int, world: int) -> list[T]:
    """The items rank ``rank`` of ``world`` handles: positions ``rank, rank + world, ...``.

    Disjoint over the ranks and covering ``items``; use it to spread independent jobs (attackers,
    runs) over devices. ``world <= 1`` returns everything.
    """
    if world < 1 or not 0 <= rank < max(world, 1):
        raise ValueError(f"rank {rank} is not in [0, {world})")
    return list(items)[rank::world]


def shard_positions(n: int, rank: int, world: int) -> slice:
    """Positions of a length-``n`` ordering that rank ``rank`` takes (equal counts on every rank)."""
    usable = n - n % world if world > 1 else n
    return slice(rank, usable, max(world, 1))


def env_world() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def context() -> DistContext:
    """The current process group (or the launcher's environment when none is initialised)."""
    if dist.is_available() and dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", dist.get_rank())),
                           str(dist.get_backend()))
    return DistContext(int(os.environ.get("RANK", "0")), env_world(), int(os.environ.get("LOCAL_RANK", "0")))


def init_from_env(device: torch.device) -> DistContext:
    """Initialise the process group ``torchrun`` describes in the environment (no-op for one process).

    Backend: nccl for CUDA devices, gloo otherwise. Returns the :class:`DistContext`.
    """
    if env_world() <= 1 or not dist.is_available():
        return context()
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend)
        log.info("process group: rank %d of %d (%s)", dist.get_rank(), dist.get_world_size(), backend)
    return context()


def device_for(device: torch.device, ctx: DistContext) -> torch.device:
    """One CUDA device per local rank; other devices unchanged."""
    if ctx.enabled and device.type == "cuda" and device.index is None:
        return torch.device("cuda", ctx.local_rank)
    return device


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


# ---------------------------------------------------------------------------------------- collectives
def _world() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def all_reduce_mean_(tensors: list[torch.Tensor]) -> None:
    """Average ``tensors`` in place over the ranks (one flattened all-reduce per dtype/device)."""
    world = _world()
    if world == 1 or not tensors:
        return
    groups: dict[tuple, list[torch.Tensor]] = {}
    for t in tensors:
        groups.setdefault((t.dtype, t.device), []).append(t)
    for ts in groups.values():
        flat = torch.cat([t.detach().reshape(-1) for t in ts])
        dist.all_reduce(flat)
        flat /= world
        i = 0
        for t in ts:
            n = t.numel()
            t.detach().copy_(flat[i:i + n].view_as(t))
            i += n


def all_reduce_grads_(params: Iterable[torch.Tensor]) -> None:
    """Average the gradients of ``params`` over the ranks (parameters without a gradient skipped)."""
    all_reduce_mean_([p.grad for p in params if p.grad is not None])


def average_buffers_(modules: Iterable[nn.Module]) -> None:
    """Average floating-point buffers (BatchNorm running statistics) over the ranks."""
    all_reduce_mean_([b for m in modules for b in m.buffers() if b.is_floating_point()])


def broadcast_modules_(modules: Iterable[nn.Module], src: int = 0) -> None:
    """Copy rank ``src``'s parameters and buffers to every rank."""
    if _world() == 1:
        return
    for m in modules:
        for t in list(m.parameters()) + list(m.buffers()):
            dist.broadcast(t.data, src)


def mean_logs(logs: dict) -> dict:
    """Average the numeric values of a metrics dict over the ranks (same keys on every rank)."""
    if _world() == 1 or not logs:
        return logs
    keys = sorted(k for k, v in logs.items() if isinstance(v, (int, float)) and not isinstance(v, bool))
    if not keys:
        return logs
    t = torch.tensor([float(logs[k]) for k in keys], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t)
    t = (t / _world()).cpu()
    out = dict(logs)
    for k, v in zip(keys, t.tolist()):
        out[k] = v if isinstance(logs[k], float) else logs[k]  # counters stay as they are (identical anyway)
    return out


def any_rank(flag: bool, device: torch.device | None = None) -> bool:
    """True when ``flag`` is true on at least one rank."""
    if _world() == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


# ---------------------------------------------------------------------------------------- the game
class GradSyncScaler(torch.amp.GradScaler):
    """A :class:`torch.amp.GradScaler` that averages the optimizer's gradients over the ranks first.

    The game steps every optimizer through ``scaler.step(opt)``, so this is the one hook all moves
    share. Averaging happens before unscaling, so an fp16 overflow is seen (and skipped) on every
    rank alike.
    """

    def step(self, optimizer, *args, **kwargs):
        all_reduce_grads_(p for g in optimizer.param_groups for p in g["params"])
        return super().step(optimizer, *args, **kwargs)


class DistributedGame(AdversarialGame):
    """:class:`~privacam.game.AdversarialGame` kept in lockstep over ``torch.distributed`` ranks.

    Same arguments as the game. Gradients are averaged at every optimizer step, BatchNorm buffers
    after every move, and the metrics the schedules branch on (f_T validation accuracy, f_b training
    accuracy, L_B for restart-on-plateau) are averaged, so the encoder f_d, the utility model f_T and
    the budget ensemble f_b^1..f_b^M (restarts included) stay identical on every rank.
    """

    def __init__(self, **kw):
        super().__init__(**kw)
        self.scaler = GradSyncScaler(self.device.type, enabled=(self.amp == "fp16"))
        broadcast_modules_(self._players())

    def _players(self) -> list[nn.Module]:
        return [self.encoder, self.utility, self.budget]

    def _synced(self, logs: dict) -> dict:
        average_buffers_(self._players())
        return mean_logs(logs)

    def _check(self, value: torch.Tensor, player: str, name: str) -> None:
        if any_rank(not bool(torch.isfinite(value).all()), value.device):
            raise NonFiniteLossError(self.step_count, player, name)

    def encoder_move(self, batches, *, strongest: int | None = None) -> dict:
        return self._synced(super().encoder_move(batches, strongest=strongest))

    def utility_move(self, batches, with_encoder: bool = True) -> dict:
        return self._synced(super().utility_move(batches, with_encoder))

    def budget_move(self, batches, models: list[int] | None = None) -> dict:
        logs = self._synced(super().budget_move(batches, models))
        self.last_budget_loss = logs["loss/budget"]
        return logs

    def encoder_identity_move(self, batches) -> dict:
        return self._synced(super().encoder_identity_move(batches))

    def utility_accuracy(self, batch: dict) -> float:
        return float(mean_logs({"acc": super().utility_accuracy(batch)})["acc"])

    def recalibrate_utility_bn(self, batches, n_batches: int) -> int:
        n = super().recalibrate_utility_bn(batches, n_batches)
        average_buffers_([self.utility])  # each rank saw its own shard: the mean of the shards' statistics
        return n
