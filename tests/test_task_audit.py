"""Tasks a release was never trained for and the task-label floor, inside a real ``privacam evaluate``
audit of a tiny manifest (issue 21, "Done when"): a ``task:*`` column yields a task pool and a score per
task in summary.json; the floor is at chance where every person does every action and above it where
actions follow people; relabelling one task column recomputes only the units that read it."""

import json
import math

import pytest

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


def test_a_task_column_yields_a_task_pool_and_a_score_per_task(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PRIVACAM_CACHE", str(tmp_path / "cache"))
    csv = write_people(tmp_path / "people", persons=4, frames=32, test_frames=12, tasks=TASKS)
    s = _evaluate(csv, tmp_path / "a")
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
    printed = capsys.readouterr().out
    assert "tasks never trained for" in printed and "    build " in printed and "    band " in printed
    # a manifest without task columns: no task, and no task unit
    plain = write_people(tmp_path / "plain", persons=4, frames=32, test_frames=12)
    s0 = _evaluate(plain, tmp_path / "b", "--no-raw")
    assert "tasks" not in s0 and not any(k.startswith("task.") for k in s0["unit_seconds"])
    assert "tasks never trained for" not in capsys.readouterr().out


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
