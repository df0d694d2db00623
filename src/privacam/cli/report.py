"""``privacam report``: the trade-off figure and HTML report from audit files; for a single audit,
the privacy card too (``card.html``, ``card.json``)."""

from __future__ import annotations

import shlex
from pathlib import Path

from ..card import CARD_FILES, write_card
from ..evaluate.tables import cost_lines
from ..report import find_summaries, load_points, markdown_table, report_outputs, write_report
from ..utils import check_output, claim_output
from .common import Command


class Report(Command):
    name = "report"
    help = "trade-off figure (PNG) and HTML report from audit files; the privacy card of a single audit"

    def add_arguments(self, p):
        p.add_argument("paths", nargs="+", help="run, eval or output directories (searched for summary.json)")
        p.add_argument("-o", "--out", help="HTML file to write (the PNG goes beside it; default report.html, or "
                                           "AUDIT/report.html for a single audit, whose card.html and card.json go beside it)")
        p.add_argument("--title", default="")
        p.add_argument("--overwrite", action="store_true",
                       help="the report's files may exist: move them aside (<name>.replaced-<time>.<ext>, never deleted)")

    def run(self, args):
        found = find_summaries(args.paths)
        single = len(found) == 1
        out = Path(args.out) if args.out else (found[0].parent.parent / "report.html" if single else Path("report.html"))
        outputs = list(report_outputs(out)) + ([out.parent / f for f in CARD_FILES] if single else [])
        # every output is checked before any is written: none is an input, none is replaced silently
        inputs = tuple(found) + tuple(f.parent / "examples.pt" for f in found if (f.parent / "examples.pt").exists())
        load_points(args.paths)  # an audit the report would refuse is refused before anything moves
        for f in outputs:
            check_output(f, overwrite=args.overwrite, inputs=inputs)
        for f in outputs:
            claim_output(f, overwrite=args.overwrite, inputs=inputs)
        html_path, png = write_report(args.paths, out, args.title)
        print(f"wrote {html_path} and {png}")
        if single:
            card, card_json = write_card(found[0], out.parent, command=shlex.join(["privacam", *getattr(args, "_argv", [])]))
            print(f"wrote the privacy card {card} and {card_json}")
        points = load_points(args.paths)
        print(markdown_table(points))
        timed = [(p, cost_lines(p)) for p in points]
        if any(lines for _, lines in timed):
            print("\nwhere the time went:")
            for p, lines in timed:
                if lines:
                    print(f"{p.label}:")
                    print("\n".join(lines))
        return 0
