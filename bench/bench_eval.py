"""Evaluation wall time for the audit's attackers with and without the encoded cache.

The audit freezes f_d, so it encodes the train and validation splits once and trains every
attacker on the cached releases (``privacam.evaluate.protocol``). This bench runs the protocol's
own attacker fitting (``fit_classifier``: the config's attackers, epochs, early stopping, batch
size, learning rate, frame subsampling, flips; validation every epoch) with the config's encoder
(the demo: ``st_conv``, untrained, which costs the same as a trained one), twice:

- encoded cache: load and encode train + validation once (8-bit releases, as a camera sends them),
  compute the channel statistics, then fit every attacker on the cached tensors. All of it timed;
- re-encoding: the same fits, where every batch of every epoch of every attacker (training batches
  and the per-epoch validation pass alike) is loaded and encoded again, then quantised and
  standardised exactly as the cache does. The channel statistics are handed over from the cache
  run for free, which favours this mode.

Both modes see the same values in the same order, so the fits are the same: the bench reports
every attacker's epochs and validation score in both modes and whether they (and the selected
weights) agree, and how many clips each mode encoded. The split sizes are subsets of the config's splits (``--clips``,
``--val-clips``) to keep the run short; both modes scale linearly with them.

    python bench/bench_eval.py [--config demo] [--clips 96] [--val-clips 32] [--attackers a b ...] [--epochs E]

``--audit`` measures something else: the whole audit (``protocol.audit``: encoding, utility, every
attacker, scoring) as it is now against the audit before the strong-attacker change, side by side on
the same data and encoders (the config's f_d, untrained, and the raw clips): the old audit is the
config's audit with the old settings (one release of the training split, selection on the data's
validation split from epoch 0, no classical attackers, the old demo pool, per-clip scoring; the
intervals reduced to one bootstrap replicate):

    python bench/bench_eval.py --audit [--config demo]
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import torch

from _common import machine, setup_threads, table


class _Reencoded:
    """Stands in for ``protocol.Encoded`` in ``fit_classifier`` / ``predict``: every ``batch`` call
    loads the clips from the dataset and runs f_d on them, then releases them as the cache does
    (8-bit, times 1/255, standardised with ``norm``)."""

    def __init__(self, dataset, encoder, cached):
        self.dataset, self.encoder = dataset, encoder
        self.utility, self.private, self.norm, self.scale = cached.utility, cached.private, cached.norm, cached.scale
        self.x = cached.x[:0]  # shape rank only (fit_classifier checks x.dim())
        self.clips_encoded = 0

    def __len__(self) -> int:
        return len(self.dataset)

    def label(self, name: str) -> torch.Tensor:
        return getattr(self, name)

    def epoch_order(self, g: torch.Generator) -> torch.Tensor:
        return torch.randperm(len(self), generator=g)  # what the cache does with one release per clip

    def batch(self, idx: torch.Tensor, device: torch.device, raw: bool = False) -> torch.Tensor:
        from privacam.data import collate

        b = collate([self.dataset[int(i)] for i in idx])
        with torch.no_grad():
            z = self.encoder(b["input"].to(device)).float()
        self.clips_encoded += len(idx)
        x = (z.clamp(0, 1) * 255 + 0.5).to(torch.uint8).float() * self.scale  # what encode_split stores, then Encoded.batch
        if self.norm is not None and not raw:
            mean, std = self.norm
            x = (x - mean.to(device)) / std.to(device)
        return x


def run(config: str = "demo", clips: int = 96, val_clips: int = 32, attackers: list[str] | None = None,
        epochs: int | None = None) -> dict:
    from torch.utils.data import Subset

    from privacam.players import build_encoder
    from privacam.config import load_config
    from privacam.data import make_splits
    from privacam.evaluate.protocol import channel_stats, encode_split, fit_classifier
    from privacam.evaluate.runner import audit_spec
    from privacam.registry import create_attacker

    setup_threads()
    cfg = load_config(config, ["train.device=cpu"])
    if attackers:
        cfg.eval.attackers = list(attackers)
    if epochs:
        cfg.eval.epochs = int(epochs)
    spec = audit_spec(cfg)
    device = torch.device("cpu")
    splits = make_splits(cfg.data, seed=cfg.train.seed)
    train = Subset(splits.train, range(min(clips, len(splits.train))))
    val = Subset(splits.val, range(min(val_clips, len(splits.val))))
    multilabel = bool(splits.multilabel)
    torch.manual_seed(0)
    f_d = build_encoder(cfg, int(splits.train[0]["input"].shape[0])).eval()
    with torch.no_grad():  # warm-up outside both timings
        f_d(splits.train[0]["input"].unsqueeze(0))

    def fit_all(tr, va) -> dict:
        out = {}
        for i, name in enumerate(spec.attackers):
            torch.manual_seed(1000 + i)  # the same initial weights in both modes
            model = create_attacker(name, num_classes=splits.num_private, **shape)
            sel = fit_classifier(model, tr, va, "private", multilabel=multilabel, cfg=spec.fit, device=device,
                                 desc=f"fit {name}")
            weights = float(sum(p.detach().double().abs().sum() for p in model.parameters()))
            out[name] = {"epochs_run": sel["epochs_run"], "val": sel["val"], "seconds": sel["seconds"], "weights": weights}
            logging.info("%s: %s", name, out[name])
        return out

    # encoded cache: encode train + val once, statistics, then every attacker on the tensors
    t = time.perf_counter()
    enc_tr = encode_split(f_d, train, batch_size=spec.fit.batch_size, device=device, desc="encode train")
    enc_va = encode_split(f_d, val, batch_size=spec.fit.batch_size, device=device, desc="encode val")
    enc_tr.norm = enc_va.norm = channel_stats(enc_tr)
    t_encode = time.perf_counter() - t
    shape = enc_tr.shape_args()
    sel_cached = fit_all(enc_tr, enc_va)
    t_cached = time.perf_counter() - t

    # re-encoding every batch of every epoch of every attacker
    re_tr, re_va = _Reencoded(train, f_d, enc_tr), _Reencoded(val, f_d, enc_va)
    t = time.perf_counter()
    sel_re = fit_all(re_tr, re_va)
    t_reencode = time.perf_counter() - t

    # the same epochs, validation scores and selected weights (sum of |w|) in both modes
    same = all(sel_cached[k]["epochs_run"] == sel_re[k]["epochs_run"] and abs(sel_cached[k]["val"] - sel_re[k]["val"]) < 1e-9
               and abs(sel_cached[k]["weights"] - sel_re[k]["weights"]) <= 1e-6 * max(1.0, sel_cached[k]["weights"])
               for k in sel_cached)
    if not same:
        logging.warning("the two modes' fits differ: cached %s, re-encoded %s", sel_cached, sel_re)
    rows = [{"mode": "re-encode every batch of every epoch", "seconds": t_reencode,
             "clips_encoded": re_tr.clips_encoded + re_va.clips_encoded},
            {"mode": "encoded cache (incl. the one encoding pass)", "seconds": t_cached, "encode_once_s": t_encode,
             "clips_encoded": len(train) + len(val)}]
    per_attacker = [{"attacker": k, "epochs_run": sel_cached[k]["epochs_run"], "val_cached": sel_cached[k]["val"],
                     "val_reencoded": sel_re[k]["val"], "fit_s_cached": sel_cached[k]["seconds"],
                     "fit_s_reencoded": sel_re[k]["seconds"]} for k in sel_cached]
    return {"config": config, "encoder": cfg.encoder.name, "encoder_params": dict(cfg.encoder.params),
            "attackers": list(spec.attackers), "epochs": spec.fit.epochs, "patience": spec.fit.patience,
            "batch_size": spec.fit.batch_size, "clips": len(train), "val_clips": len(val),
            "size": shape["size"], "clip_len": shape["clip_len"], "rows": rows, "per_attacker": per_attacker,
            "same_fits": same, "speedup": t_reencode / t_cached}


#: the demo's audit before the strong-attacker change (a3000f4): its pool and the settings that reproduce it
OLD_POOL = ["linear_probe", "motion_probe", "small_cnn_a", "resnet_tiny", "c3d_tiny"]
OLD_SETTINGS = ["eval.views=1", "eval.min_epochs=1", "eval.val_mode=data", "eval.refit=false", "eval.bootstrap=1",
                "eval.trials=1", "eval.person_k=[]", "eval.pool=clip"]


def run_audit(config: str = "demo", overrides: list[str] | None = None) -> dict:
    """Wall time of the old and the new audit, on the same splits, for the config's f_d and raw clips."""
    import tempfile

    from privacam.players import build_encoder
    from privacam.config import load_config
    from privacam.data import make_splits
    from privacam.evaluate.protocol import audit
    from privacam.evaluate.runner import audit_spec
    from privacam.models.encoders import IdentityEncoder
    from privacam.utils import seed_everything

    setup_threads()
    base = ["train.device=cpu", "eval.reconstruction=false"] + list(overrides or [])
    new = load_config(config, base)
    old = load_config(config, base + OLD_SETTINGS + [f"eval.attackers=[{', '.join(OLD_POOL)}]"])
    splits = make_splits(new.data, seed=new.train.seed)
    in_ch = int(splits.train[0]["input"].shape[0])
    torch.manual_seed(0)
    encoders = [(f"{new.encoder.name} (untrained f_d)", build_encoder(new, in_ch).eval()), ("raw", IdentityEncoder(in_ch))]
    rows = []
    for label, encoder in encoders:
        row = {"release": label}
        for mode, cfg in (("old", old), ("new", new)):
            seed_everything(cfg.eval.seed)
            with tempfile.TemporaryDirectory() as tmp:
                t = time.perf_counter()
                s = audit(encoder, splits, audit_spec(cfg), out_dir=tmp, encoder_info={"name": label, "params": {}})
                row[f"{mode}_s"] = time.perf_counter() - t
            p = s.privacy
            row[f"{mode}_attackers"] = len(p.attackers)
            row[f"{mode}_best"] = p.best
            row[f"{mode}_level"] = p.headline
            if mode == "new":
                row["new_clip_best"] = p.levels["clip"].best
                row["views"] = p.views
                row["cache_kib"] = sum((s.cache_bytes or {}).values()) / 1024
            logging.info("%s %s: %.1f s", label, mode, row[f"{mode}_s"])
        row["ratio"] = row["new_s"] / row["old_s"]
        rows.append(row)
    total_old, total_new = sum(r["old_s"] for r in rows), sum(r["new_s"] for r in rows)
    return {"config": config, "rows": rows, "old_s": total_old, "new_s": total_new, "ratio": total_new / total_old,
            "old_settings": OLD_SETTINGS, "old_pool": OLD_POOL, "new_attackers": list(new.eval.attackers),
            "views": new.eval.views, "epochs": new.eval.epochs, "min_epochs": new.eval.min_epochs}


def print_audit(res: dict) -> None:
    print(f"audit cost, config {res['config']}: old = {', '.join(res['old_settings'])}, pool {res['old_pool']}; "
          f"new = the config's eval ({len(res['new_attackers'])} attackers, {res['views']} views, min {res['min_epochs']} epochs)")
    print(table(res["rows"], ["release", "old_s", "new_s", "ratio", "old_attackers", "new_attackers", "views", "old_best",
                              "new_best", "new_level", "new_clip_best", "cache_kib"],
                {"old_s": "{:.1f}", "new_s": "{:.1f}", "ratio": "{:.2f}", "old_best": "{:.3f}", "new_best": "{:.3f}",
                 "new_clip_best": "{:.3f}", "cache_kib": "{:.0f}"}))
    print(f"new audit / old audit: {res['ratio']:.2f}x ({res['new_s']:.0f} s vs {res['old_s']:.0f} s)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="demo", help="config whose data, encoder and eval section are used (default demo)")
    ap.add_argument("--clips", type=int, default=96, help="training clips (a subset of the config's train split)")
    ap.add_argument("--val-clips", type=int, default=32, help="validation clips (a subset of the val split)")
    ap.add_argument("--attackers", nargs="+", help="override the config's eval.attackers")
    ap.add_argument("--epochs", type=int, help="override the config's eval.epochs")
    ap.add_argument("--json")
    ap.add_argument("--audit", action="store_true", help="the whole audit, new against old (see above)")
    a = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if a.audit:
        res = run_audit(a.config)
        print(json.dumps(machine()))
        print_audit(res)
        if a.json:
            Path(a.json).write_text(json.dumps(res, indent=1))
        return
    res = run(a.config, a.clips, a.val_clips, a.attackers, a.epochs)
    print(json.dumps(machine()))
    print(f"{len(res['attackers'])} attackers ({', '.join(res['attackers'])}), up to {res['epochs']} epochs "
          f"(patience {res['patience']}), batch {res['batch_size']}, {res['clips']} train + {res['val_clips']} val clips "
          f"{res['clip_len']}x{res['size']}x{res['size']}, encoder {res['encoder']} {res['encoder_params']}")
    print(table(res["rows"], ["mode", "seconds", "encode_once_s", "clips_encoded"], {"seconds": "{:.1f}", "encode_once_s": "{:.1f}"}))
    print(table(res["per_attacker"], ["attacker", "epochs_run", "val_cached", "val_reencoded", "fit_s_cached", "fit_s_reencoded"],
                {"val_cached": "{:.3f}", "val_reencoded": "{:.3f}"}))
    print(f"same fits in both modes: {res['same_fits']}")
    print(f"speed-up of the cache: {res['speedup']:.2f}x")
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
