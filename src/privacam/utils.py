"""Small shared helpers: seeding, atomic file writes, safe checkpoint I/O, devices."""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import random
import re
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

_log = logging.getLogger(__name__)


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


def write_failure(path: str | Path, e: OSError) -> "OutputError":
    """The one-line :class:`~privacam.errors.OutputError` of an ``OSError`` met while writing ``path``:
    what the system said and what to do (free space, or a writable place)."""
    import errno

    from .errors import OutputError

    why = e.strerror or str(e) or type(e).__name__
    if e.errno == errno.ENOSPC or e.errno == getattr(errno, "EDQUOT", None):
        fix = "the disk is full: free space or write elsewhere"
    elif e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        fix = "the place is not writable: make it writable or write elsewhere"
    else:
        fix = "check the path and the disk"
    return OutputError(f"cannot write {path} ({why}); {fix} (nothing already there was replaced)")


def umask() -> int:
    """This process's umask (the permission bits new files and folders do not get)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary file in ``path``'s folder to write by any means (its name ends in ``path``'s suffix, for
    writers that pick the format from it); when the block ends without error it is flushed to disk and
    renamed onto ``path``, so ``path`` is never half-written and an existing link at ``path`` is replaced,
    never written through. On an error the temporary file is removed; an ``OSError`` (a full or
    read-only disk) becomes a one-line :class:`~privacam.errors.OutputError` naming ``path``."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
        os.close(fd)
        tmp = Path(name)
        os.chmod(tmp, 0o666 & ~umask())  # what a plain write would give (mkstemp makes it private)
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as e:
        raise write_failure(path, e) from None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temp file and ``os.replace`` (never half-written, never
    through a link; see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


def append_line(path: str | Path, line: str) -> None:
    """Append one line to a log file (``metrics.jsonl``, ``config_history.jsonl``); when the write fails
    (a full disk) the file is cut back to its earlier length: no half line is left behind."""
    path = Path(path)
    data = (line.rstrip("\n") + "\n").encode("utf-8")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError as e:
        raise write_failure(path, e) from None
    try:
        size = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        except OSError as e:
            os.ftruncate(fd, size)
            raise write_failure(path, e) from None
    finally:
        os.close(fd)


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether ``a`` and ``b`` name one file or folder: the same device and inode once links are
    followed (a hard link, a symlink or another spelling of the path); False when either is missing."""
    try:
        return os.path.samestat(os.stat(a), os.stat(b))
    except (OSError, ValueError):
        return False


def inside(path: str | Path, folder: str | Path) -> bool:
    """Whether ``path`` (existing or not) is ``folder`` or lies below it, compared by device and inode of
    each existing ancestor (links followed), so no alias of the folder hides it."""
    p = Path(os.path.abspath(path))
    for q in (p, *p.parents):
        if os.path.lexists(q) and same_file(q, folder):
            return True
    return False


def aside_path(path: str | Path, stamp: str | None = None) -> Path:
    """A new sibling name for an output that is being replaced: ``NAME.replaced-<time>`` for a folder,
    ``STEM.replaced-<time>.SUFFIX`` for a file (it still opens with the same program)."""
    path = Path(path)
    stamp = stamp or datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    suffix = "" if path.is_dir() and not path.is_symlink() else path.suffix
    stem = path.name[: len(path.name) - len(suffix)]
    aside, n = path.with_name(f"{stem}.replaced-{stamp}{suffix}"), 1
    while stamp != "<time>" and os.path.lexists(aside):
        n += 1
        aside = path.with_name(f"{stem}.replaced-{stamp}-{n}{suffix}")
    return aside


def check_output(path: str | Path, *, overwrite: bool = False, inputs: tuple = (), option: str = "-o") -> bool:
    """Whether ``path`` is taken (see :func:`claim_output`), refusing what ``overwrite`` cannot allow;
    nothing is moved or written.

    Raises:
        OutputError: ``path`` is one of ``inputs``, or is taken and ``overwrite`` is not given.
    """
    from .errors import OutputError

    path = Path(path)
    for inp in inputs:
        if same_file(path, inp):
            raise OutputError(f"output {path} is the same file as the input {inp}: privacam never writes over its input; "
                              f"give another {option}")
    if not os.path.lexists(path):
        return False
    is_dir = path.is_dir() and not path.is_symlink()
    if is_dir and not any(path.iterdir()):
        return False
    if not overwrite:
        what = "a folder holding files" if is_dir else ("a link" if path.is_symlink() else "a file")
        raise OutputError(f"output {path} already exists ({what}); give a new {option}, or add --overwrite to move it aside "
                          f"to {aside_path(path, '<time>').name} (never deleted)")
    return True


def claim_output(path: str | Path, *, overwrite: bool = False, inputs: tuple = (), option: str = "-o") -> Path | None:
    """Make ``path`` free for an output, before anything is written.

    - the same file or folder as one of ``inputs`` (device and inode: hard links and symlinks count):
      refused, ``overwrite`` or not;
    - nothing there, or an empty folder: free;
    - a file, a link (dangling or not) or a folder holding anything: refused unless ``overwrite``, which
      renames it to :func:`aside_path` (never deleted, never followed if a link), returned.

    Raises:
        OutputError: one line naming the path and the way out.
    """
    path = Path(path)
    if not check_output(path, overwrite=overwrite, inputs=inputs, option=option):
        return None
    aside = aside_path(path)
    try:
        os.rename(path, aside)
    except OSError as e:
        raise write_failure(path, e) from None
    _log.warning("%s: the output that was there is moved to %s (--overwrite)", path, aside)
    return aside


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


def resolve_device(name: str = "auto", option: str = "train.device") -> torch.device:
    """``auto`` -> CUDA when present, else CPU; a named device that this machine lacks is a
    one-line :class:`~privacam.errors.ConfigError`, not a traceback from deep inside torch. ``option``:
    how the user set the device (``train.device``, ``--device``), for the fix the message gives."""
    from .errors import ConfigError

    use = f"{option} " if option.startswith("-") else f"{option}="
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(f"device {name!r} is not a device name; use auto, cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise ConfigError(f"device {name!r}: this machine has no CUDA device; use {use}auto (or cpu)")
        if dev.index is not None and dev.index >= n:
            raise ConfigError(f"device {name!r}: this machine has {n} CUDA device(s) (cuda:0..cuda:{n - 1}); pick one of them or use {use}auto")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError(f"device {name!r}: MPS is not available on this machine; use {use}auto (or cpu)")
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
