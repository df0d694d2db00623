"""Rows of a docs page for anonymisers that are not privacam's: the audits written by
``scripts/release_external.py --audit`` (one folder per release: ``RELEASED.csv``, ``tool.json``,
``audit/eval/summary.json``, ``audit/card.html``).

Used by ``scripts/weizmann_doc.py``: ``points, text = external_rows(Path("runs/weizmann_external"))``
gives the audit summaries (to add to the page's table and figure) and a paragraph naming each tool,
its version and arguments, what it changed and where its privacy card is. Nothing is typed in: every
value is read from those files. A release audited with other audit settings than the page's rows is
left out (its numbers would not be comparable).
"""

from __future__ import annotations

import json
from pathlib import Path

from privacam.audits import AuditSummary, is_audit_dir
from privacam.report import load_points


def external_rows(root: Path, like: AuditSummary | None = None) -> tuple[list[AuditSummary], str]:
    """Audit summaries under ``root/*/audit`` and one line per tool; ``like``: a summary of the page
    whose attacker set the external audits must share (else they are left out, and said so)."""
    root = Path(root)
    folders = sorted(p for p in root.glob("*/audit") if is_audit_dir(p / "eval")) if root.is_dir() else []
    if not folders:
        return [], ""
    points, lines, skipped = [], [], []
    for folder in folders:
        p = load_points([folder])[0]
        if like is not None and sorted(p.privacy.attackers) != sorted(like.privacy.attackers):
            skipped.append(folder.parent.name)
            continue
        points.append(p)
        tool_file = folder.parent / "tool.json"
        tool = json.loads(tool_file.read_text()) if tool_file.is_file() else {}
        what = (f"`{tool.get('tool')}` {tool.get('version')} (from PyPI)" if tool.get("tool") == "deface"
                else f"`{tool.get('tool', '?')}` ({tool.get('version', '?')})")
        args = " ".join(tool.get("args") or []) or "its defaults"
        changed = f"it changed {tool.get('frames_changed')} of {tool.get('frames')} frames" if tool.get("frames") else ""
        card = folder / "card.html"
        lines.append(f"- **{p.label}**: {what} run as its command line is used, with {args}, once per video; "
                     f"{changed}; released in `{folder.parent}`, audited with `privacam evaluate --released` "
                     f"({p.seconds:.0f} s){f'; privacy card `{card}`' if card.exists() else ''}.")
    text = ""
    if lines:
        text = ("Rows released by other tools (`python scripts/release_external.py TOOL --out "
                f"{root}/NAME --audit`, see docs/open_audit.md), the same audit on the same clips:\n\n" + "\n".join(lines))
    if skipped:
        text += f"\n\nLeft out (audited with another attacker set than this page): {', '.join(skipped)}."
    return points, text
