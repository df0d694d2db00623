"""Derive task columns for the Weizmann manifest from its frames and write a manifest with them.

    python scripts/weizmann_tasks.py [--manifest ../shared/data/weizmann/manifest.csv]
                                     [--out runs/weizmann_tasks/manifest.csv] [--threshold 0.3]

``task:position`` (left / right: where the person stands, binned at each action's median) and
``task:motion`` (low / high: how much of the body changes per frame, binned the same way), derived as
``privacam.data.tasks`` and docs/tasks.md describe. Paths point into the shared frames (nothing is
copied). Beside the manifest, ``tasks.json`` records every row's measures, the medians and the class
counts; the counts per task, action and split are printed.

Use it as any manifest: ``privacam evaluate RUN --data runs/weizmann_tasks/manifest.csv``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from privacam.data.tasks import derive_tasks, write_manifest


def default_manifest() -> str:
    """``shared/data/weizmann/manifest.csv`` in the first folder above this script that has it."""
    for parent in Path(__file__).resolve().parents:
        cand = parent / "shared" / "data" / "weizmann" / "manifest.csv"
        if cand.is_file():
            return str(cand)
    return "../shared/data/weizmann/manifest.csv"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--manifest", default=default_manifest(), help="the Weizmann manifest (default: %(default)s)")
    ap.add_argument("--out", default="runs/weizmann_tasks/manifest.csv", help="the derived manifest (default: %(default)s)")
    ap.add_argument("--threshold", type=float, default=0.3, help="silhouette threshold (default: %(default)s)")
    ap.add_argument("--global-bins", action="store_true", help="one median over all rows instead of one per action")
    args = ap.parse_args(argv)
    rows, record = derive_tasks(args.manifest, threshold=args.threshold, within=None if args.global_bins else "utility")
    out = write_manifest(rows, args.out)
    (out.parent / "tasks.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"{out}: {len(rows)} rows, task columns {', '.join(k for k in rows[0] if k.startswith('task:'))}")
    for task, info in record["tasks"].items():
        print(f"task:{task} ({info['measure']} binned at the median {'of each action' if record['within'] else 'of all rows'})")
        for group, by_split in info["counts"].items():
            med = info["medians"][group]
            cells = "  ".join(f"{split} " + "/".join(f"{c[k]} {k}" for k in info["classes"]) for split, c in sorted(by_split.items()))
            print(f"  {group:8s} median {med:.3f}  {cells}")
        total = {k: sum(c[k] for by in info["counts"].values() for c in by.values()) for k in info["classes"]}
        print("  all      " + " / ".join(f"{n} {k}" for k, n in total.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
