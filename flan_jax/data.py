"""Training data: a source -> this host's numpy batches -> global jax.Arrays.

Two sources (`DataConfig.source`), one batch format (seqio's feature converters' features):
- 'seqio': the registered mixture through seqio/tf.data, live. TensorFlow lives here (and in
  tasks/, cache_writer), only inside functions: importing this module costs nothing. The stream
  is deterministic for a seed, so its position (batches consumed) is what a checkpoint keeps; a
  resumed run rebuilds the pipeline and skips that many batches (the cost grows with the step).
- 'cache': a data cache (`flan-jax data cache`) read with Grain (`cache_reader`), no
  TensorFlow; a checkpoint keeps the Grain iterator's state, so resuming costs the same at any
  step.

Either way the checkpoint also keeps what the stream is (`stream_identity`): a resume with
another source, mixture, feature lengths, seed or cache is refused (`check_same_stream`) unless
`train.restart_data_stream` starts the new stream deliberately.

Hosts: with `host_data="shard"` (the default, for pods) each process reads its own seqio shard
and builds its rows of the global batch; with `host_data="slice"` every process builds the whole
global batch and keeps its rows, so the stream does not depend on the number of processes
(used by the multi-host test and for small runs).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Iterator, Mapping

import gin
import jax
import numpy as np

def feature_converter(family: str, pack: bool):
    import seqio

    if family == "encoder_decoder":
        return seqio.EncDecFeatureConverter(pack=pack)
    # Inputs and targets are concatenated; the loss covers targets only, and the inputs part is
    # flagged in decoder_causal_attention for prefix-LM models.
    return seqio.DecoderFeatureConverter(pack=pack, loss_on_targets_only=True)


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


def _cache_and_rates(cfg: DataConfig):
    """(CacheInfo, {task: rate}) of a cache-source config, checked against it."""
    from flan_jax import data_cache
    from flan_jax.errors import UserError

    info = data_cache.open_cache(cfg.cache_dir)
    lengths = dict(cfg.task_feature_lengths)
    if lengths != info.feature_lengths:
        raise UserError(f"the data cache at {cfg.cache_dir} holds examples tokenized for "
                        f"TASK_FEATURE_LENGTHS={info.feature_lengths}, not {lengths}: bind those "
                        "lengths, or build a cache with --feature_lengths "
                        + ",".join(f"{k}={v}" for k, v in lengths.items()) + ".")
    if cfg.split != info.split:
        raise UserError(f"the data cache at {cfg.cache_dir} holds the {info.split!r} split, not "
                        f"DataConfig.split={cfg.split!r}.")
    resolve = None
    if cfg.mixture_or_task_name not in (info.mixture, *info.tasks):
        resolve = _mixture_rates
    return info, info.select(cfg.mixture_or_task_name, resolve)


def _mixture_rates(name: str) -> dict[str, float]:
    """{task: rate} of a registered mixture (reads the registry: needs seqio)."""
    import seqio

    provider = _registered(name)
    if isinstance(provider, seqio.Mixture):
        return {t.name: float(provider.get_rate(t)) for t in provider.tasks
                if provider.get_rate(t) > 0}
    return {provider.name: 1.0}


def _registered(name: str):
    """The seqio task or mixture `name` (registering the built-in collections first)."""
    try:
        # reliability (issue 29): a cache run resolving another mixture imports the task
        # registry after gin was locked; its configurables may still register
        with gin.unlock_config():
            import tasks  # noqa: F401  (registers the task collections)
            from tasks import catalogue
    except ImportError as e:
        from flan_jax.config import DATA_EXTRA
        from flan_jax.errors import UserError

        if (e.name or "").split(".")[0] not in DATA_EXTRA:
            raise
        raise UserError(f"reading task {name!r} needs TensorFlow and seqio ({e}): install the "
                        "`data` extra (`pip install 'flan-jax[data]'` or `make install`).") from e
    return catalogue.get_task_or_mixture(name)


def check_source(cfg: DataConfig) -> None:
    """Fails before any work when the configured task, mixture or cache cannot be read."""
    from flan_jax.errors import UserError

    if cfg.source not in SOURCES:
        raise UserError(f"DataConfig.source={cfg.source!r}: use one of {', '.join(SOURCES)}.")
    if cfg.source == "cache":
        _cache_and_rates(cfg)
    else:
        _registered(cfg.mixture_or_task_name)


def stream_identity(cfg: DataConfig) -> dict:
    """What makes the data stream what it is; a checkpoint keeps it with the position."""
    ident = {"source": cfg.source, "mixture_or_task_name": cfg.mixture_or_task_name,
             "task_feature_lengths": dict(cfg.task_feature_lengths), "seed": cfg.seed,
             "pack": cfg.pack, "shuffle": cfg.shuffle, "split": cfg.split,
             "host_data": cfg.host_data}
    if cfg.source == "cache":
        from flan_jax import data_cache

        ident["cache_fingerprint"] = data_cache.open_cache(cfg.cache_dir).fingerprint
    return ident


def check_same_stream(saved: dict, cfg: DataConfig) -> None:
    """Refuses to continue a checkpoint's data stream with another one, naming the difference.
    (Checkpoints from before the identity was kept are compared on what they kept.)"""
    from flan_jax.errors import UserError

    now = stream_identity(cfg)
    diffs = [f"{k}: {saved[k]!r} in the checkpoint, {v!r} now" for k, v in now.items()
             if k in saved and saved[k] != v]
    if diffs:
        raise UserError(
            "the checkpoint continues another data stream (" + "; ".join(diffs) + "). Resume "
            "with the same data, or start the new stream from its beginning on purpose with "
            "--gin.train.restart_data_stream=True.")


@dataclasses.dataclass
class Truncation:
    """How much of a task's sampled examples the feature lengths cut off."""
    task: str
    sampled: int
    cut: dict[str, int]  # feature -> examples longer than its length
    longest: dict[str, int]  # feature -> longest sampled length (tokens)


def sample_truncation(cfg: DataConfig, per_task: int = 8,
                      max_tasks: int = 64) -> list[Truncation]:
    """Reads `per_task` tokenized examples of each task of the mixture (the first `max_tasks`)
    and counts those longer than `cfg.task_feature_lengths`. A task that cannot be read here
    (e.g. its TFDS data is not prepared) is left out: the input pipeline reports it. From a
    cache: the sample its builder took of each task."""
    if cfg.source == "cache":
        info, rates = _cache_and_rates(cfg)
        return [Truncation(t, int(tr["sampled"]), dict(tr["cut"]), dict(tr["longest"]))
                for t in sorted(rates)[:max_tasks]
                if (tr := info.tasks[t].truncation) and tr.get("sampled")]
    import seqio

    provider = _registered(cfg.mixture_or_task_name)
    leaves = seqio.get_subtasks(provider)
    report = []
    for task in leaves[:max_tasks]:
        try:
            ds = task.get_dataset(sequence_length=None, split=cfg.split, shuffle=False,
                                  num_epochs=1, use_cached=False)
            examples = list(ds.take(per_task).as_numpy_iterator())
        except Exception:  # noqa: BLE001 - see the docstring
            continue
        if not examples:
            continue
        lengths = {k: [len(np.ravel(ex[k])) for ex in examples if k in ex]
                   for k in cfg.task_feature_lengths}
        report.append(Truncation(
            task.name, len(examples),
            {k: sum(n > cfg.task_feature_lengths[k] for n in v) for k, v in lengths.items() if v},
            {k: max(v) for k, v in lengths.items() if v}))
    return report


def run_vocabulary(cfg: DataConfig) -> tuple[dict, str | None]:
    """`vocabulary_spec` of what the run trains on (from the cache's metadata on that path)."""
    if cfg.source == "cache":
        from flan_jax import data_cache

        info = data_cache.open_cache(cfg.cache_dir)
        spec = {k: v for k, v in info.vocabulary.items() if k != "sha256"}
        return spec, info.vocab_file()
    return vocabulary_spec(cfg.mixture_or_task_name)


def check_run_vocabulary(cfg: DataConfig, model_dirs) -> None:
    """A cache-source run refuses a cache tokenized with another vocabulary than the model
    directories' (MODEL_DIR when resuming, INIT_CHECKPOINT, a prompt-tuning base); None entries
    are skipped."""
    if cfg.source != "cache":
        return
    from etils import epath

    from flan_jax import data_cache

    info = data_cache.open_cache(cfg.cache_dir)
    for d in model_dirs:
        if d:
            data_cache.check_vocabulary(info, epath.Path(d) / "vocab.json")


def vocabulary_spec(name: str) -> tuple[dict, str | None]:
    """(vocab.json contents, the SentencePiece file to copy or None) of a task's targets."""
    import seqio

    provider = _registered(name)
    vocab = provider.output_features["targets"].vocabulary
    if isinstance(vocab, seqio.ByteVocabulary):
        return {"kind": "byte"}, None
    path = getattr(vocab, "sentencepiece_model_file", None)
    if path:
        return {"kind": "sentencepiece", "file": os.path.basename(path)}, path
    return {"kind": "missing", "expected": "a vocabulary file"}, None


def check_vocabulary(provider, vocab, checkpoint: str) -> None:
    """Refuses to evaluate a task whose output vocabulary is not the checkpoint's (as t5x's
    verify_matching_vocabs does): token ids would mean different text on the two sides."""
    import hashlib

    import seqio

    from flan_jax.errors import UserError
    from flan_jax.vocab import ByteVocab

    wanted = provider.output_features["targets"].vocabulary
    if isinstance(wanted, seqio.ByteVocabulary):
        same, what = isinstance(vocab, ByteVocab), "bytes"
    else:
        model_file = getattr(wanted, "sentencepiece_model_file", None)
        what = f"the SentencePiece model {model_file}"
        path = getattr(vocab, "path", None)
        same = path is not None and model_file is not None and (
            hashlib.sha256(open(path, "rb").read()).digest()
            == hashlib.sha256(open(model_file, "rb").read()).digest())
    if not same:
        has = getattr(vocab, "path", None) or "bytes"
        raise UserError(f"task {provider.name!r} is tokenized with {what}, but the checkpoint "
                        f"{checkpoint} uses {has} (its vocab.json). Evaluate it with a model "
                        "trained on that vocabulary, or register the task with the model's.")


def _get_seqio_dataset(cfg: DataConfig, family: str, shard_index: int, num_shards: int):
    import seqio
    import tensorflow as tf

    _registered(cfg.mixture_or_task_name)  # readable unknown-name error
    ds = seqio.get_dataset(
        cfg.mixture_or_task_name, dict(cfg.task_feature_lengths), dataset_split=cfg.split,
        shuffle=cfg.shuffle, num_epochs=None, seed=cfg.seed,
        shard_info=seqio.ShardInfo(index=shard_index, num_shards=num_shards),
        feature_converter=feature_converter(family, cfg.pack), use_cached=False)
    options = tf.data.Options()
    options.deterministic = True
    return ds.with_options(options)


def batch_iterator(cfg: DataConfig, family: str, sharding: jax.sharding.Sharding,
                   saved: dict | None = None):
    """Global batches of `cfg`'s source, continuing the checkpointed data state `saved`
    (None: from the beginning)."""
    if cfg.source == "cache":
        return CacheBatches(cfg, family, sharding, saved)
    return BatchIterator(cfg, family, sharding,
                         start_batch=int(saved["position"]) if saved else 0)


def _rows_and_shard(cfg: DataConfig) -> tuple[int, int, int]:
    """(rows this process builds, its shard index, number of shards)."""
    nproc, pid = jax.process_count(), jax.process_index()
    if cfg.batch_size % nproc:
        raise ValueError(f"batch_size={cfg.batch_size} must be divisible by the "
                         f"{nproc} processes.")
    if cfg.host_data == "shard":
        return cfg.batch_size // nproc, pid, nproc
    if cfg.host_data == "slice":
        return cfg.batch_size, 0, 1
    raise ValueError(f"DataConfig.host_data={cfg.host_data!r}: use 'shard' or 'slice'.")


class _GlobalBatches:
    """This host's numpy batches from `self._it` -> global jax.Arrays; counts the batches."""

    cfg: DataConfig
    sharding: jax.sharding.Sharding
    position: int
    _it: Iterator

    def __iter__(self):
        return self

    def __next__(self) -> dict[str, jax.Array]:
        local = next(self._it)
        self.position += 1
        return {k: to_global(v, self.sharding, self.cfg.host_data) for k, v in local.items()}


class CacheBatches(_GlobalBatches):
    """Global batches from a data cache (Grain); its state holds each process's iterator."""

    def __init__(self, cfg: DataConfig, family: str, sharding: jax.sharding.Sharding,
                 saved: dict | None = None):
        from flan_jax.cache_reader import CacheBatchIterator
        from flan_jax.errors import UserError

        info, rates = _cache_and_rates(cfg)
        rows, index, shards = _rows_and_shard(cfg)
        own = None
        if saved:
            states = saved.get("processes") or []
            if len(states) != shards:
                raise UserError(f"the checkpoint holds the data state of {len(states)} reading "
                                f"process(es), this run has {shards}: resume with "
                                f"{len(states)} processes (or DataConfig.host_data='slice').")
            own = states[index]
        self.cfg, self.sharding, self._shards = cfg, sharding, shards
        self.position = int(saved["position"]) if saved else 0
        self._it = CacheBatchIterator(info, rates, family, cfg.task_feature_lengths, rows,
                                      seed=cfg.seed, shuffle=cfg.shuffle, pack=cfg.pack,
                                      shard_index=index, num_shards=shards, state=own,
                                      prefetch=cfg.prefetch)
        self._identity = stream_identity(cfg)

    def state(self) -> dict:
        from flan_jax.cache_reader import gather_states

        own = self._it.state()
        states = gather_states(own) if self._shards > 1 else [own]
        return {"position": self.position, **self._identity, "processes": states}



class BatchIterator(_GlobalBatches):
    """Iterates global batches as dicts of jax.Arrays placed with `sharding`; knows its position.
    """

    def __init__(self, cfg: DataConfig, family: str, sharding: jax.sharding.Sharding,
                 start_batch: int = 0):
        import tensorflow as tf

        tf.config.set_visible_devices([], "GPU")
        self.cfg, self.sharding, self.position = cfg, sharding, start_batch
        self._rows, index, shards = _rows_and_shard(cfg)
        ds = _get_seqio_dataset(cfg, family, index, shards)
        ds = ds.batch(self._rows, drop_remainder=True).skip(start_batch).prefetch(cfg.prefetch)
        self._it: Iterator = ds.as_numpy_iterator()

    def state(self) -> dict:
        return {"position": self.position, **stream_identity(self.cfg)}



def to_global(local: np.ndarray, sharding: jax.sharding.Sharding, host_data: str) -> jax.Array:
    if host_data == "slice":  # every host holds the whole batch: place the shards it owns
        return jax.make_array_from_callback(local.shape, sharding, lambda idx: local[idx])
    return jax.make_array_from_process_local_data(sharding, local)
