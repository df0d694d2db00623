"""Image datasets held in memory, all ``kind="image"``, used by the CPGAN experiments (Tseng & Wu,
TIFS 2020) and by any image game.

- ``digits``: scikit-learn's bundled 8x8 handwritten digits (1,797 real images, no download).
- ``mnist`` (idx files), ``cifar10`` (binary or python batches), ``svhn`` (``*_32x32.mat``), ``genki4k``
  (``labels.txt`` + ``files/``). CelebA is the built-in ``celeba``.

Labels: ``utility`` is the task (digit, class, smile). Reconstruction is the threat CPGAN studies, so
the private label is chosen with ``params.private``: ``utility`` (the same label, default for digit and
object datasets) or ``none`` (one dummy class). Other params: ``limit`` / ``test_limit`` (keep that many
train / test samples, stratified), ``test_fraction`` (datasets without an official test split),
``split_seed``. The helpers here (arrays to :class:`~privacam.data.base.Splits`) are shared with
:mod:`privacam.data.toy`.
"""

from __future__ import annotations

import gzip
import io
import logging
import pickle
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError, DataError
from ..registry import register_dataset
from .base import Splits, TensorSampleDataset, dataset_root, stratified_split

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------ helpers
def _resize(x: torch.Tensor, size: int | None) -> torch.Tensor:
    """Resize ``[N, C, H, W]`` images (uint8 or float) to ``size x size`` (area when shrinking)."""
    if not size or x.shape[-1] == size and x.shape[-2] == size:
        return x
    was_uint8 = x.dtype == torch.uint8
    xf = x.float()
    mode = "area" if size < x.shape[-1] else "bilinear"
    y = F.interpolate(xf, size=(size, size), mode=mode, **({} if mode == "area" else {"align_corners": False}))
    return y.round().clamp(0, 255).to(torch.uint8) if was_uint8 else y.clamp(0.0, 1.0)


def _private_labels(kind: str, utility: np.ndarray, utility_classes: list[str], extra: dict | None = None):
    if kind == "utility":
        return utility.copy(), list(utility_classes)
    if kind == "none":
        return np.zeros(len(utility), dtype=np.int64), ["none"]
    if extra and kind in extra:
        return extra[kind]
    valid = ["utility", "none"] + sorted(extra or {})
    raise ConfigError(f"params.private={kind!r} is not available here; valid: {', '.join(valid)}")


def _limit(y: np.ndarray, n: int | None, seed: int) -> np.ndarray:
    """Indices of a stratified subset of ``n`` samples (all when ``n`` is falsy or too big)."""
    if not n or n >= len(y):
        return np.arange(len(y))
    keep, _ = stratified_split(y.tolist(), [n / len(y), 1 - n / len(y)], seed=seed)
    return np.asarray(keep, dtype=np.int64)


def _tensor_splits(name: str, x_train: torch.Tensor, u_train: np.ndarray, p_train: np.ndarray,
                   x_test: torch.Tensor, u_test: np.ndarray, p_test: np.ndarray, *, data_cfg, seed: int,
                   utility_classes: list[str], private_classes: list[str], meta: dict | None = None) -> Splits:
    """Carve val from train (stratified on both labels, never from test) and wrap as Splits."""
    params = data_cfg.params or {}
    s = int(params.get("split_seed", seed))
    keep = _limit(u_train, params.get("limit"), s)
    x_train, u_train, p_train = x_train[keep], u_train[keep], p_train[keep]
    keep_t = _limit(u_test, params.get("test_limit"), s)
    x_test, u_test, p_test = x_test[keep_t], u_test[keep_t], p_test[keep_t]
    vf = float(data_cfg.val_fraction)
    tr, va = stratified_split(list(zip(u_train.tolist(), p_train.tolist())), [1 - vf, vf], seed=s)
    if not tr or not va or len(x_test) == 0:
        raise DataError(f"{name}: too few samples for train/val/test ({len(x_train)} train, {len(x_test)} test)")

    def ds(x, u, p, idx=None):
        idx = np.arange(len(u)) if idx is None else np.asarray(idx)
        return TensorSampleDataset(x[torch.as_tensor(idx)], torch.as_tensor(u[idx]), torch.as_tensor(p[idx]),
                                   ids=[f"{name}_{i}" for i in idx])

    return Splits(
        train=ds(x_train, u_train, p_train, tr), val=ds(x_train, u_train, p_train, va), test=ds(x_test, u_test, p_test),
        utility_classes=list(utility_classes), private_classes=list(private_classes), multilabel=False,
        kind="image", name=name, meta={"images": {"train": len(tr), "val": len(va), "test": len(x_test)}, **(meta or {})},
    )


def _holdout(name: str, x: torch.Tensor, u: np.ndarray, p: np.ndarray, data_cfg, seed: int, **kw) -> Splits:
    """Datasets without an official test split: a stratified ``test_fraction`` holdout."""
    params = data_cfg.params or {}
    tf = float(params.get("test_fraction", 0.2))
    tr, te = stratified_split(list(zip(u.tolist(), p.tolist())), [1 - tf, tf], seed=int(params.get("split_seed", seed)) + 1)
    tr, te = np.asarray(tr), np.asarray(te)
    return _tensor_splits(name, x[torch.as_tensor(tr)], u[tr], p[tr], x[torch.as_tensor(te)], u[te], p[te],
                          data_cfg=data_cfg, seed=seed, **kw)


def _find(root: Path, names: list[str], what: str) -> Path:
    for n in names:
        for base in (root, *[d for d in sorted(root.iterdir()) if d.is_dir()]):
            if (base / n).exists():
                return base / n
    raise DataError(f"cannot find {what} under {root} (looked for {', '.join(names)})")


# ------------------------------------------------------------------------------------------ digits
@register_dataset("digits")
def digits(data_cfg, seed: int = 0) -> Splits:
    """scikit-learn's 8x8 handwritten digits (real, embedded): utility = digit; images [1, 8, 8] in
    [0, 1] (resized to ``data.size`` unless it is 8)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.as_tensor(d.images, dtype=torch.float32)[:, None] / 16.0
    x = _resize(x, int(data_cfg.size) if data_cfg.size else None)
    y = np.asarray(d.target, dtype=np.int64)
    classes = [str(i) for i in range(10)]
    p, pcls = _private_labels(str((data_cfg.params or {}).get("private", "utility")), y, classes)
    return _holdout("digits", x, y, p, data_cfg, seed, utility_classes=classes, private_classes=pcls)


# ------------------------------------------------------------------------------------------ MNIST
def read_idx(path: str | Path) -> np.ndarray:
    """Read an idx file (MNIST format; ``.gz`` allowed) holding unsigned bytes."""
    path = Path(path)
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DataError(f"{path}: not an idx file (bad magic number)")
    if data[2] != 0x08:
        raise DataError(f"{path}: idx element type 0x{data[2]:02x} is not supported (only unsigned bytes)")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(dims)):
        raise DataError(f"{path}: idx header says {dims} but holds {arr.size} values")
    return arr.reshape(dims)


def _idx(root: Path, stem: str) -> np.ndarray:
    names = [stem, stem.replace("-idx", ".idx"), stem + ".gz", stem.replace("-idx", ".idx") + ".gz"]
    return read_idx(_find(root, names, stem))


@register_dataset("mnist")
def mnist(data_cfg, seed: int = 0) -> Splits:
    """MNIST from its idx files (``train-images-idx3-ubyte`` ...; ``.gz`` allowed): utility = digit."""
    root = dataset_root(data_cfg, "mnist")
    xs = {s: torch.as_tensor(_idx(root, f"{s}-images-idx3-ubyte").copy())[:, None] for s in ("train", "t10k")}
    ys = {s: _idx(root, f"{s}-labels-idx1-ubyte").astype(np.int64) for s in ("train", "t10k")}
    classes = [str(i) for i in range(10)]
    kind = str((data_cfg.params or {}).get("private", "utility"))
    (ptr, pcls), (pte, _) = _private_labels(kind, ys["train"], classes), _private_labels(kind, ys["t10k"], classes)
    return _tensor_splits("mnist", _resize(xs["train"], data_cfg.size), ys["train"], ptr,
                          _resize(xs["t10k"], data_cfg.size), ys["t10k"], pte, data_cfg=data_cfg, seed=seed,
                          utility_classes=classes, private_classes=pcls)


# ------------------------------------------------------------------------------------------ CIFAR-10
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles CIFAR's python batches only: dicts, lists and numpy arrays; any other global is refused."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise DataError(f"refusing to unpickle {module}.{name}: not a CIFAR batch")


def _cifar_python(path: Path) -> tuple[np.ndarray, np.ndarray]:
    d = _ArrayUnpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()
    data = np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    return data, np.asarray(d[b"labels"], dtype=np.int64)


def _cifar_binary(path: Path) -> tuple[np.ndarray, np.ndarray]:
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size % 3073:
        raise DataError(f"{path}: size is not a multiple of 3073 bytes (CIFAR-10 binary record)")
    rec = raw.reshape(-1, 3073)
    return rec[:, 1:].reshape(-1, 3, 32, 32), rec[:, 0].astype(np.int64)


@register_dataset("cifar10")
def cifar10(data_cfg, seed: int = 0) -> Splits:
    """CIFAR-10 from ``cifar-10-batches-bin`` (``data_batch_*.bin``) or ``cifar-10-batches-py``: utility = class."""
    root = dataset_root(data_cfg, "cifar10")
    parts = {}
    for split, stems in (("train", [f"data_batch_{i}" for i in range(1, 6)]), ("test", ["test_batch"])):
        xs, ys = [], []
        for stem in stems:
            try:
                x, y = _cifar_binary(_find(root, [stem + ".bin"], stem + ".bin"))
            except DataError as e:
                if "cannot find" not in str(e):
                    raise
                x, y = _cifar_python(_find(root, [stem], stem))
            xs.append(x)
            ys.append(y)
        parts[split] = (torch.as_tensor(np.concatenate(xs)), np.concatenate(ys))
    kind = str((data_cfg.params or {}).get("private", "utility"))
    (ptr, pcls), (pte, _) = (_private_labels(kind, parts[s][1], CIFAR10_CLASSES) for s in ("train", "test"))
    return _tensor_splits("cifar10", _resize(parts["train"][0], data_cfg.size), parts["train"][1], ptr,
                          _resize(parts["test"][0], data_cfg.size), parts["test"][1], pte, data_cfg=data_cfg,
                          seed=seed, utility_classes=CIFAR10_CLASSES, private_classes=pcls)


# ------------------------------------------------------------------------------------------ SVHN
@register_dataset("svhn")
def svhn(data_cfg, seed: int = 0) -> Splits:
    """SVHN cropped digits (``train_32x32.mat``, ``test_32x32.mat``; label 10 is digit 0): utility = digit."""
    from scipy.io import loadmat

    root = dataset_root(data_cfg, "svhn")
    parts = {}
    for split in ("train", "test"):
        m = loadmat(_find(root, [f"{split}_32x32.mat"], f"{split}_32x32.mat"))
        x = torch.as_tensor(np.ascontiguousarray(np.transpose(m["X"], (3, 2, 0, 1))).astype(np.uint8))
        y = np.asarray(m["y"], dtype=np.int64).reshape(-1) % 10
        parts[split] = (x, y)
    classes = [str(i) for i in range(10)]
    kind = str((data_cfg.params or {}).get("private", "utility"))
    (ptr, pcls), (pte, _) = (_private_labels(kind, parts[s][1], classes) for s in ("train", "test"))
    return _tensor_splits("svhn", _resize(parts["train"][0], data_cfg.size), parts["train"][1], ptr,
                          _resize(parts["test"][0], data_cfg.size), parts["test"][1], pte, data_cfg=data_cfg,
                          seed=seed, utility_classes=classes, private_classes=pcls)


# ------------------------------------------------------------------------------------------ GENKI-4K
@register_dataset("genki4k")
def genki4k(data_cfg, seed: int = 0) -> Splits:
    """GENKI-4K faces (``labels.txt``: smile yaw pitch roll; ``files/file0001.jpg`` ...): utility = smile."""
    import cv2

    root = dataset_root(data_cfg, "genki4k")
    labels = _find(root, ["labels.txt"], "labels.txt")
    files = labels.parent / "files"
    if not files.is_dir():
        raise DataError(f"genki4k: no files/ folder beside {labels}")
    size = int(data_cfg.size)
    grey = bool(data_cfg.grey)
    xs, ys, bad = [], [], []
    for i, line in enumerate(labels.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        path = files / f"file{i:04d}.jpg"
        img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR)
        if img is None:
            bad.append(f"genki4k: cannot read {path} (labels.txt line {i})")
            continue
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
        img = img[None] if img.ndim == 2 else img[:, :, ::-1].transpose(2, 0, 1)
        xs.append(np.ascontiguousarray(img))
        ys.append(int(float(line.split()[0]) > 0))
    if bad and data_cfg.on_bad_sample != "skip":
        raise DataError(bad[0])
    for b in bad:
        log.warning("%s", b)
    if not xs:
        raise DataError(f"genki4k: no readable images in {files}")
    y = np.asarray(ys, dtype=np.int64)
    classes = ["no_smile", "smile"]
    p, pcls = _private_labels(str((data_cfg.params or {}).get("private", "none")), y, classes)
    return _holdout("genki4k", torch.as_tensor(np.stack(xs)), y, p, data_cfg, seed, utility_classes=classes,
                    private_classes=pcls)
