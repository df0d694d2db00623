"""Encoders from outside privacam, audited like a registered one: a user's PyTorch module built by
a factory (``--encoder path/to/file.py:make`` or ``--encoder package.module:make``) or an ONNX file
run through onnxruntime (``--encoder model.onnx``, e.g. from ``privacam export``).

The contract of such an encoder (checked once on a batch of the dataset's shape before the audit):

- it takes what the dataset yields, float32 in [0, 1]: clips ``[N, C, T, H, W]`` for video data,
  images ``[N, C, H, W]`` for image data. A module (or ONNX file) that takes frames ``[N, C, H, W]``
  is run frame by frame on clips (time folded into the batch);
- it returns a release of the same layout, one per input: ``[N, C', T', H', W']`` (or
  ``[N, C', H', W']``). Sizes and channel counts may change. An image release (the default) holds
  values in [0, 1] and is stored as 8-bit frames, as a camera sends them; a module whose
  ``releases`` attribute is ``"feature"`` (an ONNX file whose metadata says ``releases=feature``)
  releases feature maps, stored as float16.

A factory is called with the keyword arguments it accepts among ``in_channels``, ``size`` and
``clip_len`` (the dataset's), or with none. A randomised encoder says so with a ``randomised``
attribute (and a ``generator`` the probing views reseed); an ONNX file is randomised when its graph
draws random numbers.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import logging
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..errors import PrivacamError
from ..registry import ENCODERS
from ..utils import onnx_session

log = logging.getLogger(__name__)

#: ONNX operators that draw random numbers: a graph with one releases new randomness every run
RANDOM_OPS = {"RandomUniform", "RandomUniformLike", "RandomNormal", "RandomNormalLike", "Bernoulli", "Multinomial"}


def external_kind(spec: str) -> str | None:
    """``"onnx"``, ``"factory"`` or None (a registered encoder such as ``downsample:factor=4``)."""
    if spec.lower().endswith(".onnx"):
        return "onnx"
    head, sep, tail = spec.rpartition(":")
    if not sep or not tail.isidentifier():
        return None
    if head.endswith(".py") or "/" in head or "\\" in head:
        return "factory"
    if "." in head or head not in ENCODERS:
        return "factory"
    return None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_factory(spec: str) -> tuple[Callable, dict]:
    """The factory named by ``path/to/file.py:name`` or ``package.module:name``, and where it came from."""
    head, _, name = spec.rpartition(":")
    if head.endswith(".py") or "/" in head or "\\" in head:
        path = Path(head).expanduser()
        if not path.is_file():
            raise PrivacamError(f"--encoder {spec}: no such file {head}; give path/to/file.py:factory")
        mod_name = f"privacam_user_encoder_{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:10]}"
        try:
            mspec = importlib.util.spec_from_file_location(mod_name, path)
            module = importlib.util.module_from_spec(mspec)
            sys.modules[mod_name] = module
            mspec.loader.exec_module(module)
        except Exception as e:  # noqa: BLE001 - any error in user code becomes one line
            sys.modules.pop(mod_name, None)
            raise PrivacamError(f"--encoder {spec}: importing {path} failed ({type(e).__name__}: {_one_line(e)}); fix the file") from None
        where = {"file": str(path), "sha256": _sha256(path)}
    else:
        try:
            module = importlib.import_module(head)
        except Exception as e:  # noqa: BLE001
            raise PrivacamError(f"--encoder {spec}: cannot import module {head} ({type(e).__name__}: {_one_line(e)}); "
                                f"install it or give path/to/file.py:{name}") from None
        where = {"module": head, "file": str(getattr(module, "__file__", "") or "")}
    fn = getattr(module, name, None)
    if fn is None or not callable(fn):
        raise PrivacamError(f"--encoder {spec}: {head} has no function {name!r}; name a factory that returns a torch.nn.Module")
    return fn, where


def _one_line(e: BaseException) -> str:
    msg = " ".join(str(e).split())
    return msg[:300] + ("..." if len(msg) > 300 else "")


def build_factory_encoder(spec: str, *, in_channels: int, size: int, clip_len: int) -> tuple[nn.Module, dict]:
    """Call the factory of ``spec`` with the arguments it accepts; returns the module and its info."""
    fn, where = load_factory(spec)
    offered = {"in_channels": in_channels, "size": size, "clip_len": clip_len}
    try:
        params = inspect.signature(fn).parameters
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            kwargs = offered
        else:
            kwargs = {k: v for k, v in offered.items() if k in params}
    except (TypeError, ValueError):  # a builtin or a callable without a signature
        kwargs = {}
    name = spec.rpartition(":")[2]
    try:
        module = fn(**kwargs)
    except Exception as e:  # noqa: BLE001 - user code
        args = ", ".join(f"{k}={v}" for k, v in kwargs.items())
        raise PrivacamError(f"--encoder {spec}: {name}({args}) failed ({type(e).__name__}: {_one_line(e)}); the factory "
                            f"must return a torch.nn.Module, taking any of in_channels, size, clip_len as keyword arguments") from None
    if not isinstance(module, nn.Module):
        raise PrivacamError(f"--encoder {spec}: {name}() returned a {type(module).__name__}, not a torch.nn.Module; "
                            f"return the encoder module")
    return module, {"kind": "factory", "spec": spec, **where, "called_with": kwargs}


class OnnxModule(nn.Module):
    """An ONNX file as a (frozen, CPU or CUDA) module: ``forward`` runs it through onnxruntime."""

    def __init__(self, path: str | Path, device: str = "cpu"):
        super().__init__()
        import onnx

        self.path = Path(path)
        if not self.path.is_file():
            raise PrivacamError(f"--encoder {path}: no such ONNX file; create one with `privacam export RUN -o {path}`")
        try:
            model = onnx.load(str(self.path), load_external_data=False)
        except Exception as e:  # noqa: BLE001
            raise PrivacamError(f"--encoder {path}: not a readable ONNX file ({type(e).__name__}: {_one_line(e)})") from None
        meta = {p.key: p.value for p in model.metadata_props}
        self.releases = meta.get("releases", "image")
        self.randomised = any(n.op_type in RANDOM_OPS for n in model.graph.node)
        try:
            self.session = onnx_session(self.path, device)  # the thread budget PyTorch was given
        except Exception as e:  # noqa: BLE001
            raise PrivacamError(f"--encoder {path}: onnxruntime cannot load it ({type(e).__name__}: {_one_line(e)})") from None
        inp = self.session.get_inputs()
        if len(inp) != 1:
            raise PrivacamError(f"--encoder {path}: the graph has {len(inp)} inputs; the audit feeds one tensor [N, C, (T,) H, W]")
        self.input_name = inp[0].name
        self.input_rank = len(inp[0].shape)
        self.info = {"kind": "onnx", "file": str(self.path), "sha256": _sha256(self.path), "randomised": self.randomised,
                     "input_rank": self.input_rank, "metadata": meta}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.session.run(None, {self.input_name: np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)})[0]
        return torch.from_numpy(np.asarray(y, dtype=np.float32)).to(x.device)


class ExternalEncoder(nn.Module):
    """An outside encoder behind the contract of the module docstring.

    ``check(shape)`` runs it once on a batch of the dataset's shape, decides whether it takes clips
    or frames, and refuses (one line naming what was expected) an output the audit cannot take.
    """

    def __init__(self, inner: nn.Module, spec: str, info: dict):
        super().__init__()
        self.inner = inner.eval()
        self.spec, self.info = spec, info
        self.releases = getattr(inner, "releases", "image")
        if self.releases not in ("image", "feature"):
            raise PrivacamError(f"--encoder {spec}: releases is {self.releases!r}; set it to 'image' (values in [0, 1]) or 'feature'")
        self.randomised = bool(getattr(inner, "randomised", False))
        gen = getattr(inner, "generator", None)
        if isinstance(gen, torch.Generator):
            self.generator = gen  # the probing views reseed it
        self.framewise: bool | None = None
        self._warned = False
        for p in self.inner.parameters():
            p.requires_grad_(False)

    def _expected(self, x: torch.Tensor) -> str:
        if x.dim() == 5:
            return f"a release [N, C', T', H', W'] with N={x.shape[0]} (one per input clip [N, C, T, H, W] = {list(x.shape)})"
        return f"a release [N, C', H', W'] with N={x.shape[0]} (one per input image [N, C, H, W] = {list(x.shape)})"

    def _call(self, x: torch.Tensor, framewise: bool) -> torch.Tensor:
        if not framewise or x.dim() != 5:
            return self.inner(x)
        n, c, t, h, w = x.shape
        y = self.inner(x.transpose(1, 2).reshape(n * t, c, h, w))
        if not isinstance(y, torch.Tensor) or y.dim() != 4 or y.shape[0] != n * t:
            raise PrivacamError(f"--encoder {self.spec}: on frames [N*T, C, H, W] = {[n * t, c, h, w]} it returned "
                                f"{_shape_of(y)}; expected [N*T, C', H', W'] (one output frame per input frame)")
        return y.reshape(n, t, *y.shape[1:]).transpose(1, 2)

    def check(self, shape) -> list[int]:
        """Run once on a ``[2, *shape]`` batch; returns the release shape of one sample."""
        g = torch.Generator().manual_seed(0)
        x = torch.rand((2, *[int(s) for s in shape]), generator=g)
        rank = getattr(self.inner, "input_rank", None)
        first_error = None
        modes = [False, True] if x.dim() == 5 else [False]
        if rank == 4 and x.dim() == 5:
            modes = [True]
        elif rank == 5 and x.dim() == 4:
            raise PrivacamError(f"--encoder {self.spec}: the ONNX file takes clips [N, C, T, H, W] but the data are images "
                                f"{list(x.shape)}; audit it on video data")
        for framewise in modes:
            try:
                with torch.no_grad():
                    y = self._call(x, framewise)
            except PrivacamError:
                raise
            except Exception as e:  # noqa: BLE001 - user code: try frames next, else report
                first_error = first_error or e
                continue
            self.framewise = framewise
            self._check_output(x, y)
            log.info("--encoder %s takes %s; releases %s %s", self.spec, "frames" if framewise else "the input as it is",
                     self.releases, list(y.shape[1:]))
            return list(y.shape[1:])
        what = "clips [N, C, T, H, W] nor frames [N*T, C, H, W]" if len(modes) == 2 else f"{list(x.shape)}"
        raise PrivacamError(f"--encoder {self.spec}: failed on a batch of {list(x.shape)} ({type(first_error).__name__}: "
                            f"{_one_line(first_error)}); it must take {'clips' if x.dim() == 5 else 'images'} in [0, 1] "
                            f"(it took neither {what})")

    def _check_output(self, x: torch.Tensor, y) -> None:
        if not isinstance(y, torch.Tensor):
            raise PrivacamError(f"--encoder {self.spec}: returned {type(y).__name__}; expected {self._expected(x)}")
        if y.dim() != x.dim() or y.shape[0] != x.shape[0] or min(y.shape) < 1:
            raise PrivacamError(f"--encoder {self.spec}: returned shape {list(y.shape)}; expected {self._expected(x)}")
        if not torch.isfinite(y).all():
            raise PrivacamError(f"--encoder {self.spec}: returned NaN or infinite values; expected a finite release")
        if self.releases == "image" and not self._warned and (y.min() < -1e-3 or y.max() > 1 + 1e-3):
            self._warned = True
            log.warning("--encoder %s: image release outside [0, 1] (%.3g..%.3g) is clamped as a camera would; "
                        "set releases = 'feature' on the module if it releases features", self.spec, float(y.min()), float(y.max()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.framewise is None:
            self.check(x.shape[1:])
        y = self._call(x, bool(self.framewise))
        if not isinstance(y, torch.Tensor) or y.dim() != x.dim() or y.shape[0] != x.shape[0]:
            raise PrivacamError(f"--encoder {self.spec}: returned {_shape_of(y)}; expected {self._expected(x)}")
        return y


def _shape_of(y) -> str:
    return f"shape {list(y.shape)}" if isinstance(y, torch.Tensor) else type(y).__name__


def load_external_encoder(spec: str, sample_shape, *, device: str = "cpu") -> tuple[ExternalEncoder, dict]:
    """The encoder of an ``--encoder`` spec that is a file or a factory, checked on ``sample_shape``
    (one sample: ``[C, T, H, W]`` or ``[C, H, W]``); returns it and what the summary records."""
    shape = [int(s) for s in sample_shape]
    in_ch, size = shape[0], shape[-1]
    clip_len = shape[1] if len(shape) == 4 else 0
    kind = external_kind(spec)
    if kind == "onnx":
        inner = OnnxModule(spec, device=str(device))
        info = inner.info
    elif kind == "factory":
        inner, info = build_factory_encoder(spec, in_channels=in_ch, size=size, clip_len=clip_len)
    else:
        raise PrivacamError(f"--encoder {spec}: neither an .onnx file nor file.py:factory / package.module:factory")
    enc = ExternalEncoder(inner, spec, info)
    out = enc.check(shape)
    info = {**info, "takes": "frames" if enc.framewise else ("clips" if len(shape) == 4 else "images"),
            "releases": enc.releases, "release_shape": out, "randomised": enc.randomised}
    return enc, info


__all__ = ["ExternalEncoder", "OnnxModule", "external_kind", "load_external_encoder"]
