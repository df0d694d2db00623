"""``privacam train``: train an anonymizer (the three-player game) into a run directory."""

from __future__ import annotations

import os
from pathlib import Path

from .. import runs
from ..builders import check_config
from ..config import apply_overrides
from ..train import train
from .common import Command, add_config_arguments, resolve_config, split_config


class Train(Command):
    name = "train"
    help = "train an anonymizer (the three-player game) into a run directory"

    def add_arguments(self, p):
        add_config_arguments(p)
        p.add_argument("--out", help="run directory (default: runs/<config>)")
        p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")

    def run(self, args):
        config, overrides = split_config(args.config, args.overrides)
        out = Path(args.out or f"runs/{Path(config or 'default').stem}")
        if args.resume and (out / runs.CONFIG).exists():
            cfg = check_config(apply_overrides(runs.load_run_config(out), overrides))
        else:
            cfg = resolve_config(config, args.data, overrides)
        run_dir = train(cfg, out, resume=args.resume)
        if int(os.environ.get("RANK", "0")) == 0:  # one line under torchrun too
            print(f"run written to {run_dir}")
        return 0
