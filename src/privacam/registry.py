"""One registry pattern for every pluggable part (encoders, utility models, adversaries,
attackers, privacy losses, schedules, datasets).

``register_*`` decorates a factory, ``create_*(name, **kw)`` builds it, ``list_*(pattern)`` lists
names. An unknown name, or an unknown keyword, raises a one-line error listing the valid choices.
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
        if name not in self._items:
            close = difflib.get_close_matches(name, self._items, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise RegistryError(
                f"unknown {self.kind} {name!r}{hint}; valid names: {', '.join(sorted(self._items))}"
            )
        return self._items[name]

    def create(self, name: str, /, **kwargs: Any) -> Any:
        """Build ``name`` with ``kwargs``; a keyword the factory does not take is a clear error."""
        fn = self.get(name)
        sig = inspect.signature(fn)
        if not any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
            bad = [k for k in kwargs if k not in sig.parameters]
            if bad:
                valid = [p for p in sig.parameters if p not in ("self",)]
                raise ConfigError(
                    f"{self.kind} {name!r} takes no parameter {bad[0]!r}; its parameters: {', '.join(valid)}"
                )
        return fn(**kwargs)

    def list(self, pattern: str = "*", *, tag: str | None = None) -> list[str]:
        """Sorted names matching a shell-style ``pattern`` (and carrying ``tag`` if given)."""
        return sorted(
            n for n in self._items if fnmatch.fnmatch(n, pattern) and (tag is None or tag in self._tags[n])
        )

    def tags(self, name: str) -> set[str]:
        self.get(name)
        return set(self._tags[name])

    def __contains__(self, name: str) -> bool:
        return name in self._items

    def __len__(self) -> int:
        return len(self._items)


ENCODERS = Registry("encoder")
UTILITY_MODELS = Registry("utility model")
ADVERSARIES = Registry("adversary")
ATTACKERS = Registry("attacker")
PRIVACY_LOSSES = Registry("privacy loss")
SCHEDULES = Registry("schedule")
DATASETS = Registry("dataset")

register_encoder = ENCODERS.register
register_utility = UTILITY_MODELS.register
register_adversary = ADVERSARIES.register
register_attacker = ATTACKERS.register
register_privacy_loss = PRIVACY_LOSSES.register
register_schedule = SCHEDULES.register
register_dataset = DATASETS.register


def _ensure_builtins() -> None:
    """Import the modules that fill the registries (kept lazy to avoid import cycles)."""
    from . import data, models  # noqa: F401
    from .game import losses, schedules  # noqa: F401
    try:
        from .game import cpgan  # noqa: F401  (multiple-adversary schedule of CPGAN)
    except ImportError:
        pass
    try:
        from .evaluate import attackers  # noqa: F401
    except ImportError:  # the audit is optional for the game
        pass


def create_encoder(name: str, /, **kw: Any):
    _ensure_builtins()
    return ENCODERS.create(name, **kw)


def create_utility(name: str, /, **kw: Any):
    _ensure_builtins()
    return UTILITY_MODELS.create(name, **kw)


def create_adversary(name: str, /, **kw: Any):
    _ensure_builtins()
    return ADVERSARIES.create(name, **kw)


def create_attacker(name: str, /, **kw: Any):
    _ensure_builtins()
    return ATTACKERS.create(name, **kw)


def list_encoders(pattern: str = "*") -> list[str]:
    _ensure_builtins()
    return ENCODERS.list(pattern)


def list_utility_models(pattern: str = "*") -> list[str]:
    _ensure_builtins()
    return UTILITY_MODELS.list(pattern)


def list_adversaries(pattern: str = "*") -> list[str]:
    _ensure_builtins()
    return ADVERSARIES.list(pattern)


def list_attackers(pattern: str = "*") -> list[str]:
    _ensure_builtins()
    return ATTACKERS.list(pattern)
