"""The CPGAN trade-off sweep: one training run per value of lambda (or of any config key), each frozen
encoder then audited by fresh reconstruction attackers; writes ``sweep.json`` and ``sweep.png``.

``lambda`` is the paper's utility weight: the privatizer loss ``lambda * CE - MSE`` is the game's
``L_T - gamma * MSE`` with ``game.gamma = 1 / lambda``.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Sequence

import torch

from .cli import Command
from .config import Config, apply_overrides, to_dict
from .errors import ConfigError
from .utils import write_json

log = logging.getLogger(__name__)


def _overrides_for(param: str, value: float) -> list[str]:
    if param == "lambda":
        if value <= 0:
            raise ConfigError(f"lambda must be positive (game.gamma = 1/lambda), got {value}")
        return [f"game.gamma={_yaml_number(1.0 / value)}"]
    return [f"{param}={_yaml_number(value)}"]


def _yaml_number(x: float) -> str:
    """A number YAML reads back as int or float (PyYAML needs a dot in exponent floats)."""
    return str(int(x)) if float(x).is_integer() else f"{x:.12e}"


@torch.no_grad()
def encode_split(encoder: torch.nn.Module, dataset, device: torch.device, batch_size: int = 256):
    """``(z, x, y_utility)`` for a whole split through a frozen encoder f_d (eval mode)."""
    from .data.base import collate

    encoder.eval()
    zs, xs, ys = [], [], []
    for s in range(0, len(dataset), batch_size):
        b = collate([dataset[i] for i in range(s, min(len(dataset), s + batch_size))])
        x = b["input"].to(device)
        zs.append(encoder(x).float().cpu())
        xs.append(b["input"].float())
        ys.append(b["utility"])
    return torch.cat(zs), torch.cat(xs), torch.cat(ys)


def measure_point(game, splits, device, *, attackers: Sequence[str], seed: int = 0) -> dict:
    """Test utility accuracy of the trained f_T and the best fresh reconstruction attack on f_d."""
    from .evaluate.reconstruction import reconstruction_attack

    enc = {name: encode_split(game.encoder, getattr(splits, name), device) for name in ("train", "val", "test")}
    game.utility.eval()
    with torch.no_grad():
        logits = game.utility(enc["test"][0].to(device)).cpu()
    acc = float((logits.argmax(1) == enc["test"][2]).float().mean())
    rec = reconstruction_attack(enc["train"][0], enc["train"][1], enc["val"][0], enc["val"][1], enc["test"][0],
                                enc["test"][1], attackers=attackers, seed=seed)
    return {"utility_accuracy": acc, "reconstruction": rec, "code_shape": list(enc["test"][0].shape[1:])}


def run_sweep(cfg: Config, *, values: Sequence[float], out: str | Path, param: str = "lambda",
              attackers: Sequence[str] = ("ridge", "kernel_ridge", "decoder"), splits=None,
              command: str | None = None) -> dict:
    """Train ``cfg`` once per value of ``param`` into ``out/<value>/`` and measure each point.

    Args:
        cfg: a ``task: cpgan`` config.
        values: the values of ``param``; ``param="lambda"`` sets ``game.gamma = 1/value``, any other name
            is a config key (``game.gamma``, ``encoder.params.code_dim``, ...).
        out: sweep directory; gets ``sweep.json`` and ``sweep.png``.
        attackers: reconstruction attackers of the audit (fresh, selected on validation).
        command: the command line that ran the sweep, recorded in ``sweep.json`` for reports.

    Returns:
        The content of ``sweep.json``.
    """
    from .data import make_splits
    from .train import Trainer

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if splits is None:
        splits = make_splits(cfg.data, seed=cfg.train.seed)
    train_x = torch.stack([splits.train[i]["input"] for i in range(len(splits.train))]).float()
    test = torch.stack([splits.test[i]["input"] for i in range(len(splits.test))]).float()
    test_u = torch.stack([torch.as_tensor(splits.test[i]["utility"]) for i in range(len(splits.test))])
    train_u = torch.stack([torch.as_tensor(splits.train[i]["utility"]) for i in range(len(splits.train))])
    majority = int(torch.bincount(train_u).argmax())
    reference = {
        # a release with no information: the attacker can only output the training mean image
        "mean_image_mse": float(((test - train_x.mean(0)) ** 2).mean()),
        "chance_accuracy": float((test_u == majority).float().mean()),
    }
    points = []
    for v in values:
        label = f"{v:g}"
        cfg_v = apply_overrides(cfg, _overrides_for(param, float(v)))
        log.info("sweep %s=%s: training into %s", param, label, out / label)
        trainer = Trainer(cfg_v, out / label, splits)
        trainer.run()
        m = measure_point(trainer.game, splits, trainer.device, attackers=attackers, seed=cfg.eval.seed)
        rec = m["reconstruction"]
        point = {
            "value": float(v), "run": label, "gamma": cfg_v.game.gamma, "utility_accuracy": m["utility_accuracy"],
            "mse": rec["mse"], "psnr": rec.get("psnr"), "ssim": rec.get("ssim"), "best_attacker": rec["best_attacker"],
            "attackers": {k: {kk: vv for kk, vv in a.items() if kk in ("mse", "psnr", "ssim", "val_mse")}
                          for k, a in rec["attackers"].items()},
            "code_shape": m["code_shape"],
        }
        write_json(out / label / "sweep_point.json", point)
        points.append(point)
    result = {
        "config": to_dict(cfg), "dataset": splits.name, "param": param, "values": [float(v) for v in values],
        "points": points, "reference": reference, "optimum": (splits.meta or {}).get("optimum"),
        "attackers": list(attackers), "command": command,
    }
    write_json(out / "sweep.json", result)
    plot_sweep(result, out / "sweep.png")
    return result


def plot_sweep(result: dict, path: str | Path) -> Path:
    """Utility accuracy vs best-attacker reconstruction MSE (higher = more private), from a sweep dict;
    the Gaussian mixture's analytic optimum is drawn when present."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 4.0), dpi=120)
    opt = result.get("optimum")
    if opt:
        fr = opt["linear_frontier"]
        ax.plot([p["accuracy"] for p in fr], [p["mse"] for p in fr], "-", color="0.5", label="optimum, linear codes")
        ax.plot([opt["bit_code"]["accuracy"]], [opt["bit_code"]["mse"]], "s", color="0.3", label="optimum at Bayes accuracy")
    pts = sorted(result["points"], key=lambda p: p["value"])
    ax.plot([p["utility_accuracy"] for p in pts], [p["mse"] for p in pts], "o-", color="C0", label="CPGAN (best fresh attacker)")
    sym = "λ" if result["param"] == "lambda" else result["param"]
    for p in pts:
        ax.annotate(f"{sym}={p['value']:g}", (p["utility_accuracy"], p["mse"]), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ref = result["reference"]
    ax.axhline(ref["mean_image_mse"], ls="--", color="C3", lw=1, label="no information (mean image)")
    ax.axvline(ref["chance_accuracy"], ls=":", color="C2", lw=1, label="chance accuracy")
    ax.set_xlabel("utility: test accuracy")
    ax.set_ylabel("privacy: reconstruction MSE (test)")
    ax.set_title(f"CPGAN trade-off on {result['dataset']}", fontsize=10)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


class Sweep(Command):
    name = "sweep"
    help = "CPGAN trade-off: one run per lambda (or config value), each attacked by fresh reconstructors"

    def add_arguments(self, p):
        p.add_argument("config", help="YAML file or shipped config name (a task: cpgan config)")
        p.add_argument("overrides", nargs="*", help="key.sub=value config overrides applied to every run")
        p.add_argument("--values", required=True, help="comma-separated values, e.g. 1,10,100")
        p.add_argument("--param", default="lambda",
                       help="'lambda' (sets game.gamma = 1/lambda; default) or any config key such as game.gamma")
        p.add_argument("--out", required=True, help="sweep directory: <value>/ runs, sweep.json, sweep.png")
        p.add_argument("--data", help="manifest CSV, NAME or NAME:ROOT (overrides the config's dataset)")
        p.add_argument("--attackers", default="ridge,kernel_ridge,decoder", help="reconstruction attackers of the audit")

    def run(self, args):
        from .cli import _resolve_config

        try:
            values = [float(v) for v in args.values.split(",") if v.strip()]
        except ValueError:
            raise ConfigError(f"--values must be comma-separated numbers, got {args.values!r}") from None
        if not values:
            raise ConfigError("--values is empty")
        cfg = _resolve_config(args.config, args.data, list(args.overrides))
        if cfg.task != "cpgan":
            raise ConfigError(f"sweep trains CPGAN runs: config {args.config!r} has task {cfg.task!r}, not 'cpgan'")
        command = " ".join(["privacam sweep", args.config, *args.overrides, "--values", args.values, "--param", args.param,
                            "--out", str(args.out), *(["--data", args.data] if args.data else []), "--attackers", args.attackers])
        res = run_sweep(cfg, values=values, out=args.out, param=args.param,
                        attackers=[a.strip() for a in args.attackers.split(",") if a.strip()], command=command)
        print(f"{args.param:>10}  utility_acc  recon_mse  psnr    best_attacker")
        for p in res["points"]:
            ps = "  n/a " if p["psnr"] is None or not math.isfinite(p["psnr"]) else f"{p['psnr']:6.2f}"
            print(f"{p['value']:>10g}  {p['utility_accuracy']:.4f}       {p['mse']:.5f}    {ps}  {p['best_attacker']}")
        ref = res["reference"]
        print(f"reference: mean-image MSE {ref['mean_image_mse']:.5f}, chance accuracy {ref['chance_accuracy']:.4f}")
        print(f"sweep written to {Path(args.out) / 'sweep.json'} and {Path(args.out) / 'sweep.png'}")
        return 0
