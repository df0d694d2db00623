"""An audit summary as plain-text lines (what ``privacam evaluate`` prints): utility, the headline
privacy score, every identification level with its 95 % interval, and every attacker per level.

Reads only the summary dict (``eval/summary.json``); works on summaries of older audits too (no
levels: the per-clip numbers alone).
"""

from __future__ import annotations

import math


def pct(v) -> str:
    """A fraction as a percentage with one decimal ("-" when missing)."""
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}"


def interval(iv) -> str:
    """``[lo, hi]`` as ``[38.2, 52.1]`` (empty when missing)."""
    if not iv or any(v is None or (isinstance(v, float) and math.isnan(v)) for v in iv):
        return ""
    return f"[{100 * iv[0]:.1f}, {100 * iv[1]:.1f}]"


def short_interval(iv) -> str:
    """``[lo, hi]`` as ``[38-52]`` (whole percentages, for wide tables)."""
    if not interval(iv):
        return ""
    return f"[{100 * iv[0]:.0f}-{100 * iv[1]:.0f}]"


def _nag(v) -> str:
    return "-" if v is None else f"{v:.2f}"


def summary_lines(s: dict) -> list[str]:
    """The lines ``privacam evaluate`` prints for one summary."""
    u, p = s["utility"], s["privacy"]
    e = s["encoder"]
    lines = [f"encoder {e.get('label') or e['name']} {e.get('params', {})} on {s['dataset']}"]
    if e.get("probing"):
        lines.append(f"  probing {e['probing']}")
    lines.append(f"  utility  {pct(u.get('value'))} {interval(u.get('interval'))} (retrained {pct(u.get('retrained'))}, "
                 f"raw {pct(u.get('raw'))}, chance {pct(u.get('chance'))})".replace("  (", " ("))
    level = p.get("level", "clip")
    lines.append(f"  privacy  {level}: best {pct(p['best'])} {interval(p.get('interval'))} by {p['best_attacker']} "
                 f"(raw {pct(p.get('raw'))}, chance {pct(p['chance'])}, NAG {_nag(p.get('nag'))})")
    if p.get("reference"):
        lines.append(f"  reference: {p['reference']}")
    if p.get("nag_refused"):
        lines.append(f"  {p['nag_refused']}")
    levels = p.get("levels") or {}
    if levels:
        extra = []
        if p.get("views") and str(s["encoder"].get("probing", "")).startswith("off"):
            extra.append(f"probing off: {p['views']} set(s) of clip offsets of the one release")
        elif p.get("views"):
            extra.append(f"{p['views']} probing view(s) of the training split")
        sel = p.get("selection") or {}
        if sel.get("mode") == "videos":
            extra.append(f"selected on {sel['held_out_videos']} held-out training videos of {sel['videos']}"
                         + (", then refitted on all" if sel.get("refit") else ""))
        elif sel:
            extra.append("selected on the data's validation split")
        eq = sel.get("equal_clips") or {}
        if eq.get("train"):
            val = (eq.get("val") or {}).get("clips_per_video", 0)
            extra.append(f"{eq['train']['clips_per_video']} clips of every training video per view"
                         + (f" and {val} of its validation slice" if val else ""))
        if s.get("n_test_videos"):
            cap = (p.get("test_clips") or {}).get("clips_per_video")
            extra.append(f"{s['n_test']} test clips of {s['n_test_videos']} videos"
                         + (f" ({cap[0]} to {cap[1]} per video, every video weighing the same per clip)" if cap else "")
                         + "; 95 % intervals: bootstrap over test videos")
        else:
            extra.append(f"{s['n_test']} test clips; 95 % intervals: bootstrap over test samples")
        lines.append("  " + "; ".join(extra))
        lines.append(f"  {'level':<11} {'best':>6} {'95 % interval':<15} {'attacker':<17} {'chance':>6} {'raw':>6} {'NAG':>5}")
        for name, b in levels.items():
            mark = "*" if name == level else " "
            lines.append(f" {mark}{name:<11} {pct(b['best']):>6} {interval(b.get('interval')):<15} "
                         f"{str(b.get('best_attacker')):<17} {pct(b.get('chance')):>6} {pct(b.get('raw')):>6} "
                         f"{_nag(b.get('nag')):>5}")
        names = list(levels)
        lines.append("  attackers (score and 95 % interval per level; * = headline):")
        lines.append("    " + f"{'':<17}" + " ".join(f"{n:<15}" for n in names))
        head = levels[level]["attackers"]
        for a in sorted(head, key=lambda k: -(head[k] if head[k] == head[k] else -1)):
            cells = [f"{pct(levels[n]['attackers'].get(a))} {short_interval(levels[n]['intervals'].get(a))}" for n in names]
            lines.append("    " + f"{a:<17}" + " ".join(f"{c:<15}" for c in cells).rstrip())
    else:
        for name, v in sorted(p["attackers"].items(), key=lambda kv: -kv[1]):
            lines.append(f"    {name:<16} {pct(v)}")
    for name, v in p.get("training_adversaries", {}).items():
        lines.append(f"    (training adversary {name}: {pct(v)})")
    for w in p.get("warnings", []):
        lines.append(f"  warning: {w}")
    for n in p.get("notes", []):
        lines.append(f"  note: {n}")
    if "reconstruction" in s:
        r = s["reconstruction"]
        lines.append(f"  reconstruction  PSNR {r.get('psnr', float('nan')):.2f} dB  SSIM {r.get('ssim', float('nan')):.3f}")
    return lines


__all__ = ["interval", "pct", "short_interval", "summary_lines"]
