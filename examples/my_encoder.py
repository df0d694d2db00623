"""An encoder written outside privacam, audited with ``privacam evaluate --encoder examples/my_encoder.py:make``.

Any ``torch.nn.Module`` will do. This one is what many camera makers would try first: grey, a
coarse mosaic and a few grey levels, frame by frame. It takes frames ``[N, C, H, W]`` in [0, 1]
(the audit folds the time axis of clips into the batch) and returns a picture of the same size,
so ``privacam anonymize``-style viewers can show it.
"""

import torch
from torch import nn
from torch.nn import functional as F


class MosaicGrey(nn.Module):
    releases = "image"  # values in [0, 1], stored as 8-bit frames like a camera's video

    def __init__(self, block: int = 4, levels: int = 8):
        super().__init__()
        self.block, self.levels = block, levels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grey = x.mean(1, keepdim=True)
        small = F.avg_pool2d(grey, self.block)
        small = torch.round(small * (self.levels - 1)) / (self.levels - 1)
        return F.interpolate(small, scale_factor=self.block, mode="nearest")


def make(in_channels: int = 3, size: int = 32) -> nn.Module:
    """The factory privacam calls (with the keyword arguments it accepts among in_channels, size, clip_len)."""
    return MosaicGrey(block=4 if size >= 16 else 2)
