"""Train and audit on the shared Weizmann data and write docs/weizmann.md (+ figure).

    python scripts/weizmann_doc.py [--data ../shared/data/weizmann/manifest.csv] [--out runs/weizmann_doc]
        [--seeds 0 1 2] [--decision-gammas 1 3] [--gammas 0 1 3] [--resume]

Rows, all audited with the `weizmann` config's audit (docs/audit.md), the same for every row:
- the shipped default, the `decision` family (config `weizmann`), one run per training seed, with the
  median and the spread over seeds;
- the trade-off over the privacy weight `game.gamma` for that family (training seed 0; gamma 0 is the
  default's own seed-0 run): the classifier trained against its linear probe with weight gamma;
- the trade-off over the privacy weight `game.gamma` for the richest family trained here, the motion
  mask (config `weizmann_motion`) trained against pooled adversaries (`game.pool_k=4`);
- the untrained randomised motion mask, the raw data and downsampling rates.
Every number in the page is read from the audit files this run writes.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from pathlib import Path

import weizmann_tasks
from external_rows import external_rows
from privacam import runs
from privacam.audits import AuditSummary, Level, nag_text, pct, read_summary_if
from privacam.config import load_config, to_dict
from privacam.data import apply_data_spec
from privacam.executors import Job, make_executor
from privacam.report import level_words, write_report
from privacam.sweep import add_references, named_audit_job, raw_reference_job, run_jobs, train_and_audit_job
from privacam.utils import resolve_device

BASELINES = ["downsample:factor=4", "downsample:factor=8"]
UNTRAINED_MASK = "motion:width=8,depth=3,levels=2,jitter=0.5,dilate=2"
LEVELS = ("clip", "video", "person@5")
#: issue 21's targets: action retrained >= 95 %; identity NAG <= 0.10 per video and <= 0.15 per person from 5
#: clips; every unseen task within 10 points of raw
ACTION, TARGETS, TASK_GAP = 0.95, {"video": 0.10, "person@5": 0.15}, 0.10
SEED0_TAU = load_config("weizmann_substitute").encoder.params["tau"]
PARTS = ("raw", "untrained", "baselines", "decisions", "dcurve", "curve", "substitutes", "scurve", "doc")
#: what the page computes unless asked (the untrained mask and the decision's curve on request: --parts)
DEFAULT_PARTS = ("raw", "baselines", "decisions", "curve", "substitutes", "scurve", "doc")


def _summary(path: Path) -> AuditSummary | None:
    return read_summary_if(path)


def _row(label: str, s: AuditSummary) -> dict:
    q, u = s.privacy, s.utility
    lv = q.levels or {}
    row = {"label": label, "action": u.retrained, "headline": q.headline, "attacker": q.best_attacker, "summary": s}
    for level in LEVELS:
        b = lv.get(level) or Level()
        row[level], row[f"{level}_nag"], row[f"{level}_attacker"] = b.best, b.nag, b.best_attacker
        if b.nag is None and b.best is not None and b.best == b.best and b.chance is not None and b.chance < 1:
            # no raw reference in this audit: NAG with raw taken as 100 % (the definition)
            row[f"{level}_nag"] = max(0.0, (b.best - b.chance) / (1 - b.chance))
    for name, task in (s.tasks or {}).items():
        row[name], row[name + "_raw"], row[name + "_chance"] = task.value, task.raw, task.chance
    return row


_pct, _nag = pct, nag_text


def _table(rows: list[dict], tasks: list[str]) -> str:
    head = ("| release | action % | " + "".join(f"{t} % | " for t in tasks) +
            "identity % per clip (NAG) | per video (NAG) | per person from 5 clips (NAG) | best attacker per video |\n"
            "|---|---:|" + "---:|" * len(tasks) + "---:|---:|---:|---|")
    lines = [head]
    for r in rows:
        cells = [f"{_pct(r[lv])} ({_nag(r[lv + '_nag'])})" for lv in LEVELS]
        lines.append(f"| {r['label']} | {_pct(r['action'])} | " + "".join(f"{_pct(r.get(t))} | " for t in tasks) +
                     f"{' | '.join(cells)} | {r.get('video_attacker') or r.get('attacker') or '–'} |")
    return "\n".join(lines)


def _median_row(rows: list[dict], label: str, tasks: list[str]) -> dict:
    out = {"label": label, "attacker": "–", "video_attacker": "–"}
    keys = ("action", *LEVELS, *(lv + "_nag" for lv in LEVELS), *tasks, *(t + "_raw" for t in tasks),
            *(t + "_chance" for t in tasks))
    for key in keys:
        vals = [r[key] for r in rows if r.get(key) is not None]
        out[key] = statistics.median(vals) if vals else None
    return out


def _spread(rows: list[dict], key: str, pct: bool = True) -> str:
    vals = [r[key] for r in rows if r.get(key) is not None]
    if not vals:
        return "–"
    f = _pct if pct else _nag
    return f"{f(min(vals))} to {f(max(vals))}"


def _meets(r: dict, tasks: list[str]) -> dict:
    ok = lambda v, test: v is not None and test(v)  # noqa: E731
    return {"action": ok(r["action"], lambda v: v >= ACTION),
            **{lv: ok(r[lv + "_nag"], lambda v, t=t: v <= t) for lv, t in TARGETS.items()},
            **{t: ok(r.get(t), lambda v, t=t: r.get(t + "_raw") is not None and v >= r[t + "_raw"] - TASK_GAP) for t in tasks}}


def _private(r: dict | None) -> bool:
    return r is not None and all(r[lv + "_nag"] is not None and r[lv + "_nag"] <= t for lv, t in TARGETS.items())


def _utility(r: dict, tasks: list[str]) -> float | None:
    """The trained task and the unseen tasks together: their mean accuracy on the release."""
    vals = [r.get(k) for k in ("action", *tasks)]
    return None if any(v is None for v in vals) else sum(vals) / len(vals)


def _floor_table(s: AuditSummary, tasks: list[str]) -> str:
    lines = ["| level | chance % | floor: knows the action % | floor: knows the action and " + " and ".join(tasks) +
             " % | raw % |", "|---|---:|---:|---:|---:|"]
    for lv in LEVELS:
        b = (s.privacy.levels or {}).get(lv) or Level()
        val = lambda sc: sc.value if sc is not None else None  # noqa: E731
        lines.append(f"| {lv} | {_pct(b.chance)} | {_pct(val(b.floor))} | {_pct(val(b.floor_all))} | {_pct(b.raw if b.raw is not None else b.best)} |")
    return "\n".join(lines)


def _reading(med: dict, meets: dict, tasks: list[str], raw: AuditSummary | None) -> str:
    """What the targets say, read from the numbers: which are met, and for unmet tasks what the floor implies."""
    if all(meets.values()):
        return "Every target is met by the median of the seeds."
    said = []
    unmet = [k for k, ok in meets.items() if not ok]
    said.append("Not met: " + ", ".join(f"`{k}`" if k in tasks else k for k in unmet) + ".")
    if raw is not None and any(t in unmet for t in tasks):
        b = (raw.privacy.levels or {}).get("video") or Level()
        fa = b.floor_all.value if b.floor_all is not None else None
        if fa is not None and b.chance is not None and b.best and b.best > b.chance:
            floor_nag = (fa - b.chance) / (b.best - b.chance)
            said.append(
                f"The floor bounds what a release may carry: an attacker who knows only the action and the "
                f"{' and '.join(tasks)} label of each test video names the person at {_pct(fa)} % per video (chance "
                f"{_pct(b.chance)} %, raw {_pct(b.best)} %), NAG {_nag(floor_nag)}. A release that carried these tasks as "
                f"well as raw clips do would let that attacker through, so the identity target per video "
                f"(NAG <= {TARGETS['video']:.2f}) and the task target cannot both hold on this data"
                + (" -- the release keeps identity private and gives the tasks up." if floor_nag > TARGETS["video"] else "."))
    return " ".join(said)


def _default_choice(cands: list[tuple[str, dict | None]], tasks: list[str]) -> str:
    """Issue 21's rule: of the families that meet the privacy targets, the best utility over the trained task and
    the unseen tasks together (their mean accuracy)."""
    lines = ["| family | meets the privacy targets (median) | action and unseen tasks, mean % |", "|---|---|---:|"]
    scored = []
    for name, r in cands:
        if r is None:
            continue
        u = _utility(r, tasks)
        lines.append(f"| {name} | {'yes' if _private(r) else 'no'} | {_pct(u)} |")
        if _private(r) and u is not None:
            scored.append((u, name))
    rule = ("The rule (issue 21): of the families that meet the privacy targets, the one with the best utility over the "
            "trained task and the unseen tasks together.")
    if not scored:
        return "\n".join(lines) + "\n\n" + rule + " No family meets the privacy targets here."
    scored.sort(reverse=True)
    text = f" On this data alone that is **{scored[0][1]}** (mean {_pct(scored[0][0])} %)"
    if len(scored) > 1:
        gap = scored[0][0] - scored[1][0]
        chance = [t for t in tasks if all(r is None or r.get(t) is None or r.get(t + "_chance") is None
                                          or r[t] <= r[t + "_chance"] + TASK_GAP for _, r in cands if _private(r))]
        text += (f", {100 * gap:.1f} points above **{scored[1][1]}** ({_pct(scored[1][0])} %)" +
                 (f"; every family that meets the privacy targets is within 10 points of chance on {', '.join(f'`{t}`' for t in chance)}, so "
                  "the difference is the trained task's" if chance == tasks else "") + ".")
    return ("\n".join(lines) + "\n\n" + rule + text + " README names the default chosen over this page and the embedded "
            "data's demo table together.")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=weizmann_tasks.default_manifest(), help="the Weizmann manifest (its task columns are derived)")
    ap.add_argument("--out", default="runs/weizmann_doc")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds of the substitute family")
    ap.add_argument("--decision-seeds", type=int, nargs="+", default=[0], help="training seeds of the decision reference")
    ap.add_argument("--taus", type=float, nargs="*", default=[0.2, 1.0],
                    help="temperatures of the substitute's curve besides its own (training seed 0)")
    ap.add_argument("--gammas", type=float, nargs="*", default=[1.0],
                    help="privacy weights of the motion mask's curve")
    ap.add_argument("--decision-gammas", type=float, nargs="*", default=[1.0, 3.0],
                    help="privacy weights > 0 of the decision family's curve (part dcurve)")
    ap.add_argument("--baselines", nargs="*", default=BASELINES)
    ap.add_argument("--resume", action="store_true", help="reuse finished runs and audits in --out")
    ap.add_argument("--no-raw", action="store_true",
                    help="no raw-data audit: NAG is computed with raw taken as 100 %% (the issue's definition)")
    ap.add_argument("--only-existing", action="store_true",
                    help="write the page from the audits that exist and list the rest as not computed")
    ap.add_argument("--parts", nargs="+", default=list(DEFAULT_PARTS), choices=PARTS,
                    help="compute only these parts ('doc' writes the page, computing the rows it lacks unless "
                         "--only-existing)")
    where = ap.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, metavar="N",
                       help="run the independent parts (the raw audit, each run's training and audit, each baseline's "
                            "audit) in N local worker processes")
    where.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                       help="run them as Ray tasks (on the cluster at ADDRESS, or a local one)")
    ap.add_argument("--external", default="runs/weizmann_external",
                    help="audits of other tools' releases to add as rows (scripts/release_external.py --audit)")
    a = ap.parse_args()
    t0 = time.time()
    out = Path(a.out)
    seconds: dict[str, float] = {}
    # the task columns, derived from the frames (scripts/weizmann_tasks.py): every run and audit reads them
    data = out / "tasks" / "manifest.csv"
    if not (a.resume and data.is_file()):
        weizmann_tasks.main(["--manifest", a.data, "--out", str(data)])
    data = str(data)
    cfg = load_config("weizmann")
    cfg.data = apply_data_spec(cfg.data, data)
    # the same audit for every row: the weizmann config's eval section
    eval_ov = [f"eval={json.dumps(to_dict(cfg)['eval'])}"]

    def named_dir(spec_: str) -> Path:
        return out / spec_.replace(":", "_").replace(",", "_").replace("=", "")

    # the trained runs of each part: (row label, run folder, config, overrides)
    trained = {
        "decisions": [(f"decision, seed {s}", f"decision_s{s}", "weizmann", [f"train.seed={s}"]) for s in a.decision_seeds],
        "dcurve": [(f"decision, game γ={g:g}", f"decision_g{g:g}", "weizmann", [f"game.gamma={g}"])
                   for g in a.decision_gammas],
        "curve": [(f"motion mask, game γ={g:g}, pooled k=4", f"motion_pool4_g{g:g}", "weizmann_motion",
                   ["game.pool_k=4", f"game.gamma={g}"]) for g in a.gammas],
        "substitutes": [(f"substitute, seed {s}", f"substitute_s{s}", "weizmann_substitute", [f"train.seed={s}"])
                        for s in a.seeds],
        "scurve": [(f"substitute, τ={tau:g}", f"substitute_tau{tau:g}", "weizmann_substitute",
                    [f"encoder.params.tau={tau}"]) for tau in a.taus],
    }
    # every part's independent jobs, run by one executor (no process waits for another's files); with
    # 'doc' (and not --only-existing) the rows the page lacks are computed too
    wanted = set(a.parts) if "doc" not in a.parts or a.only_existing else set(a.parts) | set(DEFAULT_PARTS)
    jobs: list[Job] = []
    raw_dir = out / "raw" / runs.EVAL
    if "raw" in wanted and not a.no_raw and not (a.resume and _summary(raw_dir)):
        jobs.append(Job("raw", raw_reference_job, {"cfg": cfg, "out": str(raw_dir)}, gpu=True, cost=3))
    for part, specs_ in (("untrained", [UNTRAINED_MASK]), ("baselines", a.baselines)):
        for spec_ in specs_ if part in wanted else []:
            if not (a.resume and _summary(named_dir(spec_) / runs.EVAL)):
                jobs.append(Job(spec_, named_audit_job, {"spec": spec_, "cfg": cfg, "out": str(named_dir(spec_))},
                                gpu=True, cost=2))
    for part, specs_ in trained.items():
        for _, name, config, ov in specs_ if part in wanted else []:
            run_cfg = load_config(config, ov)
            run_cfg.data = apply_data_spec(run_cfg.data, data)
            if not (a.resume and _summary(out / name / runs.EVAL)):
                jobs.append(Job(name, train_and_audit_job, {"cfg": run_cfg, "run": str(out / name), "resume": a.resume,
                                                            "skip_train": a.resume, "overrides": eval_ov}, gpu=True, cost=3))
    with make_executor(a.workers, a.ray, device=resolve_device(cfg.train.device)) as executor:
        done = run_jobs(jobs, executor)
    for name, r in done.items():  # the times of every part, as the page records them
        for what, s in r["seconds"].items():
            seconds[f"{name} {what}"] = s
    raw = _summary(raw_dir)
    if raw is not None:  # the raw reference beside every audit of the page (NAG, each task's raw value)
        audits = [named_dir(s_) / runs.EVAL for s_ in [UNTRAINED_MASK, *a.baselines]]
        audits += [out / name / runs.EVAL for specs_ in trained.values() for _, name, _, _ in specs_]
        add_references([d for d in audits if _summary(d) is not None], raw=raw)
    if seconds:  # what this process computed, for the page's record of times
        out.mkdir(parents=True, exist_ok=True)
        with open(out / "parts_seconds.jsonl", "a") as f:
            f.write(json.dumps({"parts": a.parts, "seconds": seconds}) + "\n")
    if "doc" not in a.parts:
        print(json.dumps(seconds))
        return
    # the page: rows whose audit exists (with --only-existing, missing rows are listed as not computed)
    missing: list[str] = []

    def have(label: str, path: Path) -> dict | None:
        s = _summary(path)
        if s is None:
            missing.append(label)
            return None
        return _row(label, s)

    def rows(part: str) -> list[dict]:
        return [r for label, name, config, ov in trained[part] if part in wanted and (r := have(label, out / name / runs.EVAL))]

    untrained = have("motion mask, untrained (randomised)", named_dir(UNTRAINED_MASK) / runs.EVAL) if "untrained" in wanted else None
    base = [r for b in a.baselines if (r := have(b.replace(":factor=", " x"), named_dir(b) / runs.EVAL))]
    subs, scurve, dec, dcurve, curve = (rows(p_) for p_ in ("substitutes", "scurve", "decisions", "dcurve", "curve"))
    if not subs:
        raise SystemExit("no substitute run is audited yet: nothing to write")
    raw_row = [_row("raw (identity)", raw)] if raw else []
    tasks = list((subs[0]["summary"].tasks or {}))
    ext_points, ext_text = external_rows(Path(a.external), like=subs[0]["summary"])  # other tools' releases
    ext = [_row(p_["_label"], p_) for p_ in ext_points]
    med = _median_row(subs, f"**substitute, median of {len(subs)} seeds**", tasks)
    dmed = _median_row(dec, f"**decision, median of {len(dec)} seeds**", tasks) if len(dec) > 1 else None
    seconds["total"] = round(time.time() - t0, 1)

    figure = Path("docs/figures/weizmann_tradeoff.png")
    figure.parent.mkdir(parents=True, exist_ok=True)
    _, png = write_report([out], out / "report.html", title="privacam: Weizmann")
    shutil.copy(png, figure)

    head_level = level_words(subs[0]["headline"])
    q0 = (raw or subs[0]["summary"]).privacy
    meets = _meets(med, tasks)
    yes = lambda ok: "**met**" if ok else "**not met**"  # noqa: E731
    raw_note = ("" if raw else "\n**The raw data were not audited for this version of the page**: NAG is computed with raw "
                "identity accuracy taken as 100 %, its highest possible value, and the tasks have no raw reference.\n")
    cmd = (f"python scripts/weizmann_doc.py{' --no-raw' if a.no_raw else ''} --out {a.out} --seeds {' '.join(map(str, a.seeds))} "
           f"--taus {' '.join(f'{x:g}' for x in a.taus)} --decision-seeds {' '.join(map(str, a.decision_seeds))} "
           f"--gammas {' '.join(f'{g:g}' for g in a.gammas)}{' --workers ' + str(a.workers) if a.workers else ''}")
    when = ("resumed: finished runs and audits were reused, so no total wall time" if a.resume
            else f"{seconds['total']:.0f} s on this repository's 2-core CPU machine")
    not_computed = ("" if not missing else "\nNot computed in this version of the page: " + "; ".join(missing) +
                    f" (`python scripts/weizmann_doc.py --out {a.out} --resume` computes them, reusing every finished run).\n")
    task_rows = "\n".join(f"| each unseen task within 10 points of raw: `{t}` | {_pct(med[t])} % (raw {_pct(med[t + '_raw'])} %) "
                          f"| {yes(meets[t])} |" for t in tasks)
    floors = _floor_table(raw or subs[0]["summary"], tasks)
    reading = _reading(med, meets, tasks, raw)
    choice = _default_choice([("substitute", med), ("decision", dmed or (dec[0] if dec else None))]
                             + [(r["label"], r) for r in curve], tasks)
    taupoints = [dict(r, label=f"substitute, τ={SEED0_TAU:g} (seed 0 above)") for r, sd in zip(subs, a.seeds) if sd == 0] + scurve
    text = f"""# Weizmann: the whole spectrum on real video

Generated by `{cmd}` ({when}; the time of every part is in `{a.out}/weizmann_doc.json`).
Data: `../shared/data/weizmann` -- 9 actors x 4 actions, 64x64 frames resized to 32x32, 16-frame clips (the issue-4
split), with two task columns derived from the frames by `scripts/weizmann_tasks.py` (docs/tasks.md): `position`
(left / right: where the person stands, binned at each action's median) and `motion` (low / high: how much of the body
changes per frame, binned the same way). No release was trained for them.
Privacy = the audit of docs/audit.md, the `weizmann` config's, the same for every row: {len(q0.attackers)} attackers
retrained on {q0.views or 1} release(s) of the training split, selected on held-out training data, scored per clip, per
video (log-probabilities summed over a test video's clips) and per person from 5 random test clips; headline {head_level}.
Chance is the majority class; NAG = normalised leakage between chance (0) and raw (1). Action and every task: the best
of the task pool (docs/tasks.md) retrained on the fixed release, chosen on validation, scored on the test clips.
{raw_note}
## The default, substitution: {len(subs)} training seeds

{_table(subs + [med], tasks)}

Spread over seeds: action {_spread(subs, 'action')} %; identity NAG per video {_spread(subs, 'video_nag', False)},
per person from 5 clips {_spread(subs, 'person@5_nag', False)}{''.join(f"; {t} {_spread(subs, t)} %" for t in tasks)}.
Each run chose its checkpoint on validation data only (`selection.json` in its run folder).

| target (issue 21; median of the seeds) | measured | status |
|---|---|---|
| action of a cloud model retrained on the release >= 95 % | {_pct(med['action'])} % | {yes(meets['action'])} |
| identity NAG <= 0.10 per video | {_nag(med['video_nag'])} | {yes(meets['video'])} |
| identity NAG <= 0.15 per person from 5 clips | {_nag(med['person@5_nag'])} | {yes(meets['person@5'])} |
{task_rows}

{reading}

## What the task itself reveals: the task-label floor

An attacker who knows the true label of each test clip, and nothing else, names the person at this rate (the best of
a lookup of each label's most frequent person, scored like the attackers above). A release is not blamed for it, nor
credited for hiding it.

{floors}

## Substitution over the temperature τ

Training seed 0; a higher τ draws the substitute more at random.

{_table(taupoints, tasks)}

## The spectrum: every release, audited the same way

{_table(subs[:1] + dec + ([dmed] if dmed else []) + curve + dcurve + base + ([untrained] if untrained else []) + ext + raw_row, tasks)}

The decision (config `weizmann`) releases only the one-hot action; the motion mask (config `weizmann_motion`) is trained
against pooled adversaries (`game.pool_k=4`); downsampling releases the frames at a lower resolution.
{not_computed}
{ext_text}

## Which family is the default

{choice}

![trade-off](figures/weizmann_tradeoff.png)
"""
    Path("docs/weizmann.md").write_text(text)
    parts = [json.loads(l) for l in (out / "parts_seconds.jsonl").read_text().splitlines()] if (out / "parts_seconds.jsonl").exists() else []
    (out / "weizmann_doc.json").write_text(json.dumps({"seconds": seconds, "command": cmd, "parts": parts}, indent=1))
    print(text)


if __name__ == "__main__":
    main()
