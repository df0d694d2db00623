"""``privacam sweep``: one run per value of a config key, each trained, audited and reported."""

from __future__ import annotations

import shlex

from ..errors import ConfigError
from ..report import load_points, markdown_table
from ..sweep import run_sweep
from .common import (Command, add_config_arguments, add_executor_arguments, allow_overlap_override, executor_of,
                     rerun_with, resolve_config)


class Sweep(Command):
    name = "sweep"
    help = "one run per value of any config key: train, then evaluate, then report (e.g. a CPGAN trade-off over game.gamma)"

    def add_arguments(self, p):
        add_config_arguments(p)
        p.add_argument("--key", required=True, help="the config key to sweep, e.g. game.gamma or encoder.params.code_dim")
        p.add_argument("--values", required=True, help="comma-separated values, e.g. 0.01,0.1,1")
        p.add_argument("--out", required=True, help="sweep directory: one run per value, sweep.json, report.html")
        p.add_argument("--resume", action="store_true", help="continue unfinished runs; keep finished audits")
        p.add_argument("--overwrite", action="store_true", help="runs already in --out are moved aside (not deleted) and trained again")
        add_executor_arguments(p)

    def interrupted(self, args):
        return f"interrupted; continue with `{rerun_with(args, add=('--resume',), drop=('--overwrite',))}` (finished parts are kept)"

    def run(self, args):
        values = [v.strip() for v in args.values.split(",") if v.strip()]
        if not values:
            raise ConfigError("--values is empty")
        cfg = resolve_config(args.config, args.data, list(args.overrides) + allow_overlap_override(args))
        command = shlex.join(["privacam", "sweep", *([args.config] if args.config else []), *args.overrides,
                              "--key", args.key, "--values", args.values, "--out", str(args.out),
                              *(["--data", args.data] if args.data else [])])
        with executor_of(args) as executor:
            res = run_sweep(cfg, key=args.key, values=values, out=args.out, resume=args.resume,
                            overwrite=args.overwrite, command=command, executor=executor)
        print(markdown_table(load_points([args.out])))
        print(f"sweep of {res['key']} written to {args.out} (sweep.json, {res['report']})")
        return 0
