"""Registers the file-backed Flan 2022 tasks and mixtures with seqio (and `tasks.catalogue`).

Training (collection `flan2022`):
    flan2022_niv2_{TASK}_{zs_opt,fs_opt}          1,597 NIv2 tasks
    flan2022_t0_{PROMPT}_{zs_opt,zs_noopt,fs_opt,fs_noopt}   193 T0-SF prompts
    flan2022_niv2_submix, flan2022_t0_submix      each task at min(cap, the release's count),
                                                  split evenly over its styles
Held-out benchmarks (evaluation only, in no training mixture):
    mmlu_5shot_{SUBJECT} -> mixture mmlu_5shot    rank classification over A-D, accuracy
    bbh_3shot_{TASK}, bbh_cot_3shot_{TASK} -> bbh_3shot, bbh_cot_3shot   exact match
Clusters (the evaluation report's rows): mmlu_{stem,humanities,social_sciences,other},
bbh_{nlp,algorithmic}, bbh_cot_{nlp,algorithmic}.

Files are read only when a task's dataset is requested, from `downloads.data_dir()` (or the
fixtures while `mock_files.active()`); a missing file names `flan-jax data prepare`.
"""

from __future__ import annotations

import functools
import os
from typing import Callable, Iterable

import seqio
import tensorflow as tf
from t5.evaluation import metrics as t5_metrics

from tasks import catalogue
from tasks.catalogue import TaskInfo
from tasks.flan2022 import bbh, downloads, mmlu, mock_files, niv2, readers, t0_sf
from tasks.flan2022.styles_files import render_task

COLLECTION = "flan2022"
NIV2_MIXTURE, T0_MIXTURE = "flan2022_niv2_submix", "flan2022_t0_submix"
MMLU_MIXTURE, BBH_MIXTURE, BBH_COT_MIXTURE = "mmlu_5shot", "bbh_3shot", "bbh_cot_3shot"
SEED = 0


def _root(kind: str, name: str) -> tuple[str, str]:
    """(data root, the name to read): the fixtures' stand-in while mocked."""
    mock = mock_files.root()
    if mock is None:
        return downloads.data_dir(), name
    fixtures = {"niv2": list(mock_files.NIV2)[:-1], "p3": list(mock_files.P3),
                "mmlu": [mock_files.MMLU_SUBJECT], "bbh": [mock_files.BBH_TASK]}[kind]
    return mock, mock_files.stand_in(name, fixtures)


def _text_source(rows_fn: Callable[[str], Iterable[dict]], splits: Iterable[str],
                 with_options: bool = False) -> seqio.DataSource:
    signature = {"inputs": tf.TensorSpec([], tf.string), "targets": tf.TensorSpec([], tf.string)}
    if with_options:
        signature["options"] = tf.TensorSpec([None], tf.string)

    def dataset_fn(split: str, shuffle_files: bool, seed: int | None = None):
        del shuffle_files, seed  # rows are read in file order (the caps take the first ones)
        return tf.data.Dataset.from_generator(lambda: iter(rows_fn(split)),
                                              output_signature=signature)

    return seqio.FunctionDataSource(dataset_fn, splits=tuple(splits))


def _niv2_rows(name: str, style: str, vocab: seqio.Vocabulary, split: str):
    root, read = _root("niv2", name)
    task = readers.niv2_task(niv2.task_file(root, read))
    task = readers.NIv2Task(name, task.definition, task.positive_examples, task.instances)
    records, positives = niv2.records(task)
    return render_task(name, records, style, niv2.TEMPLATES, SEED,
                       lambda s: len(vocab.encode(s)), lambda i: positives)


def _t0_rows(prompt: t0_sf.Prompt, style: str, vocab: seqio.Vocabulary, split: str):
    import itertools

    root, read = _root("p3", prompt.name)
    rows = itertools.islice(readers.p3_rows(t0_sf.prompt_folder(root, read), "train"), t0_sf.CAP)
    records = [t0_sf.to_record(r, prompt) for r in rows]
    # Exemplars: the rows after the example, in order (never the example itself).
    others = lambda i: [records[(i + k) % len(records)] for k in range(1, min(6, len(records)))]
    return render_task(prompt.name, records, style, t0_sf.TEMPLATES, SEED,
                       lambda s: len(vocab.encode(s)), others)


def _mmlu_rows(subject: str, split: str):
    root, read = _root("mmlu", subject)
    return mmlu.examples(os.path.join(root, "mmlu"), read, split)


def _bbh_rows(task: str, variant: str, split: str):
    root, read = _root("bbh", task)
    return bbh.examples(os.path.join(root, "bbh"), read, variant)


class _Adder:
    def __init__(self, vocabulary: seqio.Vocabulary):
        self.vocab = vocabulary
        self.features = {k: seqio.Feature(vocabulary, add_eos=True) for k in ("inputs", "targets")}

    def task(self, name: str, source, info: dict, metric_fns=(), postprocess_fn=None) -> str:
        seqio.TaskRegistry.remove(name)
        seqio.TaskRegistry.add(name, source=source, output_features=self.features,
                               preprocessors=[seqio.preprocessors.tokenize,
                                              seqio.preprocessors.append_eos],
                               postprocess_fn=postprocess_fn, metric_fns=list(metric_fns))
        catalogue.TASKS[name] = TaskInfo(name=name, collection=COLLECTION, **info)
        return name

    def mixture(self, name: str, tasks: list, clusters: Iterable[str]) -> None:
        seqio.MixtureRegistry.remove(name)
        seqio.MixtureRegistry.add(name, tasks)
        catalogue.MIXTURES[name] = tuple(dict.fromkeys(clusters))


def task_name(*parts: str) -> str:
    """A seqio-valid task name: characters outside [\\w.:#] (NIv2 has "-") become "_"."""
    return niv2.canonical("_".join(parts))


def _train_info(cluster: str, dataset: str, n_templates: int) -> dict:
    return dict(cluster=cluster, dataset=dataset, kind="train", template_index=None,
                num_templates=n_templates, num_shots=0, metrics=(), is_classification=False,
                split="train")


def register_training(add: _Adder) -> None:
    niv2_tasks = []
    for name in niv2.task_names():
        for style in niv2.STYLES:
            source = _text_source(functools.partial(_niv2_rows, name, style, add.vocab),
                                  ["train"])
            t = add.task(task_name("flan2022_niv2", name, style), source,
                         _train_info("niv2", name, len(niv2.TEMPLATES)))
            niv2_tasks.append((t, niv2.rate(name) / len(niv2.STYLES)))
    add.mixture(NIV2_MIXTURE, niv2_tasks, ["niv2"])
    t0_tasks = []
    for prompt in t0_sf.prompts():
        for style in t0_sf.STYLES:
            source = _text_source(functools.partial(_t0_rows, prompt, style, add.vocab),
                                  ["train"])
            t = add.task(task_name("flan2022_t0", prompt.name, style), source,
                         _train_info("t0", prompt.dataset, 1))
            t0_tasks.append((t, t0_sf.rate(prompt) / len(t0_sf.STYLES)))
    add.mixture(T0_MIXTURE, t0_tasks, ["t0"])


def _eval_info(cluster: str, dataset: str, kind: str, shots: int, metric: str,
               split: str) -> dict:
    return dict(cluster=cluster, dataset=dataset, kind=kind, template_index=0, num_templates=1,
                num_shots=shots, metrics=(metric,), is_classification=kind == "fewshot_rank",
                split=split)


def register_heldout(add: _Adder) -> None:
    names, clusters = [], []
    for subject in mmlu.SUBJECTS:
        cluster = f"mmlu_{mmlu.CATEGORY[subject]}"
        source = _text_source(functools.partial(_mmlu_rows, subject), mmlu.SPLITS,
                              with_options=True)
        names.append(add.task(f"mmlu_5shot_{subject}", source,
                              _eval_info(cluster, f"mmlu_{subject}", "fewshot_rank",
                                         mmlu.SHOTS, "accuracy", "test"),
                              metric_fns=[t5_metrics.accuracy]))
        clusters.append(cluster)
    add.mixture(MMLU_MIXTURE, [(n, 1.0) for n in names], clusters)
    for variant, mixture in (("direct", BBH_MIXTURE), ("cot", BBH_COT_MIXTURE)):
        prefix = "bbh" if variant == "direct" else "bbh_cot"
        names, clusters = [], []
        for task in bbh.TASKS:
            cluster = f"{prefix}_{bbh.GROUP[task]}"
            source = _text_source(functools.partial(_bbh_rows, task, variant), ["test"])
            names.append(add.task(f"{mixture}_{task}", source,
                                  _eval_info(cluster, f"{prefix}_{task}", "fewshot_eval", 3,
                                             "exact_match", "test"),
                                  metric_fns=[bbh.exact_match],
                                  postprocess_fn=bbh.postprocessor(variant)))
            clusters.append(cluster)
        add.mixture(mixture, [(n, 1.0) for n in names], clusters)


def register(vocabulary: seqio.Vocabulary | None = None) -> None:
    """Registers (or re-registers) every file-backed task and mixture."""
    add = _Adder(vocabulary or seqio.ByteVocabulary())
    register_training(add)
    register_heldout(add)
