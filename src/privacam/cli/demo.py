"""``privacam demo``: train, audit and report on the embedded data."""

from __future__ import annotations

from ..demo import run_demo, timing_line
from .common import Command, add_config_arguments


class Demo(Command):
    name = "demo"
    help = "train, audit and report on the embedded data (CPU; --quick for a first look)"

    def add_arguments(self, p):
        add_config_arguments(p, config="option", default="demo")
        p.add_argument("--out", default="demo_out", help="output directory (default demo_out)")
        p.add_argument("--quick", action="store_true", help="a smaller, faster run (about 3 minutes)")
        p.add_argument("--resume", action="store_true",
                       help="continue a killed demo in --out (training from its checkpoint; finished audits reused)")

    def run(self, args):
        res = run_demo(args.out, quick=args.quick, config=args.config, data=args.data, overrides=args.overrides,
                       resume=args.resume)
        print(res["table"])
        print("\n" + timing_line(res["seconds"], args.resume))
        print(f"report: {res['report']}  figure: {res['figure']}")
        return 0
