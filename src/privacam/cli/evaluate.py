"""``privacam evaluate``: the audit of a run or of a registered encoder, from the command line."""

from __future__ import annotations

import shlex
from pathlib import Path

from .. import runs
from ..audits import summary_path
from ..errors import PrivacamError
from ..evaluate.runner import evaluate_named, evaluate_released, evaluate_run
from ..evaluate.tables import summary_lines
from ..evaluate.units import UNIT_THREADS
from ..reference import reference_for
from .common import (DATA_HELP, Command, add_allow_overlap, add_executor_arguments, allow_overlap_override, executor_of,
                     resolve_config)


def print_summary(s) -> None:
    """The audit summary as a table: utility, then every attacker at every level with 95 % intervals."""
    print("\n".join(summary_lines(s)))


class Evaluate(Command):
    name = "evaluate"
    help = "audit an encoder: retrain unseen attackers on its output and score utility and privacy"

    def add_arguments(self, p):
        p.add_argument("args", nargs="*", help="RUN_DIR and/or key.sub=value overrides")
        p.add_argument("--encoder", help="instead of a run: a registered encoder (downsample:factor=4), a user's factory "
                                         "(path/to/file.py:make or package.module:make) or an ONNX file (model.onnx)")
        p.add_argument("--released", metavar="RELEASED.csv",
                       help="audit files another tool already anonymised: a manifest of the rows of --data RAW.csv "
                            "(same ids, labels and split) pointing at the released videos or frame folders")
        p.add_argument("--config", help="config for --encoder / --released (default: 'default')")
        p.add_argument("--label", help="name of the audited release in tables and the privacy card (--encoder, --released)")
        p.add_argument("--data", help=DATA_HELP)
        add_allow_overlap(p)
        p.add_argument("--out", help="output directory (default RUN_DIR/eval); the same audit there resumes "
                                     "(finished units are reused), another audit there is refused without --overwrite")
        p.add_argument("--overwrite", action="store_true",
                       help="--out holds another audit: move it aside (<out>.replaced-<time>, not deleted) and audit anew")
        p.add_argument("--no-raw", action="store_true", help="skip the raw-data reference")
        p.add_argument("--device", default="auto")
        add_executor_arguments(p)

    def interrupted(self, args):
        return ("interrupted; run the same command again: the audit's finished units (eval/units/) are kept and "
                "not computed again")

    def run(self, args):
        with executor_of(args, threads=UNIT_THREADS) as executor:  # a unit computes on its own threads anyway
            return self._run(args, executor)

    def _run(self, args, executor):
        command = shlex.join(["privacam", *getattr(args, "_argv", [])])
        run_dirs = [a for a in args.args if "=" not in a]
        overrides = [a for a in args.args if "=" in a] + allow_overlap_override(args)
        raw = not args.no_raw
        if args.released:
            if run_dirs or args.encoder:
                raise PrivacamError("give --released with --data RAW.csv --out DIR, without RUN_DIR or --encoder")
            if not args.data or not args.out:
                raise PrivacamError("--released needs --data RAW.csv (the raw manifest) and --out DIR")
            cfg = resolve_config(args.config, args.data, overrides)
            s = evaluate_released(args.released, cfg, args.out, raw=raw, device=args.device, label=args.label, command=command,
                                  executor=executor, overwrite=args.overwrite)
            print(f"wrote {summary_path(Path(args.out) / runs.EVAL)}")
        elif args.encoder:
            if run_dirs:
                raise PrivacamError("give either RUN_DIR or --encoder, not both")
            if not args.out:
                raise PrivacamError("--encoder needs --out DIR")
            cfg = resolve_config(args.config, args.data, overrides)
            s = evaluate_named(args.encoder, cfg, args.out, raw=raw, device=args.device, label=args.label, command=command,
                               executor=executor, overwrite=args.overwrite)
            print(f"wrote {summary_path(Path(args.out) / runs.EVAL)}")
        else:
            if len(run_dirs) != 1:
                raise PrivacamError("give one RUN_DIR (or --encoder NAME --out DIR)")
            if raw and not args.data:  # the unprotected network for a feature-level run (privacam.reference)
                raw = reference_for(run_dirs[0], overrides=overrides, device=args.device)
            s = evaluate_run(run_dirs[0], out_dir=args.out, overrides=overrides, data=args.data, raw=raw, device=args.device,
                             command=command, executor=executor, overwrite=args.overwrite)
            print(f"wrote {summary_path(args.out or Path(run_dirs[0]) / runs.EVAL)}")
        print_summary(s)
        return 0
