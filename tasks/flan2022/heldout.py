"""Registers the held-out benchmarks of the Flan 2022 collection with seqio and the catalogue.

    mmlu_5shot_{SUBJECT} -> mixture mmlu_5shot    5-shot (dev), rank over A-D, accuracy
    bbh_3shot_{TASK}     -> mixture bbh_3shot     3-shot, direct answer, exact match
    bbh_cot_3shot_{TASK} -> mixture bbh_cot_3shot 3-shot chain of thought, exact match of the
                                                  extracted answer

Evaluation only: no training mixture holds them. Their clusters are the report's rows:
mmlu_{stem,humanities,social_sciences,other}, bbh_{nlp,algorithmic}, bbh_cot_{nlp,algorithmic}.
Files are read only when a task's dataset is requested, from `sources.text_file_dir()` (or the
fixtures while `mock_files.active()`); a missing file names `flan-jax data prepare`.
"""

from __future__ import annotations

import functools
import os
from typing import Callable, Iterable

import seqio
import tensorflow as tf
from t5.evaluation import metrics as t5_metrics

from tasks import catalogue, sources
from tasks.catalogue import TaskInfo
from tasks.flan2022 import bbh, mmlu, mock_files

COLLECTION = "flan2022"
MMLU_MIXTURE, BBH_MIXTURE, BBH_COT_MIXTURE = "mmlu_5shot", "bbh_3shot", "bbh_cot_3shot"


def _text_source(rows_fn: Callable[[str], Iterable[dict]], splits: Iterable[str],
                 with_options: bool = False) -> seqio.DataSource:
    signature = {"inputs": tf.TensorSpec([], tf.string), "targets": tf.TensorSpec([], tf.string)}
    if with_options:
        signature["options"] = tf.TensorSpec([None], tf.string)

    def dataset_fn(split: str, shuffle_files: bool, seed: int | None = None):
        del shuffle_files, seed  # evaluation reads every example in file order
        return tf.data.Dataset.from_generator(lambda: iter(rows_fn(split)),
                                              output_signature=signature)

    return seqio.FunctionDataSource(dataset_fn, splits=tuple(splits))


def _mmlu_rows(subject: str, split: str) -> list[dict]:
    root, read = mock_files.resolve("mmlu", subject, sources.text_file_dir())
    return mmlu.examples(os.path.join(root, "mmlu"), read, split)


def _bbh_rows(task: str, variant: str, split: str) -> list[dict]:
    del split  # BBH has one split
    root, read = mock_files.resolve("bbh", task, sources.text_file_dir())
    return bbh.examples(os.path.join(root, "bbh"), read, variant)


class _Adder:
    def __init__(self, vocabulary: seqio.Vocabulary):
        self.features = {k: seqio.Feature(vocabulary, add_eos=True) for k in ("inputs", "targets")}

    def task(self, name: str, source, info: TaskInfo, metric_fns, postprocess_fn=None) -> str:
        seqio.TaskRegistry.remove(name)
        seqio.TaskRegistry.add(name, source=source, output_features=self.features,
                               preprocessors=[seqio.preprocessors.tokenize,
                                              seqio.preprocessors.append_eos],
                               postprocess_fn=postprocess_fn, metric_fns=list(metric_fns))
        catalogue.TASKS[name] = info
        return name

    def mixture(self, name: str, tasks: list[str], clusters: Iterable[str]) -> None:
        seqio.MixtureRegistry.remove(name)
        seqio.MixtureRegistry.add(name, [(t, 1.0) for t in tasks])
        catalogue.MIXTURES[name] = tuple(dict.fromkeys(clusters))


def _info(name: str, cluster: str, dataset: str, kind: str, shots: int, metric: str) -> TaskInfo:
    return TaskInfo(name=name, collection=COLLECTION, cluster=cluster, dataset=dataset,
                    kind=kind, template_index=0, num_templates=1, num_shots=shots,
                    metrics=(metric,), is_classification=kind == "fewshot_rank", split="test")


def register(vocabulary: seqio.Vocabulary | None = None) -> None:
    """Registers (or re-registers) the MMLU and BBH tasks and mixtures."""
    add = _Adder(vocabulary or seqio.ByteVocabulary())
    names, clusters = [], []
    for subject in mmlu.SUBJECTS:
        name, cluster = f"{MMLU_MIXTURE}_{subject}", f"mmlu_{mmlu.CATEGORY[subject]}"
        source = _text_source(functools.partial(_mmlu_rows, subject), mmlu.SPLITS,
                              with_options=True)
        names.append(add.task(name, source, _info(name, cluster, f"mmlu_{subject}",
                                                  "fewshot_rank", mmlu.SHOTS, "accuracy"),
                              [t5_metrics.accuracy]))
        clusters.append(cluster)
    add.mixture(MMLU_MIXTURE, names, clusters)
    for variant, mixture in (("direct", BBH_MIXTURE), ("cot", BBH_COT_MIXTURE)):
        prefix = "bbh" if variant == "direct" else "bbh_cot"
        names, clusters = [], []
        for task in bbh.TASKS:
            name, cluster = f"{mixture}_{task}", f"{prefix}_{bbh.GROUP[task]}"
            source = _text_source(functools.partial(_bbh_rows, task, variant), ["test"])
            names.append(add.task(name, source, _info(name, cluster, f"{prefix}_{task}",
                                                      "fewshot_eval", 3, "exact_match"),
                                  [bbh.exact_match], bbh.postprocessor(variant)))
            clusters.append(cluster)
        add.mixture(mixture, names, clusters)
