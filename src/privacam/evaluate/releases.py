"""The encoded cache: released splits held compactly in memory.

The probing attacker releases its training split many times (``eval.views``), so the cache holds
several releases of every training clip. What a camera sends is held the way it is sent:

- a binary release (every value 0 or 1, e.g. the ``motion`` encoder's mask) packs to one bit per
  value (``np.packbits``), 8x less than 8-bit frames;
- an image release is 8-bit (``uint8``), a feature release ``float16``;
- a release whose channels are identical (a grey map replicated to three channels for video viewers)
  keeps one channel and repeats it on read.

:class:`ReleaseStore` reads like the tensor it replaces: ``len``, ``shape``, ``dim()`` and
``store[idx]`` (a ``uint8`` / ``float16`` tensor of the selected rows, full channel count).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch


class ReleaseStore:
    """Released samples ``[N, C, (T,) H, W]``, stored dense, channel-deduplicated or bit-packed.

    Args:
        x: the releases, ``uint8`` (0..255) or ``float16``.
        pack: bit-pack when every value is 0 or 255 (only for ``uint8``).
    """

    def __init__(self, x: torch.Tensor, pack: bool = True):
        self.dtype = x.dtype
        self._shape = tuple(x.shape)
        self.channels = int(x.shape[1]) if x.dim() > 1 else 1
        self.repeat = 1
        if x.dim() > 2 and x.shape[1] > 1 and bool((x == x[:, :1]).all()):
            x = x[:, :1]
            self.repeat = self.channels
        self.packed = bool(pack and x.dtype == torch.uint8 and bool(((x == 0) | (x == 255)).all()))
        self._inner = tuple(x.shape[1:])
        if self.packed:
            bits = (x.reshape(len(x), -1) == 255).numpy()
            self._data = np.packbits(bits, axis=1)
            self._count = bits.shape[1]
        else:
            self._data = x.contiguous()

    @classmethod
    def concat(cls, stores: Sequence["ReleaseStore"]) -> "ReleaseStore":
        """One store of the rows of several (same sample shape and dtype)."""
        first = stores[0]
        if len(stores) == 1:
            return first
        if all(s.packed == first.packed and s.repeat == first.repeat and s._inner == first._inner for s in stores):
            out = cls.__new__(cls)
            out.__dict__.update({k: v for k, v in first.__dict__.items() if k not in ("features", "_tensor")})  # per store
            if first.packed:
                out._data = np.concatenate([s._data for s in stores])
            else:
                out._data = torch.cat([s._data for s in stores])
            out._shape = (sum(len(s) for s in stores),) + first._shape[1:]
            return out
        return cls(torch.cat([s[:] for s in stores]))

    def __len__(self) -> int:
        return self._shape[0]

    @property
    def shape(self) -> torch.Size:
        return torch.Size(self._shape)

    def dim(self) -> int:
        return len(self._shape)

    @property
    def nbytes(self) -> int:
        """Memory held by the releases (what the cache costs)."""
        return int(self._data.nbytes if self.packed else self._data.numel() * self._data.element_size())

    # -- sharing between processes
    _META = ("dtype", "_shape", "channels", "repeat", "packed", "_inner", "_count")

    def parts(self, conv=lambda t: t) -> dict:
        """The store as plain data: ``data`` (a torch tensor, or what ``conv`` makes of it) and its
        layout; :meth:`from_parts` rebuilds it. Cached features are not part of it (each process
        computes its own)."""
        data = self._packed_tensor() if self.packed else self._data
        out = {k: getattr(self, k) for k in self._META if hasattr(self, k)}
        out["dtype"] = str(self.dtype).replace("torch.", "")
        out["data"] = conv(data)
        return out

    @classmethod
    def from_parts(cls, parts: dict) -> "ReleaseStore":
        out = cls.__new__(cls)
        for k in cls._META:
            if k in parts:
                setattr(out, k, parts[k])
        out.dtype = getattr(torch, parts["dtype"])
        data = parts["data"]
        if out.packed:
            if isinstance(data, torch.Tensor):
                out._tensor = data
            out._data = data.numpy() if isinstance(data, torch.Tensor) else np.asarray(data)
        else:
            if not isinstance(data, torch.Tensor):
                import warnings

                with warnings.catch_warnings():  # a read-only view of Ray's object store: nothing writes it
                    warnings.simplefilter("ignore", UserWarning)
                    data = torch.from_numpy(data)
            out._data = data
        return out

    def share_memory(self) -> "ReleaseStore":
        """Move the data into shared memory in place (processes started with this store map it)."""
        if self.packed:
            if not self._packed_tensor().is_shared():
                shared = torch.from_numpy(self._data).clone().share_memory_()
                self._data, self._tensor = shared.numpy(), shared
        else:
            self._data.share_memory_()
        return self

    def _packed_tensor(self) -> torch.Tensor:
        """The packed bits as a tensor (the one in shared memory once :meth:`share_memory` moved them)."""
        t = self.__dict__.get("_tensor")
        return t if t is not None else torch.from_numpy(self._data)

    def __getstate__(self) -> dict:
        state = {k: v for k, v in self.__dict__.items() if k not in ("features", "_tensor")}  # features: per process
        if self.packed:  # as a tensor: sent through shared memory by torch.multiprocessing
            state["_data"] = self._packed_tensor()
        return state

    def __setstate__(self, state: dict) -> None:
        if state.get("packed") and isinstance(state.get("_data"), torch.Tensor):
            state["_tensor"] = state["_data"]
            state["_data"] = state["_data"].numpy()
        self.__dict__.update(state)

    def __getitem__(self, idx) -> torch.Tensor:
        if isinstance(idx, slice):
            idx = torch.arange(len(self))[idx]
        idx = torch.as_tensor(idx, dtype=torch.long).reshape(-1)
        if self.packed:
            bits = np.unpackbits(self._data[idx.numpy()], axis=1, count=self._count)
            x = torch.from_numpy(bits).mul_(255).reshape((len(idx),) + self._inner)
        else:
            x = self._data[idx]
        if self.repeat > 1:
            x = x.expand(-1, self.repeat, *x.shape[2:])
        return x


__all__ = ["ReleaseStore"]
