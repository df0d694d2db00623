"""Insert generated tables into README.md between ``<!-- NAME:start -->`` / ``<!-- NAME:end -->`` markers.

    python scripts/update_readme.py demo=demo_out/summary.md

Tables are produced by privacam from run files (`privacam demo` writes demo_out/summary.md);
this script only copies them, so nothing in README is typed by hand.
"""

import re
import sys
from pathlib import Path


def main(argv):
    readme = Path(__file__).resolve().parents[1] / "README.md"
    text = readme.read_text()
    for arg in argv:
        name, _, path = arg.partition("=")
        body = Path(path).read_text().strip()
        pat = re.compile(rf"(<!-- {name}:start -->\n).*?(\n<!-- {name}:end -->)", re.S)
        if not pat.search(text):
            sys.exit(f"README.md has no {name} markers")
        text = pat.sub(lambda m: m.group(1) + body + m.group(2), text)
    readme.write_text(text)


if __name__ == "__main__":
    main(sys.argv[1:])
