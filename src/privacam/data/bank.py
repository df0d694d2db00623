"""The clips of a substitution bank, read from a dataset (see :mod:`privacam.models.substitute`).

A bank holds real clips (or images, as one-frame clips) with their labels: ``clips_per_video`` clips of every video of a split (at the random
offsets the dataset draws for its epochs ``0 .. clips_per_video - 1``, so the bank is fixed by the data's seed),
or every sample once for data whose samples do not move (in-memory clips).
"""

from __future__ import annotations

import logging

import torch
from torch.utils.data import Dataset

from ..errors import ConfigError

log = logging.getLogger(__name__)


def read_bank(datasets: list[Dataset], clips_per_video: int = 4, batch: int = 64) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(clips uint8 [N, C, T, H, W], utility [N], private [N])`` from ``datasets`` (images are one-frame clips).

    Raises:
        ConfigError: the samples' private labels are multi-label attributes.
    """
    from tqdm.auto import tqdm

    clips, utility, private = [], [], []
    for ds in datasets:
        moves = hasattr(ds, "set_epoch") and getattr(ds, "strategy", None) in ("random", "sbu")
        rounds = max(1, int(clips_per_video)) if moves else 1
        saved = getattr(ds, "epoch", None)
        try:
            for r in range(rounds):
                if moves:
                    ds.set_epoch(r)
                for i in tqdm(range(len(ds)), desc=f"bank {r + 1}/{rounds}", leave=False, disable=None):
                    s = ds[i]
                    x = s["input"]
                    if x.dim() == 3:  # an image: a one-frame clip
                        x = x.unsqueeze(1)
                    if isinstance(s["private"], torch.Tensor) and s["private"].dim() > 0:
                        raise ConfigError("a substitution bank needs single-label private classes (this data's are "
                                          "multi-label attributes)")
                    clips.append((x.clamp(0, 1) * 255 + 0.5).to(torch.uint8))
                    utility.append(int(s["utility"]))
                    private.append(int(s["private"]))
        finally:
            if moves:
                ds.epoch = saved
    if len(clips) < 2:
        raise ConfigError(f"a substitution bank needs at least 2 clips (the data gave {len(clips)})")
    log.info("substitution bank: %d clips", len(clips))
    return torch.stack(clips), torch.tensor(utility), torch.tensor(private)


__all__ = ["read_bank"]
