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
import numbers
import os
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
        self._rules: dict[str, dict[str, Any]] = {}

    def register(self, name: str | None = None, *, tags: tuple[str, ...] = (), rules: dict | None = None) -> Callable:
        """Decorator registering ``fn`` under ``name`` (default: the function's name).

        ``rules``: ``{parameter: rule}``, what values a parameter may take (objects with
        ``check(key, value)``, e.g. :class:`privacam.config.Range`); a parameter without a rule is
        checked against the type of its annotation or default (:meth:`check`).
        """

        def deco(fn: Callable) -> Callable:
            key = name or fn.__name__
            if key in self._items and self._items[key] is not fn:
                raise ValueError(f"{self.kind} {key!r} is registered twice")
            self._items[key] = fn
            self._tags[key] = set(tags)
            self._rules[key] = dict(rules or {})
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

    def rules(self, name: str) -> dict[str, Any]:
        """The value rules of ``name``'s parameters (``{parameter: rule}``): those it was registered with
        and a class's own ``param_rules``."""
        return {**getattr(self.get(name), "param_rules", {}), **self._rules.get(name, {})}

    def check(self, name: str, params: Any, *, key: str = "") -> None:
        """Raise a one-line :class:`ConfigError` when the factory ``name`` does not take one of ``params``,
        or a value is out of its parameter's rule (or not of its annotated type).

        ``key`` names the config key holding ``params`` (``"schedule.params"``) in the message; without
        it a value is named ``name:parameter`` (as in ``--encoder downsample:factor=4``).
        """
        valid = self.parameters(name)
        if valid is not None:
            bad = [k for k in params if k not in valid]
            if bad:
                where = f" ({key}.{bad[0]})" if key else ""
                raise ConfigError(
                    f"{self.kind} {name!r} takes no parameter {bad[0]!r}{where}; its parameters: {', '.join(valid)}"
                )
        fn = self.get(name)
        rules = {**getattr(fn, "param_rules", {}), **self._rules.get(name, {})}  # a class may carry its own (schedules)
        sig = inspect.signature(fn).parameters
        for k, v in dict(params).items():
            label = f"{key}.{k}" if key else f"{name}:{k}"
            try:
                if k in rules:
                    rules[k].check(label, v)
                elif k in sig:
                    _check_type(label, v, sig[k])
            except ConfigError as e:
                msg = str(e) if key else str(e).replace("config key ", f"{self.kind} parameter ", 1)
                raise ConfigError(msg) from None

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


def _check_type(label: str, value: Any, param: inspect.Parameter) -> None:
    """A value against the type a factory's parameter is annotated with (or, unannotated, the type of
    its default): ``int``, ``float``, ``bool``, ``str``, each maybe ``| None``; other types pass."""
    ann = param.annotation
    if ann is inspect.Parameter.empty:
        default = param.default
        ann = type(default).__name__ if isinstance(default, (bool, int, float, str)) else ""
    elif not isinstance(ann, str):
        ann = getattr(ann, "__name__", str(ann))
    kinds = {t.strip() for t in str(ann).split("|")}
    if value is None and "None" in kinds:
        return
    known = {"int": "a whole number", "float": "a number", "bool": "true or false", "str": "a string"}
    wanted = [t for t in ("bool", "int", "float", "str") if t in kinds]
    if not wanted or kinds - set(known) - {"None"}:
        return
    fits = {"bool": isinstance(value, bool),
            "int": isinstance(value, numbers.Integral) and not isinstance(value, bool),
            "float": isinstance(value, numbers.Real) and not isinstance(value, bool),
            "str": isinstance(value, (str, os.PathLike))}
    if not any(fits[t] for t in wanted):
        raise ConfigError(f"config key {label!r} is {value!r}; it must be {' or '.join(known[t] for t in wanted)}")


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
