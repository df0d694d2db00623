"""Strength per cost of every candidate attacker: how the audit's pool is chosen by measurement.

Runs the audit (``privacam.evaluate.protocol.audit``, the config's eval settings: probing views,
selection on held-out training videos, every level) with *all* candidate attackers on several
releases of the same data — the raw clips, baselines, and the learned release of a trained run —
and reports, per attacker, its fitting time and its score at the clip, video and person@5 levels
on each release. A pool is then chosen from this table: the attackers that are strongest on some
release for their cost; never to make a release pass (the headline is the best attacker of the
pool, so removing the strongest would weaken the audit).

    python bench/bench_attackers.py --config demo --run RUN [--baselines downsample:factor=4 ...] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import torch

from _common import machine, setup_threads, table

NEURAL = ["linear_probe", "motion_probe", "mlp_probe", "small_cnn_a", "resnet_tiny", "mobilenet_v3_a", "shufflenet_a",
          "densenet_a", "regnet_a", "c3d_tiny", "r3d_tiny"]


def run(config: str = "demo", run_dir: str | None = None, baselines: list[str] | None = None,
        attackers: list[str] | None = None, overrides: list[str] | None = None) -> dict:
    from privacam.config import load_config
    from privacam.data import make_splits
    from privacam.evaluate.classical import FEATURES
    from privacam.evaluate.protocol import audit
    from privacam.evaluate.runner import audit_spec, parse_encoder_spec
    from privacam.models.encoders import IdentityEncoder
    from privacam.registry import create_encoder
    from privacam.utils import seed_everything

    setup_threads()
    cfg = load_config(config, ["train.device=cpu", "eval.reconstruction=false"] + list(overrides or []))
    names = list(attackers or NEURAL + [f"{f}_{m}" for f in FEATURES for m in ("logistic", "boosted")])
    cfg.eval.attackers = names
    splits = make_splits(cfg.data, seed=cfg.train.seed)
    in_ch = int(splits.train[0]["input"].shape[0])
    releases = [("raw", IdentityEncoder(in_ch))]
    for b in baselines or []:
        n, p = parse_encoder_spec(b)
        releases.append((b, create_encoder(n, in_channels=in_ch, **p).eval()))
    if run_dir:
        from privacam.train import load_encoder

        enc, _, _ = load_encoder(Path(run_dir))
        releases.append(("learned", enc))
    spec = audit_spec(cfg)
    rows: dict[str, dict] = {a: {"attacker": a} for a in names}
    per_release = {}
    for label, encoder in releases:
        seed_everything(cfg.eval.seed)
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            s = audit(encoder, splits, spec, out_dir=tmp, encoder_info={"name": label, "params": {}})
            secs = time.perf_counter() - t
            recs = {a: json.loads((Path(tmp) / "attackers" / f"{a}.json").read_text()) for a in names}
        per_release[label] = {"seconds": secs, "best": s["privacy"]["best"], "level": s["privacy"]["level"],
                              "best_attacker": s["privacy"]["best_attacker"], "views": s["privacy"]["views"],
                              "selection": s["privacy"]["selection"]}
        for a, r in recs.items():
            sel = r["selection"]
            fit_s = sel["seconds"] + (sel.get("refit") or {}).get("seconds", 0.0)
            rows[a][f"{label}_s"] = fit_s
            for lv in ("clip", "video", "person@5"):
                if lv in r["levels"]:
                    rows[a][f"{label}_{lv}"] = r["levels"][lv]["value"]
        logging.info("%s: %.0f s, best %s", label, secs, s["privacy"]["best"])
    return {"config": config, "attackers": names, "releases": per_release, "rows": list(rows.values()),
            "views": cfg.eval.views, "epochs": cfg.eval.epochs, "min_epochs": cfg.eval.min_epochs}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="demo")
    ap.add_argument("--run", help="a trained run of that config (its learned release joins the table)")
    ap.add_argument("--baselines", nargs="*", default=["downsample:factor=4"])
    ap.add_argument("--attackers", nargs="+")
    ap.add_argument("--json")
    ap.add_argument("overrides", nargs="*")
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO)
    res = run(a.config, a.run, a.baselines, a.attackers, a.overrides)
    print(json.dumps(machine()))
    print(f"config {res['config']}: {res['views']} probing views, up to {res['epochs']} epochs (min {res['min_epochs']})")
    for label, r in res["releases"].items():
        print(f"{label}: audit {r['seconds']:.0f} s, headline ({r['level']}) best {100 * r['best']:.1f} by {r['best_attacker']}")
    cols = ["attacker"] + [f"{lab}_{k}" for lab in res["releases"] for k in ("s", "clip", "video", "person@5")]
    print(table(res["rows"], cols, {c: "{:.3f}" for c in cols if not c.endswith("_s") and c != "attacker"}
                | {c: "{:.1f}" for c in cols if c.endswith("_s")}))
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
