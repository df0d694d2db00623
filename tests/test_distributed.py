"""Multi-process training (gloo, 2 CPU processes): players stay identical, shards are disjoint."""

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from conftest import TINY
from privacam.config import load_config
from privacam.distributed import shard, shard_positions
from privacam.train import BatchStream


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, out, overrides):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from privacam.train import Trainer

    try:
        tr = Trainer(load_config("default", overrides), out / "run")
        tr.run()
        g = tr.game
        torch.save({"encoder": g.encoder.state_dict(), "utility": g.utility.state_dict(),
                    "budget": g.budget.state_dict(), "restarts": g.restarter.count,
                    "first_batch_ids": list(BatchStream(tr.splits.train, 4, 0, rank=rank, world=world)._batches(0)[0])},
                   out / f"rank{rank}.pt")
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def test_two_process_gloo_training_keeps_players_identical(tmp_path):
    ov = TINY + ["budget.restart_every=2", "train.steps=4", "budget.params={width: 4}", "utility.name=small3d"]
    mp.spawn(_worker, args=(2, _free_port(), tmp_path, ov), nprocs=2, join=True)
    a, b = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert a["restarts"] == b["restarts"] == 2  # restarted at steps 2 and 4, on both ranks
    for player in ("encoder", "utility", "budget"):  # BatchNorm running stats included
        assert a[player].keys() == b[player].keys()
        for k in a[player]:
            assert torch.equal(a[player][k], b[player][k]), (player, k)
    assert not set(a["first_batch_ids"]) & set(b["first_batch_ids"])  # each rank its own shard
    run = tmp_path / "run"  # only rank 0 wrote the run directory
    assert (run / "encoder.pt").exists() and (run / "checkpoints" / "final.pt").exists()
    steps = [line for line in (run / "metrics.jsonl").read_text().splitlines() if '"stage": "game"' in line]
    assert len(steps) == 4
    enc = torch.load(run / "encoder.pt", weights_only=True)
    assert all(torch.equal(enc[k], a["encoder"][k]) for k in enc)


def test_batch_shards_are_disjoint_and_cover_each_epoch():
    data = [{"input": torch.zeros(1), "utility": i} for i in range(23)]
    streams = [BatchStream(data, 4, seed=3, rank=r, world=3, drop_last=False) for r in range(3)]
    seen = [sorted(i for b in s._batches(0) for i in b) for s in streams]
    assert all(len(x) == len(seen[0]) for x in seen)  # equal work per rank
    flat = sum(seen, [])
    assert len(set(flat)) == len(flat) == 21  # disjoint; 23 truncated to a multiple of 3
    one = BatchStream(data, 4, seed=3)  # world = 1: unchanged single-process order
    assert one._batches(0)[0] == torch.randperm(23, generator=torch.Generator().manual_seed(3 * 100003)).tolist()[:4]
    assert shard_positions(23, 2, 3) == slice(2, 21, 3)


def test_shard_spreads_jobs_over_devices():
    jobs = [f"attacker{i}" for i in range(7)]
    parts = [shard(jobs, r, 3) for r in range(3)]
    assert parts[0] == ["attacker0", "attacker3", "attacker6"]
    assert sorted(sum(parts, [])) == sorted(jobs)
    assert shard(jobs, 0, 1) == jobs
    with pytest.raises(ValueError):
        shard(jobs, 3, 3)
