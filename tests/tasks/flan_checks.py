"""Checks shared by the FLAN 2021 test files (one file per cluster), all on TFDS mock data.

`tfds.testing.mock_data(policy=USE_CODE)` builds random records with each dataset's real feature
structure; `max_value=2` keeps mocked integer labels in range of two-way choices, so answers
mostly resolve (an unresolvable mocked answer is "", and the registry drops such records).

Every test file calls `cluster_tests(cluster)` for the per-dataset checks; building each task's
dataset costs about a second (tf.data tracing), so by default only a few tasks per dataset are
built; `FLAN_TEST_ALL_TEMPLATES=1 pytest -m all_templates tests/tasks` builds every template's.
"""

from __future__ import annotations

import importlib
import os
from typing import Any, Mapping

import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from tasks import names
from tasks.spec import DatasetSpec, TfdsSource
from tasks.templates import render, template_fields

NUM_EXAMPLES = 2
# Mocked StoryCloze labels 0 (labels are 1 or 2) resolve to nothing: mock more.
MORE_EXAMPLES = {"story_cloze": 16}
ALL_TEMPLATES = bool(os.environ.get("FLAN_TEST_ALL_TEMPLATES"))


def cluster_specs(cluster: str) -> list[DatasetSpec]:
    """The cluster module's DatasetSpecs."""
    specs = list(importlib.import_module(f"tasks.flan2021.{cluster}").DATASETS)
    assert all(s.cluster == cluster for s in specs), cluster
    return specs


def mock(num_examples: int = NUM_EXAMPLES):
    return tfds.testing.mock_data(
        num_examples=num_examples, max_value=2, policy=tfds.testing.MockPolicy.USE_CODE
    )


def _arc_records() -> dict[str, Any]:
    """Mocked ARC questions have any number of choices, and ARC keeps only 4-choice ones."""
    return {"id": ["q1", "q2"], "question": ["Which is a gas?", "Which is a metal?"],
            "answerKey": [1, 3],
            "choices": {"text": [["ice", "steam", "rock", "wood"],
                                 ["salt", "glass", "paper", "iron"]],
                        "label": [[0, 1, 2, 3], [0, 1, 2, 3]]}}


def _para_crawl_enda_records() -> dict[str, Any]:
    """Mocked sentences may have no capitals, which True Case drops."""
    return {"en": ["The Danish Parliament met in Copenhagen.", "Hello, World!"],
            "da": ["Folketinget mødtes i København.", "Hej, verden!"]}


# Datasets whose filters drop random mock records: served these records instead.
HAND_MADE_MOCKS = {"arc_easy": _arc_records, "arc_challenge": _arc_records,
                   "true_case": _para_crawl_enda_records}


def mock_for(spec: DatasetSpec):
    """Mock data that `spec`'s records survive (hand-made records where filters need them)."""
    if spec.name in HAND_MADE_MOCKS:
        records = HAND_MADE_MOCKS[spec.name]()
        return tfds.testing.mock_data(
            as_dataset_fn=lambda *args, **kwargs: tf.data.Dataset.from_tensor_slices(records))
    return mock(MORE_EXAMPLES.get(spec.name, NUM_EXAMPLES))


def fields_of(spec: DatasetSpec, record: Mapping[str, Any]) -> dict[str, Any]:
    """Runs a spec's fields function eagerly on one hand-made raw record (python values)."""

    def tensors(value):
        if isinstance(value, dict):
            return {k: tensors(v) for k, v in value.items()}
        return tf.constant(value)

    out = spec.fields_fn({k: tensors(v) for k, v in record.items()})
    return {k: v.numpy() for k, v in out.items()}


def decoded(value) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if hasattr(value, "tolist"):
        return [v.decode() if isinstance(v, bytes) else v for v in value.tolist()] \
            if getattr(value, "ndim", 0) else decoded(value.item())
    return value


def options_of(spec: DatasetSpec, fields) -> list[str]:
    if spec.options is not None:
        return list(spec.options)
    return [decoded(o) for o in fields[spec.options_field]]


def check_templates(spec: DatasetSpec) -> None:
    assert len(spec.templates) == 10
    assert sum(t.turned_around for t in spec.templates) <= 3
    assert len({(t.inputs, t.targets) for t in spec.templates}) == 10
    assert not any("OPTIONS" in t.inputs for t in spec.templates)  # the registry adds it
    assert isinstance(spec.source, TfdsSource)
    assert spec.eval_split in spec.source.splits
    assert spec.collection == "flan2021" and spec.display_name and spec.metric_fns
    if spec.is_classification:
        plain = [t for t in spec.templates if not t.turned_around]
        assert all(t.targets == "{" + spec.answer_field + "}" for t in plain), spec.name
        if spec.options is not None:
            assert len(set(spec.options)) == len(spec.options) >= 2


def check_fields_dataset(name: str, spec, ds: tf.data.Dataset) -> set[str]:
    """Every template field is produced; fields are scalar strings (options: 1-D); returns the
    produced field names."""
    produced = set(ds.element_spec)
    for i, template in enumerate(spec.templates):
        used = set(template_fields(template.inputs) + template_fields(template.targets))
        assert used <= produced, f"{name} template {i}: missing {used - produced}"
    for field, field_spec in ds.element_spec.items():
        assert field_spec.dtype == tf.string, (name, field)
        expected_rank = 1 if field in (spec.options_field, spec.answers_field) else 0
        assert field_spec.shape.rank == expected_rank, (name, field, field_spec.shape)
    return produced


def check_fields_under_mock_data(spec: DatasetSpec) -> None:
    """Fields of the train and eval splits: produced, typed, answers among the options, and
    every template renders non-empty text."""
    with mock_for(spec):
        for split in sorted({"train", spec.eval_split} & set(spec.source.splits)):
            ds = tfds.load(spec.source.name, split=spec.source.splits[split])
            ds = ds.take(NUM_EXAMPLES).map(spec.fields_fn)
            produced = check_fields_dataset(spec.name, spec, ds)
            rows = list(ds.as_numpy_iterator())
            assert len(rows) == NUM_EXAMPLES, (spec.name, split)
            if spec.is_classification:
                assert spec.answer_field in produced
                for fields in rows:
                    answer = decoded(fields[spec.answer_field])
                    # "" marks an unresolvable mocked label; the registry drops such records.
                    assert answer == "" or answer in options_of(spec, fields), (spec.name, split)
            rendered = ds.map(lambda f: tf.stack(
                [render(text, f) for tp in spec.templates for text in (tp.inputs, tp.targets)]))
            for texts in rendered.as_numpy_iterator():
                assert len(texts) == 2 * len(spec.templates)


def task_names_to_build(spec: DatasetSpec, every_template: bool) -> list[str]:
    """By default the train task (it renders every template in its graph), template 0 (as a
    rank task for classification) and the first turned-around template; or every template."""
    c = spec.collection
    out: list[str] = []
    if every_template:
        indices = list(range(len(spec.templates)))
    else:
        if "train" in spec.source.splits and not spec.eval_only:
            out.append(names.train_task(c, spec.name))
        turned = [i for i, tp in enumerate(spec.templates) if tp.turned_around]
        indices = [0] + turned[:1]
    for i in indices:
        rankable = spec.is_classification and not spec.templates[i].turned_around
        if every_template or not rankable:
            out.append(names.eval_task(c, spec.name, i))
        if rankable:
            out.append(names.rank_task(c, spec.name, i))
    return out


def check_task(task_name: str, spec: DatasetSpec) -> None:
    """A registered task's dataset builds under mock data: tokenized, EOS, OPTIONS as due."""
    import seqio

    from tasks import catalogue

    info = catalogue.task_info(task_name)
    task = seqio.get_mixture_or_task(task_name)
    with mock_for(spec):
        ds = task.get_dataset(sequence_length=None, split=info.split, shuffle=False,
                              use_cached=False)
        examples = list(ds.take(NUM_EXAMPLES).as_numpy_iterator())
    assert examples, f"{task_name}: no examples under mock data"
    for ex in examples:
        assert ex["inputs"].size > 1 and ex["targets"].size >= 1, task_name
        assert ex["inputs"][-1] == 1 and ex["targets"][-1] == 1  # EOS
        text = ex["inputs_pretokenized"].decode()
        if info.template_index is not None:
            turned = spec.templates[info.template_index].turned_around
            wants_options = spec.is_classification and not turned
            assert text.count("OPTIONS:") == (1 if wants_options else 0), (task_name, text)
        if spec.answers_field is not None and info.kind in ("eval", "fewshot_eval"):
            assert ex["answers"].ndim == 1, task_name  # every gold answer travels along
        if info.kind == "rank":
            options = [o.decode() for o in ex["options"]]
            assert ex["targets_pretokenized"].decode() in options, task_name


def cluster_tests(cluster: str, namespace: dict) -> None:
    """Adds the per-dataset tests of `cluster` to a test module's namespace."""
    specs = {s.name: s for s in cluster_specs(cluster)}
    params = pytest.mark.parametrize("name", list(specs))
    registered = params

    @params
    def test_templates(name):
        check_templates(specs[name])

    @params
    def test_fields_under_mock_data(name):
        check_fields_under_mock_data(specs[name])

    @registered
    def test_registered_tasks_build(name, flan):
        for task_name in task_names_to_build(specs[name], every_template=False):
            check_task(task_name, specs[name])

    @pytest.mark.all_templates
    @pytest.mark.skipif(not ALL_TEMPLATES, reason="set FLAN_TEST_ALL_TEMPLATES=1 (minutes)")
    @registered
    def test_every_template_task_builds(name, flan):
        for task_name in task_names_to_build(specs[name], every_template=True):
            check_task(task_name, specs[name])

    namespace.update(
        test_templates=test_templates,
        test_fields_under_mock_data=test_fields_under_mock_data,
        test_registered_tasks_build=test_registered_tasks_build,
        test_every_template_task_builds=test_every_template_task_builds,
    )
