"""seqio mixture -> feature converter -> this host's numpy batches -> global jax.Arrays.

TensorFlow lives here (and in tasks/), nowhere else in the library, and only inside functions:
importing this module costs nothing, so the trainer imports it without TensorFlow installed. The stream is deterministic
for a seed, so its position (the number of batches consumed) is all a checkpoint needs to
continue the same stream: a resumed run rebuilds the pipeline and skips that many batches.

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


def _registered(name: str):
    """The seqio task or mixture `name` (registering the built-in collections first)."""
    try:
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
    """Fails before any work when the configured task or mixture is unknown."""
    _registered(cfg.mixture_or_task_name)


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
    (e.g. its TFDS data is not prepared) is left out: the input pipeline reports it."""
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


class BatchIterator:
    """Iterates global batches as dicts of jax.Arrays placed with `sharding`; knows its position.
    """

    def __init__(self, cfg: DataConfig, family: str, sharding: jax.sharding.Sharding,
                 start_batch: int = 0):
        import tensorflow as tf

        tf.config.set_visible_devices([], "GPU")
        self.cfg, self.sharding, self.position = cfg, sharding, start_batch
        nproc, pid = jax.process_count(), jax.process_index()
        if cfg.batch_size % nproc:
            raise ValueError(f"batch_size={cfg.batch_size} must be divisible by the "
                             f"{nproc} processes.")
        if cfg.host_data == "shard":
            ds = _get_seqio_dataset(cfg, family, pid, nproc)
            self._rows = cfg.batch_size // nproc
        elif cfg.host_data == "slice":
            ds = _get_seqio_dataset(cfg, family, 0, 1)
            self._rows = cfg.batch_size
        else:
            raise ValueError(f"DataConfig.host_data={cfg.host_data!r}: use 'shard' or 'slice'.")
        ds = ds.batch(self._rows, drop_remainder=True).skip(start_batch).prefetch(cfg.prefetch)
        self._it: Iterator = ds.as_numpy_iterator()

    def state(self) -> dict:
        return {"position": self.position, "mixture_or_task_name": self.cfg.mixture_or_task_name,
                "seed": self.cfg.seed}

    def __iter__(self):
        return self

    def __next__(self) -> dict[str, jax.Array]:
        local = next(self._it)
        self.position += 1
        return {k: to_global(v, self.sharding, self.cfg.host_data) for k, v in local.items()}


def to_global(local: np.ndarray, sharding: jax.sharding.Sharding, host_data: str) -> jax.Array:
    if host_data == "slice":  # every host holds the whole batch: place the shards it owns
        return jax.make_array_from_callback(local.shape, sharding, lambda idx: local[idx])
    return jax.make_array_from_process_local_data(sharding, local)
