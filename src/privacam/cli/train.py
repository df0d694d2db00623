"""``privacam train``: train an anonymizer (the three-player game) into a run directory."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from .. import runs
from ..builders import check_config
from ..config import apply_overrides
from ..data import apply_data_spec
from ..errors import PrivacamError
from ..train import train
from .common import Command, add_config_arguments, allow_overlap_override, resolve_config, split_config


class Train(Command):
    name = "train"
    help = "train an anonymizer (the three-player game) into a run directory"

    def add_arguments(self, p):
        add_config_arguments(p)
        p.add_argument("--out", help="run directory (default: runs/<config>)")
        p.add_argument("--resume", action="store_true",
                       help="continue the run in --out from its last checkpoint; overrides (learning rates included) "
                            "and --data apply and are recorded in its config.yaml")
        p.add_argument("--overwrite", action="store_true",
                       help="--out may hold a run: move it aside (<out>.replaced-<time>) and train a new one")

    @staticmethod
    def _out(args) -> Path:
        config, _ = split_config(args.config, args.overrides)
        return Path(args.out or f"runs/{Path(config or 'default').stem}")

    def interrupted(self, args) -> str:
        out = self._out(args)
        if runs.holds_run(out):
            return (f"interrupted; {out} keeps its last checkpoint: continue it with "
                    f"`privacam train --out {shlex.quote(str(out))} --resume`")
        return "interrupted before the run started; run the same command again"

    def run(self, args):
        config, overrides = split_config(args.config, args.overrides)
        out = self._out(args)
        if args.resume:
            if not runs.holds_run(out):
                raise PrivacamError(f"{out} holds no run to resume (no {runs.CONFIG}); check the path, or drop --resume "
                                    f"to start a new run there")
            if config:
                raise PrivacamError(f"--resume continues the config of {out / runs.CONFIG}; give key=value overrides "
                                    f"instead of the config {config!r} (or train a new run with another --out)")
            cfg = apply_overrides(runs.load_run_config(out), overrides + allow_overlap_override(args))
            if args.data:
                cfg.data = apply_data_spec(cfg.data, args.data)
            cfg = check_config(cfg)
        else:
            cfg = resolve_config(config, args.data, overrides + allow_overlap_override(args))
        run_dir = train(cfg, out, resume=args.resume, overwrite=args.overwrite)
        if int(os.environ.get("RANK", "0")) == 0:  # one line under torchrun too
            print(f"run written to {run_dir}")
        return 0
