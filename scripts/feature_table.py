"""Before/after table of feature-level privacy (Li & Cavallaro) -> docs/feature_privacy.md.

For each CPU dataset it trains the same network twice with the shipped ``feature_*`` config —
unprotected (gamma = 0: plain training of the network on L_T) and protected (the config's gamma > 0:
confusion loss against the budget models on the tapped features) — then audits the frozen tapped
features of both with the general audit (``privacam.evaluate.runner.evaluate_run``): unseen attackers of
different capacity retrained from scratch on E(X_train), selected on the validation split carved
from train, scored on test. NAG is taken against the unprotected network's features.

Every number in the page is read from the JSON files the runs wrote.

    python scripts/feature_table.py --out runs/feature_table
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
import time
from pathlib import Path

import torch

from privacam.audits import pct
from privacam.config import load_config
from privacam.evaluate import metrics
from privacam.evaluate.runner import evaluate_run
from privacam.runs import holds_run, load_run_config
from privacam.train import train
from privacam.utils import read_json, write_json

log = logging.getLogger("feature_table")

#: (label, shipped config, overrides shared by both runs); the protected run uses the config's gamma
SETUPS = [
    ("synthetic_image", "feature_synthetic_image", ["train.device=cpu"]),
]


def _run(config: str, overrides: list[str], gamma: float | None, run_dir: Path) -> dict:
    """Train one network unless its run directory is complete (``gamma=None``: the config's own)."""
    ov = overrides + ([] if gamma is None else [f"game.gamma={gamma:g}"])
    timing = run_dir / "train_seconds.json"  # kept beside the run, so that a re-audit reports the training time
    if not (run_dir / "encoder.pt").exists():
        t0 = time.time()
        train(load_config(config, ov), run_dir, resume=holds_run(run_dir))  # a killed run continues
        write_json(timing, {"train_seconds": round(time.time() - t0, 1)})
    seconds = read_json(timing)["train_seconds"] if timing.exists() else None
    return {"train_seconds": seconds, "overrides": ov}


def _recipe(run_dir: Path) -> dict:
    """What the page says about a run's network and adversaries, read from its resolved config."""
    cfg = load_run_config(run_dir)
    return {
        "tap": f"{cfg.encoder.params.get('backbone')} {cfg.encoder.params.get('layer')}",
        "budget": f"{cfg.budget.m} x {'/'.join(cfg.budget.names or [cfg.budget.name])} {json.dumps(cfg.budget.params, sort_keys=True)}",
        "restart": f"every {cfg.budget.restart_every} steps, {cfg.budget.restart_steps} updates",
        "game": (f"{cfg.game.privacy_loss}, aggregate {cfg.game.aggregate}, standardised budget input "
                 f"{str(cfg.game.standardise_budget).lower()}"),
        "steps": (f"{cfg.init.utility_steps} utility-first + {cfg.train.steps} game + {cfg.train.final_utility_steps} "
                  f"final f_T steps, batch {cfg.train.batch_size}, lr E {cfg.encoder.lr:g} / U {cfg.utility.lr:g} / "
                  f"f_b {cfg.budget.lr:g}"),
        "data": json.dumps(cfg.data.params, sort_keys=True),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/feature_table", help="where the runs go")
    p.add_argument("--doc", default="docs/feature_privacy.md", help="the page to write")
    p.add_argument("--seeds", default="0", help="training seeds, comma-separated (each trains both networks; "
                                                "the default, one seed, keeps the run under 8 minutes on a 2-core CPU)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: the numbers on the page)")
    args = p.parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    seeds = [int(v) for v in str(args.seeds).split(",") if v.strip()]
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    out = Path(args.out)
    rows = []
    for (label, config, overrides), seed in ((su, sd) for su in SETUPS for sd in seeds):
        runs = {"unprotected": 0.0, "protected": None}
        info, summaries = {}, {}
        suffix = "" if seed == 0 else f"_seed{seed}"
        ov_seed = overrides + ([] if seed == 0 else [f"train.seed={seed}"])
        for kind, g in runs.items():
            run_dir = out / f"{label}_{kind}{suffix}"
            info[kind] = _run(config, ov_seed, g, run_dir)
            info[kind]["recipe"] = _recipe(run_dir)
            runs[kind] = load_run_config(run_dir).game.gamma
            t0 = time.time()
            raw = summaries.get("unprotected", False)  # the reference of NAG: the unprotected features
            summaries[kind] = evaluate_run(run_dir, raw=raw, device="cpu")
            info[kind]["audit_seconds"] = round(time.time() - t0, 1)
        ref = summaries["unprotected"].privacy.best
        for kind in runs:
            s = summaries[kind]
            pr = s.privacy
            rows.append({
                "dataset": label, "config": config, "network": kind, "gamma": runs[kind],
                "run": str(out / f"{label}_{kind}{suffix}"),
                "utility": s.utility.value, "utility_retrained": s.utility.retrained,
                "utility_chance": s.utility.chance,
                "attackers": pr.attackers, "best": pr.best, "best_attacker": pr.best_attacker,
                "chance": pr.chance, "nag": metrics.nag(pr.best, ref, pr.chance),
                "training_adversaries": pr.training_adversaries or {},
                "encoded_shape": s.encoded_shape, "seed": load_run_config(out / f"{label}_{kind}{suffix}").train.seed,
                **info[kind],
            })
    write_json(out / "feature_table.json", {"rows": rows})
    write_doc(out / "feature_table.json", Path(args.doc), args)
    return 0


def _pct(v) -> str:
    return pct(v, missing="—")


def write_doc(table_json: Path, doc: Path, args) -> None:
    """Render the page from ``feature_table.json`` (and nothing else)."""
    rows = read_json(table_json)["rows"]
    names = sorted({a for r in rows for a in r["attackers"]})
    lines = [
        "# Feature-level privacy: suppressing features that reveal private attributes",
        "",
        "<!-- generated by scripts/feature_table.py from the JSON files of its runs; do not edit by hand -->",
        "",
        "Li & Cavallaro (ICASSP 2022): an adversary reads the intermediate feature map of a deployed network",
        "(e.g. the backbone output when only the last layers run in a trusted enclave) and predicts private",
        "attributes the network was never trained for. privacam plays their defence in its one game:",
        "f_d = the network up to a tap layer (encoder `tap`), f_T = the rest of it (utility `tap_rest`),",
        "f_b = adversaries on the tapped features (`feature_head`, `feature_linear`, `feature_mlp`), L_priv =",
        "`confusion` (cross-entropy to uniform). With gamma = 0 the game is plain training of the network",
        "(tested in `tests/test_feature.py`); that is the *unprotected* network below. Both networks of a",
        "row pair come from the same config and differ only in gamma.",
        "",
        "Leakage = test accuracy of unseen attackers retrained from scratch on the frozen tapped features of",
        "the train split, each selected on the validation split carved from train (never on test). Utility =",
        "accuracy of the trained rest of the network on test. NAG = max(0, (A - chance) / (A_unprotected - chance)),",
        "against the unprotected network's features. Chance = majority-class rate of the test split.",
        "",
        "| dataset | network | gamma | seed | utility % | best attacker % (which) | chance % | NAG | "
        + " | ".join(f"{n} %" for n in names) + " |",
        "|---|---|---|---|---|---|---|---|" + "---|" * len(names),
    ]
    for r in rows:
        cells = [r["dataset"], r["network"], f"{r['gamma']:g}", str(r.get("seed", 0)), _pct(r["utility"]),
                 f"{_pct(r['best'])} ({r['best_attacker']})", _pct(r["chance"]), f"{r['nag']:.2f}"]
        cells += [_pct(r["attackers"].get(n)) for n in names]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Per run (from its files):", ""]
    for r in rows:
        adv = ", ".join(f"{k} {_pct(v)} %" for k, v in r["training_adversaries"].items()) or "—"
        lines.append(f"- `{r['run']}` ({r['dataset']}, {r['network']}): released features {r['encoded_shape']}; "
                     f"utility retrained on the features {_pct(r['utility_retrained'])} % (chance {_pct(r['utility_chance'])} %); "
                     f"the run's own training adversaries on test: {adv}; "
                     f"train {r['train_seconds']} s, audit {r['audit_seconds']} s (shared 2-core CPU).")
    by = {(r["dataset"], r["network"], r.get("seed", 0)): r for r in rows}
    lines += ["", "## Outcome", ""]
    for ds, seed in sorted({(r["dataset"], r.get("seed", 0)) for r in rows}):
        u, p = by.get((ds, "unprotected", seed)), by.get((ds, "protected", seed))
        if u and p:
            verdict = "leaks less than" if p["best"] < u["best"] else "does NOT leak less than"
            lin = "linear_probe"
            lin_txt = (f"; the linear probe alone: {_pct(p['attackers'][lin])} % vs {_pct(u['attackers'][lin])} %"
                       if lin in p["attackers"] and lin in u["attackers"] else "")
            lines.append(f"- {ds}, seed {seed}: the protected network {verdict} the unprotected one under the full attacker pool "
                         f"(best attacker {_pct(p['best'])} % vs {_pct(u['best'])} %, chance {_pct(p['chance'])} %, "
                         f"{100 * (u['best'] - p['best']):.1f} points{lin_txt}), at a utility cost of "
                         f"{100 * (u['utility'] - p['utility']):.1f} points ({_pct(p['utility'])} % vs {_pct(u['utility'])} %; "
                         f"a negative cost is a gain).")
    for ds in sorted({r["dataset"] for r in rows}):
        pairs = [(by[k], by[(ds, "protected", k[2])]) for k in by if k[:2] == (ds, "unprotected") and (ds, "protected", k[2]) in by]
        if len(pairs) > 1:
            mean = lambda v: sum(v) / len(v)  # noqa: E731
            lines.append(f"- {ds}, mean over {len(pairs)} seeds: best attacker {_pct(mean([p['best'] for _, p in pairs]))} % "
                         f"(protected) vs {_pct(mean([u['best'] for u, _ in pairs]))} % (unprotected); utility "
                         f"{_pct(mean([p['utility'] for _, p in pairs]))} % vs {_pct(mean([u['utility'] for u, _ in pairs]))} %.")
        elif pairs:
            lines.append(f"- One training seed per network. The gap depends on the seed (in development runs with "
                         f"other seeds it was smaller, in the same direction): `--seeds 0,1,2` runs more.")
    lines += ["", "## The recipe", "",
              "Read from each run's `config.yaml` (both networks of a pair share everything but gamma):", ""]
    seen = set()
    for r in rows:
        rec = r.get("recipe") or {}
        if not rec or (r["dataset"], json.dumps({k: v for k, v in rec.items()}, sort_keys=True)) in seen:
            continue
        seen.add((r["dataset"], json.dumps(rec, sort_keys=True)))
        lines += [f"- {r['dataset']}: tap `{rec['tap']}`; data {rec['data']}; budget {rec['budget']}, restarted "
                  f"{rec['restart']}; {rec['game']}; {rec['steps']}."]
    lines += ["",
              "Why these choices (from development runs made while fixing an earlier negative result, where the",
              "protected network leaked as much as the unprotected one; not regenerated by this script):",
              "",
              "- The tap after global pooling leaves the feature fewer places to keep the actor than an 8x8 map.",
              "- A network trained for posture concentrates its feature variance in a few directions; the actor",
              "  sits in directions of tiny variance. Probes on merely standardised features need thousands of",
              "  steps to find it, so in-loop heads stayed near chance and the encoder had nothing to fight, while",
              "  a retrained attacker, with many epochs on frozen features, found it. The budget probes therefore",
              "  see features whitened with a running covariance (`whiten: true`; `shrink` bounds the gain on",
              "  the weakest directions).",
              "- More clips per (actor, action) pair raised the posture utility of the plain network (it is",
              "  data-limited at 12 clips per pair), and a utility-first start, a smaller encoder learning rate",
              "  than the heads', and more utility steps per game step keep the utility while the game runs.",
              ""]
    lines += ["## Commands", "", "```",
              "python " + " ".join(shlex.quote(a) for a in ["scripts/feature_table.py", "--out", args.out, "--doc", args.doc]
                                   + (["--seeds", args.seeds] if str(args.seeds) != "0" else [])),
              "```", "", "which runs, per dataset (and seed) and for gamma in {0, the config's}:", "", "```"]
    for r in rows:
        ov = " ".join(shlex.quote(o) for o in r["overrides"])
        lines.append(f"privacam train {r['config']} {ov} --out {r['run']}")
        lines.append(f"privacam evaluate {r['run']}   # the script passes the unprotected summary as the NAG reference")
    lines += ["```", "",
              "GPU configs (not run here): `feature_rafdb` (RAF-DB, expression vs gender/age/race, ResNet-18 at 100x100,",
              "tap `layer4` as in the paper) and `feature_celeba` (CelebA, ResNet-18 at 112x112). CPU video config:",
              "`feature_weizmann` (Weizmann frames, action vs actor, 3D CNN tap).", ""]
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text("\n".join(lines))
    log.info("wrote %s", doc)


if __name__ == "__main__":
    sys.exit(main())
