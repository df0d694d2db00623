"""An audit summary as plain-text lines (what ``privacam evaluate`` prints): utility, every task the
release was never trained for, the headline privacy score, every identification level with its 95 %
interval and the task-label floors, and every attacker per level.

Reads only the summary dict (``eval/summary.json``); works on summaries of older audits too (no
levels: the per-clip numbers alone).
"""

from __future__ import annotations

from ..audits import AuditSummary, floor_words, interval_text, nag_text, pct as _pct


def pct(v) -> str:
    """A fraction as a percentage with one decimal ("-" when missing)."""
    return _pct(v, missing="-")


def interval(iv) -> str:
    """``[lo, hi]`` as ``[38.2, 52.1]`` (empty when missing)."""
    return interval_text(iv)


def short_interval(iv) -> str:
    """``[lo, hi]`` as ``[38-52]`` (whole percentages, for wide tables)."""
    return interval_text(iv, digits=0, sep="-")


def _nag(v) -> str:
    return nag_text(v, missing="-")


def summary_lines(s: AuditSummary) -> list[str]:
    """The lines ``privacam evaluate`` prints for one summary."""
    u, p = s.utility, s.privacy
    e = s.encoder
    lines = [f"encoder {e.display} {e.params or {}} on {s.dataset}"]
    if e.probing:
        lines.append(f"  probing {e.probing}")
    by = f" by {u.model}" + (f", best of {len(u.models)} on validation" if len(u.models or {}) > 1 else "") if u.model else ""
    lines.append(f"  utility  {pct(u.value)} {interval(u.interval)} (retrained {pct(u.retrained)}{by}, "
                 f"raw {pct(u.raw)}, chance {pct(u.chance)})".replace("  (", " ("))
    lines += task_lines(s)
    level = p.headline
    lines.append(f"  privacy  {level}: best {pct(p.best)} {interval(p.interval)} by {p.best_attacker} "
                 f"(raw {pct(p.raw)}, chance {pct(p.chance)}, NAG {_nag(p.nag)})")
    if p.reference:
        lines.append(f"  reference: {p.reference}")
    if p.nag_refused:
        lines.append(f"  {p.nag_refused}")
    levels = p.levels or {}
    if levels:
        extra = []
        if p.views and str(e.probing or "").startswith("off"):
            extra.append(f"probing off: {p.views} set(s) of clip offsets of the one release")
        elif p.views:
            extra.append(f"{p.views} probing view(s) of the training split")
        sel = p.selection or {}
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
        if s.n_test_videos:
            cap = (p.test_clips or {}).get("clips_per_video")
            extra.append(f"{s.n_test} test clips of {s.n_test_videos} videos"
                         + (f" ({cap[0]} to {cap[1]} per video, every video weighing the same per clip)" if cap else "")
                         + "; 95 % intervals: bootstrap over test videos")
        else:
            extra.append(f"{s.n_test} test clips; 95 % intervals: bootstrap over test samples")
        lines.append("  " + "; ".join(extra))
        floors = any(b.floor is not None for b in levels.values())
        fl_head = f" {'floor':>6} {'+tasks':>6}" if floors else ""
        lines.append(f"  {'level':<11} {'best':>6} {'95 % interval':<15} {'attacker':<17} {'chance':>6}{fl_head} {'raw':>6} "
                     f"{'NAG':>5}" + (f" {'NAG/floor':>9}" if floors else ""))
        for name, b in levels.items():
            mark = "*" if name == level else " "
            fl = f" {pct(b.floor.value if b.floor else None):>6} {pct(b.floor_all.value if b.floor_all else None):>6}" if floors else ""
            lines.append(f" {mark}{name:<11} {pct(b.best):>6} {interval(b.interval):<15} "
                         f"{str(b.best_attacker):<17} {pct(b.chance):>6}{fl} {pct(b.raw):>6} "
                         f"{_nag(b.nag):>5}" + (f" {_nag(b.nag_floor):>9}" if floors else ""))
        if floors:
            lines.append("  " + floor_words(p))
        names = list(levels)
        lines.append("  attackers (score and 95 % interval per level; * = headline):")
        lines.append("    " + f"{'':<17}" + " ".join(f"{n:<15}" for n in names))
        head = levels[level].attackers
        for a in sorted(head, key=lambda k: -(head[k] if head[k] == head[k] else -1)):
            cells = [f"{pct(levels[n].attackers.get(a))} {short_interval((levels[n].intervals or {}).get(a))}" for n in names]
            lines.append("    " + f"{a:<17}" + " ".join(f"{c:<15}" for c in cells).rstrip())
    else:
        for name, v in sorted(p.attackers.items(), key=lambda kv: -kv[1]):
            lines.append(f"    {name:<16} {pct(v)}")
    for name, v in (p.training_adversaries or {}).items():
        lines.append(f"    (training adversary {name}: {pct(v)})")
    for w in p.warnings or []:
        lines.append(f"  warning: {w}")
    for n in p.notes or []:
        lines.append(f"  note: {n}")
    if s.reconstruction is not None:
        r = s.reconstruction
        psnr = r.psnr if r.psnr is not None else float("nan")
        ssim = r.ssim if r.ssim is not None else float("nan")
        lines.append(f"  reconstruction  PSNR {psnr:.2f} dB  SSIM {ssim:.3f}")
    return lines + cost_lines(s)


def task_lines(s: AuditSummary) -> list[str]:
    """The tasks the release was never trained for: each one's best pool member (chosen on validation)
    with its score per clip and 95 % interval, beside the raw data and chance (empty without tasks)."""
    tasks = s.tasks or {}
    if not tasks:
        return []
    lines = ["  tasks never trained for (the best of the task pool chosen on validation; per clip, every test video "
             "weighing the same):",
             f"    {'task':<12} {'value':>6} {'95 % interval':<15} {'raw':>6} {'chance':>6}  model"]
    for name, t in tasks.items():
        model = f"{t.model} (of {len(t.models or {})})" if t.model else (t.get("skipped") or "-")
        lines.append(f"    {name:<12} {pct(t.value):>6} {interval(t.interval):<15} {pct(t.raw):>6} {pct(t.chance):>6}  {model}")
    return lines


def cost_lines(s: AuditSummary, top: int = 5) -> list[str]:
    """Where the audit's time went: its phases, what ran the units, the slowest units (empty for an
    audit written before units were timed)."""
    if s.seconds is None:
        return []
    ex = s.executor or {}
    phases = ex.get("phases") or {}
    how = ex.get("name", "?") + (f" x{ex['workers']}" if ex.get("workers", 1) > 1 else "")
    if ex.get("nodes"):
        how += f" on {ex['nodes']} node(s)"
    lines = [f"  time     {s.seconds:.0f} s in all"
             + (" (" + ", ".join(f"{k} {v:.0f} s" for k, v in phases.items()) + ")" if phases else "")
             + (f"; units run by {how}: {ex.get('computed', 0)} computed, {ex.get('reused', 0)} reused" if ex else "")]
    units = {k: v for k, v in (s.unit_seconds or {}).items() if v}
    if units:
        slow = sorted(units.items(), key=lambda kv: -kv[1])[:top]
        total = sum(units.values())
        lines.append(f"  units    {total:.0f} s of work; slowest: " + ", ".join(f"{k} {v:.0f} s" for k, v in slow))
    return lines


__all__ = ["cost_lines", "floor_words", "interval", "pct", "short_interval", "summary_lines", "task_lines"]
