"""``privacam report``: the trade-off figure and HTML report from audit files."""

from __future__ import annotations

from ..report import load_points, markdown_table, write_report
from .common import Command


class Report(Command):
    name = "report"
    help = "trade-off figure (PNG) and HTML report from audit files"

    def add_arguments(self, p):
        p.add_argument("paths", nargs="+", help="run, eval or output directories (searched for summary.json)")
        p.add_argument("-o", "--out", default="report.html", help="HTML file to write (the PNG goes beside it)")
        p.add_argument("--title", default="")

    def run(self, args):
        html_path, png = write_report(args.paths, args.out, args.title)
        print(f"wrote {html_path} and {png}")
        print(markdown_table(load_points(args.paths)))
        return 0
