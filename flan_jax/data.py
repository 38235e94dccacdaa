"""seqio mixture -> feature converter -> this host's numpy batches -> global jax.Arrays.

TensorFlow lives here (and in tasks/), nowhere else in the library. The stream is deterministic
for a seed, so its position (the number of batches consumed) is all a checkpoint needs to
continue the same stream: a resumed run rebuilds the pipeline and skips that many batches.

Hosts: with `host_data="shard"` (the default, for pods) each process reads its own seqio shard
and builds its rows of the global batch; with `host_data="slice"` every process builds the whole
global batch and keeps its rows, so the stream does not depend on the number of processes
(used by the multi-host test and for small runs).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterator, Mapping

import gin
import jax
import numpy as np

# Model inputs by family; anything else a converter emits (loss weights) is for the loss.
MODEL_FEATURES = {
    "encoder_decoder": ("encoder_input_tokens", "decoder_input_tokens", "decoder_target_tokens",
                        "encoder_segment_ids", "decoder_segment_ids", "encoder_positions",
                        "decoder_positions"),
    "decoder_only": ("decoder_input_tokens", "decoder_segment_ids", "decoder_positions",
                     "decoder_causal_attention"),
}


def feature_converter(family: str, pack: bool):
    import seqio

    if family == "encoder_decoder":
        return seqio.EncDecFeatureConverter(pack=pack)
    # Inputs and targets are concatenated; the loss covers targets only, and the inputs part is
    # flagged in decoder_causal_attention for prefix-LM models.
    return seqio.DecoderFeatureConverter(pack=pack, loss_on_targets_only=True)


def model_kwargs(batch: Mapping[str, Any], family: str) -> dict[str, Any]:
    return {k: batch[k] for k in MODEL_FEATURES[family] if k in batch}


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


def _get_seqio_dataset(cfg: DataConfig, family: str, shard_index: int, num_shards: int):
    import seqio
    import tensorflow as tf

    import tasks  # noqa: F401  (registers the task collections)
    from tasks import catalogue

    catalogue.get_task_or_mixture(cfg.mixture_or_task_name)  # readable unknown-name error
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
