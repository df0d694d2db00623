"""Tasks a release was never trained for and the task-label floor, inside a real ``privacam evaluate``
audit of a tiny manifest (issue 21, "Done when"): a ``task:*`` column yields a task pool and a score per
task in summary.json; the floor is at chance where every person does every action and above it where
actions follow people; relabelling one task column recomputes only the units that read it."""

import contextlib
import io
import json
import math

import pytest
import torch

from audit_fixtures import write_people
from conftest import TINY, one_thread
from privacam.cli import main
from privacam.config import DataConfig, load_config
from privacam.data import make_splits
from privacam.evaluate import units
from privacam.evaluate.protocol import audit
from privacam.evaluate.runner import audit_spec
from privacam.models.encoders import IdentityEncoder
from privacam.utils import seed_everything

POOL = ["shape_logistic", "grid_probe"]  # a classical and a network member
EVAL = ["eval.epochs=2", "eval.utility_epochs=2", "eval.patience=1", "eval.batch_size=8", "eval.bootstrap=50",
        "eval.trials=20", "eval.reconstruction=false", "eval.views=1", "eval.attackers=[linear_probe, mhi_logistic]",
        f"eval.task_pool=[{', '.join(POOL)}]"]
OV = [o for o in TINY if not o.startswith("data.")] + ["data.size=16", "data.clip_len=8"] + EVAL
#: two tasks of the people: their build (persons 2 and 3 are larger) and an arbitrary grouping
TASKS = {"build": lambda p, a, s: "large" if p >= 2 else "small",
         "band": lambda p, a, s: "a" if p in (0, 3) else "b"}


def _evaluate(csv, out, *extra):
    with one_thread():
        rc = main(["evaluate", "--encoder", "identity", "--data", str(csv), "--out", str(out), *OV, *extra])
    assert rc == 0
    return json.loads((out / "eval" / "summary.json").read_text())


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    """``privacam evaluate`` of a manifest with two task columns (with the raw reference), and of the same
    people without task columns; what each printed."""
    root = tmp_path_factory.mktemp("tasks")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PRIVACAM_CACHE", str(root / "cache"))
        out = {}
        for name, tasks, extra in (("tasks", TASKS, ()), ("plain", None, ("--no-raw",))):
            csv = write_people(root / name, persons=4, frames=32, test_frames=12, tasks=tasks)
            buf = io.StringIO()
            with contextlib.redirect_stdout(buf):
                s = _evaluate(csv, root / f"{name}_out", *extra)
            out[name] = (s, root / f"{name}_out" / "eval", buf.getvalue())
    return out


def test_a_task_column_yields_a_task_pool_and_a_score_per_task(audited):
    s, _, printed = audited["tasks"]
    assert s["schema_version"] == 3
    assert list(s["tasks"]) == ["build", "band"]  # the manifest's order
    for name, t in s["tasks"].items():
        assert set(t["models"]) == set(POOL) and t["model"] in POOL, name  # the whole pool, one chosen
        best = max(POOL, key=lambda m: t["models"][m]["val"])
        assert t["model"] == best and t["value"] == pytest.approx(t["models"][best]["test"])  # chosen on validation
        lo, hi = t["interval"]
        assert 0 <= lo <= t["value"] <= hi <= 1
        assert t["chance"] == pytest.approx(0.5) and t["classes"] and t["videos"] == 8
        assert t["raw"] is not None  # the raw reference's same task beside it
    # the trained task's retrained utility is the best of eval.utility_model and the pool, on validation
    u = s["utility"]
    assert set(POOL) < set(u["models"]) and len(u["models"]) == 3 and u["model"] in u["models"]
    # the build is in every frame: the identity release keeps it
    assert s["tasks"]["build"]["value"] > 0.75
    assert "tasks never trained for" in printed and "    build " in printed and "    band " in printed
    # the floor with every task knows the tasks too
    assert s["privacy"]["floor_knows"] == {"floor": ["utility"], "floor_all": ["utility", "build", "band"]}
    # a manifest without task columns: no task, and no task unit
    s0, _, printed0 = audited["plain"]
    assert "tasks" not in s0 and not any(k.startswith("task.") for k in s0["unit_seconds"])
    assert "tasks never trained for" not in printed0


@pytest.mark.parametrize("follow", [False, True])
def test_the_task_label_floor_is_chance_on_balanced_data_and_above_where_actions_follow_people(tmp_path, monkeypatch, follow):
    """Balanced: every person does every action, so the action says nothing of who it is. ``follow``: person
    ``p`` does only action ``p % 2``, so the action halves the people (per clip: 1/2 where chance is 1/4)."""
    monkeypatch.setenv("PRIVACAM_CACHE", str(tmp_path / "cache"))
    csv = write_people(tmp_path / "people", persons=4, frames=32, test_frames=12, follow=follow)
    s = _evaluate(csv, tmp_path / "a", "--no-raw")
    levels = s["privacy"]["levels"]
    assert len(levels) >= 2 and s["privacy"]["floor_knows"] == {"floor": ["utility"]}
    scored = {name: b for name, b in levels.items() if math.isfinite(b.get("chance") or math.nan)}  # not person@5: too few test clips
    assert len(scored) >= 4
    for name, b in scored.items():
        assert "floor_all" not in b  # no unseen task in this manifest
        lo, hi = b["floor"]["interval"]
        assert lo <= b["floor"]["value"] <= hi
        if follow:
            assert b["floor"]["value"] >= b["chance"] + 0.2, name
        else:
            assert b["floor"]["value"] == pytest.approx(b["chance"], abs=0.02), name
    head = levels[s["privacy"]["level"]]
    assert s["privacy"]["floor"]["value"] == head["floor"]["value"]


class _Count:
    """The names of the units run in this process."""

    def __init__(self, monkeypatch):
        self.units = []
        for kind, fn in list(units.UNIT_KINDS.items()):
            monkeypatch.setitem(units.UNIT_KINDS, kind, self._wrap(fn))

    def _wrap(self, fn):
        def run(spec, cache, device):
            self.units.append(spec.name)
            return fn(spec, cache, device)
        return run


def _audit(cfg, out):
    seed_everything(0)
    with one_thread():
        return audit(IdentityEncoder(), make_splits(cfg.data, seed=0), audit_spec(cfg), out_dir=out, progress=False)


def test_relabelling_one_task_column_recomputes_only_that_tasks_units(tmp_path, monkeypatch):
    monkeypatch.setenv("PRIVACAM_CACHE", str(tmp_path / "cache"))
    csv = write_people(tmp_path / "people", persons=4, frames=32, test_frames=12, tasks=TASKS)
    cfg = load_config("default", OV)
    cfg.data = DataConfig(name="manifest", root=str(csv), size=16, clip_len=8)
    first = _audit(cfg, tmp_path / "e")
    names = set(first.unit_seconds)
    assert {f"task.{t}.{m}" for t in TASKS for m in POOL} | {"floor.task", "floor.all"} <= names
    count = _Count(monkeypatch)
    _audit(cfg, tmp_path / "e")
    assert count.units == []  # the same manifest: every unit reused, the task and floor units included
    # the column task:band relabelled in place (a <-> b): its pool and the floor that knows it, nothing else
    rows = csv.read_text().splitlines()
    swap = {"a": "b", "b": "a"}
    csv.write_text("\n".join([rows[0]] + [",".join(r.split(",")[:-1] + [swap[r.split(",")[-1]]]) for r in rows[1:]]) + "\n")
    again = _audit(cfg, tmp_path / "e")
    assert sorted(count.units) == sorted([f"task.band.{m}" for m in POOL] + ["floor.all"])
    assert again.tasks["build"].to_dict() == first.tasks["build"].to_dict()


# ------------------------------------------------------------------------------ report, card, demo table
def _strip_schema_3(summary: dict) -> dict:
    """A summary as schema 2 wrote it: no tasks, no trained-task pool, no floors."""
    s = json.loads(json.dumps(summary))
    s.pop("tasks", None)
    s["schema_version"] = 2
    for k in ("model", "models"):
        s["utility"].pop(k, None)
    for block in [s["privacy"], *s["privacy"]["levels"].values()]:
        for k in ("floor", "floor_all", "nag_floor", "floor_knows"):
            block.pop(k, None)
    return s


def test_the_report_and_the_card_show_every_task_and_the_floor_read_from_the_summary(audited, tmp_path):
    from privacam.card import write_card
    from privacam.report import write_report

    s, eval_dir, _ = audited["tasks"]
    page = write_report([eval_dir], tmp_path / "r" / "report.html")[0].read_text()
    assert "<h2>Tasks never trained for</h2>" in page and "<h2>Task-label floor</h2>" in page
    for name, t in s["tasks"].items():
        row = page[page.index(f"<td>{name}</td>"):]
        row = row[:row.index("</tr>")]
        lo, hi = t["interval"]
        assert (f"<td>{100 * t['value']:.1f}</td><td>[{100 * lo:.1f}, {100 * hi:.1f}]</td><td>{100 * t['raw']:.1f}</td>"
                f"<td>50.0</td><td>{t['model']} (best of 2)</td>") in row
    floors = page[page.index("<h2>Task-label floor</h2>"):]
    for b in s["privacy"]["levels"].values():
        if b.get("floor") and math.isfinite(b["floor"]["value"]):
            assert f"<td>{100 * b['chance']:.1f}</td><td>{100 * b['floor']['value']:.1f}</td>" in floors
    # the card: the same numbers, read from summary.json
    html_path, json_path = write_card(eval_dir / "summary.json", tmp_path / "card")
    card, text = json.loads(json_path.read_text()), html_path.read_text()
    assert [t["task"] for t in card["tasks"]] == ["build", "band"]
    for t in card["tasks"]:
        ref = s["tasks"][t["task"]]
        assert (t["value"], t["interval"], t["raw"], t["chance"], t["model"]) == (
            ref["value"], ref["interval"], ref["raw"], ref["chance"], ref["model"])
        assert f"<td>{t['task']}</td><td>{100 * t['value']:.1f} %</td>" in text
    assert "Tasks it was never trained for" in text and "<th>task-label floor</th><th>floor with tasks</th>" in text
    levels = {lv["level"]: lv for lv in card["privacy"]["levels"]}
    for name, b in s["privacy"]["levels"].items():
        assert levels[name]["floor"] == b["floor"]["value"] and levels[name]["floor_all"] == b["floor_all"]["value"]
    assert "the best of 3 task models retrained on the release" in card["utility"]["model"]


def test_no_task_columns_no_task_section_and_an_older_summary_no_floor(audited, tmp_path):
    from privacam.card import write_card
    from privacam.report import write_report

    s, eval_dir, _ = audited["plain"]
    page = write_report([eval_dir], tmp_path / "r" / "report.html")[0].read_text()
    assert "Tasks never trained for" not in page
    html_path, json_path = write_card(eval_dir / "summary.json", tmp_path / "card")
    card, text = json.loads(json_path.read_text()), html_path.read_text()
    assert "tasks" not in card and "Tasks it was never trained for" not in text
    # the trained task's floor is measured (the action labels), the floor with tasks is not
    assert any("floor" in lv for lv in card["privacy"]["levels"])
    assert all(lv["floor_all"] is None for lv in card["privacy"]["levels"] if "floor" in lv)
    # a schema-2 summary: nothing task- or floor-related anywhere
    old = tmp_path / "old" / "eval"
    old.mkdir(parents=True)
    (old / "summary.json").write_text(json.dumps(_strip_schema_3(s)))
    page = write_report([old], tmp_path / "r2" / "report.html")[0].read_text()
    assert "Tasks never trained for" not in page and "Task-label floor" not in page
    html_path, json_path = write_card(old / "summary.json", tmp_path / "card2")
    card, text = json.loads(json_path.read_text()), html_path.read_text()
    assert "tasks" not in card and "task-label floor" not in text.lower() and not any("floor" in lv for lv in card["privacy"]["levels"])


def _point(label, tasks=None, floor=None, best=0.9):
    from privacam.audits import AuditSummary

    level = {"best": best, "interval": [best - 0.1, best], "best_attacker": "c3d_tiny", "chance": 0.25, "raw": 1.0,
             "nag": 0.5, "attackers": {"c3d_tiny": best}}
    if floor is not None:
        level["floor"] = {"value": floor, "interval": [floor, floor]}
    d = {"schema_version": 3, "encoder": {"name": label, "params": {}}, "dataset": "synthetic",
         "utility": {"metric": "accuracy", "chance": 0.5, "retrained": 0.8, "value": 0.8, "raw": 0.9},
         "privacy": {"metric": "accuracy", "best": best, "best_attacker": "c3d_tiny", "chance": 0.25, "raw": 1.0, "nag": 0.5,
                     "attackers": {"c3d_tiny": best}, "level": "video", "levels": {"video": level}}}
    if tasks:
        d["tasks"] = {n: {"value": v, "interval": [v - 0.05, v], "chance": 0.5, "raw": 1.0, "model": "shape_logistic",
                          "models": {"shape_logistic": {}, "grid_probe": {}}} for n, v in tasks.items()}
    s = AuditSummary.from_dict(d)
    s.label = label
    return s


def test_the_demo_table_has_a_column_per_unseen_task_and_the_floor():
    from privacam.report import markdown_table

    table = markdown_table([_point("identity", {"position": 1.0, "speed": 0.95}, floor=0.25),
                            _point("decision", {"position": 0.5}, floor=0.25, best=0.3),
                            _point("old", None)])  # an audit without tasks or floor: dashes
    head, _, *rows = table.splitlines()
    assert head.endswith("own adversaries % | position % | speed % | task-label floor % |")
    assert rows[0].endswith("| 100.0 | 95.0 | 25.0 |") and rows[1].endswith("| 50.0 | – | 25.0 |")
    assert rows[2].endswith("| – | – | – |")
    assert "Tasks no release was trained for (position, speed)" in table and "chance: position 50.0 %, speed 50.0 %" in table
    # no task and no floor anywhere: the table of before, column for column
    plain = markdown_table([_point("identity"), _point("blur", best=0.5)])
    assert plain.splitlines()[0].endswith("| NAG | own adversaries % |") and "task" not in plain.lower()


# ------------------------------------------------------------------------------ a substitute beside its input
def test_a_substitute_release_is_shown_beside_its_input_with_its_bank_clip(tmp_path, monkeypatch):
    from privacam.audits import read_examples
    from privacam.data.base import collate
    from privacam.evaluate.protocol import bank_indices
    from privacam.models.substitute import SubstituteEncoder
    from privacam.report import example_titles, examples_png

    monkeypatch.setenv("PRIVACAM_CACHE", str(tmp_path / "cache"))
    cfg = load_config("default", [o for o in TINY] + ["eval.epochs=1", "eval.utility_epochs=1", "eval.patience=1",
                                                      "eval.batch_size=8", "eval.bootstrap=20", "eval.trials=5",
                                                      "eval.reconstruction=false", "eval.views=1",
                                                      "eval.attackers=[linear_probe]", "eval.task_pool=[]"])
    splits = make_splits(cfg.data, seed=0)
    b = collate([splits.train[i] for i in range(len(splits.train))])
    enc = SubstituteEncoder(3, clip_len=cfg.data.clip_len, tau=0.1, dim=8, width=4, internal=8)
    enc.set_bank((b["input"] * 255 + 0.5).to(torch.uint8), b["utility"], b["private"])
    seed_everything(0)
    with one_thread():
        audit(enc, splits, audit_spec(cfg), out_dir=tmp_path / "e", progress=False)
    ex = read_examples(tmp_path / "e")
    assert "bank" in ex and len(ex["bank"]) == len(ex["released"]) and not ex["bank_moved"].any()
    for z, j in zip(ex["released"], ex["bank"].tolist()):  # each release shown is the bank clip named (middle frame)
        mid = enc.bank[j, :, enc.bank.shape[2] // 2].float() / 255
        assert torch.allclose(z.float(), mid, atol=1e-3)
    top, below = example_titles(ex)
    assert top[0] == "input" and below == [f"substitute (bank clip {j})" for j in ex["bank"].tolist()]
    assert examples_png(tmp_path / "e")[:4] == b"\x89PNG"
    # any other release: the generic titles, no bank
    plain = {"input": ex["input"], "released": ex["released"], "items": ex["items"]}
    assert example_titles(plain, ("raw", "released")) == (["raw"] + [""] * (len(plain["input"]) - 1),
                                                          ["released"] + [""] * (len(plain["input"]) - 1))
    # a release that is a bank clip moved elsewhere: the nearest bank clip, said to be moved
    shown = (enc.bank[[3, 5]]).clone()
    shown[1] = torch.roll(shown[1], 2, dims=-1)
    index, moved = bank_indices(enc, shown)
    assert index[0] == 3 and not moved[0] and moved[1]
    assert bank_indices(torch.nn.Identity(), shown) is None


def test_runs_trained_alike_are_told_apart_in_the_report():
    from privacam.audits import AuditSummary, EncoderInfo
    from privacam.report import distinct_labels, label_of

    pts = [AuditSummary(encoder=EncoderInfo(name="substitute", run=f"runs/w/substitute_s{i}", schedule="entropy", m=1,
                                            gamma=0.0)) for i in range(2)]
    pts.append(AuditSummary(encoder=EncoderInfo(name="downsample", params={"factor": 4})))
    for s in pts:
        s.label = label_of(s)
    assert pts[0].label == pts[1].label
    labels = [s.label for s in distinct_labels(pts)]
    assert len(set(labels)) == 3 and labels[0].endswith("(substitute_s0)") and labels[2] == "downsample factor=4"
