"""Compare two audits of the same data: does B give the same utility and privacy as A, within the
intervals? (e.g. a run's audit against the audit of its ONNX export).

    python scripts/compare_audits.py A_DIR B_DIR

Prints, for the retrained utility and for every attack level, both values, both 95 % intervals and
whether the intervals overlap (the difference is within the audit's uncertainty). Audits without
intervals (written before they existed) print "no interval". Exit status 0 when every row overlaps.
"""

from __future__ import annotations

import sys
from pathlib import Path

from privacam.audits import AuditSummary, interval_text, pct
from privacam.report import find_summaries, load_points


def _rows(p: AuditSummary) -> dict:
    u, q = p.utility, p.privacy
    rows = {"utility (retrained)": (u.retrained, u.retrained_interval)}
    for lv, b in q.level_blocks().items():
        rows[f"privacy {lv}"] = (b.best, b.interval)
    return rows


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print(__doc__)
        return 1
    a, b = (load_points([find_summaries([d])[0]])[0] for d in argv)
    ra, rb = _rows(a), _rows(b)
    fmt = lambda v, iv: pct(v) + " " + interval_text(iv, missing="(no interval)")  # noqa: E731
    print(f"| measure | {a.label} | {b.label} | intervals overlap |")
    print("|---|---:|---:|---|")
    ok = True
    for k in ra:
        if k not in rb:
            continue
        (va, ia), (vb, ib) = ra[k], rb[k]
        same = "no interval" if not (ia and ib) else ("yes" if ia[0] <= ib[1] and ib[0] <= ia[1] else "NO")
        ok &= same != "NO"
        print(f"| {k} | {fmt(va, ia)} | {fmt(vb, ib)} | {same} |")
    print(f"\nA: {Path(a.path)}\nB: {Path(b.path)}")
    return 0 if ok else 3


if __name__ == "__main__":
    sys.exit(main())
