"""Trade-off report from run files only: figure (PNG), table, example releases, training curves.

``privacam report DIR... -o report.html`` collects every ``summary.json`` under the given run,
eval or output directories and draws the paper's plot: x = best retrained attacker (A_B^N),
y = utility (A_T); upper-left is better; a y = x line, dashed raw-data lines, dotted chance lines;
marker size grows with the downsampling factor or the ensemble size M.
"""

from __future__ import annotations

import base64
import html
import io
import logging
from pathlib import Path

from .audits import AuditSummary, find_summaries, floor_words, interval_text, level_words, nag_text, pct, read_summary
from .audits import check_audit
from .errors import PrivacamError
from .runs import read_metrics
from .utils import atomic_write_bytes, atomic_write_text

log = logging.getLogger(__name__)

__all__ = ["dominated_by", "example_titles", "examples_png", "find_summaries", "floor_rows", "label_of", "level_words",
           "load_points", "markdown_table", "quality_bar", "table_rows", "task_model_text", "task_rows", "tradeoff_figure",
           "write_report"]


def label_of(s: AuditSummary) -> str:
    """The point's name in the figure and table: the encoder and, for a trained run, how it was trained."""
    e = s.encoder
    params = dict(e.params or {})
    if e.label:  # an outside release or encoder, named by the user (--label) or by its source
        return str(e.label)
    if e.run:
        return f"{e.name} {e.schedule or ''} M={e.m} γ={e.gamma}"
    return e.name + (" " + ",".join(f"{k}={v}" for k, v in params.items()) if params else "")


def load_points(paths: list[str | Path]) -> list[AuditSummary]:
    """Every audit summary under ``paths``, with its file (``path``) and label (``label``)."""
    pts = []
    for f in find_summaries(paths):
        s = read_summary(f)
        check_audit(s, f)  # an audit of an encoder its run no longer holds is refused
        s.label = label_of(s)
        pts.append(s)
    return distinct_labels(pts)


def distinct_labels(pts: list[AuditSummary]) -> list[AuditSummary]:
    """Runs trained alike (seeds, a swept setting) share a label: each is then told apart by its folder."""
    labels = [s.label for s in pts]
    for s in pts:
        if labels.count(s.label) > 1 and s.encoder.run:
            s.label = f"{s.label} ({Path(s.encoder.run).name})"
    return pts


def _marker_size(s: AuditSummary) -> float:
    e = s.encoder
    p = e.params or {}
    if "factor" in p:
        return 30 + 25 * float(p["factor"])
    if e.m:
        return 40 + 20 * float(e.m)
    return 70


def tradeoff_figure(points: list[AuditSummary], path: str | Path, title: str = "") -> Path:
    """Draw the utility-privacy trade-off plot and save it as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 6), dpi=110)
    ax.plot([0, 100], [0, 100], color="0.7", lw=1, zorder=0, label="y = x")
    raw = next((p for p in points if p.privacy.raw is not None), None)
    if raw:
        if raw.utility.raw is not None:
            ax.axhline(100 * raw.utility.raw, ls="--", color="tab:gray", lw=1, label="raw data (utility)")
        ax.axvline(100 * raw.privacy.raw, ls="--", color="tab:gray", lw=1, label="raw data (privacy)")
    ch = points[0]
    if ch.utility.chance is not None:
        ax.axhline(100 * ch.utility.chance, ls=":", color="tab:red", lw=1, label="chance (utility)")
    ax.axvline(100 * ch.privacy.chance, ls=":", color="tab:red", lw=1, label="chance (privacy)")
    cmap = plt.get_cmap("tab10")
    for i, p in enumerate(points):
        u = p.utility.value
        x = p.privacy.best
        if u is None:
            continue
        learned = bool(p.encoder.run)
        xerr, yerr = _err(x, p.privacy.interval), _err(u, p.utility.interval)
        if xerr is not None or yerr is not None:  # 95 % intervals (bootstrap over test videos)
            ax.errorbar(100 * x, 100 * u, xerr=xerr, yerr=yerr, fmt="none", ecolor=cmap(i % 10), elinewidth=1,
                        capsize=3, alpha=0.8, zorder=2)
        ax.scatter(100 * x, 100 * u, s=_marker_size(p), color=cmap(i % 10), marker="*" if learned else "o",
                   edgecolor="k", lw=0.6, zorder=3 + 100 / _marker_size(p), label=p.label)
        t = p.privacy.training_adversaries or {}
        if t:  # what the encoder's own adversaries saw: the gap to the retrained attacker
            ax.scatter(100 * max(t.values()), 100 * u, s=30, facecolor="none", edgecolor=cmap(i % 10), marker="s", zorder=2)
            ax.annotate("", xy=(100 * x, 100 * u), xytext=(100 * max(t.values()), 100 * u),
                        arrowprops=dict(arrowstyle="->", color=cmap(i % 10), lw=0.8))
    metric = points[0].privacy.metric
    level = level_words(points[0].privacy.headline)
    ax.set_xlabel(f"best retrained attacker A_B^N ({'cMAP' if metric == 'cmap' else 'accuracy'} {level}, %; bars: 95 % "
                  "interval) — lower is more private")
    ax.set_ylabel("utility A_T (accuracy, %) — higher is better")
    ax.set_xlim(-2, 102)
    ax.set_ylim(-2, 102)
    ax.set_title(title or f"utility–privacy trade-off on {points[0].dataset}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, framealpha=0.9)
    fig.tight_layout()
    path = Path(path)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path


def _err(value, iv):
    """Matplotlib error-bar extents (in %) of a 95 % interval around ``value``, or None."""
    if value is None or not iv or any(v is None for v in iv):
        return None
    return [[100 * max(0.0, value - iv[0])], [100 * max(0.0, iv[1] - value)]]


def task_rows(s: AuditSummary) -> list[dict]:
    """Every task the release was never trained for (summary.json's ``tasks``, schema 3), in the data's
    order: the best member of the task pool (chosen on validation), its value per clip with the 95 %
    interval, the raw data's value and chance. Empty for an audit of data without ``task:*`` columns."""
    return [{"task": name, "model": t.model, "models": len(t.models or {}), "value": t.value, "interval": t.interval,
             "raw": t.raw, "chance": t.chance, "metric": t.metric or "accuracy", "skipped": t.get("skipped")}
            for name, t in (s.tasks or {}).items()]


def task_model_text(t: dict) -> str:
    """A task row's model in words: ``c3d_grid (best of 6)``, or why there is none."""
    if t["model"]:
        return f"{t['model']} (best of {t['models']})" if t["models"] > 1 else str(t["model"])
    return str(t["skipped"] or "–")


def floor_rows(s: AuditSummary) -> list[dict]:
    """The task-label floor beside chance at every pooling level (schema 3): what an attacker that knows
    only each test clip's trained-task label (``floor``), or it and every unseen task's (``floor_all``),
    identifies, with the best attacker, NAG and NAG beyond the floor. Empty where the audit has none."""
    q = s.privacy
    rows = []
    for lv, b in (q.levels or {}).items():
        if b.floor is None and b.floor_all is None:
            continue
        rows.append({"level": lv, "words": level_words(lv), "headline": lv == q.headline, "chance": b.chance,
                     "floor": b.floor.value if b.floor else None, "floor_interval": b.floor.interval if b.floor else None,
                     "floor_all": b.floor_all.value if b.floor_all else None,
                     "floor_all_interval": b.floor_all.interval if b.floor_all else None,
                     "best": b.best, "nag": b.nag, "nag_floor": b.nag_floor})
    return rows


def table_rows(points: list[AuditSummary]) -> list[dict]:
    rows = []
    for p in points:
        u, q = p.utility, p.privacy
        t = q.training_adversaries or {}
        r = p.reconstruction
        rows.append({
            "encoder": p.label,
            "utility": u.value, "utility_retrained": u.retrained, "utility_raw": u.raw,
            "utility_chance": u.chance,
            "privacy_best": q.best, "best_attacker": q.best_attacker, "privacy_raw": q.raw,
            "privacy_chance": q.chance, "nag": q.nag, "privacy_interval": q.interval,
            "utility_interval": u.interval, "level": q.headline,
            "levels": {lv: b.best for lv, b in (q.levels or {}).items()},
            "training_adversary": max(t.values()) if t else None,
            "psnr": r.psnr if r else None, "ssim": r.ssim if r else None,
            "tasks": {t["task"]: t["value"] for t in task_rows(p)},
            "floor": q.floor_at(), "floor_all": q.floor_at(which="floor_all"),
        })
    return rows


def markdown_table(points: list[AuditSummary]) -> str:
    """The table of every point, as Markdown (used by the demo and README generation)."""
    rows = table_rows(points)
    extra = [lv for lv in ("clip", "person@5") if lv != rows[0]["level"] and all(lv in r["levels"] for r in rows)]
    tasks = list(dict.fromkeys(t for r in rows for t in r["tasks"]))  # every unseen task of any row, in order
    floor = any(r["floor"] is not None for r in rows)
    head = ("| encoder | utility % | utility retrained % | best attacker % [95 % interval] | best attacker | NAG | "
            + "".join(f"{level_words(lv)} % | " for lv in extra) + "own adversaries % |"
            + "".join(f" {t} % |" for t in tasks) + (" task-label floor % |" if floor else ""))
    lines = [head, "|---|---:|---:|---:|---|---:|" + "---:|" * len(extra) + "---:|" + "---:|" * (len(tasks) + floor)]
    for r in rows:
        lines.append(f"| {r['encoder']} | {pct(r['utility'])} | {pct(r['utility_retrained'])} | "
                     f"{pct(r['privacy_best'])}{_iv(r['privacy_interval'])} | {r['best_attacker']} | {nag_text(r['nag'])} | "
                     + "".join(f"{pct(r['levels'].get(lv))} | " for lv in extra) + f"{pct(r['training_adversary'])} |"
                     + "".join(f" {pct(r['tasks'].get(t))} |" for t in tasks) + (f" {pct(r['floor'])} |" if floor else ""))
    p0 = points[0]
    lines.append("")
    if tasks:
        chance = {t: next((x["chance"] for p in points for x in task_rows(p) if x["task"] == t), None) for t in tasks}
        lines.append(f"Tasks no release was trained for ({', '.join(tasks)}): the best of the task pool retrained on the "
                     "release, chosen on validation, scored per clip; chance: "
                     + ", ".join(f"{t} {pct(c)} %" for t, c in chance.items()) + ".")
    if floor:
        lines.append(f"Task-label floor ({level_words(p0.privacy.headline)}): what an attacker identifies that knows only "
                     "each test clip's action (the trained task's label), beside chance; a release is not blamed for it.")
    q0 = p0.privacy
    if q0.levels:
        lines.append(f"Privacy headline: the best of {len(q0.attackers)} retrained attackers {level_words(q0.level)} "
                     f"({q0.views or 1} probing releases of the attacker's training split); intervals: bootstrap over "
                     "test videos; chance: majority class of the training labels.")
    lines.append(f"Chance: utility {pct(p0.utility.chance)} %, privacy {pct(q0.chance)} %; "
                 f"raw data: utility {pct(p0.utility.raw)} %, privacy {pct(q0.raw)} %.")
    for p in points:
        if p.encoder.run:
            dom = dominated_by(p, points, "downsample")
            lines.append(f"Learned `{p.label}`: dominated by a downsampling rate (higher utility and lower best "
                         f"attacker): {', '.join(dom) if dom else 'no'}.")
            bar = quality_bar(p)
            if bar:
                lines.append(bar)
    return "\n".join(lines)


def quality_bar(point: AuditSummary, utility_points: float = 0.10, privacy_points: float = 0.15) -> str:
    """One line: is utility within ``utility_points`` of raw and the best attacker within
    ``privacy_points`` of chance? Empty when the summary lacks the raw or chance values."""
    u, p = point.utility, point.privacy
    if u.value is None or u.raw is None or p.chance is None:
        return ""
    du = u.raw - u.value
    dp = p.best - p.chance
    ok = lambda b: "yes" if b else "NO"  # noqa: E731
    return (f"Quality bar: utility within {100 * utility_points:.0f} points of raw: {ok(du <= utility_points)} "
            f"({100 * u.value:.1f} vs {100 * u.raw:.1f}); best attacker within {100 * privacy_points:.0f} points of "
            f"chance: {ok(dp <= privacy_points)} ({100 * p.best:.1f} vs {100 * p.chance:.1f}).")


def dominated_by(point: AuditSummary, others: list[AuditSummary], family: str | None = None) -> list[str]:
    """Labels of the points with both higher utility and a lower best attacker than ``point``."""
    u, x = point.utility.value, point.privacy.best
    return [o.label for o in others if o is not point and (family is None or o.encoder.name == family)
            and o.utility.value is not None and o.utility.value > u and o.privacy.best < x]


def _iv(iv) -> str:
    text = interval_text(iv)
    return f" {text}" if text else ""


def _png_b64(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return base64.b64encode(buf.getvalue()).decode()


def examples_png(eval_dir: str | Path, titles: tuple[str, str] = ("x", "E(x)"), *, width: float = 1.3,
                 height: float = 2.8, dpi: int = 90) -> bytes | None:
    """The audit's example strip (raw frames above their releases, the same clips) as PNG bytes, or
    None when the audit saved none or its release is not a picture (features, codes). A release that is
    a clip of a bank (the ``substitute`` encoder) is labelled as what it is: ``input`` above
    ``substitute (bank clip j)`` under every pair (:func:`example_titles`)."""
    from .audits import read_examples

    d = read_examples(eval_dir)
    if d is None:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x, z = d["input"].float(), d["released"].float()
    if z.dim() != 4 or z.shape[1] not in (1, 3) or x.dim() != 4:
        return None  # features and codes are not pictures
    n = len(x)
    fig, axes = plt.subplots(2, n, figsize=(width * n, height), dpi=dpi, squeeze=False)
    for i in range(n):
        for row, t in enumerate((x, z)):
            img = t[i].clamp(0, 1).permute(1, 2, 0).numpy()
            axes[row, i].imshow(img.squeeze(-1) if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1,
                                interpolation="nearest")
            axes[row, i].axis("off")
    top, below = example_titles(d, titles)
    for row, names in enumerate((top, below)):
        for i, name in enumerate(names):
            if name:
                axes[row, i].set_title(name, fontsize=7 if len(name) > 12 else 8, loc="left")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def example_titles(examples: dict, titles: tuple[str, str] = ("x", "E(x)")) -> tuple[list[str], list[str]]:
    """The titles over the example strip's two rows, one per column ("" for none): ``titles`` over the
    first column; for a bank's release (``examples["bank"]``) ``input`` over the first input and
    ``substitute (bank clip j)`` over every release (``moved; nearest bank clip j`` where the substitute
    was moved, so that the clip is the nearest, not necessarily the one drawn)."""
    n = len(examples["input"])
    if "bank" not in examples:
        return [titles[0]] + [""] * (n - 1), [titles[1]] + [""] * (n - 1)
    moved = examples.get("bank_moved")
    below = []
    for i, j in enumerate(examples["bank"].tolist()):
        if j < 0:
            below.append("substitute")
        elif moved is not None and bool(moved[i]):
            below.append(f"substitute (moved;\nnearest bank clip {j})")
        else:
            below.append(f"substitute (bank clip {j})")
    return ["input"] + [""] * (n - 1), below


def _examples_html(points: list[AuditSummary]) -> str:
    blocks = []
    for p in points:
        png = examples_png(Path(p.path).parent)
        if png:
            blocks.append(f"<h3>{html.escape(p.label)}</h3><img src='data:image/png;base64,{base64.b64encode(png).decode()}'>")
    return "\n".join(blocks)


def _curves_html(points: list[AuditSummary]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    blocks = []
    for p in points:
        run = p.encoder.run
        recs = read_metrics(run) if run else []
        game = [r for r in recs if r.get("stage") == "game"]
        if not game:
            continue
        keys = [k for k in ("loss/utility", "loss/privacy", "loss/budget", "acc/utility_val", "acc/budget_train_max") if any(k in r for r in game)]
        fig, axes = plt.subplots(1, len(keys), figsize=(3 * len(keys), 2.6), dpi=90)
        for ax, k in zip(axes if len(keys) > 1 else [axes], keys):
            pts = [(r["step"], r[k]) for r in game if k in r]
            ax.plot([a for a, _ in pts], [b for _, b in pts], lw=1)
            for r in game:
                if r.get("restarted"):
                    ax.axvline(r["step"], color="0.8", lw=0.6)
            ax.set_title(k, fontsize=8)
            ax.tick_params(labelsize=7)
        fig.tight_layout()
        blocks.append(f"<h3>{html.escape(p.label)}</h3><img src='data:image/png;base64,{_png_b64(fig)}'>")
        plt.close(fig)
    return "\n".join(blocks)


def _tasks_html(points: list[AuditSummary]) -> str:
    """Every release's tasks it was never trained for (``tasks`` of its summary), or "" where none has any."""
    rows = [(p, t) for p in points for t in task_rows(p)]
    if not rows:
        return ""
    body = "".join(
        f"<tr><td>{html.escape(p.label)}</td><td>{html.escape(t['task'])}</td><td>{pct(t['value'])}</td>"
        f"<td>{html.escape(interval_text(t['interval']) or '–')}</td><td>{pct(t['raw'])}</td><td>{pct(t['chance'])}</td>"
        f"<td>{html.escape(task_model_text(t))}</td></tr>" for p, t in rows)
    return ("<h2>Tasks never trained for</h2><p>Each task a <code>task:*</code> column of the data labels: a pool of models "
            "retrained on the release, the best chosen on validation, scored per clip on the test split (every test video "
            "weighing the same), with its 95 % interval, beside the same task on the raw data and chance.</p>"
            "<table><tr><th>release</th><th>task</th><th>accuracy %</th><th>95 % interval</th><th>raw %</th><th>chance %</th>"
            "<th>best model</th></tr>" + body + "</table>")


def _floor_html(points: list[AuditSummary]) -> str:
    """Every release's task-label floor beside chance at every pooling level, or "" where no audit has one."""
    blocks = [(p, floor_rows(p)) for p in points]
    blocks = [(p, rows) for p, rows in blocks if rows]
    if not blocks:
        return ""
    body = "".join(
        f"<tr><td>{html.escape(p.label)}</td><td>{html.escape(r['words'])}{' *' if r['headline'] else ''}</td>"
        f"<td>{pct(r['best'])}</td><td>{pct(r['chance'])}</td><td>{pct(r['floor'])}</td>"
        f"<td>{html.escape(interval_text(r['floor_interval']) or '–')}</td><td>{pct(r['floor_all'])}</td>"
        f"<td>{nag_text(r['nag'])}</td><td>{nag_text(r['nag_floor'])}</td></tr>"
        for p, rows in blocks for r in rows)
    return ("<h2>Task-label floor</h2><p>What an attacker that knows only the task labels of each test clip, and nothing "
            "of the release, identifies, pooled like an attacker at every level (* = headline): chance where every person "
            f"does every action, more where actions follow people. {html.escape(floor_words(blocks[0][0].privacy))}.</p>"
            "<table><tr><th>release</th><th>level</th><th>best attacker %</th><th>chance %</th><th>floor %</th>"
            "<th>floor 95 % interval</th><th>floor with tasks %</th><th>NAG</th><th>NAG beyond the floor</th></tr>"
            + body + "</table>")


def _cost_html(points: list[AuditSummary]) -> str:
    """Each audit's seconds: in all, per phase, what ran its units and the slowest of them."""
    rows = []
    for p in points:
        if p.seconds is None:
            continue
        ex = p.executor or {}
        phases = ", ".join(f"{k} {v:.0f} s" for k, v in (ex.get("phases") or {}).items())
        units = sorted(((k, v) for k, v in (p.unit_seconds or {}).items() if v), key=lambda kv: -kv[1])
        slow = ", ".join(f"{k} {v:.0f} s" for k, v in units[:5])
        how = f"{ex.get('name', '–')} x{ex.get('workers', 1)}" if ex else "–"
        rows.append(f"<tr><td>{html.escape(p.label)}</td><td>{p.seconds:.0f}</td><td>{html.escape(phases or '–')}</td>"
                    f"<td>{html.escape(how)}</td><td>{ex.get('computed', '–')} / {ex.get('reused', '–')}</td>"
                    f"<td>{sum(v for _, v in units):.0f}</td><td>{html.escape(slow or '–')}</td></tr>")
    if not rows:
        return "<p>(no audit recorded its time)</p>"
    return ("<table><tr><th>audit</th><th>seconds</th><th>phases</th><th>units run by</th><th>computed / reused</th>"
            "<th>unit seconds</th><th>slowest units</th></tr>" + "".join(rows) + "</table>")


def report_outputs(out: str | Path) -> tuple[Path, Path]:
    """The files :func:`write_report` writes for ``out``: the page and the trade-off PNG beside it.

    Raises:
        PrivacamError: ``out`` does not end in ``.html`` (``-o X.png`` would have the page written over
            the figure).
    """
    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise PrivacamError(f"-o {out}: the report is an HTML page (the PNG figure goes beside it, with the same name); "
                            f"give -o {out.with_suffix('.html')}")
    return out, out.with_suffix(".png")


def write_report(paths: list[str | Path], out: str | Path, title: str = "") -> tuple[Path, Path]:
    """Write the HTML report and the trade-off PNG beside it; returns both paths."""
    out, png_path = report_outputs(out)
    points = load_points(paths)
    png = tradeoff_figure(points, png_path, title)
    rows = table_rows(points)
    cols = [("encoder", "encoder"), ("utility", "utility %"), ("utility_retrained", "utility retrained %"),
            ("privacy_best", "best attacker %"), ("privacy_interval", "95 % interval"), ("best_attacker", "best attacker"),
            ("nag", "NAG"),
            ("training_adversary", "own adversaries %"), ("psnr", "recon. PSNR dB"), ("ssim", "recon. SSIM")]

    def cell(k, v):
        if v is None:
            return "–"
        if k == "privacy_interval":
            return _iv(v).strip()
        if k in ("psnr",):
            return f"{v:.1f}"
        if k in ("ssim", "nag"):
            return f"{v:.2f}"
        if isinstance(v, float):
            return f"{100 * v:.1f}"
        return html.escape(str(v))

    table = "<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for _, c in cols) + "</tr>"
    for r in rows:
        table += "<tr>" + "".join(f"<td>{cell(k, r[k])}</td>" for k, _ in cols) + "</tr>"
    table += "</table>"
    p0 = points[0]
    attackers = sorted({a for p in points for a in p.privacy.attackers})
    sources = "".join(f"<li><code>{html.escape(p.path)}</code></li>" for p in points)
    doc = f"""<!doctype html><html><head><meta charset="utf-8"><title>privacam report</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}}
table{{border-collapse:collapse;font-size:14px}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}
td:first-child,th:first-child{{text-align:left}}th{{background:#f3f3f3}}img{{max-width:100%}}</style></head><body>
<h1>privacam report — {html.escape(p0.dataset)}</h1>
<p>Every number below is read from the audit files listed at the end. Privacy = the best of
{len(attackers)} attackers retrained from scratch on the released data ({html.escape(', '.join(attackers))}),
each selected on validation carved from the training data and scored
{html.escape(level_words(p0.privacy.headline))} on the test split (error bars: 95 % bootstrap
intervals over test videos). NAG = max(0, (A − chance) / (A_raw − chance)), chance = the majority class.
Chance: utility {pct(p0.utility.chance)} %, privacy {pct(p0.privacy.chance)} %.</p>
<img src="data:image/png;base64,{base64.b64encode(png.read_bytes()).decode()}" alt="trade-off">
<h2>All points</h2>{table}
<p>“own adversaries” = the best of the budget models the encoder was trained against, on the same test data:
the gap to the retrained attacker is what an in-loop evaluation would have hidden.</p>
{_tasks_html(points)}
{_floor_html(points)}
<h2>Releases</h2>{_examples_html(points)}
<h2>Training curves</h2>{_curves_html(points) or '<p>(no training runs among the points)</p>'}
<h2>Where the time went</h2>{_cost_html(points)}
<h2>Sources</h2><ul>{sources}</ul></body></html>"""
    atomic_write_text(out, doc)
    return out, png
