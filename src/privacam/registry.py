"""One registry pattern for every pluggable part (encoders, utility models, adversaries,
reconstructors, attackers, privacy losses, schedules, datasets).

``register_*`` decorates a factory, ``create_*(name, **kw)`` builds it, ``list_*(pattern)`` lists
names. An unknown name, or an unknown keyword, raises a one-line error listing the valid choices.

This module sits at the bottom of the package and imports nothing above it: the modules that
register factories import it, and the package (``privacam/__init__.py``) imports all of them
eagerly, as timm does, so the registries are full once ``privacam`` is imported. A module that
fails to import is an error there, never an "unknown name" here.
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
from typing import Any, Callable

from .errors import ConfigError, RegistryError


class Registry:
    """A named collection of factories.

    Args:
        kind: what the registry holds, used in error messages ("encoder", "attacker", ...).
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, Callable[..., Any]] = {}
        self._tags: dict[str, set[str]] = {}

    def register(self, name: str | None = None, *, tags: tuple[str, ...] = ()) -> Callable:
        """Decorator registering ``fn`` under ``name`` (default: the function's name)."""

        def deco(fn: Callable) -> Callable:
            key = name or fn.__name__
            if key in self._items and self._items[key] is not fn:
                raise ValueError(f"{self.kind} {key!r} is registered twice")
            self._items[key] = fn
            self._tags[key] = set(tags)
            return fn

        return deco

    def get(self, name: str) -> Callable[..., Any]:
        """The factory registered as ``name`` (a one-line error listing the valid names if unknown)."""
        if name not in self._items:
            close = difflib.get_close_matches(name, self._items, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise RegistryError(
                f"unknown {self.kind} {name!r}{hint}; valid names: {', '.join(sorted(self._items))}"
            )
        return self._items[name]

    def parameters(self, name: str) -> list[str] | None:
        """The keyword parameters the factory ``name`` takes (None when it takes any: ``**kw``)."""
        sig = inspect.signature(self.get(name))
        if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
            return None
        return [p for p in sig.parameters if p != "self"]

    def check(self, name: str, params: Any, *, key: str = "") -> None:
        """Raise a one-line :class:`ConfigError` when the factory ``name`` does not take one of ``params``.

        ``key`` names the config key holding ``params`` (``"schedule.params"``) in the message.
        """
        valid = self.parameters(name)
        if valid is None:
            return
        bad = [k for k in params if k not in valid]
        if bad:
            where = f" ({key}.{bad[0]})" if key else ""
            raise ConfigError(
                f"{self.kind} {name!r} takes no parameter {bad[0]!r}{where}; its parameters: {', '.join(valid)}"
            )

    def create(self, name: str, /, **kwargs: Any) -> Any:
        """Build ``name`` with ``kwargs``; a keyword the factory does not take is a clear error."""
        fn = self.get(name)
        self.check(name, kwargs)
        return fn(**kwargs)

    def list(self, pattern: str = "*", *, tag: str | None = None) -> list[str]:
        """Sorted names matching a shell-style ``pattern`` (and carrying ``tag`` if given)."""
        return sorted(
            n for n in self._items if fnmatch.fnmatch(n, pattern) and (tag is None or tag in self._tags[n])
        )

    def tags(self, name: str) -> set[str]:
        """The tags ``name`` was registered with."""
        self.get(name)
        return set(self._tags[name])

    def __contains__(self, name: str) -> bool:
        return name in self._items

    def __len__(self) -> int:
        return len(self._items)


ENCODERS = Registry("encoder")
UTILITY_MODELS = Registry("utility model")
ADVERSARIES = Registry("adversary")
RECONSTRUCTORS = Registry("reconstructor")
ATTACKERS = Registry("attacker")
PRIVACY_LOSSES = Registry("privacy loss")
SCHEDULES = Registry("schedule")
DATASETS = Registry("dataset")

register_encoder = ENCODERS.register
register_utility = UTILITY_MODELS.register
register_adversary = ADVERSARIES.register
register_reconstructor = RECONSTRUCTORS.register
register_attacker = ATTACKERS.register
register_privacy_loss = PRIVACY_LOSSES.register
register_schedule = SCHEDULES.register
register_dataset = DATASETS.register


def create_encoder(name: str, /, **kw: Any):
    """Build the encoder f_d registered as ``name``."""
    return ENCODERS.create(name, **kw)


def create_utility(name: str, /, **kw: Any):
    """Build the utility model f_T registered as ``name``."""
    return UTILITY_MODELS.create(name, **kw)


def create_adversary(name: str, /, **kw: Any):
    """Build the budget classifier f_b registered as ``name``."""
    return ADVERSARIES.create(name, **kw)


def create_reconstructor(name: str, /, **kw: Any):
    """Build the reconstruction adversary f_b registered as ``name`` (CPGAN's threat)."""
    return RECONSTRUCTORS.create(name, **kw)


def create_attacker(name: str, /, **kw: Any):
    """Build the audit's retrained attacker registered as ``name``."""
    return ATTACKERS.create(name, **kw)


def list_encoders(pattern: str = "*") -> list[str]:
    return ENCODERS.list(pattern)


def list_utility_models(pattern: str = "*") -> list[str]:
    return UTILITY_MODELS.list(pattern)


def list_adversaries(pattern: str = "*") -> list[str]:
    return ADVERSARIES.list(pattern)


def list_reconstructors(pattern: str = "*") -> list[str]:
    return RECONSTRUCTORS.list(pattern)


def list_attackers(pattern: str = "*") -> list[str]:
    return ATTACKERS.list(pattern)
