"""Training batches from a data cache, read with Grain. No TensorFlow on this path.

`CacheSource` is the 'cache' backend of `flan_jax.data.DataSource`: the cache opened and checked
against the run's config once. Its batches:

    per task:  ArrayRecord shards -> seeded shuffle, reshuffled each epoch -> repeated
    mixed:     Grain's deterministic examples-proportional mix with the cached rates
    this host: every `process_count`-th example (host_data='shard'), or all ('slice')
    rows:      `packing.Packer` (seqio's packing rules) -> batches of this host's rows

Every stage is a Grain MapDataset, so the stream is random-access: the iterator's state is the
index of the next example (plus the packer's position in its window), and restoring it costs
the same at step 10 as at step 100,000. The state saved with a checkpoint is the state at the
start of the row being filled when the batch ended, so a resume rebuilds that row exactly.
A background thread prepares `prefetch` batches ahead; each carries the state after it.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from typing import Mapping

import jax
import numpy as np
from etils import epath

from flan_jax.data import cache_format as dc
from flan_jax.data.packing import Packer
from flan_jax.errors import UserError


class CacheSource:
    """A cache opened once for a `DataConfig` (`cfg`) and checked against it: the same feature
    lengths and split, and `cfg.mixture_or_task_name` the cached mixture, one of its tasks, or
    (with `resolve_mixture(name) -> {task: rate}`) a mixture whose tasks it all holds."""

    def __init__(self, cfg, resolve_mixture=None):
        self.cfg = cfg
        self.info = info = dc.open_cache(cfg.cache_dir)
        lengths = dict(cfg.task_feature_lengths)
        if lengths != info.feature_lengths:
            raise UserError(f"the data cache at {cfg.cache_dir} holds examples tokenized for "
                            f"TASK_FEATURE_LENGTHS={info.feature_lengths}, not {lengths}: bind "
                            "those lengths, or build a cache with --feature_lengths "
                            + ",".join(f"{k}={v}" for k, v in lengths.items()) + ".")
        if cfg.split != info.split:
            raise UserError(f"the data cache at {cfg.cache_dir} holds the {info.split!r} split, "
                            f"not DataConfig.split={cfg.split!r}.")
        name = cfg.mixture_or_task_name
        self.rates = info.select(name, None if name in (info.mixture, *info.tasks)
                                 else resolve_mixture)
        self.fingerprint = info.fingerprint

    def vocabulary(self) -> tuple[dict, str | None]:
        """The cache's vocabulary, from its metadata (the file is the cache's copy)."""
        return ({k: v for k, v in self.info.vocabulary.items() if k != "sha256"},
                self.info.vocab_file())

    def check_model_vocabulary(self, model_dirs) -> None:
        """Refuses a cache tokenized with another vocabulary than the model directories'."""
        for d in model_dirs:
            dc.check_vocabulary(self.info, epath.Path(d) / "vocab.json")

    def truncation(self, per_task: int, max_tasks: int) -> list[tuple]:
        """The sample the cache's builder took of each task (`per_task` is the builder's)."""
        return [(t, int(tr["sampled"]), dict(tr["cut"]), dict(tr["longest"]))
                for t in sorted(self.rates)[:max_tasks]
                if (tr := self.info.tasks[t].truncation) and tr.get("sampled")]

    def local_batches(self, family: str, rows, saved: dict | None = None) -> ProcessBatches:
        """This host's numpy batches (`rows`: a `HostRows`), continuing `saved`."""
        own = None
        if saved:
            states = saved.get("processes") or []
            if len(states) != rows.num_shards:
                raise UserError(f"the checkpoint holds the data state of {len(states)} reading "
                                f"process(es), this run has {rows.num_shards}: resume with "
                                f"{len(states)} processes (or DataConfig.host_data='slice').")
            own = states[rows.shard_index]
        cfg = self.cfg
        it = CacheBatchIterator(self.info, self.rates, family, cfg.task_feature_lengths,
                                rows.rows, seed=cfg.seed, shuffle=cfg.shuffle, pack=cfg.pack,
                                shard_index=rows.shard_index, num_shards=rows.num_shards,
                                state=own, prefetch=cfg.prefetch)
        return ProcessBatches(it, rows.num_shards)


class ProcessBatches:
    """A `CacheBatchIterator` whose `state()` holds every reading process's iterator state."""

    def __init__(self, it: CacheBatchIterator, num_shards: int):
        self._it, self._shards = it, num_shards

    def __iter__(self):
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        return next(self._it)

    def state(self) -> dict:
        own = self._it.state()
        return {"processes": gather_states(own) if self._shards > 1 else [own]}


def _task_seed(seed: int, task: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{task}".encode()).digest()[:4], "little")


def example_stream(info: dc.CacheInfo, rates: Mapping[str, float], seed: int, shuffle: bool,
                   shard_index: int = 0, num_shards: int = 1):
    """The (infinite) Grain MapDataset of this host's decoded examples."""
    import grain

    per_task = []
    for task in sorted(rates):
        ds = grain.MapDataset.source(_source(info.files(task)))
        if shuffle:
            ds = ds.shuffle(seed=_task_seed(seed, task))  # a new order each epoch
        per_task.append(ds.repeat(None))
    weights = [float(rates[t]) for t in sorted(rates)]
    mixed = per_task[0] if len(per_task) == 1 else grain.MapDataset.mix(per_task, weights)
    if num_shards > 1:
        mixed = mixed[shard_index::num_shards]
    features = info.features
    return mixed.map(lambda record: dc.decode(record, features))


def _source(files: list[str]):
    import grain

    try:
        return grain.sources.ArrayRecordDataSource(files)
    except (RuntimeError, OSError) as e:
        hint = (" If this ArrayRecord build cannot read the bucket, mount it (e.g. with "
                "gcsfuse) and set DataConfig.cache_dir to the mounted folder."
                if "://" in files[0] else " Rebuild the cache into a new folder.")
        raise UserError(f"cannot read the data cache shard {files[0]} ({e}).{hint}") from None


class CacheBatchIterator:
    """This host's rows of each global batch, from a cache; `state()` continues it exactly."""

    def __init__(self, info: dc.CacheInfo, rates: Mapping[str, float], family: str,
                 task_lengths: Mapping[str, int], rows: int, seed: int = 0,
                 shuffle: bool = True, pack: bool = True, shard_index: int = 0,
                 num_shards: int = 1, state: dict | None = None, prefetch: int = 2,
                 read_threads: int = 4):
        import grain

        self._stream = example_stream(info, rates, seed, shuffle, shard_index, num_shards)
        self._it = iter(self._stream.to_iter_dataset(grain.ReadOptions(
            num_threads=read_threads, prefetch_buffer_size=max(64, 4 * rows))))
        state = state or {}
        if "grain" in state:
            self._it.set_state(state["grain"])
        self._packer = Packer(family, task_lengths, pack,
                              window_position=int(state.get("window_position", 0)))
        self._rows = rows
        self._row_start = self._snapshot()  # where the row being filled began
        self._pending: list[tuple[dict, dict]] = []  # completed rows not yet batched
        self._state = self._row_start
        self._queue: queue.Queue = queue.Queue(maxsize=max(prefetch, 1))
        self._thread = threading.Thread(target=self._produce, daemon=True,
                                        name="cache-batches")
        self._thread.start()

    def _snapshot(self) -> dict:
        return {"grain": self._it.get_state(), "window_position": self._packer.window_position}

    def _next_batch(self) -> tuple[dict, dict]:
        """This host's rows of one batch, and the state of the first row not in it."""
        while len(self._pending) < self._rows:
            before = self._snapshot()
            start = self._row_start if not self._packer.row_is_empty() else before
            completed = self._packer.add(next(self._it))
            # the first completed row began where the row in progress began; a second one
            # (a window ending) holds only this example
            self._pending += [(self._packer.features(r), s)
                              for r, s in zip(completed, (start, before))]
            if self._packer.row_is_empty():
                self._row_start = self._snapshot()
            elif self._packer.examples_in_row() == 1:  # this example began the row
                self._row_start = before
            else:
                self._row_start = start
        rows = [self._pending.pop(0)[0] for _ in range(self._rows)]
        after = self._pending[0][1] if self._pending else self._row_start
        return {k: np.stack([r[k] for r in rows]) for k in rows[0]}, dict(after)

    def _produce(self) -> None:
        try:
            while True:
                self._queue.put(self._next_batch())
        except BaseException as e:  # noqa: BLE001 - re-raised in the consumer
            self._queue.put(e)

    def state(self) -> dict:
        """Where the stream continues after the last batch returned."""
        return dict(self._state)

    def __iter__(self):
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        item = self._queue.get()
        if isinstance(item, BaseException):
            raise item
        batch, self._state = item
        return batch


def gather_states(state: dict) -> list[dict]:
    """Every process's state (a process's own JSON, exchanged as padded bytes)."""
    import json

    from jax.experimental import multihost_utils

    raw = json.dumps(state, sort_keys=True).encode()
    size = int(np.max(multihost_utils.process_allgather(np.array([len(raw)], np.int32))))
    padded = np.zeros(size, np.uint8)
    padded[:len(raw)] = np.frombuffer(raw, np.uint8)
    everyone = np.asarray(multihost_utils.process_allgather(padded)).reshape(
        jax.process_count(), size)
    return [json.loads(bytes(row).rstrip(b"\0").decode()) for row in everyone]
