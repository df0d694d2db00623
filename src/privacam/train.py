"""The built-in trainer: one consumer of :class:`~privacam.game.AdversarialGame`.

It writes the run directory (``config.yaml``, ``metrics.jsonl``, ``run.json``, ``checkpoints/``,
through :mod:`privacam.runs`, which owns that contract), deterministic and resumable batch streams, the initialisation stages of Wu et al. and
checkpointing. A run killed at any point resumes from its last checkpoint with the results it
would have had (``privacam train --out RUN --resume``).
"""

from __future__ import annotations

import logging
import math
import shlex
import uuid
from pathlib import Path
from typing import Iterator

import torch
from torch.utils.data import DataLoader, Dataset

from . import runs
from .builders import build_game, needs_bank
from .config import Config
from .data import Splits, check_identities, collate, data_fingerprint, make_splits
from .errors import CheckpointError, ConfigError, DataError, NonFiniteLossError, OutputError, PrivacamError
from .game.losses import correct
from .models.substitute import is_substitute
from .players import Shapes, encoded_shape, is_reconstruction
from .utils import load_checkpoint, resolve_device, save_checkpoint, seed_everything

log = logging.getLogger(__name__)

STAGES = ("init_encoder", "init_utility", "init_budget", "game", "final_utility")


class BatchStream:
    """An endless, deterministic, checkpointable stream of batches over a dataset.

    Epoch ``e`` visits the dataset in the order of a permutation seeded by ``(seed, e)``; the state
    is ``(epoch, position)``, so a resumed stream yields exactly the batches it would have.
    Datasets with ``set_epoch`` are told the epoch (seeded clip sampling).

    With ``world > 1`` (distributed training) every rank draws the same permutation and takes its
    positions ``rank, rank + world, ...`` (see :mod:`privacam.distributed`): disjoint shards.
    """

    def __init__(self, dataset: Dataset, batch_size: int, seed: int, *, shuffle: bool = True,
                 drop_last: bool = True, num_workers: int = 0, pin_memory: bool = False, name: str = "train",
                 rank: int = 0, world: int = 1):
        if len(dataset) == 0:
            raise PrivacamError(f"the {name} split is empty; check the manifest's split column or data.val_fraction")
        if len(dataset) < world:
            raise PrivacamError(f"the {name} split has {len(dataset)} samples, fewer than the {world} processes; use fewer processes or more data")
        self.dataset, self.seed, self.shuffle = dataset, seed, shuffle
        self.rank, self.world = rank, world
        self.batch_size = min(batch_size, len(dataset) // world)
        self.drop_last = drop_last
        self.num_workers, self.pin_memory = num_workers, pin_memory
        self.epoch, self.pos = 0, 0
        self._it: Iterator | None = None

    def _batches(self, epoch: int) -> list[list[int]]:
        n = len(self.dataset)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed * 100003 + epoch)).tolist() if self.shuffle else list(range(n))
        if self.world > 1:
            from .distributed import shard_positions

            order = order[shard_positions(n, self.rank, self.world)]
            n = len(order)
        bs = self.batch_size
        batches = [order[i:i + bs] for i in range(0, n, bs)]
        if self.drop_last and len(batches) > 1 and len(batches[-1]) < bs:
            batches.pop()
        return batches

    def _start(self):
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(self.epoch)
        remaining = self._batches(self.epoch)[self.pos:]
        if self.num_workers > 0:
            loader = DataLoader(self.dataset, batch_sampler=remaining, num_workers=self.num_workers,
                                collate_fn=collate, pin_memory=self.pin_memory, persistent_workers=False)
            self._it = iter(loader)
        else:
            self._it = (collate([self.dataset[i] for i in b]) for b in remaining)

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        if self._it is None:
            self._start()
        try:
            batch = next(self._it)
        except StopIteration:
            self.epoch, self.pos = self.epoch + 1, 0
            self._start()
            batch = next(self._it)
        self.pos += 1
        return batch

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "pos": self.pos}

    def load_state_dict(self, s: dict) -> None:
        self.epoch, self.pos = int(s["epoch"]), int(s["pos"])
        self._it = None


def private_labels(dataset: Dataset) -> list:
    """The private label of every sample, read without decoding clips where the dataset allows it
    (in-memory tensors, video records, subsets of them); other datasets are read sample by sample."""
    from torch.utils.data import Subset

    if isinstance(dataset, Subset):
        inner = private_labels(dataset.dataset)
        return [inner[i] for i in dataset.indices]
    private = getattr(dataset, "private", None)
    if isinstance(private, torch.Tensor) and len(private) == len(dataset):
        return private.tolist()
    items, records = getattr(dataset, "items", None), getattr(dataset, "records", None)
    if items is not None and records is not None:
        return [records[it[0]].private for it in items]
    if records is not None and len(records) == len(dataset):
        return [r.private for r in records]
    return [dataset[i]["private"].tolist() if isinstance(dataset[i]["private"], torch.Tensor) else dataset[i]["private"]
            for i in range(len(dataset))]


class GroupedBatchStream(BatchStream):
    """Batches of ``batch_size // k`` identities x ``k`` samples each, consecutive (the pooled adversaries'
    batches, ``game.pool_k``). Epoch ``e`` has as many batches as a plain epoch; batch ``b`` draws its
    identities (without replacement) and their samples (without replacement where an identity has ``k``)
    from a generator seeded by ``(seed, e, b)``, so the stream is deterministic and resumable."""

    def __init__(self, dataset: Dataset, batch_size: int, seed: int, k: int, **kw):
        super().__init__(dataset, batch_size, seed, **kw)
        labels = private_labels(dataset)
        if any(isinstance(v, list) for v in labels):
            raise PrivacamError("game.pool_k needs single-label private classes (this dataset's are multi-label); use game.pool_k=0")
        groups: dict = {}
        for i, v in enumerate(labels):
            groups.setdefault(int(v), []).append(i)
        self.k = int(k)
        self.groups = [groups[key] for key in sorted(groups)]
        self.per_batch = max(1, self.batch_size // self.k)
        if self.per_batch > len(self.groups):
            self.per_batch = len(self.groups)
        if len(self.groups) < 2:
            raise PrivacamError(f"game.pool_k={k}: the train split holds {len(self.groups)} identity; pooled adversaries need at least 2")

    def _batches(self, epoch: int) -> list[list[int]]:
        n_batches = max(1, len(self.dataset) // (self.per_batch * self.k))
        out = []
        for b in range(n_batches):
            g = torch.Generator().manual_seed((self.seed * 100003 + epoch) * 1009 + b)
            batch = []
            for gi in torch.randperm(len(self.groups), generator=g)[: self.per_batch].tolist():
                members = self.groups[gi]
                if len(members) >= self.k:
                    pick = torch.randperm(len(members), generator=g)[: self.k].tolist()
                else:
                    pick = torch.randint(len(members), (self.k,), generator=g).tolist()
                batch.extend(members[j] for j in pick)
            out.append(batch)
        return out


class CrossStream:
    """Zip a utility stream with a privacy stream from another dataset (shared encoder)."""

    def __init__(self, utility: BatchStream, privacy: BatchStream):
        self.utility, self.privacy = utility, privacy

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        b = dict(next(self.utility))
        p = next(self.privacy)
        b["privacy_input"], b["privacy_private"] = p["input"], p["private"]
        return b

    def state_dict(self) -> dict:
        return {"utility": self.utility.state_dict(), "privacy": self.privacy.state_dict()}

    def load_state_dict(self, s: dict) -> None:
        self.utility.load_state_dict(s["utility"])
        self.privacy.load_state_dict(s["privacy"])


def shapes_from_splits(splits: Splits) -> Shapes:
    """What the players must be sized for, read from the first training sample and the class lists."""
    x = splits.train[0]["input"]
    return Shapes(
        in_channels=int(x.shape[0]), size=int(x.shape[-1]), clip_len=int(x.shape[1]) if x.dim() == 4 else 0,
        num_utility=splits.num_utility,
        num_private=(splits.privacy or splits).num_private,
        multilabel=(splits.privacy or splits).multilabel,
    )


SELECT = ("last", "val_probe")
BEST = "best.pt"


def _batches_of(dataset: Dataset, batch_size: int, limit: int | None = None):
    n = len(dataset) if limit is None else min(len(dataset), limit)
    for i in range(0, n, batch_size):
        yield collate([dataset[j] for j in range(i, min(n, i + batch_size))])


def probe_features(z: torch.Tensor) -> torch.Tensor:
    """What the selection probe sees of a release: the release pooled to at most 4 x 8 x 8 (clips) or
    8 x 8 (images), plus its motion energy for clips, flattened ``[B, D]``."""
    import torch.nn.functional as F

    z = z.float()
    if z.dim() == 5:
        t, h, w = z.shape[2:]
        parts = [F.adaptive_avg_pool3d(z, (min(t, 4), min(h, 8), min(w, 8))).flatten(1)]
        if t > 1:
            parts.append(F.adaptive_avg_pool2d((z[:, :, 1:] - z[:, :, :-1]).abs().mean(2), (min(h, 8), min(w, 8))).flatten(1))
        return torch.cat(parts, 1)
    if z.dim() == 4:
        return F.adaptive_avg_pool2d(z, (min(z.shape[2], 8), min(z.shape[3], 8))).flatten(1)
    return z.flatten(1)


def ridge_probe(train_x: torch.Tensor, train_y: torch.Tensor, val_x: torch.Tensor, val_y: torch.Tensor,
                num_classes: int, lam: float = 10.0) -> float:
    """Accuracy on ``val`` of a ridge classifier (one-hot targets, standardised features) fitted on ``train``."""
    x, v = train_x.double(), val_x.double()
    mu, sd = x.mean(0), x.std(0, unbiased=False).clamp_min(1e-3)
    x, v = (x - mu) / sd, (v - mu) / sd
    x = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], 1)
    v = torch.cat([v, torch.ones(len(v), 1, dtype=v.dtype)], 1)
    y = torch.nn.functional.one_hot(train_y.long(), num_classes).double()
    w = torch.linalg.solve(x.T @ x + lam * torch.eye(x.shape[1], dtype=x.dtype), x.T @ y)
    return float(((v @ w).argmax(1) == val_y.long()).double().mean())


class Trainer:
    """Train a config into a run directory.

    Args:
        cfg: the resolved config.
        out: run directory (created).
        splits: data splits (built from ``cfg.data`` when omitted).

    Under ``torchrun`` (``WORLD_SIZE > 1``) the trainer joins the process group, shards the batch
    streams over the ranks and plays a :class:`~privacam.distributed.DistributedGame`; only rank 0
    writes the run directory (see :mod:`privacam.distributed`).
    """

    def __init__(self, cfg: Config, out: str | Path, splits: Splits | None = None):
        from . import distributed

        self.cfg = cfg
        self.out = Path(out)
        self.ckpt_dir = self.out / runs.CHECKPOINTS
        self.dist = distributed.init_from_env(resolve_device(cfg.train.device))
        self.device = distributed.device_for(resolve_device(cfg.train.device), self.dist)
        self.is_main = self.dist.is_main
        self.splits = splits

    # -------------------------------------------------------------- set-up
    def _setup(self):
        cfg = self.cfg
        seed_everything(cfg.train.seed)
        if self.splits is None:
            self.splits = make_splits(cfg.data, seed=cfg.train.seed)
        s = self.splits
        if not is_reconstruction(cfg):  # budget models classify the private labels
            check_identities(s, cfg.data.root or cfg.data.name)
        self.shapes = shapes_from_splits(s)
        if cfg.train.select == "val_probe" and (self.shapes.multilabel or s.privacy is not None):
            raise ConfigError("train.select=val_probe scores single-label private classes of one dataset; use train.select=last here")
        gen = torch.Generator().manual_seed(cfg.train.seed + 1)
        bank = self._bank() if needs_bank(cfg) else None
        self.game = build_game(cfg, self.shapes, self.device, generator=gen, distributed=self.dist.enabled, bank=bank)
        pin = self.device.type == "cuda"
        bs, nw = cfg.train.batch_size, cfg.train.num_workers
        shard = {"rank": self.dist.rank, "world": self.dist.world}
        if cfg.game.pool_k > 1:  # its settings are checked with the config (config.PoolK), the data by the stream
            if self.dist.world > 1:
                raise PrivacamError("game.pool_k works on one process; run without torchrun or set game.pool_k=0")
            train = GroupedBatchStream(s.train, bs, cfg.train.seed, cfg.game.pool_k, num_workers=nw, pin_memory=pin)
        else:
            train = BatchStream(s.train, bs, cfg.train.seed, num_workers=nw, pin_memory=pin, **shard)
        if s.privacy is not None:
            train = CrossStream(train, BatchStream(s.privacy.train, bs, cfg.train.seed + 7, num_workers=nw, pin_memory=pin, **shard))
        self.train_stream = train
        self.val_stream = BatchStream(s.val, bs, cfg.train.seed + 13, num_workers=0, pin_memory=pin, name="val", **shard)
        self.stage, self.stage_i = STAGES[0], 0
        self.metric_lines = 0
        self.selection: list[dict] = []
        self.game_steps = 0  # game steps made (the step count may move back when a best checkpoint is shipped)

    def _bank(self) -> tuple:
        """A substitution encoder's bank: ``data.bank_clips`` clips of every training video, or every clip of
        the donor data ``data.bank`` (its task classes matched to this data's by name)."""
        import dataclasses

        from .data import apply_data_spec
        from .data.bank import read_bank

        cfg, s = self.cfg, self.splits
        if not cfg.data.bank:
            return read_bank([s.train], cfg.data.bank_clips)
        if isinstance(cfg.data.bank, dict):
            from .config import DataConfig, from_dict

            dcfg = from_dict(DataConfig, {**dataclasses.asdict(cfg.data), "bank": None, "privacy_source": None, **cfg.data.bank},
                             prefix="data.bank.")
        else:
            dcfg = dataclasses.replace(apply_data_spec(cfg.data, cfg.data.bank), bank=None, privacy_source=None)
        try:
            donors = make_splits(dcfg, seed=cfg.train.seed)
        except DataError as e:  # the fix is in data.bank, not --data
            raise DataError(f"data.bank: {str(e).split('; pass the path')[0]}; set data.bank to the donors' manifest "
                            "(data.bank=path/to/donors.csv) or remove it to bank the training split") from None
        clips, utility, private = read_bank([donors.train, donors.val, donors.test], cfg.data.bank_clips)
        missing = [c for c in donors.utility_classes if c not in s.utility_classes]
        if missing:
            raise ConfigError(f"data.bank {cfg.data.bank}: task class {missing[0]!r} is not one of this data's "
                              f"({', '.join(s.utility_classes)}); a bank clip must show a task the data knows")
        remap = torch.tensor([s.utility_classes.index(c) for c in donors.utility_classes])
        return clips, remap[utility], private

    def _write_run_files(self):
        if not self.is_main:
            return
        runs.write_config(self.out, self.cfg)
        zshape = encoded_shape(self.game.encoder, self.shapes)
        runs.write_meta(self.out, {
            "shapes": self.shapes.as_dict(),
            "encoded_shape": list(zshape),
            "dataset": self.splits.name,
            "kind": self.splits.kind,
            "utility_classes": self.splits.utility_classes,
            "private_classes": (self.splits.privacy or self.splits).private_classes,
            "task": runs.release_kind(self.game.encoder, self.splits.kind),
            "privacam_version": __import__("privacam").__version__,
            "skipped": self._skipped(),
            "run_id": uuid.uuid4().hex[:16],
            "data_fingerprint": self._fingerprint(),
        })

    def _fingerprint(self) -> str:
        return self.splits.meta.get("fingerprint") or data_fingerprint(self.splits)

    def _skipped(self) -> dict:
        """Bad samples left out under ``data.on_bad_sample: skip`` (loading, preloading and reading)."""
        seen: list[str] = []
        for s in (self.splits, self.splits.privacy):
            if s is None:
                continue
            for msg in list(s.meta.get("skipped", [])) + [m for ds in (s.train, s.val, s.test) for m in getattr(ds, "skipped", [])]:
                if msg not in seen:
                    seen.append(msg)
        return {"count": len(seen), "samples": seen}

    # -------------------------------------------------------------- checkpoints
    def _state(self) -> dict:
        st = {
            "game": self.game.state_dict(),
            "stage": self.stage,
            "stage_i": self.stage_i,
            "train_stream": self.train_stream.state_dict(),
            "val_stream": self.val_stream.state_dict(),
            "metric_lines": self.metric_lines,
            "torch_rng": torch.get_rng_state(),
            "selection": list(self.selection),
            "game_steps": self.game_steps,
        }
        if torch.cuda.is_available():
            st["cuda_rng"] = torch.cuda.get_rng_state_all()
        return st

    def save(self, name: str = runs.LAST) -> None:
        """Write a checkpoint, only when every weight is finite (else the last finite one stays)."""
        self.game.check_finite()
        if not self.is_main:
            return
        save_checkpoint(self.ckpt_dir / name, self._state())

    def _load(self, path: Path) -> None:
        st = load_checkpoint(path, map_location=self.device, what="checkpoint",
                             fix="move it away to train again from the start, or restore it from a copy")
        try:
            self.game.load_state_dict(st["game"])
        except (RuntimeError, KeyError, ValueError, TypeError) as e:
            raise CheckpointError(
                f"checkpoint {path} does not fit the players of the config it resumes with "
                f"({str(e).strip().splitlines()[0][:160]}); a resume may change learning rates, steps and schedule "
                f"settings, not the players: train a new run (another --out) for that"
            ) from None
        self.stage, self.stage_i = st["stage"], int(st["stage_i"])
        self.train_stream.load_state_dict(st["train_stream"])
        self.val_stream.load_state_dict(st["val_stream"])
        self.metric_lines = int(st["metric_lines"])
        self.selection = list(st.get("selection", []))
        self.game_steps = int(st.get("game_steps", self.game.step_count))
        torch.set_rng_state(st["torch_rng"].cpu())
        if "cuda_rng" in st and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([t.cpu() for t in st["cuda_rng"]])
        # drop metric lines written after the checkpoint so the file matches the resumed run
        if self.is_main:
            runs.truncate_metrics(self.out, self.metric_lines)

    def _log(self, record: dict) -> None:
        if not self.is_main:
            self.metric_lines += 1
            return
        runs.append_metrics(self.out, record)
        self.metric_lines += 1

    # -------------------------------------------------------------- ownership and resume
    def _claim(self, resume: bool, overwrite: bool) -> "runs.RunLock | None":
        """Rank 0 takes the run directory (:func:`privacam.runs.claim`); every rank stops when it refuses."""
        from .distributed import any_rank

        lock, err = None, None
        if self.is_main:
            try:
                lock = runs.claim(self.out, resume=resume, overwrite=overwrite)
            except PrivacamError as e:
                err = e
        if any_rank(err is not None, self.device):
            raise err or PrivacamError(f"{self.out}: the main process refused the run directory (see its message)")
        return lock

    def _check_resume(self) -> None:
        """Before a checkpoint is loaded: the config a run resumes with keeps the players (keys of
        ``_FIXED_ON_RESUME``), and its data the run's label sets and input shapes (else a one-line error)."""
        changed = runs.config_changes(runs.load_run_config(self.out), self.cfg)
        fixed = [k for k in changed if _fixed_on_resume(k)]
        if fixed:
            k = fixed[0]
            raise PrivacamError(
                f"{k} cannot change on --resume ({changed[k]['from']!r} -> {changed[k]['to']!r} in {self.out / runs.CONFIG}): "
                f"it defines the players or their data shapes; train a new run (another --out) instead"
            )
        self._resume_changes = changed
        meta = runs.read_meta(self.out)
        s = self.splits
        now = {"utility_classes": s.utility_classes, "private_classes": (s.privacy or s).private_classes}
        for key, value in now.items():
            if list(meta.get(key, value)) != list(value):
                raise PrivacamError(
                    f"the data given on --resume has {key.replace('_', ' ')} {list(value)} but the run in {self.out} was "
                    f"trained on {list(meta[key])}; a resumed run keeps its label sets: train a new run (another --out)"
                )
        if meta.get("shapes", self.shapes.as_dict()) != self.shapes.as_dict():
            raise PrivacamError(
                f"the data given on --resume gives inputs {self.shapes.as_dict()} but the run in {self.out} was trained on "
                f"{meta['shapes']}; a resumed run keeps its input shapes: train a new run (another --out)"
            )

    def _check_progress(self) -> None:
        """After the checkpoint is loaded: a resume uses every value it records. A stage length may not
        change for a stage the run has passed, nor fall below the steps made of the current one; a
        finished run resumed with changes is extended when ``train.steps`` grows past the steps made
        (with ``train.select=last``: the game goes on from its last step, then ``train.final_utility_steps``
        run again), and refused otherwise, since nothing more would train. Without changes a finished
        run only writes its final files again (``encoder.pt``, ``final.pt``)."""
        changed = self._resume_changes
        steps, stage = self.game_steps, self.stage
        old = runs.load_run_config(self.out)
        where = f"at game step {steps}, stage {stage}"
        if stage == STAGES[-1] and self.stage_i >= old.train.final_utility_steps:  # finished
            new = self.cfg.train.steps
            if new < steps or (new == steps and changed):
                why = (f"train.steps={new} is below the {steps} game steps it has made" if new < steps
                       else f"{', '.join(changed)} would never be used")
                raise PrivacamError(f"{self.out} has finished ({steps} game steps) and a resume trains nothing more, so "
                                    f"{why}: give train.steps=N above {steps} to extend it, or train a new run (another --out)")
            if new == steps:
                return
            if old.train.select != "last":
                raise PrivacamError(f"{self.out} has finished with train.select={old.train.select}, which shipped its "
                                    f"best checkpoint, not its last step: it cannot be extended to train.steps={new}; train "
                                    f"a new run with train.steps={new} (another --out)")
            passed = [k for k in changed if k in _STAGE_KEYS.values() and k not in ("train.steps", "train.final_utility_steps")]
            if passed:
                raise PrivacamError(f"{passed[0]} cannot change on --resume: {self.out} is past that stage ({where}), so "
                                    f"{changed[passed[0]]['to']!r} would never be used; leave it out, or train a new run (another --out)")
            log.warning("%s: extending the finished run from %d to train.steps=%d game steps", self.out, steps, new)
            self.stage, self.stage_i = "game", steps
            return
        at = STAGES.index(stage)
        for i, st in enumerate(STAGES):
            key = _STAGE_KEYS[st]
            if key not in changed:
                continue
            new = changed[key]["to"]
            if i < at:
                raise PrivacamError(f"{key} cannot change on --resume: {self.out} is past that stage ({where}), so {new!r} "
                                    f"would never be used; leave it out, or train a new run (another --out)")
            if i == at and new < self.stage_i:
                raise PrivacamError(f"{key}={new} is below the {self.stage_i} steps {self.out} has already made of that "
                                    f"stage ({where}); give {key}={self.stage_i} or more, or train a new run (another --out)")

    def _apply_resume_config(self) -> None:
        """A resume trains with the config it is given: learning rates and weight decays go into the
        restored optimizers, and what changed is recorded (``config_history.jsonl``, ``config.yaml``)."""
        changed = dict(self._resume_changes)
        meta = runs.read_meta(self.out)
        if meta.get("data_fingerprint") and meta["data_fingerprint"] != self._fingerprint():
            changed["data fingerprint"] = {"from": meta["data_fingerprint"], "to": self._fingerprint()}
            if self.is_main:
                runs.write_meta(self.out, {**meta, "data_fingerprint": self._fingerprint()})
        for player in ("encoder", "utility", "budget"):
            pc = getattr(self.cfg, player)
            for group in self.game.optimizers[player].param_groups:
                group["lr"], group["weight_decay"] = pc.lr, pc.weight_decay
        if changed:
            log.warning("resuming %s with changes at step %d: %s", self.out, self.game.step_count,
                        "; ".join(f"{k} {v['from']!r} -> {v['to']!r}" for k, v in changed.items()))
            if self.is_main:
                runs.record_resume(self.out, self.cfg, step=self.game.step_count, stage=self.stage, changed=changed)

    # -------------------------------------------------------------- run
    def run(self, resume: bool = False, overwrite: bool = False) -> Path:
        """Train to ``train.steps`` top-level steps; returns the run directory.

        Args:
            resume: continue the run in ``out`` from its last checkpoint, with this config (its
                learning rates, steps and schedule settings apply; the players and label sets must
                be the run's). ``out`` must hold a run.
            overwrite: ``out`` may hold a run: it is moved aside (``<out>.replaced-<time>``), never deleted.

        Raises:
            PrivacamError: ``out`` holds a run and neither flag is given, or another process writes it.
        """
        lock = self._claim(resume, overwrite)
        try:
            return self._run(resume)
        except OutputError as e:  # a full or read-only disk: every file written so far is whole
            if not self.is_main:
                raise
            if runs.holds_run(self.out):
                then = f"continue the run with `privacam train --out {shlex.quote(str(self.out))} --resume`"
            else:
                then = "run the same command again"
            kept = " (its last checkpoint kept)" if (self.ckpt_dir / runs.LAST).exists() else ""
            raise OutputError(f"{e}; the run's files are whole{kept}: once that is fixed, {then}") from None
        finally:
            if lock is not None:
                lock.release()

    def _run(self, resume: bool) -> Path:
        from tqdm.auto import tqdm

        self._setup()
        last = self.ckpt_dir / runs.LAST
        if resume and last.exists():
            self._check_resume()
            self._load(last)
            self._check_progress()
            self._apply_resume_config()
            log.info("resuming %s at stage %s, step %d", self.out, self.stage, self.game.step_count)
        else:
            if resume:
                log.info("no checkpoint in %s: starting from scratch", self.ckpt_dir)
            if self.is_main and (self.out / runs.METRICS).exists():
                (self.out / runs.METRICS).unlink()
            self._write_run_files()
        cfg = self.cfg
        init_steps = {"init_encoder": cfg.init.encoder_steps, "init_utility": cfg.init.utility_steps,
                      "init_budget": cfg.init.budget_steps, "game": cfg.train.steps,
                      "final_utility": cfg.train.final_utility_steps}
        total = sum(init_steps.values())
        done = sum(init_steps[s] for s in STAGES[: STAGES.index(self.stage)]) + self.stage_i
        bar = tqdm(total=total, initial=done, desc=f"train {self.out.name}", unit="step",
                   disable=None if self.is_main else True, dynamic_ncols=True)
        g = self.game
        try:
            for stage in STAGES[STAGES.index(self.stage):]:
                if stage != self.stage:
                    self.stage, self.stage_i = stage, 0
                if stage == "final_utility" and self.stage_i == 0 and cfg.train.select == "val_probe":
                    # the game is over: ship the best candidate's players; f_T's final steps train on its release
                    self.candidate("end")
                    self._ship_best()
                n = init_steps[stage]
                while self.stage_i < n:
                    rec = self._one(stage)
                    self.stage_i += 1
                    if stage == "game":
                        self.game_steps = self.stage_i
                    bar.update(1)
                    step = g.step_count
                    if stage != "game" or step % cfg.train.log_every == 0 or self.stage_i == n:
                        self._log({"step": step, "stage": stage, "i": self.stage_i, **rec})
                    every = cfg.train.select_every or cfg.train.checkpoint_every
                    if stage == "game" and cfg.train.select == "val_probe" and every and step % every == 0:
                        self.candidate(f"step {step}")
                    if stage == "game" and cfg.train.checkpoint_every and step % cfg.train.checkpoint_every == 0:
                        self.save()
                self.save()  # stage boundary
        except NonFiniteLossError as e:
            log.error("%s", e)
            raise
        finally:
            bar.close()
        self.stage, self.stage_i = STAGES[-1], cfg.train.final_utility_steps
        if not g.budget.reconstruction:
            # the deployed f_T runs in eval mode: its batch-norm statistics from the final release
            n = g.recalibrate_utility_bn(self.train_stream, math.ceil(len(self.splits.train) / cfg.train.batch_size))
            if n:
                log.info("recalibrated %d batch-norm layers of f_T on the final release", n)
        self.save()
        self.save(runs.FINAL)
        if self.is_main:
            runs.write_encoder(self.out, g.encoder.state_dict())
            skipped = self._skipped()
            if skipped["count"]:
                meta = runs.read_meta(self.out)
                if meta.get("skipped") != skipped:  # samples found bad while reading, after the start
                    runs.write_meta(self.out, {**meta, "skipped": skipped})
                log.warning("%d bad samples were skipped (data.on_bad_sample: skip); listed in %s", skipped["count"], self.out / runs.META)
        from .distributed import barrier

        barrier()  # the run directory is complete when any rank returns
        return self.out

    # -------------------------------------------------------------- checkpoint selection (validation only)
    @torch.no_grad()
    def validation_score(self) -> dict:
        """The selection score of the players as they are: f_T's accuracy on the whole validation split (for a
        substitution encoder: how often the drawn bank clip shows the input's task label, what a cloud model
        that reads substitutes perfectly would score, since f_T trains at the end) minus the identity NAG of a fast probing attacker (a ridge classifier fitted on the release of the
        training split, scored on the release of the validation split). Reads train and val only."""
        g, s = self.game, self.splits
        enc, util = g.encoder, g.utility
        modes = (enc.training, util.training)
        gen = getattr(enc, "generator", None)
        gen_state = gen.get_state() if isinstance(gen, torch.Generator) else None
        rng = torch.get_rng_state()
        enc.eval()
        util.eval()
        bs = self.cfg.train.batch_size
        try:
            def release(ds, limit=None):
                feats, priv, hits, n = [], [], 0.0, 0
                for b in _batches_of(ds, bs, limit):
                    x = b["input"].to(self.device)
                    if is_substitute(enc):  # a cloud model that reads the substitute's task label perfectly
                        z, j = enc.release(x)
                        right = enc.bank_utility[j].cpu() == b["utility"] if b.get("utility") is not None else None
                    else:
                        z = enc(x)
                        right = correct(util(z).float(), b["utility"].to(self.device)) if b.get("utility") is not None else None
                    feats.append(probe_features(z).cpu())
                    priv.append(b["private"])
                    if right is not None:
                        hits += float(right.float().sum())
                        n += len(b["input"])
                return torch.cat(feats), torch.cat(priv), hits / max(n, 1)

            tx, ty, _ = release(s.train, limit=2000)
            vx, vy, util_acc = release(s.val)
        finally:
            enc.train(modes[0])
            util.train(modes[1])
            if gen_state is not None:
                gen.set_state(gen_state)
            torch.set_rng_state(rng)
        k = s.num_private
        probe = ridge_probe(tx, ty, vx, vy, k)
        nag = max(0.0, (probe - 1 / k) / (1 - 1 / k))
        return {"val_utility": util_acc, "val_probe_identity": probe, "val_probe_nag": nag, "score": util_acc - nag}

    def candidate(self, at: str) -> None:
        """Score the players now (:meth:`validation_score`); keep them as ``best.pt`` when they score best."""
        if any(c["at"] == at for c in self.selection):
            return
        if at == "end" and self.selection and self.selection[-1]["step"] == self.game.step_count:
            return  # the players have not moved since the last candidate
        rec = {"at": at, "step": self.game.step_count, **self.validation_score()}
        best = max((c["score"] for c in self.selection), default=-math.inf)
        self.selection.append(rec)
        log.info("selection candidate %s: val utility %.3f, probe identity %.3f (NAG %.3f), score %.3f", at,
                 rec["val_utility"], rec["val_probe_identity"], rec["val_probe_nag"], rec["score"])
        if rec["score"] > best:
            self.save(BEST)

    def _ship_best(self) -> None:
        """Load the best candidate's players into the game (the run ships them) and write ``selection.json``."""
        best_i = max(range(len(self.selection)), key=lambda i: self.selection[i]["score"])
        chosen = self.selection[best_i]
        if best_i != len(self.selection) - 1:
            self.game.load_state_dict(load_checkpoint(self.ckpt_dir / BEST, map_location=self.device)["game"])
        log.info("shipping the checkpoint at %s (validation score %.3f)", chosen["at"], chosen["score"])
        if self.is_main:
            runs.write_selection(self.out, {"rule": "max val_utility - val_probe_nag (validation split only)",
                                            "chosen": chosen, "candidates": self.selection})

    def _one(self, stage: str) -> dict:
        g = self.game
        if stage == "init_encoder":
            # init (1): f_d towards the identity (MSE of frames); f_T, f_b frozen
            return g.encoder_identity_move(self.train_stream)
        if stage == "init_utility":
            # init (2): f_T (with f_d) on L_T
            return g.utility_move(self.train_stream, with_encoder=True)
        if stage == "init_budget":
            # init (3): f_b on the frozen f_d output
            return g.budget_move(self.train_stream)
        if stage == "final_utility":
            # after the game: f_T alone on the frozen f_d (the release no longer changes)
            return g.utility_move(self.train_stream, with_encoder=False)
        try:
            return g.step(self.train_stream, self.val_stream)
        except NonFiniteLossError as e:
            raise e.at_step(g.step_count + 1) from None


#: the config key that sets the length of each stage of :data:`STAGES`
_STAGE_KEYS = {"init_encoder": "init.encoder_steps", "init_utility": "init.utility_steps", "init_budget": "init.budget_steps",
               "game": "train.steps", "final_utility": "train.final_utility_steps"}

#: config keys that define the players or the shapes of their data: a resume keeps them
_FIXED_ON_RESUME = ("encoder.name", "encoder.params.", "encoder.optimizer", "utility.name", "utility.params.",
                    "utility.optimizer", "budget.name", "budget.names", "budget.m", "budget.params.", "budget.optimizer",
                    "budget.paper_widths", "schedule.name", "data.size", "data.clip_len", "train.seed")


def _fixed_on_resume(key: str) -> bool:
    return any(key == f or (f.endswith(".") and key.startswith(f)) for f in _FIXED_ON_RESUME)


def train(cfg: Config, out: str | Path, *, resume: bool = False, overwrite: bool = False,
          splits: Splits | None = None) -> Path:
    """Train ``cfg`` into ``out`` (see :class:`Trainer` and :meth:`Trainer.run`)."""
    return Trainer(cfg, out, splits).run(resume=resume, overwrite=overwrite)
