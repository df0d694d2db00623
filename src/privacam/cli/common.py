"""What every subcommand shares: the :class:`Command` base and the one way a command turns
``CONFIG``, ``key.sub=value`` overrides and ``--data SPEC`` into a checked config."""

from __future__ import annotations

import argparse

from ..builders import check_config
from ..config import Config, load_config
from ..data import apply_data_spec

DATA_HELP = "manifest CSV, NAME or NAME:ROOT (overrides the config's dataset)"
OVERRIDES_HELP = "key.sub=value config overrides"


class Command:
    """A subcommand: ``name``, ``help``, ``add_arguments(parser)`` and ``run(args) -> int``."""

    name = ""
    help = ""

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        pass

    def run(self, args: argparse.Namespace) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def interrupted(self, args: argparse.Namespace) -> str:
        """What the user is told after Ctrl-C: what was kept and a command that works when followed
        (every file is written under a temporary name and renamed into place, so none is half-written)."""
        return "interrupted; no file was left half-written: run the same command again"


def rerun_with(args: argparse.Namespace, add: tuple = (), drop: tuple = ()) -> str:
    """The command line the user gave (``args._argv``), without the flags in ``drop`` and with those of
    ``add`` appended: what a message tells them to run."""
    import shlex

    argv = [a for a in getattr(args, "_argv", []) if a not in drop]
    return shlex.join(["privacam", *argv, *(a for a in add if a not in argv)])


def add_config_arguments(p: argparse.ArgumentParser, *, config: str = "positional", default: str = "default") -> None:
    """``CONFIG`` (positional, or ``--config`` when ``config="option"``), overrides and ``--data``."""
    what = f"YAML file or shipped config name (default: {default!r})"
    if config == "option":
        p.add_argument("--config", help=what)
    else:
        p.add_argument("config", nargs="?", help=what)
    p.add_argument("overrides", nargs="*", help=OVERRIDES_HELP)
    p.add_argument("--data", help=DATA_HELP)
    add_allow_overlap(p)


def add_allow_overlap(p: argparse.ArgumentParser) -> None:
    """``--allow-overlap`` (see :func:`allow_overlap_override`)."""
    p.add_argument("--allow-overlap", action="store_true",
                   help="accept a manifest that lists one file in two splits (a train/test leak), with a loud "
                        "warning (data.params.allow_overlap=true)")


def allow_overlap_override(args: argparse.Namespace) -> list[str]:
    """``--allow-overlap`` as the override it stands for (``data.params.allow_overlap=true``)."""
    return ["data.params.allow_overlap=true"] if getattr(args, "allow_overlap", False) else []


def add_executor_arguments(p: argparse.ArgumentParser) -> None:
    """``--workers N`` and ``--ray [ADDRESS]``: where the independent jobs (an audit's units, a sweep's
    runs) run; neither: one after the other in this process."""
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, metavar="N",
                       help="run the independent jobs in N local worker processes (shared memory, a fair share of "
                            "the CPU threads each)")
    where.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                       help="run them as Ray tasks: on the cluster at ADDRESS (auto, host:6379, ray://host:10001) or, "
                            "without one, on a local cluster started here (pip install 'privacam[ray]')")


def executor_of(args: argparse.Namespace, threads: int | None = None):
    """The executor ``--workers`` / ``--ray`` ask for (a context manager that shuts it down);
    ``threads``: each local worker's CPU threads (default: a fair share of the cores)."""
    from ..executors import make_executor
    from ..utils import resolve_device

    return make_executor(getattr(args, "workers", None), getattr(args, "ray", None),
                         device=resolve_device(getattr(args, "device", None) or "auto"), threads=threads)


def split_config(config: str | None, overrides: list[str]) -> tuple[str | None, list[str]]:
    """``privacam train key=value ...`` has no config: the first "positional" is an override."""
    overrides = list(overrides)
    if config and "=" in config:
        overrides.insert(0, config)
        config = None
    return config, overrides


def resolve_config(config: str | None, data: str | None, overrides: list[str], *, default: str = "default") -> Config:
    """Load ``config`` (or ``default``), apply ``overrides`` and ``--data``, and check the result
    (:func:`privacam.builders.check_config`: unknown names and keys with no effect are errors)."""
    cfg = load_config(config or default, overrides)
    if data:
        cfg.data = apply_data_spec(cfg.data, data)
    return check_config(cfg)
