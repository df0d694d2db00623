"""The summary assembled from the units' results: every level, interval, chance, the best of N, the
raw-data reference and NAG (DESIGN.md's contract, :class:`~privacam.audits.AuditSummary`).

Nothing here fits a model: it reads the units' per-clip test scores (:mod:`.units`), draws the
bootstrap and the per-person trials once (:mod:`.pooling`) and scores every attacker at every level,
then puts utility, the trained models of a run and the references beside them.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from ..audits import AuditSummary, Privacy, Utility, interval_text, pct, write_attacker
from . import metrics, pooling
from .cache import TASK, ReleaseCache, task_column
from .fitting import module_scores
from .units import FLOOR_UNITS, label_classes

log = logging.getLogger(__name__)


def level_block(per: dict[str, dict], level: str, plan, train_labels) -> dict:
    """One level of the privacy block: every attacker's score and interval, the best of them (its
    interval the bootstrap of the maximum), chance and the number of units scored."""
    best = pooling.best_of(per, level)
    block = {"attackers": {a: r[level]["value"] for a, r in per.items()},
             "intervals": {a: r[level]["interval"] for a, r in per.items()},
             "best": best["value"], "best_attacker": best["attacker"], "interval": best["interval"],
             "chance": pooling.chance(plan, train_labels, level),
             "units": next(iter(per.values()))[level]["units"] if per else 0}
    names = plan.skipped.get(level)
    if names:
        block["skipped"] = names
    return block


def assemble(cache: ReleaseCache, spec, results: dict[str, dict], units: list, *, eval_dir, device, dataset: str,
             encoder_info: dict | None, utility_model=None, training_adversaries: dict | None = None) -> AuditSummary:
    """The audit's summary from its units' results (and the attackers' records in ``eval_dir/attackers``).

    Args:
        cache: the release cache the units were computed on (labels, videos, the test split).
        spec: the :class:`~privacam.evaluate.protocol.AuditSpec`.
        results: unit name -> record (:func:`~privacam.evaluate.units.run_unit`).
        units: the :class:`~privacam.evaluate.units.UnitSpec` of the audit, in the order they are listed.
        utility_model, training_adversaries: a run's trained f_T and budget models, scored here on the
            same test clips (they are not fitted: nothing to put in a unit).
    """
    from .units import selection_rule, selection_split

    multilabel = bool(cache.info["multilabel"])
    private_classes = cache.info["private_classes"]
    seed = int(spec.fit.seed)
    tp, test_info = cache.open_test("privacy", spec.test_clips)
    tu = tp if cache.groups["utility"] is cache.groups["privacy"] else cache.open_test("utility", spec.test_clips)[0]
    has_videos = cache.split("privacy", "train").videos is not None
    headline = pooling.headline_level(spec.pool, has_videos, multilabel, spec.person_k)
    attackers = [u for u in units if u.kind == "attacker"]
    split = selection_split(cache, "privacy", selection_rule(spec), seed)
    metric = "cmap" if multilabel else "accuracy"
    index = pooling.TestIndex.build(tp.private.numpy(), tp.videos)
    levels = pooling.available_levels(index, spec.person_k)
    plan = pooling.make_plan(index, levels, trials=spec.trials, bootstrap=spec.bootstrap, seed=seed)
    train_labels = (split.pool if split.pool is not None else split.train).view_rows(0).private  # what the attackers fit
    per: dict[str, dict] = {}
    frame_scores, warnings_ = {}, []
    for u in attackers:
        r = results[u.name]
        name = u.model
        scores = np.asarray(r["scores"], dtype=np.float64)
        sel = r["selection"]
        per[name] = pooling.score(scores, plan)
        rec: dict[str, Any] = {"name": name, "level": r["level"], "selection": sel,
                               "levels": pooling.strip_boot(per[name]), "test": per[name][headline]["value"]}
        if multilabel:
            rec["cmap"] = per[name][pooling.CLIP]["value"]
            rec["per_attribute_f1"] = dict(zip(private_classes, [float(v) for v in metrics.per_attribute_f1(scores, tp.private)]))
        else:
            rec["clip_accuracy"] = per[name][pooling.CLIP]["value"]
            if "frame_accuracy" in r:
                rec["frame_accuracy"] = r["frame_accuracy"]
                frame_scores[name] = r["frame_accuracy"]
        rec["params"] = r["params"]
        write_attacker(eval_dir, name, rec)
        if sel.get("still_rising"):
            unit = "round" if "chosen" in sel else "epoch"
            warnings_.append(f"{name}: validation still rising at its last {unit}; more {unit}s may find more")
    # the adversaries the encoder was trained against, on the same test data and levels
    trained = {}
    for name, m in (training_adversaries or {}).items():
        m.to(device)
        trained[name] = pooling.score(module_scores(m, tp, device, multilabel, raw=True), plan)
    blocks = {lv: level_block(per, lv, plan, train_labels) for lv in levels}
    for lv in levels:
        if trained:
            blocks[lv]["training_adversaries"] = {a: r[lv]["value"] for a, r in trained.items()}
    notes = [f"{lv}: {len(sk)} person(s) with fewer than {pooling.parse_level(lv)[1]} test clips skipped ("
             + ", ".join(f"{private_classes[int(k)] if int(k) < len(private_classes) else k}: {n}" for k, n in sk.items()) + ")"
             for lv, sk in plan.skipped.items() if sk]
    for b in blocks.values():
        if "skipped" in b:
            b["skipped"] = {private_classes[int(k)]: n for k, n in b["skipped"].items()}
    floors = {which: pooling.score(np.asarray(results[u.name]["scores"], dtype=np.float64), plan)
              for which, name in FLOOR_UNITS.items() for u in units if u.kind == "floor" and u.name == name}
    for lv in levels:
        for which, r in floors.items():
            blocks[lv][which] = {"value": r[lv]["value"], "interval": r[lv]["interval"]}
    head = blocks[headline]
    utility: dict[str, Any] = {"metric": "accuracy"}
    util_unit = next((u for u in units if u.kind == "utility"), None)
    if util_unit is not None:  # the trained task: the best of its pool on validation
        members = [util_unit] + [u for u in units if u.kind == "task" and u.labels == "utility"]
        r = pool_block(cache, spec, results, members, "utility", tu)
        utility["chance"] = r["chance"]  # weighed as the score is
        utility["retrained"], utility["retrained_interval"] = r["value"], r["interval"]
        utility["model"], utility["models"] = r["model"], r["models"]
        if utility_model is not None:
            utility_model.to(device)
            uplan = pooling.make_plan(pooling.TestIndex.build(tu.utility.numpy(), tu.videos), [pooling.CLIP],
                                      bootstrap=spec.bootstrap, seed=seed)
            own = pooling.score(module_scores(utility_model, tu, device, False, raw=True), uplan)[pooling.CLIP]
            utility["value"], utility["interval"] = own["value"], own["interval"]
        else:
            utility["value"], utility["interval"] = r["value"], r["interval"]
    tasks = {}
    for task in cache.task_names():  # every task the data labels: the best of the task pool on validation
        column = task_column(task)
        members = [u for u in units if u.kind == "task" and u.labels == column]
        if members:
            tasks[task] = {"metric": "accuracy", "classes": list(cache.info["tasks"][task]),
                           **pool_block(cache, spec, results, members, column, tu)}
    privacy: dict[str, Any] = {
        "metric": metric, "attackers": head["attackers"], "best": head["best"], "best_attacker": head["best_attacker"],
        "chance": head["chance"], "per_frame": frame_scores,
        "training_adversaries": head.get("training_adversaries", {}),
        "level": headline, "interval": head["interval"], "intervals": head["intervals"], "levels": blocks,
        "strongest_level": max(levels, key=lambda lv: (np.nan_to_num(blocks[lv]["best"], nan=-1.0), -levels.index(lv))),
        "views": cache.split("privacy", "train").num_views, "selection": split.info,
        "test_clips": test_info, "warnings": warnings_, "notes": notes,
        "chance_rule": "majority class of the training labels (MaSS / PASS)" if not multilabel else "mean prevalence",
    }
    if floors:
        privacy.update({which: head[which] for which in floors})
        privacy["floor_knows"] = {which: [c[len(TASK):] if c.startswith(TASK) else c for c in u.params["columns"]]
                                  for which, name in FLOOR_UNITS.items() for u in units if u.name == name}
    summary: dict[str, Any] = {
        "encoder": encoder_info or {"name": "encoder", "params": {}},
        "dataset": dataset,
        "utility": utility,
        "privacy": privacy,
        "n_test": len(tp),
        "n_test_videos": index.num_videos if index.has_videos else None,
        "encoded_shape": list(cache.split("utility", "train").x.shape[1:]),
        "cache_bytes": {k: int(getattr(cache.split("privacy", k).x, "nbytes", 0)) for k in ("train", "val")},
        "seconds": None,
    }
    if tasks:
        summary["tasks"] = tasks
    rec = reconstruction_block({u.model: results[u.name].get("reconstruction") for u in units if u.kind == "reconstruction"})
    if rec is not None:
        summary["reconstruction"] = rec
    return AuditSummary.from_dict(summary)


def pool_block(cache: ReleaseCache, spec, results: dict[str, dict], members: list, column: str, test) -> dict:
    """A task (or the trained task) from its pool members' units: the member chosen on validation, its
    score per clip on the labelled test clips with its 95 % interval, chance weighed as the score is
    (the majority class of the training split's labels), every member's validation and test score.
    A member that could not be fitted (no labelled training or validation clip) is left out and said."""
    from .tasks import labelled, pool_result

    ok = [u for u in members if not results[u.name].get("skipped")]
    train = labelled(cache.split("utility", "train").view_rows(0), column)
    out = pool_result({u.model: np.asarray(results[u.name]["scores"], dtype=np.float64).reshape(-1, label_classes(cache, column))
                       for u in ok}, {u.model: float(results[u.name]["selection"]["val"]) for u in ok},
                      labelled(test, column), column, train.label(column), bootstrap=spec.bootstrap, seed=int(spec.fit.seed))
    skipped = sorted({results[u.name]["skipped"] for u in members if results[u.name].get("skipped")}
                     | ({out["skipped"]} if out.get("skipped") else set()))
    if skipped:
        out["skipped"] = "; ".join(skipped)
    return out


def reconstruction_block(per: dict[str, dict | None]) -> dict | None:
    """The reconstruction threat from its reconstructors' records: every one, and the best of them by
    validation MSE with its test MSE / PSNR / SSIM (None: none was measured)."""
    per = {k: v for k, v in per.items() if v is not None}
    if not per:
        return None
    best = min(per, key=lambda n: per[n]["val_mse"])
    return {"attackers": per, "best_attacker": best, **{k: v for k, v in per[best].items() if k in ("mse", "psnr", "ssim")}}


# ---------------------------------------------------------------------------------------- references
def reference_refusal(raw: AuditSummary) -> str | None:
    """Why NAG must not be computed against the reference summary ``raw``, or None when it may.

    - A network reference (``raw.reference`` set: the unprotected network of a feature-level run)
      that scores no better than chance on its own task, the utility it was trained for, never
      learned: the lower end of its 95 % interval (the score itself without one) is at or below chance.
    - Any reference whose best attacker scores at or below chance has no leakage to normalise by
      (NAG's denominator is zero or negative).

    NAG against either would look like a result while meaning nothing.
    """

    def at_chance(value, iv, chance) -> bool:
        if value is None or chance is None or not np.isfinite(value):
            return False
        low = iv[0] if iv and iv[0] is not None and np.isfinite(iv[0]) else value
        return low <= chance + 1e-9

    def shown(value, iv) -> str:
        text = interval_text(iv, sep="-")
        return f"{pct(value)} %" + (f" (95 % interval {text[1:-1]} %)" if text else "")

    u, p = raw.utility or Utility(), raw.privacy or Privacy()
    acc, iv = (u.value, u.interval) if u.has("value") else (u.retrained, u.retrained_interval)
    if raw.reference and at_chance(acc, iv, u.chance):
        return (f"NAG not computed: the reference scores {shown(acc, iv)} on its own task, no better than chance "
                f"{pct(u.chance)} %, so it never learned and leakage cannot be normalised by it")
    if at_chance(p.best, None, p.chance):
        return (f"NAG not computed: the best attacker on the reference scores {shown(p.best, None)}, "
                f"no better than chance {pct(p.chance)} %, so there is no reference leakage to normalise by")
    return None


def add_raw(privacy: Privacy, raw_privacy: Privacy, refused: str | None = None) -> Privacy:
    """Put the raw-data reference (same audit, E = identity, or the unprotected network) beside every
    level: ``raw`` and ``nag`` at the headline level and in ``levels`` (NAG with majority-class
    chance; ``nag_floor`` beside the task-label floor where the audit has one). ``refused`` (see
    :func:`reference_refusal`): NAG is left out (``None``) and the reason kept as ``nag_refused``."""
    privacy.raw = raw_privacy.best
    privacy.nag = None if refused else metrics.nag(privacy.best, privacy.raw, privacy.chance)
    if refused:
        privacy.nag_refused = refused
        log.warning("%s", refused)
    for level, block in (privacy.levels or {}).items():
        ref = (raw_privacy.levels or {}).get(level)
        if ref is not None and np.isfinite(block.best):
            block.raw = ref.best
            block.nag = None if refused else metrics.nag(block.best, ref.best, block.chance)
            if block.floor is not None:
                block.nag_floor = None if refused else metrics.nag_floor(block.best, ref.best, block.floor.value)
    head = (privacy.levels or {}).get(privacy.headline)
    if head is not None and head.floor is not None:
        privacy.nag_floor = head.nag_floor
    return privacy


def add_reference(summary: AuditSummary, raw: AuditSummary) -> AuditSummary:
    """The raw-data reference (or the unprotected network) beside the audit's numbers: utility ``raw``,
    every task's ``raw``, privacy ``raw`` and NAG at every level (see :func:`add_raw`), and what the
    reference is."""
    u = summary.utility
    if raw.utility is not None and raw.utility.has("retrained") and u.has("value"):
        u.raw = raw.utility.retrained
    for name, task in (summary.tasks or {}).items():  # every task beside the same task on the raw data
        ref = (raw.tasks or {}).get(name)
        if ref is not None:
            task.raw = ref.value
    add_raw(summary.privacy, raw.privacy, reference_refusal(raw))
    if raw.reference:
        summary.privacy.reference = raw.reference
    return summary


__all__ = ["add_raw", "add_reference", "assemble", "level_block", "reference_refusal"]
