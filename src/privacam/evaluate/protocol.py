"""The audit: freeze E, encode once, retrain unseen attackers, score on test (DESIGN.md).

1. Encode train / val / test once with the frozen encoder (cached in memory; image releases are
   stored as 8-bit frames, as a camera would send them).
2. Utility: the run's f_T on E(X_test), and a freshly trained f_T on E(X_train).
3. Privacy: every attacker is trained from scratch on E(X_train) with the private labels,
   selected on the validation split carved from train (best epoch, early stopping) and only then
   scored on E(X_test) — the test split stays sealed until every model is selected. The claim is
   ``A_B^N``, the best attacker's per-clip score.
4. Context: the raw-data reference (E = identity, same protocol, cached per dataset and attacker
   set), chance levels and the normalised leakage NAG.

The audit does not import the game: it does not depend on how an encoder was trained.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import PrivacamError
from ..registry import create_attacker, create_utility
from ..utils import write_json
from . import metrics

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------- data
@dataclass
class Encoded:
    """One encoded split: released inputs (uint8 images or float16 features) and labels."""

    x: torch.Tensor
    utility: torch.Tensor
    private: torch.Tensor
    ids: list
    scale: float = 1.0  # multiply x.float() by this to get the released values
    norm: tuple | None = None  # (mean, std) per channel: what retrained models see (train statistics)

    def __len__(self) -> int:
        return len(self.x)

    def batch(self, idx: torch.Tensor, device: torch.device, raw: bool = False) -> torch.Tensor:
        x = self.x[idx].to(device).float() * self.scale
        if self.norm is not None and not raw:
            mean, std = self.norm
            x = (x - mean.to(device)) / std.to(device)
        return x


def channel_stats(enc: Encoded, chunk: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of a released split, shaped to broadcast over a batch.

    Retrained models see standardised releases: a low-contrast release must not pass for a private
    one just because an attacker trained on raw pixel values fails to converge.
    """
    c = enc.x.shape[1]
    s1 = torch.zeros(c, dtype=torch.float64)
    s2 = torch.zeros(c, dtype=torch.float64)
    n = 0
    for i in range(0, len(enc), chunk):
        x = enc.x[i:i + chunk].double() * enc.scale
        x = x.transpose(0, 1).reshape(c, -1)
        s1 += x.sum(1)
        s2 += (x * x).sum(1)
        n += x.shape[1]
    mean = s1 / max(n, 1)
    std = (s2 / max(n, 1) - mean ** 2).clamp_min(0).sqrt().clamp_min(1e-3)
    shape = (1, c) + (1,) * (enc.x.dim() - 2)
    return mean.float().reshape(shape), std.float().reshape(shape)


class Sealed:
    """Holds the test split; reading it before :meth:`open` raises (selection never sees test)."""

    def __init__(self, value: Encoded):
        self._value = value
        self.is_open = False

    def open(self) -> Encoded:
        self.is_open = True
        return self._value

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name == "is_open":
            raise AttributeError(name)
        raise PrivacamError("the test split is sealed until every model is selected on validation")


@torch.no_grad()
def encode_split(encoder: nn.Module, dataset, *, batch_size: int = 32, device: torch.device | str = "cpu",
                 views: int = 1, desc: str = "encode") -> Encoded:
    """Run the frozen encoder over a dataset once (``views`` passes for randomly sampled clips)."""
    from tqdm.auto import tqdm

    from ..data.base import collate

    device = torch.device(device)
    encoder = encoder.to(device).eval()
    releases = getattr(encoder, "releases", "image")
    xs, us, ps, ids = [], [], [], []
    n = len(dataset)
    for v in range(views):
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(v)
        for start in tqdm(range(0, n, batch_size), desc=desc, leave=False, disable=None):
            b = collate([dataset[i] for i in range(start, min(n, start + batch_size))])
            z = encoder(b["input"].to(device)).float().cpu()
            if releases == "image":
                z = (z.clamp(0, 1) * 255 + 0.5).to(torch.uint8)
            else:
                z = z.half()
            xs.append(z)
            us.append(b["utility"])
            ps.append(b["private"])
            ids.extend(b["id"])
    x = torch.cat(xs)
    return Encoded(x, torch.cat(us), torch.cat(ps), ids, 1 / 255 if x.dtype == torch.uint8 else 1.0)


# ---------------------------------------------------------------------------------------- fitting
@dataclass
class FitConfig:
    epochs: int = 15
    patience: int = 4
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    frames_per_clip: int = 4  # frame-level models train on this many random frames per clip
    flip: bool = True  # horizontal-flip augmentation (frame-consistent)
    seed: int = 0


def _score(out: torch.Tensor, y: torch.Tensor, multilabel: bool) -> float:
    if multilabel:
        return metrics.cmap(torch.sigmoid(out.float()), y)
    return metrics.accuracy(out.float(), y)


def _loss(out: torch.Tensor, y: torch.Tensor, multilabel: bool) -> torch.Tensor:
    if multilabel:
        return F.binary_cross_entropy_with_logits(out.float(), y.float())
    return F.cross_entropy(out.float(), y)


@torch.no_grad()
def predict(model: nn.Module, data: Encoded, device: torch.device, batch_size: int = 64, frames: bool = False,
            raw: bool = False) -> torch.Tensor:
    """Logits ``[N,K]`` (or per-frame ``[N,T,K]`` with ``frames``). ``raw``: feed the release
    unstandardised (the run's own f_T and f_b were trained on it as it is)."""
    model.eval()
    outs = []
    for s in range(0, len(data), batch_size):
        x = data.batch(torch.arange(s, min(len(data), s + batch_size)), device, raw=raw)
        outs.append((model.frame_logits(x) if frames else model(x)).float().cpu())
    return torch.cat(outs)


def fit_classifier(model: nn.Module, train: Encoded, val: Encoded, labels: str, *, multilabel: bool,
                   cfg: FitConfig, device: torch.device, desc: str = "fit") -> dict:
    """Train ``model`` on ``train`` and keep the epoch with the best validation score.

    Only train and validation data reach this function. Returns the selection record
    (best epoch, best validation score, epochs run, seconds).
    """
    from tqdm.auto import tqdm

    t0 = time.time()
    g = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, cfg.epochs))
    y_train, y_val = getattr(train, labels), getattr(val, labels)
    framewise = getattr(model, "level", "") == "frame" and train.x.dim() == 5 and cfg.frames_per_clip > 0
    best, best_state, best_epoch, since = -1.0, None, -1, 0
    n = len(train)
    bs = min(cfg.batch_size, n)
    epoch = 0
    for epoch in tqdm(range(cfg.epochs), desc=desc, leave=False, disable=None):
        model.train()
        perm = torch.randperm(n, generator=g)
        for s in range(0, n - bs + 1, bs):
            idx = perm[s:s + bs]
            x = train.batch(idx, device)
            if framewise and x.shape[2] > cfg.frames_per_clip:  # a random subset of frames per clip
                t = torch.randperm(x.shape[2], generator=g)[: cfg.frames_per_clip].sort().values
                x = x[:, :, t.to(device)]
            if cfg.flip and x.dim() >= 4 and x.shape[-1] > 1 and torch.rand(1, generator=g).item() < 0.5:
                x = x.flip(-1)
            out = model(x)
            loss = _loss(out, y_train[idx].to(device), multilabel)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sched.step()
        score = _score(predict(model, val, device), y_val, multilabel)
        if score > best + 1e-6:
            best, best_epoch, since = score, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            since += 1
            if since >= cfg.patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return {"best_epoch": best_epoch, "val": best, "epochs_run": epoch + 1, "seconds": round(time.time() - t0, 2)}


# ---------------------------------------------------------------------------------------- audit
@dataclass
class AuditSpec:
    """What to audit with (the ``eval`` section of a config)."""

    attackers: Sequence[str]
    utility_model: str = "small3d"
    utility_params: dict | None = None
    fit: FitConfig = None  # type: ignore[assignment]
    utility_fit: FitConfig = None  # type: ignore[assignment]
    reconstruction: bool = False

    def __post_init__(self):
        self.fit = self.fit or FitConfig()
        self.utility_fit = self.utility_fit or FitConfig()

    def fingerprint(self) -> str:
        d = {"attackers": list(self.attackers), "utility": self.utility_model, "up": self.utility_params or {},
             "fit": asdict(self.fit), "ufit": asdict(self.utility_fit)}
        return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


def _shape_args(enc: Encoded) -> dict:
    x = enc.x
    return {"in_channels": int(x.shape[1]), "size": int(x.shape[-1]), "clip_len": int(x.shape[2]) if x.dim() == 5 else 0}


def audit(encoder: nn.Module, splits, spec: AuditSpec, *, out_dir: str | Path, device: str | torch.device = "cpu",
          encoder_info: dict | None = None, utility_model: nn.Module | None = None,
          training_adversaries: dict[str, nn.Module] | None = None, raw: dict | None = None,
          views: int = 1) -> dict:
    """Audit a frozen encoder on ``splits``; writes one JSON per attacker and ``summary.json``.

    Args:
        encoder: the frozen f_d (or a baseline).
        splits: :class:`~privacam.data.Splits` (``splits.privacy`` for cross-dataset privacy).
        spec: attackers, utility architecture, fitting settings.
        out_dir: the ``eval`` directory to write.
        utility_model: the run's trained f_T (scored as ``utility.value``), if any.
        training_adversaries: the run's budget models, scored on E(X_test) beside the attackers.
        raw: the raw-data reference summary (``{"utility": .., "privacy": ..}``) for context/NAG.
    Returns:
        the summary dict (also written to ``out_dir/summary.json``).
    """
    device = torch.device(device)
    out_dir = Path(out_dir)
    (out_dir / "attackers").mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    psplits = splits.privacy or splits
    multilabel = bool(psplits.multilabel)
    bs = spec.fit.batch_size
    # 1. encode once; the test splits are sealed until selection is over
    enc_u = {k: encode_split(encoder, getattr(splits, k), batch_size=bs, device=device, views=views if k == "train" else 1,
                             desc=f"encode {k}") for k in ("train", "val")}
    test_u = Sealed(encode_split(encoder, splits.test, batch_size=bs, device=device, desc="encode test"))
    if splits.privacy is not None:
        enc_p = {k: encode_split(encoder, getattr(psplits, k), batch_size=bs, device=device, desc=f"encode private {k}") for k in ("train", "val")}
        test_p = Sealed(encode_split(encoder, psplits.test, batch_size=bs, device=device, desc="encode private test"))
    else:
        enc_p, test_p = enc_u, test_u
    for group, test in ((enc_u, test_u), (enc_p, test_p)):
        stats = channel_stats(group["train"])
        for e in (group["train"], group["val"], test._value):
            e.norm = stats
    shape = _shape_args(enc_u["train"])
    # 2. fit the retrained utility model and every attacker on train, select on val
    has_utility = splits.meta.get("has_utility", True) and splits.num_utility > 1
    fitted_util = None
    if has_utility:
        fitted_util = create_utility(spec.utility_model, num_classes=splits.num_utility, **shape, **(spec.utility_params or {}))
        sel_u = fit_classifier(fitted_util, enc_u["train"], enc_u["val"], "utility", multilabel=False, cfg=spec.utility_fit,
                               device=device, desc="fit utility")
    fitted = {}
    for name in spec.attackers:
        model = create_attacker(name, num_classes=psplits.num_private, **shape)
        sel = fit_classifier(model, enc_p["train"], enc_p["val"], "private", multilabel=multilabel, cfg=spec.fit,
                             device=device, desc=f"fit {name}")
        fitted[name] = (model, sel)
        log.info("attacker %s selected at epoch %d (val %.3f, %.1fs)", name, sel["best_epoch"], sel["val"], sel["seconds"])
    # 3. selection is over: open the test splits and score
    tu, tp = test_u.open(), test_p.open()
    metric = "cmap" if multilabel else "accuracy"
    if multilabel:
        chance_p = metrics.chance_cmap(tp.private)
    else:
        chance_p = metrics.chance_accuracy(enc_p["train"].private, tp.private)
    attackers: dict[str, float] = {}
    for name, (model, sel) in fitted.items():
        rec: dict[str, Any] = {"name": name, "level": getattr(model, "level", ""), "selection": sel}
        logits = predict(model, tp, device)
        if multilabel:
            probs = torch.sigmoid(logits)
            rec["cmap"] = metrics.cmap(probs, tp.private)
            rec["per_attribute_f1"] = dict(zip(psplits.private_classes, [float(v) for v in metrics.per_attribute_f1(probs, tp.private)]))
            rec["test"] = rec["cmap"]
        else:
            rec["clip_accuracy"] = metrics.accuracy(logits, tp.private)
            if rec["level"] == "frame" and tp.x.dim() == 5:
                rec["frame_accuracy"] = metrics.frame_accuracy(predict(model, tp, device, frames=True), tp.private)
            rec["test"] = rec["clip_accuracy"]
        rec["params"] = sum(p.numel() for p in model.parameters())
        write_json(out_dir / "attackers" / f"{name}.json", rec)
        attackers[name] = rec["test"]
    best_name = max(attackers, key=lambda k: attackers[k]) if attackers else None
    frame_scores = {}
    for name in fitted:
        rec = json.loads((out_dir / "attackers" / f"{name}.json").read_text())
        if "frame_accuracy" in rec:
            frame_scores[name] = rec["frame_accuracy"]
    # the adversaries the encoder was trained against, on the same test data
    trained_adv = {}
    for name, m in (training_adversaries or {}).items():
        m.to(device)
        trained_adv[name] = _score(predict(m, tp, device, raw=True), tp.private, multilabel)
    utility: dict[str, Any] = {"metric": "accuracy"}
    if has_utility:
        utility["chance"] = metrics.chance_accuracy(enc_u["train"].utility, tu.utility)
        utility["retrained"] = metrics.accuracy(predict(fitted_util, tu, device), tu.utility)
        if utility_model is not None:
            utility_model.to(device)
            utility["value"] = metrics.accuracy(predict(utility_model, tu, device, raw=True), tu.utility)
        else:
            utility["value"] = utility["retrained"]
    privacy: dict[str, Any] = {
        "metric": metric, "attackers": attackers, "best": attackers.get(best_name, float("nan")),
        "best_attacker": best_name, "chance": chance_p, "per_frame": frame_scores,
        "training_adversaries": trained_adv,
    }
    if raw is not None:
        if "utility" in raw and has_utility:
            utility["raw"] = raw["utility"].get("retrained", raw["utility"].get("value"))
        privacy["raw"] = raw["privacy"]["best"]
        privacy["nag"] = metrics.nag(privacy["best"], privacy["raw"], chance_p)
    summary: dict[str, Any] = {
        "encoder": encoder_info or {"name": type(encoder).__name__, "params": {}},
        "dataset": splits.name,
        "utility": utility,
        "privacy": privacy,
        "n_test": len(tp),
        "encoded_shape": list(enc_u["train"].x.shape[1:]),
        "seconds": None,
    }
    if spec.reconstruction:
        rec = reconstruction_audit(encoder, splits, enc_u, tu, device=device, seed=spec.fit.seed)
        if rec is not None:
            summary["reconstruction"] = rec
    summary["seconds"] = round(time.time() - t0, 1)
    write_json(out_dir / "summary.json", summary)
    _save_examples(splits, tu, out_dir)
    return summary


def reconstruction_audit(encoder, splits, enc_u, tu, *, device, seed=0, max_frames: int = 2000) -> dict | None:
    """Attackers that rebuild the input from E(x): PSNR / SSIM on test frames (if available)."""
    try:
        from .reconstruction import reconstruction_attack
    except ImportError:  # pragma: no cover - module optional
        return None
    from ..data.base import collate

    def frames(split_ds, enc: Encoded, limit):
        xs = []
        n = len(enc)
        for s in range(0, n, 64):
            xs.append(collate([split_ds[i] for i in range(s, min(n, s + 64))])["input"])
        x = torch.cat(xs)
        z = enc.x.float() * enc.scale
        if x.dim() == 5 and z.dim() == 5 and z.shape[2] == x.shape[2]:  # per-frame pairs
            x = x.transpose(1, 2).flatten(0, 1)
            z = z.transpose(1, 2).flatten(0, 1)
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(len(x), generator=g)[:limit]
        return z[idx], x[idx]

    try:
        trz, trx = frames(splits.train, enc_u["train"], max_frames)
        vz, vx = frames(splits.val, enc_u["val"], max_frames // 4)
        tz, tx = frames(splits.test, tu, max_frames // 2)
        return reconstruction_attack(trz, trx, vz, vx, tz, tx, seed=seed)
    except Exception as e:  # noqa: BLE001 - the attribute audit must not be lost to this extra
        log.warning("reconstruction audit skipped: %s", e)
        return None


def _save_examples(splits, tu: Encoded, out_dir: Path, n: int = 6) -> None:
    """Save a few test inputs beside their release (``examples.pt``) for the report."""
    from ..data.base import collate

    idx = list(range(0, len(tu), max(1, len(tu) // n)))[:n]
    x = collate([splits.test[i] for i in idx])["input"]
    z = tu.x[idx].float() * tu.scale
    mid = lambda t: t[:, :, t.shape[2] // 2] if t.dim() == 5 else t  # noqa: E731
    torch.save({"input": mid(x).half(), "released": mid(z).half()}, out_dir / "examples.pt")
