"""The ``privacam`` console script: demo, train, evaluate, report, anonymize, export, datasets, configs.

Only this module knows about the command line. Every :class:`~privacam.errors.PrivacamError`
becomes one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .errors import PrivacamError

log = logging.getLogger("privacam")


class Command:
    """A subcommand: ``name``, ``help``, ``add_arguments(parser)`` and ``run(args) -> int``."""

    name = ""
    help = ""

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        pass

    def run(self, args: argparse.Namespace) -> int:  # pragma: no cover - abstract
        raise NotImplementedError


def _resolve_config(config: str | None, data: str | None, overrides: list[str]):
    from .config import load_config
    from .data import apply_data_spec

    cfg = load_config(config or "default", overrides)
    if data:
        cfg.data = apply_data_spec(cfg.data, data)
    return cfg


class Train(Command):
    name = "train"
    help = "train an anonymizer (the three-player game) into a run directory"

    def add_arguments(self, p):
        p.add_argument("config", nargs="?", help="YAML file or shipped config name (default: 'default')")
        p.add_argument("overrides", nargs="*", help="key.sub=value config overrides")
        p.add_argument("--data", help="manifest CSV, NAME or NAME:ROOT (overrides the config's dataset)")
        p.add_argument("--out", help="run directory (default: runs/<config>)")
        p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")

    def run(self, args):
        from .train import load_run_config, train

        config, overrides = args.config, list(args.overrides)
        if config and "=" in config:  # `privacam train key=value ...` with no config
            overrides.insert(0, config)
            config = None
        out = Path(args.out or f"runs/{Path(config or 'default').stem}")
        if args.resume and (out / "config.yaml").exists():
            from .config import apply_overrides

            cfg = apply_overrides(load_run_config(out), overrides)
        else:
            cfg = _resolve_config(config, args.data, overrides)
        import os

        run_dir = train(cfg, out, resume=args.resume)
        if int(os.environ.get("RANK", "0")) == 0:  # one line under torchrun too
            print(f"run written to {run_dir}")
        return 0


class Configs(Command):
    name = "configs"
    help = "list the shipped configs, one per line, name first"

    def run(self, args):
        from .config import shipped_configs

        for name, first in shipped_configs().items():
            print(f"{name}\t{first}")
        return 0


class Datasets(Command):
    name = "datasets"
    help = "list the datasets privacam can load (--data NAME:ROOT)"

    def run(self, args):
        from .data import DATASETS

        for name in DATASETS.list():
            doc = (DATASETS.get(name).__doc__ or "").strip().splitlines()
            print(f"{name}\t{doc[0] if doc else ''}")
        return 0


def _lazy(module: str, cls: str) -> Command:
    """Commands implemented elsewhere are imported only when used."""
    import importlib

    try:
        return getattr(importlib.import_module(module, __package__), cls)()
    except (ImportError, AttributeError):
        return None  # type: ignore[return-value]


def commands() -> list[Command]:
    cmds: list[Command] = [Train(), Configs(), Datasets()]
    for mod, cls in ((".evaluate.cli", "Evaluate"), (".report", "ReportCommand"), (".demo", "Demo"),
                     (".deploy", "Anonymize"), (".deploy", "Export"), (".cpgan", "Sweep")):
        c = _lazy(mod, cls)
        if c is not None:
            cmds.append(c)
    return cmds


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="privacam", description="Privacy-preserving visual recognition by adversarial learning.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for c in commands():
        p = sub.add_parser(c.name, help=c.help, description=c.help)
        c.add_arguments(p)
        p.set_defaults(_cmd=c)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may also come after options (`train CONFIG --out X a.b=1`)
    dest = next((d for d in ("overrides", "args") if isinstance(getattr(args, d, None), list)), None)
    bad = [e for e in extra if "=" not in e or e.startswith("-") or dest is None]
    if bad:
        parser.error(f"unrecognized arguments: {' '.join(bad)}")
    if extra:
        getattr(args, dest).extend(extra)
    logging.basicConfig(level=logging.WARNING - 10 * min(args.verbose + 1, 2), format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "_cmd", None):
        parser.print_help()
        return 1
    try:
        return int(args._cmd.run(args) or 0)
    except PrivacamError as e:
        print(f"privacam {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"privacam {args.command}: interrupted; resume with --resume", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
