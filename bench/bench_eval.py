"""Evaluation wall time for N attackers with and without the encoded cache.

The audit freezes f_d, so the train split can be encoded once and every attacker trained on the
cached tensors. Measured here as the equivalent core of the protocol: N attackers
(``privacam.registry.create_attacker``) trained for E epochs on f_d(X_train)

- cached: load + encode the split once, then N x E epochs over the cached tensors;
- re-encoding: every batch of every epoch of every attacker is loaded and encoded again.

    python bench/bench_eval.py [--attackers 3] [--epochs 2] [--clips 96]
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import torch

from _common import machine, setup_threads, table


def _batches(ds, n, bs):
    from privacam.data import collate

    for i in range(0, n, bs):
        yield collate([ds[j] for j in range(i, min(n, i + bs))])


def run(attackers: int = 3, epochs: int = 2, clips: int = 96, batch_size: int = 16, encoder: str = "st_conv") -> dict:
    from privacam.config import load_config
    from privacam.data import make_splits
    from privacam.registry import create_attacker, create_encoder

    setup_threads()
    cfg = load_config("default", ["train.device=cpu"])
    splits = make_splits(cfg.data, seed=0)
    ds, n = splits.train, min(clips, len(splits.train))
    torch.manual_seed(0)
    f_d = create_encoder(encoder, in_channels=3, **(cfg.encoder.params if encoder == cfg.encoder.name else {})).eval()
    x0 = ds[0]["input"]

    def new_attacker(i):
        torch.manual_seed(i)
        return create_attacker("small_cnn_a", in_channels=3, num_classes=splits.num_private, size=x0.shape[-1], clip_len=x0.shape[1])

    def fit(model, batches):
        opt = torch.optim.Adam(model.parameters(), 1e-3)
        model.train()
        for z, y in batches:
            loss = torch.nn.functional.cross_entropy(model(z), y)
            opt.zero_grad()
            loss.backward()
            opt.step()

    # re-encoding every batch of every epoch
    t = time.perf_counter()
    for i in range(attackers):
        m = new_attacker(i)
        for _ in range(epochs):
            def enc_batches():
                for b in _batches(ds, n, batch_size):
                    with torch.no_grad():
                        z = f_d(b["input"])
                    yield z, b["private"]  # outside no_grad: the generator suspends here
            fit(m, enc_batches())
    t_reencode = time.perf_counter() - t

    # encoded cache: encode once, then train from tensors
    t = time.perf_counter()
    zs, ys = [], []
    for b in _batches(ds, n, batch_size):
        with torch.no_grad():
            zs.append(f_d(b["input"]))
        ys.append(b["private"])
    t_encode = time.perf_counter() - t
    for i in range(attackers):
        m = new_attacker(i)
        for _ in range(epochs):
            fit(m, zip(zs, ys))
    t_cached = time.perf_counter() - t
    rows = [{"mode": "re-encode every epoch", "seconds": t_reencode},
            {"mode": "encoded cache (incl. one encoding pass)", "seconds": t_cached, "encode_once_s": t_encode}]
    return {"encoder": encoder, "attackers": attackers, "epochs": epochs, "clips": n, "batch_size": batch_size,
            "rows": rows, "speedup": t_reencode / t_cached}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--attackers", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--clips", type=int, default=96)
    ap.add_argument("--encoder", default="st_conv")
    ap.add_argument("--json")
    a = ap.parse_args()
    res = run(a.attackers, a.epochs, a.clips, encoder=a.encoder)
    print(json.dumps(machine()))
    print(table(res["rows"], ["mode", "seconds", "encode_once_s"], {"seconds": "{:.1f}", "encode_once_s": "{:.1f}"}))
    print(f"speed-up of the cache: {res['speedup']:.2f}x")
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
