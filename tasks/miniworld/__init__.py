"""The miniworld collection: the FLAN effect in miniature, offline (`make demo`).

A world of things and colours (`world`), instruction datasets over its scenes with NLI held
out (`datasets`), a word-level vocabulary (`vocabulary`), and a pretraining corpus of scene
documents for stage 0, registered as the span-corruption task `miniworld_pretrain`.

    stage 0  span corruption on `miniworld_pretrain`            -> the untuned base
    stage 1  instruction tuning on `miniworld_heldout_nli_train` from that base
    ablation stage 1 on `miniworld_heldout_nli_notemplate_train` (raw fields, no instructions)
    eval     rank classification over OPTIONS on `miniworld_nli_rank`
"""

from __future__ import annotations

from tasks.miniworld import datasets, world

COLLECTION = datasets.COLLECTION
PRETRAIN_TASK = "miniworld_pretrain"  # span corruption
PREFIX_LM_TASK = "miniworld_prefix_lm"  # the listing as inputs, the restatement as targets
NUM_CORPUS_DOCUMENTS = {"train": 20000, "validation": 500}


def _register_pretrain(vocabulary, replace: bool) -> None:
    import functools
    import itertools

    import seqio
    import tensorflow as tf
    from t5.data import preprocessors as t5_pre

    if replace:
        seqio.TaskRegistry.remove(PRETRAIN_TASK)
        seqio.TaskRegistry.remove(PREFIX_LM_TASK)
    elif PRETRAIN_TASK in seqio.TaskRegistry.names():
        return

    def dataset_fn(split: str, shuffle_files: bool, seed: int | None = None):
        del shuffle_files, seed  # documents are fixed by the collection's seed
        docs = itertools.islice(world.corpus(split, 0), NUM_CORPUS_DOCUMENTS[split])
        texts = [d["text"] for d in docs]
        return tf.data.Dataset.from_tensor_slices({"targets": texts})

    features = {"inputs": seqio.Feature(vocabulary, add_eos=True),
                "targets": seqio.Feature(vocabulary, add_eos=True)}
    seqio.TaskRegistry.add(
        PRETRAIN_TASK,
        source=seqio.FunctionDataSource(dataset_fn, splits=("train", "validation"),
                                        num_input_examples=dict(NUM_CORPUS_DOCUMENTS)),
        preprocessors=[seqio.preprocessors.tokenize, seqio.CacheDatasetPlaceholder(),
                       functools.partial(t5_pre.span_corruption, input_feature_key="inputs"),
                       seqio.preprocessors.append_eos_after_trim],
        output_features=features, metric_fns=[])

    def prefix_fn(split: str, shuffle_files: bool, seed: int | None = None):
        del shuffle_files, seed
        docs = list(itertools.islice(world.corpus(split, 0), NUM_CORPUS_DOCUMENTS[split]))
        return tf.data.Dataset.from_tensor_slices({"inputs": [d["prefix"] for d in docs],
                                                   "targets": [d["rest"] for d in docs]})

    seqio.TaskRegistry.add(
        PREFIX_LM_TASK,
        source=seqio.FunctionDataSource(prefix_fn, splits=("train", "validation"),
                                        num_input_examples=dict(NUM_CORPUS_DOCUMENTS)),
        preprocessors=[seqio.preprocessors.tokenize, seqio.preprocessors.append_eos],
        output_features=features, metric_fns=[])


def register(seed: int = 0, replace: bool = False):
    """Registers the collection (word vocabulary) and the pretraining task; idempotent."""
    from tasks import catalogue, registry
    from tasks.miniworld import vocabulary

    vocab = vocabulary.seqio_vocabulary()
    _register_pretrain(vocab, replace)
    if COLLECTION in catalogue.collection_names() and not replace:
        return catalogue.collection_info(COLLECTION)
    return registry.register_collection(
        datasets.specs(), vocabulary=vocab, cluster_order=datasets.CLUSTER_ORDER, seed=seed,
        replace=replace)
