"""The audit as units, measured side by side in one run: one process (1 and 2 torch threads), two
local workers, Ray on a two-node cluster on this machine, and a SIGKILL half-way then resume.

    .venv/bin/python bench/bench_audit_units.py                 # the Weizmann default run (trained if missing)
    .venv/bin/python bench/bench_audit_units.py --run RUN       # another run
    .venv/bin/python bench/bench_audit_units.py --quick         # fewer epochs: shows it works, not the targets

Every configuration is one ``privacam evaluate RUN --out ... --no-raw`` process (as a user runs it);
its wall time and the peak memory of its process tree (resident and proportional set size, sampled
every 0.2 s; for Ray, the nodes' processes too) are recorded, with whether its summary less its timing
fields is the one of the single-process audit (every unit computes on one CPU thread, whatever runs it:
the rows must agree to the last bit). The Ray cluster is two nodes started here (``ray start
--head``, then a second ``ray start --address`` joining it, one CPU each) and stopped afterwards (only
the processes this script started). The kill: the 1-thread single-process audit is SIGKILLed once half of
its time is spent, then run again; its time is compared with the full audit's.

Writes ``bench/performance.json`` (key ``audit_units``) and the section of ``docs/performance.md``
between its markers.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from _common import machine, table, update_section  # noqa: E402

DOC = ROOT / "docs" / "performance.md"
START, END = "<!-- bench_audit_units:start -->", "<!-- bench_audit_units:end -->"
WEIZMANN = ROOT.parent.parent / "shared" / "data" / "weizmann" / "manifest.csv"
QUICK = ["eval.epochs=2", "eval.utility_epochs=2", "eval.min_epochs=1", "eval.patience=1", "eval.views=2",
         "eval.bootstrap=200", "eval.trials=50"]
TIMING = ("seconds", "executor", "unit_seconds", "provenance", "schema_version")


def _env(threads: int) -> dict:
    src = str(ROOT / "src")
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": src + (os.pathsep + path if path else ""),
            "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}  # a loopback test cluster: no token


def _tree(pids: list[int]) -> list[int]:
    """The processes of the trees rooted at ``pids`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], list(pids)
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def _memory(pids: list[int]) -> tuple[float, float]:
    """(RSS, PSS) of the processes, MiB (PSS counts shared pages once over the processes sharing them)."""
    rss = pss = 0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1])
        except OSError:
            continue
    return rss / 1024, pss / 1024


def _run(args: list[str], env: dict, *, also: list[int] = (), kill_when=None) -> dict:
    """Run a command, sampling the memory of its tree (and of the trees ``also``); ``kill_when()``:
    SIGKILL its process group as soon as it is true."""
    t = time.time()
    p = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True, text=True)
    peak_rss = peak_pss = 0.0
    killed = False
    out: list[str] = []
    import threading

    reader = threading.Thread(target=lambda: out.extend(p.stdout), daemon=True)
    reader.start()
    while p.poll() is None:
        rss, pss = _memory(_tree([p.pid, *also]))
        peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
        if kill_when is not None and not killed and kill_when():
            os.killpg(p.pid, signal.SIGKILL)
            killed = True
        time.sleep(0.2)
    reader.join(timeout=5)
    if p.returncode and not killed:
        raise SystemExit(f"{' '.join(args)} failed ({p.returncode}):\n{''.join(out)[-3000:]}")
    return {"seconds": round(time.time() - t, 1), "peak_rss_mib": round(peak_rss), "peak_pss_mib": round(peak_pss),
            "killed": killed}


def _results(eval_dir: Path) -> str:
    from privacam.audits import read_summary

    return json.dumps(read_summary(eval_dir).results(), sort_keys=True)


class TwoNodeRay:
    """``ray start --head`` and a second ``ray start --address`` joining it, one CPU each, on this machine;
    stopped (their process groups) on exit."""

    def __init__(self, port: int, workdir: Path):
        self.port, self.workdir, self.procs = port, workdir, []

    def __enter__(self):
        try:
            return self._start()
        except BaseException:
            self.__exit__()
            raise

    def _start(self):
        ray = str(Path(sys.executable).parent / "ray")
        env = _env(1)
        log = open(self.workdir / "ray_head.log", "w")
        import tempfile

        self.temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
        self.procs.append(subprocess.Popen([ray, "start", "--head", f"--port={self.port}", "--num-cpus=1", "--num-gpus=0",
                                            "--include-dashboard=false", "--block", f"--temp-dir={self.temp}"],
                                           env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        self._wait_nodes(1)
        log = open(self.workdir / "ray_node.log", "w")
        self.procs.append(subprocess.Popen([ray, "start", f"--address=127.0.0.1:{self.port}", "--num-cpus=1", "--num-gpus=0",
                                            "--block"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        self._wait_nodes(2)
        return self

    def _wait_nodes(self, n: int, timeout: float = 120) -> None:
        t = time.time()
        code = ("import ray; ray.init(address='127.0.0.1:%d', log_to_driver=False); "
                "print(len([x for x in ray.nodes() if x['Alive']]))" % self.port)
        while time.time() - t < timeout:
            r = subprocess.run([sys.executable, "-c", code], env=_env(1), capture_output=True, text=True)
            if r.returncode == 0 and r.stdout.strip().splitlines() and int(r.stdout.strip().splitlines()[-1]) >= n:
                return
            time.sleep(2)
        raise SystemExit(f"the Ray cluster did not reach {n} node(s) in {timeout:.0f} s (see {self.workdir}/ray_*.log)")

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def __exit__(self, *exc):
        for p in reversed(self.procs):  # Ctrl-C stops a blocking `ray start` and its node's processes
            try:
                os.killpg(p.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
        for p in reversed(self.procs):
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(p.pid, signal.SIGKILL)  # whatever of the node is left (only this script's processes)
            except ProcessLookupError:
                pass
        if getattr(self, "temp", None):
            shutil.rmtree(self.temp, ignore_errors=True)


def ensure_run(run: Path, data: Path, quick: bool) -> float | None:
    """Train the default config on ``data`` into ``run`` unless it holds a trained encoder; its seconds."""
    if (run / "encoder.pt").exists():
        return None
    t = time.time()
    args = [sys.executable, "-m", "privacam.cli", "train", "--data", str(data), "--out", str(run)]
    if quick:
        args.append("train.steps=100")
    subprocess.run(args, env=_env(os.cpu_count() or 1), check=True)
    return round(time.time() - t, 1)


def run(run_dir: Path, out: Path, *, quick: bool, ray: bool = True, port: int = 6391) -> dict:
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    base = [sys.executable, "-m", "privacam.cli", "evaluate", str(run_dir), "--no-raw", "--device", "cpu",
            *(QUICK if quick else [])]
    cores = os.cpu_count() or 1
    rows = []

    def one(name: str, extra: list[str], threads: int, **kw) -> dict:
        d = out / name.replace(" ", "_").replace(",", "")
        r = _run(base + ["--out", str(d)] + extra, _env(threads), **kw)
        r.update({"configuration": name, "dir": str(d)})
        if not r["killed"]:
            from privacam.audits import read_summary

            s = read_summary(d)
            ex = s.executor or {}
            r.update({"units_computed": ex.get("computed"), "units_reused": ex.get("reused"),
                      "unit_seconds_sum": round(sum((s.unit_seconds or {}).values()), 1),
                      "release_s": (ex.get("phases") or {}).get("release")})
        print(f"{name}: {r['seconds']} s, peak RSS {r['peak_rss_mib']} MiB, PSS {r['peak_pss_mib']} MiB", flush=True)
        rows.append(r)
        return r

    ref = one("1 worker, 1 thread", [], 1)
    one("1 worker, 2 threads", [], min(2, cores))
    one("2 local workers", ["--workers", "2"], 1)
    if ray:
        try:
            import ray as _  # noqa: F401
        except ImportError:
            print("ray is not installed: pip install 'privacam[ray]' (Ray row skipped)")
            ray = False
    if ray:
        try:
            with TwoNodeRay(port, out) as cluster:
                one("Ray, 2 nodes", ["--ray", f"127.0.0.1:{port}"], 1, also=cluster.pids)
        except (SystemExit, OSError, subprocess.SubprocessError) as e:  # the other rows still count
            print(f"Ray row failed: {e}", flush=True)
            rows.append({"configuration": "Ray, 2 nodes", "killed": False, "failed": str(e)[:200], "same_summary": False})
    cut = out / "killed_and_resumed"
    units_dir = cut / "units"
    n_units = ref["units_computed"]
    args = base + ["--out", str(cut)]
    t_kill = time.time() + ref["seconds"] / 2  # half-way through the same audit's time
    killed = _run(args, _env(1), kill_when=lambda: time.time() >= t_kill)
    killed.update({"configuration": "SIGKILL half-way (1 worker, 1 thread)", "dir": str(cut),
                   "units_written": len(list(units_dir.glob("*.json")))})
    print(f"killed after {killed['seconds']} s with {killed['units_written']} of {n_units} units written", flush=True)
    rows.append(killed)
    resumed = _run(args, _env(1))
    from privacam.audits import read_summary

    s = read_summary(cut)
    resumed.update({"configuration": "resumed (the same command again)", "dir": str(cut),
                    "units_computed": s.executor.get("computed"), "units_reused": s.executor.get("reused"),
                    "unit_seconds_sum": round(sum((s.unit_seconds or {}).values()), 1),
                    "release_s": (s.executor.get("phases") or {}).get("release")})
    print(f"resumed: {resumed['seconds']} s ({resumed['units_computed']} units computed, {resumed['units_reused']} reused)",
          flush=True)
    rows.append(resumed)
    same = _results(Path(ref["dir"]))
    for r in rows:
        if not r["killed"] and not r.get("failed"):
            r["same_summary"] = _results(Path(r["dir"])) == same
    by = {r["configuration"]: r for r in rows}
    full2 = by["1 worker, 2 threads"]
    two = by["2 local workers"]
    best_one = min(by["1 worker, 1 thread"]["seconds"], full2["seconds"])
    res = {
        "run": str(run_dir), "quick": quick, "units": n_units, "rows": rows,
        "speedup_2_workers": round(best_one / two["seconds"], 2),
        "speedup_2_workers_vs_1_thread": round(by["1 worker, 1 thread"]["seconds"] / two["seconds"], 2),
        "resume_fraction": round(resumed["seconds"] / by["1 worker, 1 thread"]["seconds"], 2),
        "memory_growth_2_workers_pss": round(two["peak_pss_mib"] / max(1, by["1 worker, 1 thread"]["peak_pss_mib"]) - 1, 2),
        "memory_growth_2_workers_rss": round(two["peak_rss_mib"] / max(1, by["1 worker, 1 thread"]["peak_rss_mib"]) - 1, 2),
        "all_same": all(r.get("same_summary", True) for r in rows if not r.get("failed")),
    }
    return res


def markdown(res: dict, when: str, mach: dict, command: str) -> str:
    rows = res["rows"]
    for r in rows:
        r["same"] = "–" if r["killed"] else ("yes" if r.get("same_summary") else "**no**")
        if r.get("failed"):
            r["same"] = f"failed: {r['failed'][:80]}"
        r["units"] = "–" if r["killed"] else f"{r.get('units_computed')} / {r.get('units_reused')}"
        if r["killed"]:
            r["units"] = f"{r.get('units_written')} written"
    ok = lambda b: "**pass**" if b else "**not met**"  # noqa: E731
    targets = [
        ("2 local workers >= 1.7x faster than 1 worker (the faster of 1 and 2 threads)", f"{res['speedup_2_workers']:.2f}x",
         ok(res["speedup_2_workers"] >= 1.7)),
        ("identical summaries (less timings) in every configuration", "yes" if res["all_same"] else "no", ok(res["all_same"])),
        ("resume after a SIGKILL half-way < 60 % of a full audit", f"{100 * res['resume_fraction']:.0f} %",
         ok(res["resume_fraction"] < 0.6)),
        ("peak memory (PSS of the process tree) +< 30 % with 2 workers", f"{100 * res['memory_growth_2_workers_pss']:+.0f} % "
         f"(RSS summed over processes: {100 * res['memory_growth_2_workers_rss']:+.0f} %)", ok(res["memory_growth_2_workers_pss"] < 0.3)),
    ]
    lines = [
        START,
        "## The audit as units: workers, Ray, resume (`bench/bench_audit_units.py`)",
        "",
        f"Generated by `{command}` on {when}: **{mach['cpu']}**, {mach['cores']} cores, load average (1 min) "
        f"{mach['load_avg_1m']} before. {'**Quick mode** (2 epochs, 2 views: shows the machinery works; the targets need a full run). ' if res['quick'] else ''}"
        f"Run audited: `{res['run']}` ({res['units']} units: the retrained utility model, every attacker, the reconstruction "
        "threat; no raw reference). Each configuration is one `privacam evaluate` process; memory is the peak over its "
        "process tree, sampled every 0.2 s (PSS counts the shared release cache once; for Ray, the two nodes' processes "
        "included). `units`: computed / reused.",
        "",
        table(rows, ["configuration", "seconds", "peak_rss_mib", "peak_pss_mib", "units", "unit_seconds_sum", "release_s", "same"],
              {"seconds": "{:.0f}", "unit_seconds_sum": "{:.0f}", "release_s": "{:.0f}"}),
        "",
        table([{"target": t, "measured": m, "status": s} for t, m, s in targets], ["target", "measured", "status"]),
        "",
        "When the load average exceeds the core count, other jobs shared the CPU and the times (and the speed-up of "
        "workers, which need idle cores) are pessimistic.",
        END,
    ]
    return "\n".join(lines)


def update_doc(block: str, doc: Path = DOC) -> None:
    update_section(doc, START, END, block)


def save_json(res: dict, path: Path = HERE / "performance.json") -> None:
    data = json.loads(path.read_text()) if path.exists() else {}
    data["audit_units"] = res
    path.write_text(json.dumps(data, indent=1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", help="a trained run (default: runs/bench_weizmann_default, the default config trained on "
                                   "Weizmann here if missing; with --quick runs/bench_weizmann_quick, 100 steps)")
    ap.add_argument("--data", default=str(WEIZMANN), help="the data a missing default run is trained on")
    ap.add_argument("--out", default=str(ROOT / "runs" / "bench_audit_units"), help="where the audits go (replaced)")
    ap.add_argument("--quick", action="store_true", help="2 epochs and 2 views: that it works, not the targets")
    ap.add_argument("--no-ray", action="store_true", help="skip the Ray row")
    ap.add_argument("--port", type=int, default=6391, help="the Ray head's port")
    ap.add_argument("--no-doc", action="store_true", help="print, do not write docs/performance.md and performance.json")
    ap.add_argument("--from-json", help="write the page and performance.json from a measurement saved by an earlier run "
                                        "(OUT/bench_audit_units.json) instead of measuring again")
    a = ap.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    if a.from_json:
        res = json.loads(Path(a.from_json).read_text())
    else:
        a.run = a.run or str(ROOT / "runs" / ("bench_weizmann_quick" if a.quick else "bench_weizmann_default"))
        mach = machine()
        trained = ensure_run(Path(a.run), Path(a.data), a.quick)
        res = run(Path(a.run), Path(a.out), quick=a.quick, ray=not a.no_ray, port=a.port)
        res.update({"train_seconds": trained, "machine": mach, "machine_after": machine(), "no_ray": a.no_ray,
                    "when": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")})
        (Path(a.out) / "bench_audit_units.json").write_text(json.dumps(res, indent=1))
    command = ("python bench/bench_audit_units.py" + (" --quick" if res["quick"] else "")
               + (" --no-ray" if res.get("no_ray") else ""))
    block = markdown(res, res["when"], res["machine"], command)
    print(block)
    if not a.no_doc:
        update_doc(block)
        save_json(res)


if __name__ == "__main__":
    main()
