"""The seqio side of the data: the only module of `flan_jax.data` that imports TensorFlow and
seqio (inside functions: importing it costs nothing until a task is read).

It resolves task and mixture names (registering the built-in collections first), picks the
feature converter of a model family, reads a task's vocabulary, samples how much the feature
lengths truncate, feeds live training batches (`SeqioSource`), and hands the cache writer
(`cache_writer`) the tasks of a mixture.
"""

from __future__ import annotations

import hashlib
import os
from typing import Iterator

import numpy as np

from flan_jax.errors import UserError


def register_collections() -> None:
    """Registers the built-in task collections (imports `tasks`: seqio and TensorFlow). Safe
    after gin is locked (their configurables are then registered unbound); a command whose
    config binds them imports them before parsing (`flan_jax.data.import_tasks_if_read`)."""
    import gin

    with gin.unlock_config():
        import tasks  # noqa: F401


def registered(name: str):
    """The seqio task or mixture `name` (registering the built-in collections first); an
    unknown name raises a KeyError that suggests close names."""
    try:
        register_collections()
        from tasks import catalogue
    except ImportError as e:
        from flan_jax.config import DATA_EXTRA

        if (e.name or "").split(".")[0] not in DATA_EXTRA:
            raise
        raise UserError(f"reading task {name!r} needs TensorFlow and seqio ({e}): install the "
                        "`data` extra (`pip install 'flan-jax[data]'` or `make install`).") from e
    return catalogue.get_task_or_mixture(name)


def tasks_and_rates(name: str) -> dict:
    """{seqio task: rate} of a mixture (rate 0 tasks left out) or {task: 1.0}."""
    import seqio

    provider = registered(name)
    if isinstance(provider, seqio.Mixture):
        rates = {t: float(provider.get_rate(t)) for t in provider.tasks}
        return {t: r for t, r in rates.items() if r > 0}
    return {provider: 1.0}


def registered_task(name: str):
    """The registered seqio task `name`, or None (the cache writer's staleness check)."""
    import seqio

    try:
        return seqio.get_mixture_or_task(name)
    except ValueError:
        return None


def feature_converter(family: str, pack: bool):
    import seqio

    if family == "encoder_decoder":
        return seqio.EncDecFeatureConverter(pack=pack)
    # Inputs and targets are concatenated; the loss covers targets only, and the inputs part is
    # flagged in decoder_causal_attention for prefix-LM models.
    return seqio.DecoderFeatureConverter(pack=pack, loss_on_targets_only=True)


def vocabulary_spec(name: str) -> tuple[dict, str | None]:
    """(vocab.json contents, the SentencePiece file to copy or None) of a task's targets."""
    return _vocabulary_spec(registered(name))


def _vocabulary_spec(provider) -> tuple[dict, str | None]:
    import seqio

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
    import seqio

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


def truncation_of(task, split: str, lengths, n: int = 8) -> dict | None:
    """How many of `n` untrimmed examples of `task` the feature `lengths` cut, and the longest:
    {"sampled", "cut": {feature: n}, "longest": {feature: tokens}}; None when it has none."""
    ds = task.get_dataset(sequence_length=None, split=split, shuffle=False, num_epochs=1,
                          use_cached=False)
    examples = list(ds.take(n).as_numpy_iterator())
    if not examples:
        return None
    sizes = {k: [len(np.ravel(ex[k])) for ex in examples if k in ex] for k in lengths}
    return {"sampled": len(examples),
            "cut": {k: sum(s > lengths[k] for s in v) for k, v in sizes.items() if v},
            "longest": {k: max(v) for k, v in sizes.items() if v}}


class SeqioSource:
    """The 'seqio' backend of `flan_jax.data.DataSource`: the name resolved once."""

    fingerprint = None  # the stream is the registered definition: nothing more to keep

    def __init__(self, cfg):
        self.cfg = cfg
        self.provider = registered(cfg.mixture_or_task_name)  # readable unknown-name error

    def vocabulary(self) -> tuple[dict, str | None]:
        return _vocabulary_spec(self.provider)

    def check_model_vocabulary(self, model_dirs) -> None:
        """Nothing to check before the run: the model's vocab.json is written from the task."""

    def truncation(self, per_task: int, max_tasks: int) -> list[tuple]:
        import seqio

        report = []
        for task in seqio.get_subtasks(self.provider)[:max_tasks]:
            try:
                t = truncation_of(task, self.cfg.split, self.cfg.task_feature_lengths, per_task)
            except Exception:  # noqa: BLE001 - see DataSource.truncation_sample
                continue
            if t:
                report.append((task.name, t["sampled"], t["cut"], t["longest"]))
        return report

    def local_batches(self, family: str, rows, saved: dict | None = None) -> Iterator:
        """This host's numpy batches (`rows`: a `HostRows`), skipping the `saved` position."""
        import tensorflow as tf

        tf.config.set_visible_devices([], "GPU")
        start = int(saved["position"]) if saved else 0
        ds = self.dataset(family, rows.shard_index, rows.num_shards)
        ds = ds.batch(rows.rows, drop_remainder=True).skip(start).prefetch(self.cfg.prefetch)
        return ds.as_numpy_iterator()

    def dataset(self, family: str, shard_index: int = 0, num_shards: int = 1):
        """The (infinite, deterministic) tf.data stream of converted examples of one shard."""
        import seqio
        import tensorflow as tf

        cfg = self.cfg
        ds = seqio.get_dataset(
            cfg.mixture_or_task_name, dict(cfg.task_feature_lengths), dataset_split=cfg.split,
            shuffle=cfg.shuffle, num_epochs=None, seed=cfg.seed,
            shard_info=seqio.ShardInfo(index=shard_index, num_shards=num_shards),
            feature_converter=feature_converter(family, cfg.pack), use_cached=False)
        options = tf.data.Options()
        options.deterministic = True
        return ds.with_options(options)
