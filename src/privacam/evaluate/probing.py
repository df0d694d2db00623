"""The probing attacker (Kerckhoffs): it owns the encoder and releases its own training data as
often as it likes.

The encoder f_d ships to every camera, so an attacker runs it on its own labelled clips: every new
release of a randomised encoder is a new draw of the randomness, every new clip offset a new clip.
Trained on many releases, an attacker learns what the randomisation cannot hide (PASS, ICML 2025:
the "probing attack"). The audit releases the training split ``eval.views`` times
(:func:`~privacam.evaluate.protocol.encode_split`); this module says how many of those releases
really differ and makes each release's draws reproducible.

A release differs between views when the encoder draws randomness per clip (its ``randomised``
attribute, e.g. the ``motion`` encoder with ``jitter`` / ``dilate``) or when the dataset samples its
training clips at random offsets (a ``set_epoch`` method and a ``random`` / ``sbu`` strategy).
Otherwise every view would be the same release, and one is kept.
"""

from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)


def is_randomised(encoder) -> bool:
    """Whether f_d draws new randomness for every release (its ``randomised`` attribute)."""
    return bool(getattr(encoder, "randomised", False))


def has_random_clips(dataset) -> bool:
    """Whether the dataset's clips move with its epoch (random clip offsets)."""
    return hasattr(dataset, "set_epoch") and getattr(dataset, "strategy", None) in ("random", "sbu")


def effective_views(encoder, dataset, views: int) -> int:
    """How many releases of the training split differ: ``views``, or 1 for a deterministic encoder
    on clips that never move (identical copies would only cost time)."""
    if views > 1 and not (is_randomised(encoder) or has_random_clips(dataset)):
        log.info("deterministic release of fixed clips: 1 probing view instead of %d (they would be identical)", views)
        return 1
    return views


def reseed(encoder, seed: int, view: int) -> None:
    """Make the draws of a randomised encoder's release ``view`` reproducible: its own generator
    (``encoder.generator``) is reseeded from ``(seed, view)``; the global RNG is left alone."""
    gen = getattr(encoder, "generator", None)
    if isinstance(gen, torch.Generator):
        gen.manual_seed(int(seed) * 1_000_003 + int(view) * 7919 + 17)


__all__ = ["effective_views", "has_random_clips", "is_randomised", "reseed"]
