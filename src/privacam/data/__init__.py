"""Datasets: the embedded synthetic default, manifests of users' own data and built-in loaders.

``make_splits(data_cfg)`` is the one entry point; ``--data SPEC`` is turned into a data config by
:func:`apply_data_spec`. Reading footage (decoding, clip sampling, the frame store, generic datasets,
split building) lives in :mod:`privacam.data.video`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..errors import DataError
from ..registry import DATASETS, register_dataset  # noqa: F401
from .base import Splits, TensorSampleDataset, collate, data_fingerprint, stratified_split  # noqa: F401
# registering modules: the embedded synthetic data, users' manifests, built-in video and image
# datasets, in-memory image datasets and toy / vector datasets
from . import builtin, images, manifest, synthetic, toy  # noqa: F401


def apply_data_spec(data_cfg, spec: str | None):
    """Return a copy of ``data_cfg`` pointed at ``spec``.

    ``spec`` is a manifest CSV path, ``NAME`` or ``NAME:ROOT`` for a built-in dataset.
    """
    if not spec:
        return data_cfg
    if spec.endswith(".csv") or (Path(spec).is_file() and ":" not in spec):
        return dataclasses.replace(data_cfg, name="manifest", root=spec)
    name, _, root = spec.partition(":")
    DATASETS.get(name)  # unknown name -> one-line error listing the valid ones
    return dataclasses.replace(data_cfg, name=name, root=root or None)


def check_identities(splits: Splits, where: str) -> None:
    """Refuse data whose samples all have the same single-label private class: adversaries that name
    who it is cannot be trained against (nor scored) with one identity.

    Raises:
        DataError: one line naming the data and the fix.
    """
    private = splits.privacy or splits
    if not private.multilabel and len(private.private_classes) < 2:
        only = f" ({private.private_classes[0]!r})" if private.private_classes else ""
        raise DataError(f"{where}: every sample has the same private class{only}; privacy needs at least two "
                        f"identities (an attacker that names the only one is always right): add rows of other people")


def make_splits(data_cfg, seed: int = 0) -> Splits:
    """Build the train/val/test splits described by ``data_cfg`` (a :class:`DataConfig`)."""
    factory = DATASETS.get(data_cfg.name)
    splits = factory(data_cfg, seed=seed)
    if data_cfg.privacy_source:
        from ..config import from_dict, DataConfig

        pcfg = from_dict(DataConfig, {**dataclasses.asdict(data_cfg), "privacy_source": None, **data_cfg.privacy_source})
        splits.privacy = DATASETS.get(pcfg.name)(pcfg, seed=seed)
    splits.meta["fingerprint"] = data_fingerprint(splits)
    return splits
