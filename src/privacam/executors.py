"""Where independent jobs run: in this process, in local worker processes, or as Ray tasks.

The audit is a set of independent units (:mod:`privacam.evaluate.units`) and a sweep a set of
independent train-then-audit chains (:mod:`privacam.sweep`); an :class:`Executor` runs such jobs and
gives back each result as it comes, on an existing engine, not a home-made one:

- :class:`Inline` (the default): one after the other in this process, with its thread budget;
- :class:`LocalProcesses` (``--workers N``): N worker processes of ``torch.multiprocessing``, each with
  a fair share of the CPU threads (``torch.set_num_threads``) and, where there are GPUs, one of them.
  Workers of one CPU thread each are forked (as DataLoader's workers are): they share this process's
  memory, the imported libraries and the object the jobs share (the audit's release cache) included,
  copy-on-write; otherwise (several threads each, or CUDA) they are spawned, and the shared object goes
  to each worker once through shared memory. Either way its tensors are not copied;
- :class:`RayExecutor` (``--ray [ADDRESS]``): Ray tasks on a running cluster (``ADDRESS``, e.g.
  ``auto`` or ``ray://host:10001``) or on a local one it starts; the shared object goes into the object
  store once (``ray.put``) and every task reads it there. A job that asks for a GPU gets one where the
  cluster has them. Ray is an optional extra: ``pip install 'privacam[ray]'``.

A job is a module-level function ``fn(shared, payload, ctx)`` (``ctx``: the :class:`WorkerContext`, its
device and threads); its result must pickle. Nothing here knows the audit.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch

from .errors import ConfigError, PrivacamError

log = logging.getLogger(__name__)


@dataclass
class Job:
    """One independent piece of work: ``fn(shared, payload, ctx)``.

    Attributes:
        name: unique among the jobs of one run (progress, errors).
        fn: a module-level function (it is sent to other processes by reference).
        payload: its own arguments (pickled).
        gpu: it runs on a GPU where one is present (network fits); CPU-only jobs never take one.
        cost: a relative estimate of its time: long jobs start first (a shorter tail).
    """

    name: str
    fn: Callable
    payload: Any = None
    gpu: bool = False
    cost: float = 1.0


@dataclass
class WorkerContext:
    """Where a job runs: its ``device`` (``cpu`` or ``cuda:N``), its torch ``threads``, the executor."""

    device: str = "cpu"
    threads: int = 1
    executor: str = "inline"
    worker: int = 0
    gpus: tuple = ()  # the GPUs the engine gave the job (Ray's ids)

    def device_for(self, job_wants_gpu: bool) -> str:
        return self.device if job_wants_gpu else "cpu"


@dataclass
class Event:
    """What :meth:`Executor.run` reports: a job ``started`` or ``done`` (with its result and seconds)."""

    kind: str
    job: Job
    result: Any = None
    seconds: float = 0.0
    running: list = field(default_factory=list)


class Executor:
    """Runs jobs; :meth:`run` yields an :class:`Event` when a job starts and when it is done."""

    name = "inline"
    workers = 1
    forks = False

    def prepare(self, shared: Any) -> None:
        """Get ready to run jobs that share ``shared`` (start workers, put it where they read it)."""

    def run(self, jobs: list[Job], shared: Any = None) -> Iterator[Event]:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> dict:
        """What ran the jobs (recorded with their results)."""
        return {"name": self.name, "workers": self.workers}

    def close(self) -> None:
        pass

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _order(jobs: list[Job]) -> list[Job]:
    """Longest first (stable): the last jobs to finish are short ones."""
    return sorted(jobs, key=lambda j: -j.cost)


class Inline(Executor):
    """Every job in this process, one after the other, in the given order; ``device``: where a job that
    asks for a GPU runs (the audit's device)."""

    name = "inline"

    def __init__(self, device: str | torch.device = "cpu"):
        self.device = str(device)

    def run(self, jobs, shared=None):
        ctx = WorkerContext(self.device, torch.get_num_threads(), "inline", 0)
        for job in jobs:
            yield Event("started", job, running=[job.name])
            t = time.time()
            result = job.fn(shared, job.payload, ctx)
            yield Event("done", job, result, time.time() - t, running=[])

    def describe(self):
        return {"name": self.name, "workers": 1, "threads": torch.get_num_threads()}


# ---------------------------------------------------------------------------------------- local processes
_WORKER: dict = {}


def _init_worker(shared, threads: int, devices: list[str], counter) -> None:
    """In each worker process: its thread budget, its device, and the shared object (mapped, not copied)."""
    torch.set_num_threads(max(1, threads))
    with counter.get_lock():
        index = counter.value
        counter.value += 1
    _WORKER["shared"] = shared
    _WORKER["ctx"] = WorkerContext(devices[index % len(devices)] if devices else "cpu", threads, "local", index)


def _noop(_):
    return None


def _call(fn: Callable, payload: Any) -> tuple[Any, float]:
    t = time.time()
    return fn(_WORKER["shared"], payload, _WORKER["ctx"]), time.time() - t


def worker_info(shared, payload, ctx: WorkerContext) -> dict:
    """A job that says where it ran (its device, threads, executor, the GPUs it was given)."""
    return {"device": ctx.device, "threads": ctx.threads, "executor": ctx.executor, "gpus": list(ctx.gpus),
            "pid": os.getpid(), "torch_threads": torch.get_num_threads()}


def cuda_devices() -> list[str]:
    return [f"cuda:{i}" for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []


class LocalProcesses(Executor):
    """``workers`` processes on this machine (``torch.multiprocessing``).

    Args:
        workers: how many processes (>= 1).
        threads: torch threads per process (default: the CPUs shared fairly, at least 1).
        device: ``cpu`` or ``cuda``: with ``cuda``, worker ``i`` takes GPU ``i`` modulo the GPUs present.
        start: ``fork`` or ``spawn`` (default: ``fork`` for one-thread CPU workers, which then share this
            process's memory copy-on-write; ``spawn`` otherwise: a forked process may not start OpenMP
            threads or CUDA after its parent used them).
    """

    name = "local"

    def __init__(self, workers: int, threads: int | None = None, device: str | torch.device = "cpu",
                 start: str | None = None):
        import multiprocessing as mp

        if int(workers) < 1:
            raise ConfigError(f"--workers must be at least 1 (got {workers})")
        self.workers = int(workers)
        self.threads = int(threads or max(1, (os.cpu_count() or 1) // self.workers))
        self.devices = cuda_devices() if str(device).startswith("cuda") else []
        can_fork = "fork" in mp.get_all_start_methods() and self.threads == 1 and not self.devices
        self.start = start or ("fork" if can_fork else "spawn")
        if self.start == "fork" and not can_fork:
            raise ConfigError("forked workers need one CPU thread each and no CUDA; use spawned workers")
        self._pool = None
        self._shared_id = None

    @property
    def forks(self) -> bool:
        """Whether the workers are forked (they see the shared object in memory, without pickling)."""
        return self.start == "fork"

    def prepare(self, shared) -> None:
        """Start the workers with ``shared`` now (before this process starts any other thread)."""
        self._ensure_pool(shared)

    def _ensure_pool(self, shared):
        if self._pool is not None and self._shared_id == id(shared):
            return self._pool
        self.close()
        from concurrent.futures import ProcessPoolExecutor

        import torch.multiprocessing as tmp

        ctx = tmp.get_context(self.start)
        counter = ctx.Value("i", 0)
        self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx, initializer=_init_worker,
                                         initargs=(shared, self.threads, self.devices, counter))
        if self.forks:  # fork every worker now, while this process runs no other thread
            list(self._pool.map(_noop, range(self.workers)))
        self._shared_id = id(shared)
        return self._pool

    def run(self, jobs, shared=None):
        from concurrent.futures import FIRST_COMPLETED, wait

        pool = self._ensure_pool(shared)
        queue = _order(jobs)
        running: dict = {}
        try:
            while queue or running:
                while queue and len(running) < self.workers:  # at most one job per worker in flight: it runs now
                    job = queue.pop(0)
                    running[pool.submit(_call, job.fn, job.payload)] = job
                    yield Event("started", job, running=[j.name for j in running.values()])
                done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for fut in done:
                    job = running.pop(fut)
                    try:
                        result, seconds = fut.result()
                    except Exception as e:  # noqa: BLE001 - name the job that failed
                        raise _failed(job, e) from e
                    yield Event("done", job, result, seconds, running=[j.name for j in running.values()])
        except BaseException:
            for fut in running:
                fut.cancel()
            raise

    def describe(self):
        return {"name": self.name, "workers": self.workers, "threads": self.threads, "gpus": len(self.devices),
                "start": self.start}

    def close(self):
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _failed(job: Job, e: BaseException) -> PrivacamError:
    if isinstance(e, PrivacamError):
        return e
    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return PrivacamError(f"job {job.name} failed in a worker ({type(e).__name__}: {first[:300]})")


# ---------------------------------------------------------------------------------------- Ray
def _ray_call(fn: Callable, shared: Any, payload: Any) -> tuple[Any, float]:
    """A job in a Ray worker: one CPU thread per task (Ray gives each its CPU), the GPU Ray assigned."""
    import ray

    torch.set_num_threads(1)
    gpus = ray.get_gpu_ids()
    ctx = WorkerContext("cuda:0" if gpus and torch.cuda.is_available() else "cpu", 1, "ray", os.getpid(), tuple(gpus))
    t = time.time()
    return fn(shared, payload, ctx), time.time() - t


class RayExecutor(Executor):
    """Ray tasks, one per job, on the cluster at ``address`` (``None``: a local one started here, with
    every CPU of this machine). The shared object is put into the object store once; a job that asks
    for a GPU is given one (``num_gpus=1``) where the cluster has GPUs."""

    name = "ray"

    def __init__(self, address: str | None = None, *, env: dict | None = None):
        try:
            import ray
        except ImportError:
            raise PrivacamError("--ray needs Ray: pip install 'privacam[ray]' (or pip install ray)") from None
        self.address = address or None
        self._started = False
        if not ray.is_initialized():
            runtime_env = {"env_vars": dict(env or _worker_env())}
            try:
                ray.init(address=self.address, runtime_env=runtime_env, include_dashboard=False,
                         log_to_driver=False, configure_logging=False)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise PrivacamError(f"--ray {address or ''}: cannot reach or start a Ray cluster "
                                    f"({type(e).__name__}: {str(e).splitlines()[0][:200]})".replace("  ", " ")) from None
            self._started = True
        res = ray.cluster_resources()
        self.cpus = int(res.get("CPU", 1))
        self.gpus = int(res.get("GPU", 0))
        self.nodes = len([n for n in ray.nodes() if n.get("Alive")])
        self.workers = max(1, self.cpus)

    def run(self, jobs, shared=None):
        import ray

        ref = ray.put(shared)  # once: every task reads it from the object store
        remote = ray.remote(_ray_call)
        queue = _order(jobs)
        running: dict = {}
        try:
            while queue or running:
                while queue and len(running) < self.workers:
                    job = queue.pop(0)
                    opts = {"num_cpus": 1, "num_gpus": 1 if job.gpu and self.gpus else 0, "max_retries": 0}
                    running[remote.options(**opts).remote(job.fn, ref, job.payload)] = job
                    yield Event("started", job, running=[j.name for j in running.values()])
                done, _ = ray.wait(list(running), num_returns=1)
                for r in done:
                    job = running.pop(r)
                    try:
                        result, seconds = ray.get(r)
                    except Exception as e:  # noqa: BLE001
                        cause = getattr(e, "cause", None) or e
                        raise _failed(job, cause) from e
                    yield Event("done", job, result, seconds, running=[j.name for j in running.values()])
        except BaseException:
            for r in running:
                ray.cancel(r, force=True)
            raise

    def describe(self):
        return {"name": self.name, "workers": self.workers, "nodes": self.nodes, "cpus": self.cpus, "gpus": self.gpus,
                "address": self.address or "local"}

    def close(self):
        if self._started:
            import ray

            ray.shutdown()
            self._started = False


def _worker_env() -> dict:
    """What Ray's workers need to import this privacam (the source tree it runs from) and to stay on
    their one thread per task."""
    import privacam

    src = os.path.dirname(os.path.dirname(os.path.abspath(privacam.__file__)))
    path = os.environ.get("PYTHONPATH", "")
    return {"PYTHONPATH": src + (os.pathsep + path if path else ""), "OMP_NUM_THREADS": "1"}


def make_executor(workers: int | None = None, ray: str | bool | None = None, *, device: str | torch.device = "cpu",
                  threads: int | None = None) -> Executor:
    """The executor of ``--workers N`` / ``--ray [ADDRESS]`` (``ray=True``: a local cluster); neither:
    :class:`Inline` (one process, the default). ``threads``: each local worker's CPU threads (default:
    a fair share)."""
    if ray not in (None, False):
        if workers not in (None, 1):
            raise ConfigError("give --workers or --ray, not both (Ray's cluster decides how many tasks run at once)")
        return RayExecutor(None if ray is True or ray == "local" else str(ray))
    if workers is None:
        return Inline(device)
    return LocalProcesses(int(workers), threads=threads, device=device)


__all__ = ["Event", "Executor", "Inline", "Job", "LocalProcesses", "RayExecutor", "WorkerContext", "make_executor",
           "worker_info"]
