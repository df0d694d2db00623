"""Where attackers are selected: a validation split carved from the training data, never from test.

Selection needs validation data that behaves like test data: clips of *videos the attacker did not
train on*. A validation split cut from the end of every training video (what the video datasets
carve when a person has one video per action, e.g. Weizmann) is a thin slice of clips that overlap
in content with the training clips; selecting on it stopped fits at epoch 0 with validation at
chance. So:

- when the data's validation videos are not training videos (whole videos or independent clips
  held out), they are the selection split as they are;
- otherwise (the data's validation split shares videos with train, or is empty) the audit holds out
  whole training videos: a fraction of each private class's videos (at least one where the class has
  two or more), with all their clips, the data's validation clips of those videos included. After
  selection the attacker is fitted again on all of train + validation with the selected setting
  (``eval.refit``), so holding out videos costs it no training data.

Both splits only ever contain training-side data: the test split stays sealed.

Every training video gives the attacker the same number of clips (:func:`equal_clips_per_video`):
where recordings differ in length, a video with more clips would teach the attacker a prior over
persons that pays off on test wherever the same persons' test recordings are long too. A release of
the action alone (nothing of the person) then "identified" 39 % of Weizmann's test clips.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from .encoded import Encoded, concat_encoded

log = logging.getLogger(__name__)


@dataclass
class SelectionSplit:
    """What the attackers are fitted and selected on.

    Attributes:
        train: the fitting split (all probing views of its clips).
        val: the selection split (one release per clip).
        pool: train + validation, for the refit after selection (None: no refit needed, the
            selection split is the data's own held-out validation).
        info: how it was carved (for summary.json).
    """

    train: Encoded
    val: Encoded
    pool: Encoded | None
    info: dict


def equal_clips_per_video(enc: Encoded, videos: list | None = None, *, seed: int = 0) -> tuple[Encoded, dict]:
    """The entries of ``enc`` with the same number of clips from every video: ``m``, the smallest
    count over ``videos`` (default: the videos of ``enc``; a listed video without clips counts 0),
    drawn at random per video; every probing view of a kept clip is kept, so each view holds ``m``
    clips of every video. Returns the entries and ``{"clips_per_video", "dropped_clips"}``.
    """
    if enc.videos is None or not len(enc):
        return enc, {}
    clip = (enc.clip if enc.clip is not None else torch.arange(len(enc))).tolist()
    clips_of: dict = {v: {} for v in (videos or [])}
    for v, c in zip(enc.videos, clip):
        clips_of.setdefault(v, {})[c] = None
    m = min(len(cs) for cs in clips_of.values())
    dropped = sum(len(cs) for cs in clips_of.values()) - m * len(clips_of)
    info = {"clips_per_video": m, "dropped_clips": dropped}
    if not dropped:
        return enc, info
    rng = np.random.default_rng([int(seed), 31])
    keep: set = set()
    for v in sorted(clips_of, key=str):
        cs = list(clips_of[v])
        keep.update(cs[i] for i in rng.choice(len(cs), size=m, replace=False).tolist())
    rows = torch.tensor([i for i, c in enumerate(clip) if c in keep], dtype=torch.long)
    return enc.subset(rows), info


def _strata(labels: torch.Tensor) -> list:
    if labels.dim() > 1:
        return [tuple(int(round(float(v))) for v in row) for row in labels]
    return [int(v) for v in labels]


def carve(train: Encoded, val: Encoded, *, fraction: float = 0.25, seed: int = 0, refit: bool = True) -> SelectionSplit:
    """The selection split for the attackers (see the module docstring).

    Args:
        train: the released training split (every probing view), with video ids when the data has them.
        val: the data's validation split (released once).
        fraction: share of each private class's training videos held out when carving.
        seed: seed of the choice of held-out videos.
        refit: fit again on train + validation after selection when videos were held out.
    """
    tv = set(train.videos) if train.videos is not None else None
    vv = set(val.videos) if val.videos is not None else None
    if len(val) and (tv is None or vv is None or not (tv & vv)):
        train, eq = equal_clips_per_video(train, seed=seed)
        return SelectionSplit(train, val, None, {"mode": "data", "val_clips": len(val),
                                                 "val_videos": len(vv) if vv is not None else len(val),
                                                 **({"equal_clips": {"train": eq}} if eq else {})})
    eq, val_data = {}, val
    if train.videos is not None:  # the same clips from every video: train and the validation slices of its videos
        universe = sorted(tv | (vv or set()), key=str)
        train, eq["train"] = equal_clips_per_video(train, universe, seed=seed)
        if len(val) and val.videos is not None:
            val, eq["val"] = equal_clips_per_video(val, universe, seed=seed + 1)
    if train.videos is None:  # nothing to group by: whole clips (with all their views) are the units
        names = [f"clip{int(c)}" for c in (train.clip if train.clip is not None else torch.arange(len(train)))]
        train = train.replace(videos=names)
        val = val.replace(videos=[f"val{i}" for i in range(len(val))])
    pool = concat_encoded([train, val]) if len(val) else train
    videos = np.asarray(pool.videos, dtype=object)
    strata = _strata(pool.private)
    first_label: dict[str, object] = {}
    for v, k in zip(videos, strata):
        first_label.setdefault(v, k)
    by_class: dict = {}
    for v, k in first_label.items():
        by_class.setdefault(k, []).append(v)
    rng = np.random.default_rng([int(seed), 29])
    held: set = set()
    for k in sorted(by_class, key=str):
        vids = sorted(by_class[k])
        if len(vids) < 2:
            continue
        m = min(len(vids) - 1, max(1, int(round(fraction * len(vids)))))
        held.update(rng.choice(vids, size=m, replace=False).tolist())
    if not held:
        log.warning("selection: no private class has two training videos; selecting on the data's validation split")
        return SelectionSplit(train, val_data, None, {"mode": "data", "val_clips": len(val_data), "val_videos": len(vv or []),
                                                      **({"equal_clips": {"train": eq["train"]}} if eq else {})})
    in_val = torch.from_numpy(np.isin(videos, list(held)))
    first_view = pool.view == 0 if pool.view is not None else torch.ones(len(pool), dtype=torch.bool)
    fit_train = pool.subset(torch.nonzero(~in_val).flatten())
    fit_val = pool.subset(torch.nonzero(in_val & first_view).flatten())
    info = {"mode": "videos", "held_out_videos": len(held), "videos": len(first_label), "val_clips": len(fit_val),
            "fraction": fraction, "refit": bool(refit), **({"equal_clips": eq} if eq else {})}
    log.info("selection on %d held-out training videos of %d (%d clips)%s", len(held), len(first_label), len(fit_val),
             "; refit on all after selection" if refit else "")
    return SelectionSplit(fit_train, fit_val, pool if refit else None, info)


__all__ = ["SelectionSplit", "carve", "equal_clips_per_video"]
