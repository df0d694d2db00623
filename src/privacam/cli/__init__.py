"""The ``privacam`` console script: demo, train, evaluate, report, sweep, anonymize, export, datasets,
configs.

Only this package knows about the command line (no library module imports it). Each subcommand is a
small :class:`~privacam.cli.common.Command` in its own module; every one of them is imported to build
the parser, so a subcommand whose module fails to import is an error, never a missing command. Every
:class:`~privacam.errors.PrivacamError` becomes one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from ..errors import PrivacamError
from .common import Command

log = logging.getLogger("privacam")

#: every subcommand, in the order ``privacam --help`` lists them: (module of this package, class)
COMMANDS = (
    ("demo", "Demo"), ("train", "Train"), ("evaluate", "Evaluate"), ("report", "Report"), ("sweep", "Sweep"),
    ("deploy", "Anonymize"), ("deploy", "Export"), ("listing", "Datasets"), ("listing", "Configs"),
)


def commands() -> list[Command]:
    """One instance of every subcommand (an import error propagates: it is never swallowed)."""
    return [getattr(importlib.import_module(f"{__name__}.{module}"), cls)() for module, cls in COMMANDS]


def build_parser() -> argparse.ArgumentParser:
    """The ``privacam`` argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="privacam", description="Privacy-preserving visual recognition by adversarial learning.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for c in commands():
        p = sub.add_parser(c.name, help=c.help, description=c.help)
        c.add_arguments(p)
        p.set_defaults(_cmd=c)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``privacam ARGV``; returns the exit status (2 for a :class:`PrivacamError`)."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    args._argv = list(sys.argv[1:] if argv is None else argv)  # the command line, for the results' provenance
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
        print(f"privacam {args.command}: {args._cmd.interrupted(args)}", file=sys.stderr)
        return 130
    except OSError as e:  # a disk or permission problem met outside privacam's own writers
        where = f" ({e.filename})" if e.filename else ""
        print(f"privacam {args.command}: error: {e.strerror or e}{where}; check the path, its permissions and the "
              f"free space, then run the same command again", file=sys.stderr)
        return 2
