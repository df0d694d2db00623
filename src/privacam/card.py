"""The privacy card: one page (HTML and JSON) about one audit, for whoever ships the release.

``privacam report`` of a single audit writes ``card.json`` and ``card.html`` (:func:`write_card`).
Everything on the card is read from the audit's files (``summary.json``, ``examples.pt``, the
released manifest's ``tool.json`` when a script wrote one beside it):

- what was released: the encoder, run, user code, ONNX file or released manifest, the release's
  shape, and the size the audit measured it at;
- the threat model the numbers assume;
- utility with its 95 % interval;
- every attack level (per clip, per video, per person from k clips) with its interval, the best
  attacker, and the raw-data and chance references, and the task-label floor beside chance where the
  audit measured it (what knowing only each clip's task label identifies);
- every task the release was never trained for (the data's ``task:*`` columns): the best retrained
  model, its value with the 95 % interval, the raw data's value and chance;
- example frames, raw beside released (a substitute beside the clip it replaced, with its bank index);
- the versions and the command that produced the audit, and the command that wrote the card.

A summary written before intervals existed still makes a card: the intervals read "not measured".
"""

from __future__ import annotations

import base64
import html
import json
import logging
from pathlib import Path

from .audits import AuditSummary, floor_words, interval_text, level_words, nag_text, pct, read_summary
from .errors import PrivacamError
from .report import examples_png, floor_rows, label_of, task_model_text, task_rows
from .utils import atomic_write_bytes, atomic_write_text, versions, write_json

log = logging.getLogger(__name__)


def _pct(v) -> str:
    return pct(v, missing="–") + (" %" if pct(v, missing="") else "")


def _iv(iv) -> str:
    text = interval_text(iv, missing="")
    return f"{text} %" if text else "not measured"


def _released_block(s: AuditSummary) -> dict:
    """What was released, from the summary's encoder block (and the tool's own record if any)."""
    e = s.encoder
    shape = s.encoded_shape or []
    out: dict = {"label": label_of(s), "name": e.name, "params": e.params or {}, "release_shape": shape}
    if e.name == "released":
        out["kind"] = "data released by another tool"
        out["released_manifest"] = e.released
        out["raw_manifest"] = e.raw
        out["rows"] = e.rows
        tool = Path(str(e.released or "")).expanduser().parent / "tool.json"
        if tool.is_file():
            out["tool"] = json.loads(tool.read_text())
        sent, measured = e.release_size or [], e.audit_size or []
    elif e.source:
        out["kind"] = "ONNX file" if e.source.get("kind") == "onnx" else "user code (factory)"
        out["source"] = e.source
        sent, measured = [], shape[-2:]
    elif e.run:
        out["kind"] = "trained privacam encoder"
        out["run"] = e.run
        out["training"] = {k: getattr(e, k) for k in ("schedule", "gamma", "m", "task") if getattr(e, k) is not None}
        sent, measured = [], shape[-2:]
    else:
        out["kind"] = "registered privacam encoder"
        sent, measured = [], shape[-2:]
    out["audited_size"] = [int(v) for v in measured] if measured else []
    out["sent_size"] = [int(v) for v in sent] if sent else []
    if out["sent_size"] and out["audited_size"] and out["sent_size"] != out["audited_size"]:
        out["size_note"] = (f"The tool sent {'x'.join(map(str, out['sent_size']))} frames; the audit measured them resized to "
                            f"{'x'.join(map(str, out['audited_size']))} (data.size), the size every row of the same table "
                            f"is measured at. An attacker with the full-size frames may do better.")
    elif out["sent_size"]:
        out["size_note"] = f"The audit measured the frames at the size the tool sent them ({'x'.join(map(str, out['sent_size']))})."
    elif out["audited_size"] and e.name != "released":
        hw = "x".join(map(str, out["audited_size"]))
        out["size_note"] = (f"The audit measured the release at the encoder's output size ({hw}). `privacam anonymize` sends it "
                            f"upsampled to the input's size by nearest neighbour by default, which repeats pixels and adds "
                            f"no information; `--release-size` sends {hw}.")
    return out


def _threat_model(s: AuditSummary) -> list[str]:
    q = s.privacy
    e = s.encoder
    n_att = len(q.attackers or {})
    views = q.views or 1
    lines = [
        "The attacker sees the release only (never the raw frames of the test people) and knows its format.",
        f"It has labelled releases of the same people: the training split ({s.dataset}), with their identities, "
        f"and trains {n_att} attackers from scratch on them (neural networks and classical features); the "
        "strongest one on the test split is the claim.",
    ]
    sel = q.selection or {}
    if sel.get("mode") == "videos":
        lines.append(f"Each attacker is selected on whole training videos held out ({sel.get('held_out_videos')} of "
                     f"{sel.get('videos')}), then refitted on all training data; the test split is sealed until then.")
    else:
        lines.append("Each attacker is selected on the validation data carved from training; the test split is sealed until then.")
    if e.name == "released":
        lines.append("Probing is off: the tool that made the release is not available to the auditor, so the attacker "
                     "cannot release its own training data again; it trains on the one release given"
                     + (f" (cutting clips at {views} sets of offsets from the released videos)." if views > 1 else "."))
    elif views > 1:
        lines.append(f"Probing is on: the attacker owns the encoder (Kerckhoffs) and releases its training split {views} "
                     "times (new draws of a randomised release, new clip offsets).")
    else:
        lines.append("The attacker trains on one release of its training split (probing views: 1).")
    if q.levels:
        lines.append("It may pool its decisions over every clip of one video, and over k clips of one person: each "
                     "level below is what such an attacker achieves.")
    else:
        lines.append("Scores are per clip: an attacker pooling several clips of one person may do better (not measured by this audit).")
    lines.append("Not covered: attackers with side information beyond these labels (e.g. face galleries), and "
                 "attributes other than the private label audited.")
    return lines


def _levels(q) -> list[dict]:
    if q.levels:
        out = []
        for lv, b in q.levels.items():
            row = {"level": lv, "words": level_words(lv), "best": b.best, "interval": b.interval,
                   "best_attacker": b.best_attacker, "chance": b.chance, "raw": b.raw, "nag": b.nag, "units": b.units,
                   "headline": lv == q.level}
            if b.floor is not None or b.floor_all is not None:  # the task-label floor (schema 3)
                row.update({"floor": b.floor.value if b.floor else None, "floor_interval": b.floor.interval if b.floor else None,
                            "floor_all": b.floor_all.value if b.floor_all else None, "nag_floor": b.nag_floor})
            out.append(row)
        return out
    return [{"level": "clip", "words": "per clip", "best": q.best, "interval": q.interval,
             "best_attacker": q.best_attacker, "chance": q.chance, "raw": q.raw, "nag": q.nag,
             "units": None, "headline": True}]


def _dataset(s: AuditSummary) -> str:
    """The data's name; a manifest is named by its folder and file (``manifest`` alone says little)."""
    d = s.data or {}
    root = d.get("root") if d.get("name") == "manifest" else s.encoder.raw
    if not root:
        return s.dataset
    p = Path(root).expanduser().resolve()
    return f"{p.parent.name} ({p.name})"


def build_card(summary_path: str | Path, *, command: str | None = None) -> dict:
    """The card's content (what ``card.json`` holds) from one audit's ``summary.json``."""
    summary_path = Path(summary_path)
    s = read_summary(summary_path)
    u, q = s.utility, s.privacy
    levels = _levels(q)
    head = next(lv for lv in levels if lv["headline"])
    strongest = max((lv for lv in levels if lv["best"] is not None and lv["best"] == lv["best"]),
                    key=lambda lv: lv["best"], default=head)
    prov = s.provenance or {}
    card = {
        "card_version": 1,
        "title": f"Privacy card: {label_of(s)} on {_dataset(s)}",
        "audit": str(summary_path),
        "released": _released_block(s),
        "threat_model": _threat_model(s),
        "task": {"utility": "the task the release must still serve (the utility labels)",
                 "private": "what must not leak (the private labels; for Weizmann and the embedded data, who the person is)"},
        "utility": {"metric": u.metric or "accuracy", "value": u.value, "interval": u.interval,
                    "retrained": u.retrained, "retrained_interval": u.retrained_interval,
                    "raw": u.raw, "chance": u.chance,
                    "model": "the run's own task model" if s.encoder.run else (
                        f"the best of {len(u.models)} task models retrained on the release ({u.model})"
                        if u.model and len(u.models or {}) > 1 else "a task model retrained on the release")},
        "privacy": {"metric": q.metric or "accuracy", "headline_level": head["level"], "levels": levels,
                    "best": head["best"], "interval": head["interval"], "best_attacker": head["best_attacker"],
                    "strongest_level": strongest["level"], "raw": q.raw, "chance": q.chance, "nag": q.nag,
                    "chance_rule": q.chance_rule or "the accuracy of always guessing the training split's commonest class",
                    "attackers": q.attackers or {}, "views": q.views or 1,
                    "warnings": q.warnings or [], "notes": q.notes or []},
        "n_test": s.n_test, "n_test_videos": s.n_test_videos,
        "provenance": {"audit_command": prov.get("command"), "audit_versions": prov.get("versions"),
                       "card_command": command, "card_versions": versions()},
    }
    tasks = task_rows(s)
    if tasks:  # tasks the release was never trained for (the data's task:* columns)
        card["tasks"] = tasks
    if floor_rows(s):
        card["privacy"]["floor_words"] = floor_words(q)
    return card


_CSS = """body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:860px;margin:1.2em auto;padding:0 1em;color:#1d1d1f;font-size:14px;line-height:1.4}
h1{font-size:20px;margin:.2em 0}h2{font-size:15px;margin:1.1em 0 .3em;border-bottom:1px solid #ddd;padding-bottom:2px}
table{border-collapse:collapse;width:100%}td,th{border:1px solid #d6d6d6;padding:3px 7px;text-align:right}
td:first-child,th:first-child{text-align:left}th{background:#f2f2f2}.head{font-weight:600;background:#fff8e1}
.kpi{display:flex;gap:12px;margin:.5em 0}.kpi div{flex:1;border:1px solid #ddd;border-radius:6px;padding:6px 10px}
.kpi b{font-size:22px;display:block}.muted{color:#666;font-size:12px}code{font-size:12px;word-break:break-all}
ul{margin:.2em 0;padding-left:1.3em}img{max-width:100%}@media print{body{margin:0;font-size:11px}h2{margin-top:.6em}}"""


def render_html(card: dict, examples_png: bytes | None) -> str:
    """The card as one self-contained HTML page (no scripts, images inlined)."""
    esc = html.escape
    r, u, p = card["released"], card["utility"], card["privacy"]
    rel_rows = [("what", r["kind"]), ("name", r["label"])]
    if r.get("released_manifest"):
        rel_rows += [("released manifest", r["released_manifest"]), ("raw manifest", r.get("raw_manifest")),
                     ("rows", r.get("rows"))]
    tool = r.get("tool")
    if tool:
        rel_rows += [("tool", f"{tool.get('tool')} {tool.get('version')} {' '.join(tool.get('args') or [])}".strip()),
                     ("frames changed by the tool", f"{tool.get('frames_changed')} of {tool.get('frames')}"),
                     ("release command", tool.get("command"))]
    src = r.get("source")
    if src:
        rel_rows += [("file", src.get("file")), ("sha256", src.get("sha256"))]
        if src.get("module"):
            rel_rows.append(("module", src["module"]))
    if r.get("run"):
        rel_rows += [("run", r["run"]), ("trained with", ", ".join(f"{k}={v}" for k, v in r.get("training", {}).items()))]
    if r.get("params"):
        rel_rows.append(("parameters", ", ".join(f"{k}={v}" for k, v in r["params"].items())))
    rel_rows.append(("release shape", " x ".join(map(str, r.get("release_shape") or [])) + " (channels, frames, height, width)"
                     if len(r.get("release_shape") or []) == 4 else " x ".join(map(str, r.get("release_shape") or []))))
    if r.get("audited_size"):
        rel_rows.append(("size audited", "x".join(map(str, r["audited_size"]))))
    if r.get("sent_size"):
        rel_rows.append(("size sent", "x".join(map(str, r["sent_size"]))))
    rel_table = "<table>" + "".join(f"<tr><th>{esc(str(k))}</th><td style='text-align:left'><code>{esc(str(v))}</code></td></tr>"
                                    for k, v in rel_rows if v not in (None, "")) + "</table>"
    size_note = f"<p class='muted'>{esc(r['size_note'])}</p>" if r.get("size_note") else ""
    floors = any("floor" in lv for lv in p["levels"])
    fl = lambda lv: (f"<td>{_pct(lv.get('floor'))}</td><td>{_pct(lv.get('floor_all'))}</td>" if floors else "")  # noqa: E731
    lv_rows = "".join(
        f"<tr class='{'head' if lv['headline'] else ''}'><td>{esc(lv['words'])}{' (headline)' if lv['headline'] else ''}</td>"
        f"<td>{_pct(lv['best'])}</td><td>{esc(_iv(lv['interval']))}</td><td>{esc(str(lv['best_attacker']))}</td>"
        f"<td>{_pct(lv['chance'])}</td>{fl(lv)}<td>{_pct(lv['raw'])}</td><td>{nag_text(lv['nag'])}</td>"
        f"<td>{'–' if lv.get('units') is None else lv['units']}</td></tr>" for lv in p["levels"])
    fl_head = "<th>task-label floor</th><th>floor with tasks</th>" if floors else ""
    levels_table = ("<table><tr><th>attack level</th><th>best attacker</th><th>95 % interval</th><th>by</th><th>chance</th>"
                    f"{fl_head}<th>raw data</th><th>NAG</th><th>test units</th></tr>{lv_rows}</table>")
    floor_note = (f"<p class='muted'>Task-label floor: what an attacker that knows only the task labels of each test clip, "
                  f"and nothing of the release, identifies; chance where every person does every action, more where actions "
                  f"follow people. A release is not blamed for it. {esc(p.get('floor_words', ''))}.</p>" if floors else "")
    task_rows_html = "".join(
        f"<tr><td>{esc(t['task'])}</td><td>{_pct(t['value'])}</td><td>{esc(_iv(t['interval']))}</td><td>{_pct(t['raw'])}</td>"
        f"<td>{_pct(t['chance'])}</td><td>{esc(task_model_text(t))}</td></tr>" for t in card.get("tasks") or [])
    tasks_html = ("<h2>Tasks it was never trained for</h2><p class='muted'>Each task the data labels beside the trained one "
                  "(its <code>task:*</code> columns): a pool of models retrained on the release, the best chosen on validation, "
                  "scored per clip on the test split.</p><table><tr><th>task</th><th>retrained model</th><th>95 % interval</th>"
                  f"<th>raw data</th><th>chance</th><th>best model</th></tr>{task_rows_html}</table>" if task_rows_html else "")
    attackers = ", ".join(f"{esc(k)} {100 * v:.1f}" for k, v in sorted(p["attackers"].items(), key=lambda kv: -kv[1])
                          if v == v)
    notes = "".join(f"<li>{esc(n)}</li>" for n in (p.get("warnings") or []) + (p.get("notes") or []))
    threat = "".join(f"<li>{esc(t)}</li>" for t in card["threat_model"])
    ex = (f"<img alt='raw and released example frames' src='data:image/png;base64,{base64.b64encode(examples_png).decode()}'>"
          if examples_png else "<p class='muted'>(the release is not a picture: no example frames)</p>")
    prov = card["provenance"]
    vers = lambda d: ", ".join(f"{k} {v}" for k, v in (d or {}).items()) or "not recorded"  # noqa: E731
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{esc(card['title'])}</title>
<style>{_CSS}</style></head><body>
<h1>{esc(card['title'])}</h1>
<p class="muted">Every number on this card is read from the audit <code>{esc(card['audit'])}</code>; {card['n_test']} test clips{
        f" from {card['n_test_videos']} test videos" if card.get('n_test_videos') else ''}.</p>
<div class="kpi"><div>utility ({esc(u['metric'])}, {esc(u['model'])})<b>{_pct(u['value'])}</b>
<span class="muted">95 % interval {esc(_iv(u['interval']))}; raw data {_pct(u['raw'])}, chance {_pct(u['chance'])}</span></div>
<div>private-label leakage, {esc(level_words(p['headline_level']))}<b>{_pct(p['best'])}</b>
<span class="muted">95 % interval {esc(_iv(p['interval']))}; best attacker {esc(str(p['best_attacker']))};
raw data {_pct(p['raw'])}, chance {_pct(p['chance'])}</span></div></div>
<h2>What was released</h2>{rel_table}{size_note}
<h2>Threat model</h2><ul>{threat}</ul>
<h2>Every attack level</h2>{levels_table}
<p class="muted">Chance: {esc(p['chance_rule'])}. Raw data: the same audit on the unreleased frames. NAG = (attack − chance) /
(raw − chance), 0 = nothing leaks beyond chance, 1 = as much as the raw frames. Strongest level: {esc(level_words(p['strongest_level']))}.
Every attacker at the headline level (%): {attackers}.</p>
{f'<ul class="muted">{notes}</ul>' if notes else ''}
{floor_note}
{tasks_html}
<h2>Example frames</h2>{ex}
<h2>Provenance</h2><table>
<tr><th>audit command</th><td style="text-align:left"><code>{esc(prov.get('audit_command') or 'not recorded (audit run from the library)')}</code></td></tr>
<tr><th>audit versions</th><td style="text-align:left"><code>{esc(vers(prov.get('audit_versions')))}</code></td></tr>
<tr><th>card command</th><td style="text-align:left"><code>{esc(prov.get('card_command') or 'not recorded')}</code></td></tr>
<tr><th>card versions</th><td style="text-align:left"><code>{esc(vers(prov.get('card_versions')))}</code></td></tr></table>
</body></html>
"""


#: the files :func:`write_card` writes into its folder
CARD_FILES = ("card.html", "card.json", "card_examples.png")


def write_card(summary_path: str | Path, out_dir: str | Path, *, command: str | None = None) -> tuple[Path, Path]:
    """Write ``card.json`` and ``card.html`` for one audit into ``out_dir``; returns both paths."""
    summary_path = Path(summary_path)
    if not summary_path.is_file():
        raise PrivacamError(f"{summary_path}: no such audit summary; audit the run first (`privacam evaluate RUN`)")
    card = build_card(summary_path, command=command)
    png = examples_png(summary_path.parent, ("raw", "released"), width=1.25, height=2.7, dpi=100)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if png:
        atomic_write_bytes(out_dir / "card_examples.png", png)
        card["examples"] = "card_examples.png"
    write_json(out_dir / "card.json", card)
    atomic_write_text(out_dir / "card.html", render_html(card, png))
    return out_dir / "card.html", out_dir / "card.json"


__all__ = ["CARD_FILES", "build_card", "render_html", "write_card"]
