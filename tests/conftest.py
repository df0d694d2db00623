import contextlib
import os

import pytest
import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

#: the adversarial game of the first default (the shipped default now releases substitutes): a learned
#: image encoder against a trained f_T and two frame-CNN budget models, f_T watched every step
GAME = ["utility.name=small3d", "budget.names=[small_cnn]", "budget.restart_every=40", "game.gamma=1.0",
        "train.select=last", "encoder.lr=0.001", "schedule.params.monitor=true"]

TINY = GAME + [
    "data.size=16", "data.clip_len=4", "data.params={num_actors: 3, clips_per_pair: 3, actions: [wave1, jump, bend]}",
    "encoder.name=small_conv", "encoder.params={width: 4, depth: 2}", "utility.params={width: 4}",
    "budget.params={width: 4}", "budget.m=2", "init.encoder_steps=2", "init.utility_steps=2", "init.budget_steps=2",
    "train.steps=4", "train.batch_size=4", "train.log_every=1", "train.checkpoint_every=2",
    "schedule.params.max_utility_steps=1", "schedule.params.max_budget_steps=1", "budget.restart_steps=1",
    "train.device=cpu", "train.final_utility_steps=0",
]

#: the other schedules at the same tiny size, with the encoder objective each was written for
SCHEDULES = {
    "entropy": [],
    "kbeam": ["schedule={name: kbeam, params: {encoder_steps: 2, budget_steps: 2, utility_steps: 1}}",
              "game.privacy_loss=neg_ce", "game.against=strongest"],
    "grl": ["schedule={name: grl}", "game.privacy_loss=neg_ce", "game.aggregate=mean"],
}


@pytest.fixture
def tiny_overrides():
    """Overrides that make the default config train in about a second on a CPU."""
    return list(TINY)


@contextlib.contextmanager
def one_thread():
    """Run tiny tensors on one intra-op thread (on a shared CPU a second thread only waits for a busy
    core), restoring the thread count afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
