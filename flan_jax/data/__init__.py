"""Training data: a source -> this host's numpy batches -> global jax.Arrays. No TensorFlow here.

`open_source(DataConfig)` resolves the configured name and opens its source once; the returned
`DataSource` answers everything a run asks of its data: what the stream is (`identity`), its
vocabulary, how much the feature lengths cut (`truncation_sample`) and the batches. Two sources
(`DataConfig.source`), one batch format (seqio's feature converters' features):
- 'seqio': the registered mixture through seqio/tf.data, live (`seqio_source`, the only module
  of this package that imports TensorFlow or seqio, and only when this source is opened). The
  stream is deterministic for a seed, so its position (batches consumed) is what a checkpoint
  keeps; a resumed run rebuilds the pipeline and skips that many batches (the cost grows with
  the step).
- 'cache': a data cache (`flan-jax data cache`, `cache_writer`; layout in `cache_format`) read
  with Grain (`cache_reader`, `packing`), no TensorFlow; a checkpoint keeps the Grain
  iterator's state, so resuming costs the same at any step.

Either way the checkpoint also keeps what the stream is (`DataSource.identity`): a resume with
another source, mixture, feature lengths, seed or cache is refused (`check_same_stream`) unless
`train.restart_data_stream` starts the new stream deliberately.

Hosts: with `host_data="shard"` (the default, for pods) each process reads its own shard and
builds its rows of the global batch; with `host_data="slice"` every process builds the whole
global batch and keeps its rows, so the stream does not depend on the number of processes
(used by the multi-host test and for small runs).
"""

from __future__ import annotations

import dataclasses
from typing import Iterator, Mapping, Sequence

import gin
import jax
import numpy as np

from flan_jax.errors import UserError


@gin.configurable
@dataclasses.dataclass
class DataConfig:
    mixture_or_task_name: str = gin.REQUIRED
    task_feature_lengths: Mapping[str, int] = gin.REQUIRED
    batch_size: int = gin.REQUIRED  # global, over all hosts
    split: str = "train"
    shuffle: bool = True
    pack: bool = True
    seed: int = 0
    host_data: str = "shard"  # or "slice"
    prefetch: int = 2
    source: str = "seqio"  # or "cache": read `cache_dir` with Grain, no TensorFlow
    cache_dir: str | None = None


SOURCES = ("seqio", "cache")


@dataclasses.dataclass
class Truncation:
    """How much of a task's sampled examples the feature lengths cut off."""
    task: str
    sampled: int
    cut: dict[str, int]  # feature -> examples longer than its length
    longest: dict[str, int]  # feature -> longest sampled length (tokens)


@dataclasses.dataclass(frozen=True)
class HostRows:
    """Which rows of each global batch this process builds."""
    rows: int  # rows this process builds per batch
    shard_index: int  # its shard of the source
    num_shards: int


def host_rows(cfg: DataConfig) -> HostRows:
    nproc, pid = jax.process_count(), jax.process_index()
    if cfg.batch_size % nproc:
        raise ValueError(f"batch_size={cfg.batch_size} must be divisible by the "
                         f"{nproc} processes.")
    if cfg.host_data == "shard":
        return HostRows(cfg.batch_size // nproc, pid, nproc)
    if cfg.host_data == "slice":
        return HostRows(cfg.batch_size, 0, 1)
    raise ValueError(f"DataConfig.host_data={cfg.host_data!r}: use 'shard' or 'slice'.")


class DataSource:
    """A configured source, resolved and opened once (`open_source`).

    `backend` is the source-specific half (`seqio_source.SeqioSource`,
    `cache_reader.CacheSource`): it answers `fingerprint`, `vocabulary()`,
    `check_model_vocabulary(dirs)`, `truncation(per_task, max_tasks)` and
    `local_batches(family, HostRows, saved)`."""

    def __init__(self, cfg: DataConfig, backend):
        self.cfg, self.backend = cfg, backend

    def identity(self) -> dict:
        """What makes the data stream what it is; a checkpoint keeps it with the position."""
        return stream_identity(self.cfg, self.backend.fingerprint)

    def check_same_stream(self, saved: dict) -> None:
        check_same_stream(saved, self.identity())

    def vocabulary(self) -> tuple[dict, str | None]:
        """(vocab.json contents, the SentencePiece file to copy or None) of what the run
        trains on."""
        return self.backend.vocabulary()

    def check_model_vocabulary(self, model_dirs: Sequence) -> None:
        """Refuses data tokenized with another vocabulary than the model directories' (MODEL_DIR
        when resuming, INIT_CHECKPOINT, a prompt-tuning base); None entries are skipped."""
        self.backend.check_model_vocabulary([d for d in model_dirs if d])

    def truncation_sample(self, per_task: int = 8, max_tasks: int = 64) -> list[Truncation]:
        """Reads `per_task` tokenized examples of each task (the first `max_tasks`) and counts
        those longer than the feature lengths. A task that cannot be read here (e.g. its TFDS
        data is not prepared) is left out: the input pipeline reports it. From a cache: the
        sample its builder took of each task."""
        return [Truncation(*t) for t in self.backend.truncation(per_task, max_tasks)]

    def batches(self, family: str, sharding: jax.sharding.Sharding,
                saved: dict | None = None) -> GlobalBatches:
        """Global batches, continuing the checkpointed data state `saved` (None: from the
        beginning)."""
        rows = host_rows(self.cfg)
        local = self.backend.local_batches(family, rows, saved)
        return GlobalBatches(local, sharding, self.cfg.host_data, self.identity(),
                             position=int(saved["position"]) if saved else 0)


def open_source(cfg: DataConfig) -> DataSource:
    """The source `cfg` describes, resolved once: an unknown task or mixture, or a cache that
    does not fit `cfg`, fails here, before any work."""
    if cfg.source not in SOURCES:
        raise UserError(f"DataConfig.source={cfg.source!r}: use one of {', '.join(SOURCES)}.")
    if cfg.source == "cache":
        from flan_jax.data.cache_reader import CacheSource

        return DataSource(cfg, CacheSource(cfg, resolve_mixture=_mixture_rates))
    from flan_jax.data.seqio_source import SeqioSource

    return DataSource(cfg, SeqioSource(cfg))


def import_tasks_if_read(files: Sequence[str], bindings: Sequence[str]) -> None:
    """The `imports` hook of the commands that train (`config.parse_command(imports=...)`):
    imports the task collections (seqio, TensorFlow) when the config reads the seqio source,
    before gin is locked and so that bindings of their configurables parse; a run that reads a
    data cache (`DataConfig.source = 'cache'`) never imports them. A lenient first parse finds
    out which."""
    from flan_jax import config

    if config.peek(files, bindings, lambda: config.is_bound("DataConfig") and config.bound_or(
            "DataConfig.source", "seqio") != "cache", default=False):
        from flan_jax.data import seqio_source

        seqio_source.register_collections()


def _mixture_rates(name: str) -> dict[str, float]:
    """{task: rate} of a registered mixture: a cache serves a mixture whose tasks it holds
    (reads the registry, so needs seqio)."""
    from flan_jax.data import seqio_source

    return {t.name: r for t, r in seqio_source.tasks_and_rates(name).items()}


def stream_identity(cfg: DataConfig, fingerprint: str | None = None) -> dict:
    """What makes the data stream what it is (`fingerprint`: the cache's, if it is one)."""
    ident = {"source": cfg.source, "mixture_or_task_name": cfg.mixture_or_task_name,
             "task_feature_lengths": dict(cfg.task_feature_lengths), "seed": cfg.seed,
             "pack": cfg.pack, "shuffle": cfg.shuffle, "split": cfg.split,
             "host_data": cfg.host_data}
    if fingerprint is not None:
        ident["cache_fingerprint"] = fingerprint
    return ident


def check_same_stream(saved: dict, now: dict) -> None:
    """Refuses to continue a checkpoint's data stream with another one (`now`, an identity),
    naming the difference. (Checkpoints from before the identity was kept are compared on what
    they kept.)"""
    diffs = [f"{k}: {saved[k]!r} in the checkpoint, {v!r} now" for k, v in now.items()
             if k in saved and saved[k] != v]
    if diffs:
        raise UserError(
            "the checkpoint continues another data stream (" + "; ".join(diffs) + "). Resume "
            "with the same data, or start the new stream from its beginning on purpose with "
            "--gin.train.restart_data_stream=True.")


class GlobalBatches:
    """This host's numpy batches -> global jax.Arrays placed with `sharding`; counts them.
    `state()` is what a checkpoint keeps: the position, the stream's identity and whatever the
    local iterator needs to continue (its own `state()`, if it has one)."""

    def __init__(self, local: Iterator, sharding: jax.sharding.Sharding, host_data: str,
                 identity: dict, position: int = 0):
        self._local, self.sharding, self.host_data = local, sharding, host_data
        self._identity, self.position = identity, position

    def __iter__(self):
        return self

    def __next__(self) -> dict[str, jax.Array]:
        local = next(self._local)
        self.position += 1
        return {k: to_global(v, self.sharding, self.host_data) for k, v in local.items()}

    def state(self) -> dict:
        extra = self._local.state() if hasattr(self._local, "state") else {}
        return {"position": self.position, **self._identity, **extra}


def to_global(local: np.ndarray, sharding: jax.sharding.Sharding, host_data: str) -> jax.Array:
    if host_data == "slice":  # every host holds the whole batch: place the shards it owns
        return jax.make_array_from_callback(local.shape, sharding, lambda idx: local[idx])
    return jax.make_array_from_process_local_data(sharding, local)
