"""``privacam demo``: train, audit and report on the embedded data."""

from __future__ import annotations

from ..demo import run_demo, timing_line
from ..evaluate.units import UNIT_THREADS
from .common import (Command, add_config_arguments, add_executor_arguments, allow_overlap_override, executor_of,
                     rerun_with)


class Demo(Command):
    name = "demo"
    help = "train, audit and report on the embedded data (CPU; --quick for a first look)"

    def add_arguments(self, p):
        add_config_arguments(p, config="option", default="demo")
        p.add_argument("--out", default="demo_out", help="output directory (default demo_out)")
        p.add_argument("--quick", action="store_true", help="a smaller, faster run (about 3 minutes)")
        p.add_argument("--resume", action="store_true",
                       help="continue a killed demo in --out (training from its checkpoint; finished audits reused)")
        p.add_argument("--overwrite", action="store_true",
                       help="--out holds an earlier demo: move its anonymizer run aside (not deleted) and train again")
        add_executor_arguments(p)

    def interrupted(self, args):
        return f"interrupted; continue with `{rerun_with(args, add=('--resume',), drop=('--overwrite',))}` (finished parts are kept)"

    def run(self, args):
        with executor_of(args, threads=UNIT_THREADS) as executor:  # the audits' units run there
            res = run_demo(args.out, quick=args.quick, config=args.config, data=args.data,
                           overrides=list(args.overrides) + allow_overlap_override(args), resume=args.resume,
                           overwrite=args.overwrite, executor=executor)
        print(res["table"])
        print("\n" + timing_line(res["seconds"], args.resume))
        print(f"report: {res['report']}  figure: {res['figure']}")
        return 0
