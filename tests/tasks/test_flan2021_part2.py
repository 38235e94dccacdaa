"""The second half of the FLAN 2021 declarations, checked on TFDS mock data (no downloads).

`tfds.testing.mock_data(policy=USE_CODE)` builds random records with each dataset's real
feature structure, so every fields function runs on the shapes it will meet in training.
"""

from __future__ import annotations

import importlib
import importlib.util
import os

import pytest

tf = pytest.importorskip("tensorflow")
tfds = pytest.importorskip("tensorflow_datasets")

from tasks.spec import DatasetSpec  # noqa: E402
from tests.tasks.flan_checks import check_fields_dataset  # noqa: E402
from tasks.templates import render  # noqa: E402

MODULES = {
    "translation": "translation",
    "reading_comprehension": "reading_comprehension",
    "rc_commonsense": "rc_commonsense",
    "coreference": "coreference",
    "misc": "misc",
    "summarization": "summarization",
}
# TFDS datasets that tfds 4.9.10 cannot mock at all: name -> reason (none so far).
UNMOCKABLE: dict[str, str] = {}
NUM_EXAMPLES = 2


def _specs() -> list[DatasetSpec]:
    specs = []
    for module_name, cluster in MODULES.items():
        module = importlib.import_module(f"tasks.flan2021.{module_name}")
        for spec in list(module.DATASETS) + list(getattr(module, "EVAL_ONLY_DATASETS", [])):
            assert spec.cluster == cluster, (spec.name, spec.cluster)
            specs.append(spec)
    return specs


SPECS = _specs()
BY_NAME = {spec.name: spec for spec in SPECS}


def _param(spec: DatasetSpec):
    marks = []
    if spec.source.name in UNMOCKABLE:
        marks.append(pytest.mark.xfail(reason=UNMOCKABLE[spec.source.name], strict=True))
    return pytest.param(spec.name, marks=marks, id=spec.name)


PARAMS = [_param(spec) for spec in SPECS]


@pytest.fixture(scope="module")
def mocked():
    with tfds.testing.mock_data(
        num_examples=NUM_EXAMPLES, policy=tfds.testing.MockPolicy.USE_CODE
    ):
        yield


def test_names_unique_and_collection():
    names = [spec.name for spec in SPECS]
    assert len(names) == len(set(names))
    assert all(spec.collection == "flan2021" for spec in SPECS)
    assert all(spec.display_name for spec in SPECS)
    assert all(spec.metric_fns for spec in SPECS)


@pytest.mark.parametrize("name", [spec.name for spec in SPECS])
def test_template_counts(name):
    spec = BY_NAME[name]
    assert len(spec.templates) == 10
    assert sum(t.turned_around for t in spec.templates) <= 3
    assert len({(t.inputs, t.targets) for t in spec.templates}) == 10
    # The registry appends the OPTIONS suffix itself.
    assert not any("OPTIONS" in t.inputs for t in spec.templates)
    assert spec.eval_split in spec.source.splits


def _fields_dataset(spec: DatasetSpec, split: str) -> tf.data.Dataset:
    ds = tfds.load(spec.source.name, split=spec.source.splits[split])
    return ds.take(NUM_EXAMPLES).map(spec.fields_fn)


@pytest.mark.parametrize("name", PARAMS)
def test_fields_under_mock_data(mocked, name):
    spec = BY_NAME[name]
    for split in sorted({"train", spec.eval_split} & set(spec.source.splits)):
        ds = _fields_dataset(spec, split)
        produced = check_fields_dataset(name, spec, ds)
        if spec.is_classification:
            assert spec.answer_field in produced
        count = 0
        for fields in ds.as_numpy_iterator():
            count += 1
            if spec.is_classification:
                options = (
                    list(spec.options) if spec.options is not None
                    else [o.decode() for o in fields[spec.options_field]]
                )
                assert len(options) >= 2, (name, options)
                assert fields[spec.answer_field].decode() in options, (name, split, fields)
        assert count == NUM_EXAMPLES
        # Every template renders on these fields (the registry adds options and tokenizes).
        rendered = ds.map(
            lambda f: tf.stack(
                [render(text, f) for tp in spec.templates for text in (tp.inputs, tp.targets)]
            )
        )
        for texts in rendered.as_numpy_iterator():
            assert len(texts) == 2 * len(spec.templates)
            assert all(len(text) > 0 for text in texts), name


def _registered():
    """The flan2021 CollectionInfo (the package registers on import), None without a registry."""
    if importlib.util.find_spec("tasks.registry") is None:
        return None
    package = importlib.import_module("tasks.flan2021")
    info = getattr(package, "INFO", None)
    if info is None and hasattr(package, "register"):
        info = package.register()
    return info


INFO = _registered()
needs_registry = pytest.mark.skipif(INFO is None, reason="tasks.registry is not available")
# Registered datasets only: EVAL_ONLY_DATASETS (wsc273) get no tasks from the registry.
REGISTERED = [p for p in PARAMS if INFO is not None and p.values[0] in {
    s.name for s in INFO.specs}]


def _check_task(task_name: str, min_examples: int = 1) -> None:
    import seqio

    from tasks import registry

    info = registry.task_info(task_name)
    task = seqio.get_mixture_or_task(task_name)
    ds = task.get_dataset(sequence_length=None, split=info.split, shuffle=False)
    examples = list(ds.take(NUM_EXAMPLES).as_numpy_iterator())
    # Records with an empty required field are dropped; mock data rarely yields one.
    assert len(examples) >= min_examples, task_name
    for ex in examples:
        for feature in ("inputs", "targets"):
            assert ex[feature].ndim == 1 and ex[feature].size > 1, (task_name, feature)
            assert len(ex[f"{feature}_pretokenized"]) > 0, (task_name, feature)
        if info.is_classification:
            options = [o.decode() for o in ex["options"]]
            assert len(options) >= 2, task_name
            if info.kind == "rank":
                assert ex["targets_pretokenized"].decode() in options, task_name


def _task_names(spec: DatasetSpec, every_template: bool) -> list[str]:
    prefix = f"{INFO.name}_{spec.name}"
    names: list[str] = []
    if every_template:
        indices = list(range(len(spec.templates)))
    else:
        # The train task renders every template in its graph (one is picked per example);
        # add template 0 (as a rank task for classification) and the first turned-around one.
        names.append(f"{prefix}_train")
        turned = [i for i, tp in enumerate(spec.templates) if tp.turned_around]
        indices = [0] + turned[:1]
    for i in indices:
        rankable = spec.is_classification and not spec.templates[i].turned_around
        if every_template or not rankable:
            names.append(f"{prefix}_t{i}_eval")
        if rankable:
            names.append(f"{prefix}_t{i}_rank")
    return names


@needs_registry
@pytest.mark.parametrize("name", REGISTERED)
def test_registered_tasks_yield_tokenized_examples(mocked, name):
    for task_name in _task_names(BY_NAME[name], every_template=False):
        _check_task(task_name)


@pytest.mark.skipif(
    not os.environ.get("FLAN_TEST_ALL_TEMPLATES"),
    reason="builds ~350 tasks (about 4 minutes); set FLAN_TEST_ALL_TEMPLATES=1 (as part 1 does)",
)
@needs_registry
@pytest.mark.parametrize("name", REGISTERED)
def test_registered_tasks_render_every_template(mocked, name):
    """Every template's own eval task (and rank task) builds and tokenizes."""
    for task_name in _task_names(BY_NAME[name], every_template=True):
        _check_task(task_name)
