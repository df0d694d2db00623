"""Small shared helpers: seeding, atomic file writes, safe checkpoint I/O, devices."""

from __future__ import annotations

import json
import os
import random
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a CPU generator seeded the same way.

    The one seeding function of the package: the same seed gives the same result.
    """
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temp file and ``os.replace`` (never half-written)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, torch.Tensor):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def read_json(path: str | Path) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def save_checkpoint(path: str | Path, state: dict) -> None:
    """Save ``state`` (tensors, numbers, strings, lists, dicts only) atomically."""
    import io

    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu", *, what: str = "checkpoint",
                    fix: str = "") -> Any:
    """Load a checkpoint or weights file without executing pickled code (``weights_only=True``).

    Every failure is one :class:`~privacam.errors.CheckpointError` line naming the file: missing,
    empty, truncated or not a PyTorch file, or refused because it holds objects other than tensors
    and plain containers (loading those could run code, so the file is not loaded at all).

    Args:
        path: the file.
        map_location: where tensors go.
        what: what the file is, for the message ("checkpoint", "encoder.weights", ...).
        fix: what the user can do, appended to the message (default: replace the file).
    """
    import pickle
    import zipfile

    from .errors import CheckpointError

    p = Path(path)
    fix = fix or "replace it with a file saved by privacam (or by torch.save of a state_dict)"
    if not p.is_file():
        raise CheckpointError(f"{what} {p} does not exist{'' if not p.exists() else ' (it is a folder)'}; {fix}")
    if p.stat().st_size == 0:
        raise CheckpointError(f"{what} {p} is empty (an interrupted copy?); {fix}")
    try:
        return torch.load(p, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        # PyTorch's own text advises the unsafe weights_only=False; say what was refused instead
        found = re.search(r"(?:GLOBAL|global) ([\w.]+)", str(e))
        if found:
            raise CheckpointError(
                f"{what} {p} holds Python objects other than tensors ({found.group(1)}), which privacam refuses to "
                f"load because loading them could run code; {fix}"
            ) from None
        raise CheckpointError(
            f"{what} {p} cannot be read as a PyTorch file (damaged, truncated or another format); {fix}"
        ) from None
    except (RuntimeError, EOFError, KeyError, ValueError, OSError, zipfile.BadZipFile, AttributeError, IndexError) as e:
        raise CheckpointError(
            f"{what} {p} cannot be read as a PyTorch file (damaged, truncated or another format: "
            f"{type(e).__name__}); {fix}"
        ) from None


def process_seconds() -> float | None:
    """Seconds since this process started (interpreter start and imports included), or None where the
    operating system does not say (read from ``/proc``, Linux only)."""
    try:
        stat = Path("/proc/self/stat").read_text()
        start_ticks = int(stat.rsplit(")", 1)[1].split()[19])  # field 22: start time after boot, in clock ticks
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA when present, else CPU; a named device that this machine lacks is a
    one-line :class:`~privacam.errors.ConfigError`, not a traceback from deep inside torch."""
    from .errors import ConfigError

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(f"device {name!r} is not a device name; use auto, cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise ConfigError(f"device {name!r}: this machine has no CUDA device; use train.device=auto (or cpu)")
        if dev.index is not None and dev.index >= n:
            raise ConfigError(f"device {name!r}: this machine has {n} CUDA device(s) (cuda:0..cuda:{n - 1}); pick one of them or use auto")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError(f"device {name!r}: MPS is not available on this machine; use train.device=auto (or cpu)")
    return dev



def onnx_session(path: str | Path, device: str = "cpu", threads: int | None = None):
    """The one onnxruntime session builder: CUDA first where it is asked for and available, quiet logs,
    and the thread budget of this process (``threads``, default: torch's, which ``OMP_NUM_THREADS`` and
    ``torch.set_num_threads`` set), so that an ONNX encoder never takes every core of a shared machine."""
    import onnxruntime as ort
    import torch

    providers = ["CPUExecutionProvider"]
    if str(device).startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = max(1, int(threads or torch.get_num_threads()))
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=opts, providers=providers)


def versions(extra: tuple[str, ...] = ()) -> dict:
    """The versions that produced a result: Python, the platform, privacam and its main libraries
    (``extra``: more distribution names); a library that is not installed is left out."""
    import platform
    from importlib import metadata

    out = {"python": platform.python_version(), "platform": platform.platform()}
    for name in ("privacam", "torch", "numpy", *extra):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out
