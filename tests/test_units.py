"""The audit as independent units: the same summary whatever runs them (one process, local workers, Ray),
a resumed audit that recomputes no finished unit, and a unit whose inputs changed that is not reused."""

import json
import os
import shutil

import pytest

from audit_fixtures import write_people
from conftest import TINY, one_thread
from privacam.config import DataConfig, load_config
from privacam.data import make_splits
from privacam.evaluate import fitting, units
from privacam.evaluate.protocol import AuditSpec, audit
from privacam.evaluate.runner import audit_spec
from privacam.executors import Inline, LocalProcesses
from privacam.models.encoders import IdentityEncoder
from privacam.registry import create_encoder
from privacam.utils import seed_everything

EVAL = ["eval.epochs=2", "eval.utility_epochs=2", "eval.patience=1", "eval.batch_size=8", "eval.bootstrap=50",
        "eval.trials=20", "eval.reconstruction=false",
        "eval.attackers=[linear_probe, small_cnn_a, c3d_tiny, mhi_logistic, profile_boosted]",
        "eval.task_pool=[shape_logistic, grid_probe]"]  # a classical and a network member
#: the units of the tiny audit: the trained task's pool (3), the attackers (5), 3 tasks x 2 members, 2 floors
N_UNITS = 3 + 5 + 3 * 2 + 2


@pytest.fixture(scope="module")
def tiny():
    ov = [o for o in TINY if not o.startswith("data.params")]
    ov.append("data.params={num_actors: 3, clips_per_pair: 4, actions: [wave1, jump]}")
    cfg = load_config("default", ov + EVAL)
    return cfg, make_splits(cfg.data, seed=0)


def _audit(cfg, splits, out, executor=None, encoder=None):
    seed_everything(0)
    with one_thread():
        return audit(encoder or IdentityEncoder(), splits, audit_spec(cfg), out_dir=out, executor=executor, progress=False)


class Count:
    """Counts the units run and the models fitted in this process."""

    def __init__(self, monkeypatch):
        self.units, self.fits = [], 0
        for kind, fn in list(units.UNIT_KINDS.items()):
            monkeypatch.setitem(units.UNIT_KINDS, kind, self._unit(fn))
        orig = fitting.fit_classifier

        def fit(*a, **k):
            self.fits += 1
            return orig(*a, **k)

        monkeypatch.setattr(fitting, "fit_classifier", fit)

    def _unit(self, fn):
        def run(spec, cache, device):
            self.units.append(spec.name)
            return fn(spec, cache, device)
        return run


@pytest.fixture(scope="module")
def one_process(tiny, tmp_path_factory):
    """The audit of the tiny data in this process (the reference of the executors' tests)."""
    cfg, splits = tiny
    out = tmp_path_factory.mktemp("one") / "eval"
    return _audit(cfg, splits, out), out


def _same(a, b) -> bool:
    return json.dumps(a.results(), sort_keys=True) == json.dumps(b.results(), sort_keys=True)


@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_the_same_summary_with_one_worker_and_two_workers(tiny, one_process, tmp_path, start):
    """summary.json less its timings is the same whatever runs the units: this process, or two local
    worker processes, forked (sharing this process's memory) or spawned (the cache in shared memory)."""
    cfg, splits = tiny
    one, one_dir = one_process
    with LocalProcesses(2, threads=1, start=start) as ex:
        two = _audit(cfg, splits, tmp_path / "two", ex)
    assert two.executor["name"] == "local" and two.executor["workers"] == 2 and two.executor["computed"] == N_UNITS
    # the tasks (the synthetic data labels position, speed and size) and the floors are in what must be the same
    assert set(two.tasks) == {"position", "speed", "size"} and all(t.model for t in two.tasks.values())
    assert two.utility.model and len(two.utility.models) == 3
    assert all(b.floor is not None and b.floor_all is not None for b in two.privacy.levels.values())
    assert two.executor["start"] == start
    assert set(two.unit_seconds) == set(one.unit_seconds)
    # every unit timed (a floor, a tiny classical fit or a tiny probe can take under 5 ms: 0.0 s once rounded);
    # the networks together take measurable time
    assert all(v >= 0 for v in two.unit_seconds.values())
    assert sum(v for k, v in two.unit_seconds.items()
               if json.loads((one_dir / "units" / f"{k}.json").read_text())["spec"]["network"]) > 0
    assert _same(one, two)
    # the unit records themselves: the same scores, whatever process computed them
    for name in one.unit_seconds:
        a = json.loads((one_dir / "units" / f"{name}.json").read_text())
        b = json.loads((tmp_path / "two" / "units" / f"{name}.json").read_text())
        assert a["scores"] == b["scores"] and a["digest"] == b["digest"] and b["executor"] == "local"
    if start == "spawn":
        return
    # the order of the units does not matter either (each seeds itself): the last one alone, in a fresh folder
    last = sorted(one.unit_seconds)[-1]
    shutil.copytree(one_dir / "units", tmp_path / "alone" / "units")
    (tmp_path / "alone" / "units" / f"{last}.json").unlink()
    alone = _audit(cfg, splits, tmp_path / "alone")
    assert alone.executor["computed"] == 1 and _same(one, alone)


def test_the_same_summary_on_ray_and_network_units_ask_for_a_gpu(tiny, one_process, tmp_path):
    """... and as Ray tasks on a local cluster (the cache put into its object store once). A unit that
    trains a network asks Ray for a GPU where the cluster has one (here a cluster that declares one);
    a classical attacker's does not."""
    ray = pytest.importorskip("ray")
    from privacam.executors import Job, RayExecutor, _worker_env, worker_info

    cfg, splits = tiny
    one, _ = one_process
    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": _worker_env()})
    try:
        ex = RayExecutor(None)
        assert ex.gpus == 1
        on_ray = _audit(cfg, splits, tmp_path / "ray", ex)
        assert on_ray.executor["name"] == "ray" and on_ray.executor["computed"] == N_UNITS
        assert _same(one, on_ray)
        got = {e.job.name: e.result for e in ex.run([Job("network", worker_info, gpu=True), Job("classical", worker_info)])
               if e.kind == "done"}
        assert len(got["network"]["gpus"]) == 1 and got["classical"]["gpus"] == []
        assert got["classical"]["torch_threads"] == 1  # one thread per task: Ray gave it one CPU
    finally:
        ray.shutdown()
    plan = {u.name: u for u in units.plan_units(_cache_of_audit(cfg, splits), audit_spec(cfg))}
    assert plan["attacker.small_cnn_a"].network and plan["utility.small3d"].network
    assert not plan["attacker.mhi_logistic"].network and not plan["attacker.profile_boosted"].network


def _cache_of_audit(cfg, splits):
    from privacam.evaluate.cache import release

    return release(IdentityEncoder(), splits, views=1, batch_size=8, seed=0, device="cpu")


def test_a_resumed_audit_recomputes_no_finished_unit(tiny, tmp_path, monkeypatch):
    cfg, splits = tiny
    full = _audit(cfg, splits, tmp_path / "full")
    count = Count(monkeypatch)
    calls = {"n": 0}
    orig = units.UNIT_KINDS["attacker"]

    def killed(spec, cache, device):  # the audit is killed during its fourth unit
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return orig(spec, cache, device)

    monkeypatch.setitem(units.UNIT_KINDS, "attacker", killed)
    with pytest.raises(KeyboardInterrupt):
        _audit(cfg, splits, tmp_path / "cut")
    done = sorted(p.stem for p in (tmp_path / "cut" / "units").glob("*.json"))
    assert 3 <= len(done) < N_UNITS and not (tmp_path / "cut" / "summary.json").exists()
    monkeypatch.setitem(units.UNIT_KINDS, "attacker", orig)
    count.units.clear()
    count.fits = 0
    resumed = _audit(cfg, splits, tmp_path / "cut")
    missing = set(full.unit_seconds) - set(done)
    kind = lambda n: json.loads((tmp_path / "full" / "units" / f"{n}.json").read_text())["kind"]  # noqa: E731
    # finished task units are among those kept, task and floor units among those left
    assert "task" in {kind(n) for n in done} and {"task", "floor"} <= {kind(n) for n in missing}
    assert sorted(count.units) == sorted(missing)  # only the missing units
    # one gradient fit per network among them (no refit: the tiny data's validation split is its own)
    networks = [n for n in missing if json.loads((tmp_path / "full" / "units" / f"{n}.json").read_text())["spec"]["network"]]
    assert networks and count.fits == len(networks)
    assert resumed.executor["reused"] == len(done) and resumed.executor["computed"] == len(missing)
    assert json.dumps(resumed.results(), sort_keys=True) == json.dumps(full.results(), sort_keys=True)
    count.units.clear()
    again = _audit(cfg, splits, tmp_path / "cut")  # nothing left to compute
    assert count.units == [] and again.executor["computed"] == 0


def test_a_unit_whose_inputs_changed_is_recomputed_not_reused(tiny, tmp_path, monkeypatch):
    cfg, splits = tiny
    out = tmp_path / "e"
    _audit(cfg, splits, out)
    count = Count(monkeypatch)
    # another release into the same folder: every unit again
    _audit(cfg, splits, out, encoder=create_encoder("downsample", in_channels=3, factor=2))
    assert len(count.units) == N_UNITS
    # other fit settings for the attackers (and the task pool, fitted with them): those again, the retrained
    # utility model and the floors (nothing fitted) reused
    count.units.clear()
    _audit(cfg, splits, out, encoder=create_encoder("downsample", in_channels=3, factor=2))
    assert count.units == []
    cfg2 = load_config("default", [o for o in TINY if not o.startswith("data.params")]
                       + ["data.params={num_actors: 3, clips_per_pair: 4, actions: [wave1, jump]}"] + EVAL + ["eval.epochs=3"])
    _audit(cfg2, splits, out, encoder=create_encoder("downsample", in_channels=3, factor=2))
    pool = [f"{t}.{m}" for t in ("utility", "task.position", "task.speed", "task.size") for m in cfg.eval.task_pool]
    assert sorted(count.units) == sorted([f"attacker.{a}" for a in cfg.eval.attackers] + pool)


def test_a_relabelled_manifest_recomputes_every_unit(tmp_path, monkeypatch):
    """Same files, same rows, two persons' labels swapped in place: another manifest, no unit reused."""
    csv = write_people(tmp_path / "people", persons=3, frames=32, test_frames=12)
    cfg = load_config("default", [o for o in TINY if not o.startswith("data.")] + EVAL + ["eval.views=1"])
    cfg.data = DataConfig(name="manifest", root=str(csv), size=16, clip_len=8)
    _audit(cfg, make_splits(cfg.data, seed=0), tmp_path / "e")
    count = Count(monkeypatch)
    _audit(cfg, make_splits(cfg.data, seed=0), tmp_path / "e")
    assert count.units == []  # the same manifest: every unit reused
    text = csv.read_text()
    csv.write_text(text.replace(",person0,", ",tmp,").replace(",person1,", ",person0,").replace(",tmp,", ",person1,"))
    _audit(cfg, make_splits(cfg.data, seed=0), tmp_path / "e")
    assert len(count.units) == 3 + 5 + 1  # the trained task's pool, the attackers, the floor (no task columns here)


def test_units_are_a_small_registry_and_a_unit_names_its_label_column(tiny, tmp_path):
    cfg, splits = tiny
    s = _audit(cfg, splits, tmp_path / "e")
    assert set(units.UNIT_KINDS) >= {"attacker", "utility", "reconstruction"}
    rec = json.loads((tmp_path / "e" / "units" / "attacker.small_cnn_a.json").read_text())
    assert rec["spec"]["labels"] == "private" and rec["spec"]["group"] == "privacy" and rec["kind"] == "attacker"
    assert len(rec["scores"]) == s.n_test and rec["selection"]["curve"] and rec["digest"]
    util = json.loads((tmp_path / "e" / "units" / "utility.small3d.json").read_text())
    assert util["spec"]["labels"] == "utility" and util["spec"]["selection"] == {}


@pytest.mark.slow
def test_sigkill_half_way_then_resume(tmp_path):
    """A real kill: `privacam evaluate` SIGKILLed once some units are written; run again, it finishes
    the others only, and the summary is the one of an uninterrupted audit."""
    import signal
    import subprocess
    import sys
    import time

    env = {**os.environ, "PRIVACAM_CACHE": str(tmp_path / "cache")}
    ov = [o for o in TINY if not o.startswith("data.params")] + EVAL + ["eval.epochs=6"]
    args = [sys.executable, "-m", "privacam.cli", "evaluate", "--encoder", "identity", "--data", "synthetic", "--no-raw", *ov]
    subprocess.run(args + ["--out", str(tmp_path / "full")], env=env, check=True, capture_output=True)
    p = subprocess.Popen(args + ["--out", str(tmp_path / "cut")], env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    units_dir = tmp_path / "cut" / "eval" / "units"
    while p.poll() is None and len(list(units_dir.glob("*.json"))) < 3:
        time.sleep(0.2)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    done = len(list(units_dir.glob("*.json")))
    assert 3 <= done < N_UNITS
    subprocess.run(args + ["--out", str(tmp_path / "cut")], env=env, check=True, capture_output=True)
    from privacam.audits import read_summary

    a, b = read_summary(tmp_path / "full" / "eval"), read_summary(tmp_path / "cut" / "eval")
    assert b.executor["reused"] == done and b.executor["computed"] == N_UNITS - done
    assert json.dumps(a.results(), sort_keys=True) == json.dumps(b.results(), sort_keys=True)
    shutil.rmtree(tmp_path / "cache", ignore_errors=True)


def test_sweep_chains_run_on_local_workers(tmp_path, monkeypatch, capsys):
    """`privacam sweep --workers 2`: each value's train-then-audit chain is a job of a worker process, and
    the reference is put beside every audit once they are all done (no chain waits on another's files)."""
    from privacam.audits import read_summary
    from privacam.cli import main

    monkeypatch.setenv("PRIVACAM_CACHE", str(tmp_path / "cache"))
    ov = [o for o in TINY if not o.startswith("data.params")] + [
        "data.params={num_actors: 3, clips_per_pair: 3, actions: [wave1, jump]}", "eval.epochs=1", "eval.utility_epochs=1",
        "eval.min_epochs=1", "eval.views=1", "eval.bootstrap=10", "eval.trials=5", "eval.reconstruction=false",
        "eval.attackers=[linear_probe, mhi_logistic]"]
    out = tmp_path / "sweep"
    assert main(["sweep", "default", *ov, "--key", "game.gamma", "--values", "0.5,1", "--out", str(out), "--workers", "2"]) == 0
    res = json.loads((out / "sweep.json").read_text())
    assert res["executor"]["name"] == "local" and res["executor"]["workers"] == 2
    for p, gamma in zip(res["points"], (0.5, 1.0)):
        s = read_summary(out / p["summary"])
        assert s.encoder.gamma == gamma and s.privacy.raw is not None and s.privacy.has("nag")  # the reference added
    assert (out / "report.html").exists()


def test_a_unit_is_the_same_whatever_the_threads_of_the_process_running_it():
    """torch's CPU kernels sum in an order that depends on the thread count (at 32x32 a CNN's scores
    move in the last bits); a unit computes on UNIT_THREADS threads, so one process with two threads and
    workers with one give the same record."""
    import torch

    from privacam.data import Splits, TensorSampleDataset
    from privacam.evaluate.cache import release
    from privacam.executors import WorkerContext

    g = torch.Generator().manual_seed(0)
    x = (torch.rand(48, 3, 8, 32, 32, generator=g) * 255).to(torch.uint8)
    ds = TensorSampleDataset(x, torch.arange(48) % 2, torch.arange(48) % 4)
    splits = Splits(ds.subset(range(32)), ds.subset(range(32, 40)), ds.subset(range(40, 48)), ["a", "b"],
                    ["p0", "p1", "p2", "p3"], kind="video", name="random")
    cache = release(IdentityEncoder(), splits, views=1, batch_size=16, seed=0, device="cpu")
    spec = units.UnitSpec("attacker", "attacker.small_cnn_a", "small_cnn_a", {}, "private", "privacy",
                          {"epochs": 2, "batch_size": 16, "patience": 2}, {"val_mode": "data"}, 4, 0, True)
    before = torch.get_num_threads()
    records = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            records.append(units.run_unit(cache, spec, WorkerContext()))
            assert torch.get_num_threads() == threads  # the process's own threads are given back
    finally:
        torch.set_num_threads(before)
    assert records[0]["scores"] == records[1]["scores"] and records[0]["selection"]["curve"] == records[1]["selection"]["curve"]


def test_the_reconstruction_threat_as_one_unit_per_reconstructor_is_the_whole_attack():
    """Each reconstructor is a unit of its own (they run side by side); put together they give what the
    whole reconstruction attack gives (the best by validation MSE and its test scores)."""
    import torch

    from privacam.evaluate.reconstruction import ATTACKERS, reconstruction_attack
    from privacam.evaluate.scoring import reconstruction_block

    g = torch.Generator().manual_seed(0)
    x = torch.rand(60, 1, 6, 6, generator=g)
    z = torch.nn.functional.avg_pool2d(x, 2).flatten(1)  # a lossy release
    args = (z[:40], x[:40], z[40:50], x[40:50], z[50:], x[50:])
    whole = reconstruction_attack(*args, seed=0, epochs=3)
    parts = {a: reconstruction_attack(*args, attackers=(a,), seed=0, epochs=3)["attackers"][a] for a in ATTACKERS}
    drop = lambda d: {k: v for k, v in d.items() if k != "seconds"}  # noqa: E731
    block = reconstruction_block(parts)
    assert block["best_attacker"] == whole["best_attacker"]
    assert {k: drop(v) for k, v in block["attackers"].items()} == {k: drop(v) for k, v in whole["attackers"].items()}
    assert {k: block[k] for k in ("mse", "psnr", "ssim")} == {k: whole[k] for k in ("mse", "psnr", "ssim")}
