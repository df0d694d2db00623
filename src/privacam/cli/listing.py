"""``privacam configs`` and ``privacam datasets``: what ships with privacam."""

from __future__ import annotations

from ..config import shipped_configs
from ..registry import DATASETS
from .common import Command


class Configs(Command):
    name = "configs"
    help = "list the shipped configs, one per line, name first"

    def run(self, args):
        for name, first in shipped_configs().items():
            print(f"{name}\t{first}")
        return 0


class Datasets(Command):
    name = "datasets"
    help = "list the datasets privacam can load (--data NAME:ROOT)"

    def run(self, args):
        for name in DATASETS.list():
            doc = (DATASETS.get(name).__doc__ or "").strip().splitlines()
            print(f"{name}\t{doc[0] if doc else ''}")
        return 0
