"""The first half of the FLAN 2021 declarations, checked on TFDS mock data (no downloads).

`tfds.testing.mock_data(policy=USE_CODE)` builds random records with each dataset's real feature
structure; `max_value=2` keeps mocked integer labels in range of two-way choices, so answers
resolve and the registry keeps the records.
"""

from __future__ import annotations

import importlib
import importlib.util
import os

import pytest

tf = pytest.importorskip("tensorflow")
tfds = pytest.importorskip("tensorflow_datasets")

from tasks.spec import DatasetSpec, TfdsSource  # noqa: E402
from tests.tasks.flan_checks import check_fields_dataset  # noqa: E402

CLUSTERS = ("nli", "commonsense", "sentiment", "paraphrase", "closed_book_qa", "struct_to_text")
NUM_EXAMPLES = 2
# Mocked Sentiment140 polarities are 0 or 1, and 1 (not a FLAN label) is dropped: mock more.
MORE_EXAMPLES = {"sentiment140": 16}


def _specs() -> list[DatasetSpec]:
    specs = []
    for cluster in CLUSTERS:
        module = importlib.import_module(f"tasks.flan2021.{cluster}")
        for spec in module.DATASETS:
            assert spec.cluster == cluster, (spec.name, spec.cluster)
            specs.append(spec)
    return specs


SPECS = _specs()
BY_NAME = {spec.name: spec for spec in SPECS}
NAMES = [spec.name for spec in SPECS]


def _mock(num_examples: int = NUM_EXAMPLES):
    return tfds.testing.mock_data(
        num_examples=num_examples, max_value=2, policy=tfds.testing.MockPolicy.USE_CODE
    )


@pytest.fixture  # per test: tests below must see the real TFDS
def mocked():
    with _mock():
        yield


def test_the_datasets_of_part_one():
    assert NAMES == [
        "anli_r1", "anli_r2", "anli_r3", "cb", "mnli_matched", "mnli_mismatched", "qnli", "rte",
        "snli", "wnli",
        "copa", "hellaswag", "piqa", "story_cloze",
        "imdb_reviews", "sentiment140", "sst2", "yelp_polarity_reviews",
        "mrpc", "qqp", "paws_wiki", "stsb",
        "arc_easy", "arc_challenge", "natural_questions", "trivia_qa",
        "common_gen", "dart", "e2e_nlg", "web_nlg_en",
    ]
    assert all(spec.collection == "flan2021" for spec in SPECS)
    assert all(spec.display_name and spec.metric_fns for spec in SPECS)


@pytest.mark.parametrize("name", NAMES)
def test_templates(name):
    spec = BY_NAME[name]
    assert len(spec.templates) == 10
    assert sum(t.turned_around for t in spec.templates) <= 3
    assert len({(t.inputs, t.targets) for t in spec.templates}) == 10
    assert not any("OPTIONS" in t.inputs for t in spec.templates)  # the registry adds it
    assert isinstance(spec.source, TfdsSource)
    assert {"train", spec.eval_split} <= set(spec.source.splits)
    if spec.is_classification:
        plain = [t for t in spec.templates if not t.turned_around]
        assert all(t.targets == "{" + spec.answer_field + "}" for t in plain), name
        if spec.options is not None:
            assert len(set(spec.options)) == len(spec.options) >= 2


def _fields(spec: DatasetSpec, split: str) -> tf.data.Dataset:
    ds = tfds.load(spec.source.name, split=spec.source.splits[split])
    return ds.take(NUM_EXAMPLES).map(spec.fields_fn)


def _options(spec: DatasetSpec, fields) -> list[str]:
    if spec.options is not None:
        return list(spec.options)
    return [o.decode() for o in fields[spec.options_field]]


@pytest.mark.parametrize("name", NAMES)
def test_fields_under_mock_data(mocked, name):
    spec = BY_NAME[name]
    for split in sorted({"train", spec.eval_split}):
        ds = _fields(spec, split)
        produced = check_fields_dataset(name, spec, ds)
        rows = list(ds.as_numpy_iterator())
        assert len(rows) == NUM_EXAMPLES
        if spec.is_classification:
            assert spec.answer_field in produced
            for fields in rows:
                answer = fields[spec.answer_field].decode()
                # "" marks an unresolvable mocked label; the registry drops such records.
                assert answer == "" or answer in _options(spec, fields), (name, split, fields)


# Real-shaped records with known answers, for the fields functions that pick an answer.
HAND_MADE = {
    "cb": ({"premise": "p", "hypothesis": "h", "idx": 0, "label": 2}, "it is not possible to tell"),
    "wnli": ({"sentence1": "a", "sentence2": "b", "idx": 0, "label": 1}, "yes"),
    "qnli": ({"question": "q", "sentence": "s", "idx": 0, "label": 1}, "no"),
    "copa": ({"premise": "The man fell.", "question": "cause", "choice1": "He slipped.",
              "choice2": "He sang.", "idx": 0, "label": 0}, "He slipped."),
    "hellaswag": ({"context": "c", "activity_label": "a", "endings": ["w", "x", "y", "z"],
                   "label": 2, "source_id": "", "split_type": ""}, "y"),
    "piqa": ({"goal": "Open a jar.", "id": "", "sol1": "Twist the lid.", "sol2": "Eat it.",
              "label": 0}, "Twist the lid."),
    "story_cloze": ({"context": "c", "endings": ["e1", "e2"], "label": 1}, "e2"),
    "sentiment140": ({"text": "t", "polarity": 4, "date": "", "query": "", "user": ""},
                     "positive"),
    "stsb": ({"sentence1": "a", "sentence2": "b", "idx": 0, "label": 3.6}, "4"),
    "arc_easy": ({"id": "", "question": "q", "answerKey": 3,
                  "choices": {"text": ["a", "b", "c", "d"], "label": [0, 1, 2, 3]}}, "d"),
    "natural_questions": ({"question": "q", "answer": ["a1", "a2"]}, "a1"),
}


@pytest.mark.parametrize("name", sorted(HAND_MADE))
def test_answers_of_hand_made_records(name):
    spec = BY_NAME[name]
    record, expected = HAND_MADE[name]
    fields = spec.fields_fn({k: tf.constant(v) for k, v in record.items()
                             if not isinstance(v, dict)}
                            | {k: {kk: tf.constant(vv) for kk, vv in v.items()}
                               for k, v in record.items() if isinstance(v, dict)})
    answer = fields["answer"].numpy().decode()
    assert answer == expected
    if spec.is_classification:
        options = (list(spec.options) if spec.options is not None
                   else [o.decode() for o in fields[spec.options_field].numpy()])
        assert answer in options


def test_sentiment140_neutral_is_dropped():
    fields = BY_NAME["sentiment140"].fields_fn(
        {"text": tf.constant("t"), "polarity": tf.constant(2)})
    assert fields["answer"].numpy() == b""


# ---- the collection, registered -------------------------------------------------------------

registry_available = importlib.util.find_spec("tasks.registry") is not None
needs_registry = pytest.mark.skipif(not registry_available, reason="tasks.registry not written")


@pytest.fixture(scope="module")
def collection():
    import seqio

    import tasks  # noqa: F401 - registers every collection
    from tasks import flan2021, registry

    info = registry.collection_info("flan2021")
    assert isinstance(info.vocabulary, seqio.ByteVocabulary)  # no spm_path bound
    assert flan2021.INFO is info
    return info


@needs_registry
def test_collection_clusters_and_exclusions(collection):
    from tasks import flan2021

    assert set(CLUSTERS) <= set(collection.clusters)
    assert collection.cluster_order == flan2021.CLUSTER_ORDER
    assert not set(collection.cluster_order) & {"nli", "closed_book_qa", "commonsense"}
    held_out_nli = collection.training_clusters("nli")
    assert "paraphrase" not in held_out_nli and "sentiment" in held_out_nli
    assert "nli" not in collection.training_clusters("paraphrase")
    names = {s.name for s in flan2021.datasets_for_mixture("flan2021_heldout_nli_train")}
    assert not names & {"rte", "mrpc", "stsb"} and {"sst2", "copa"} <= names


def _templates_to_build(spec: DatasetSpec) -> list[int]:
    """Building a task's dataset costs about a second (tf.data tracing), so by default the
    end-to-end check builds the first template and the first turned-around one (OPTIONS and no
    OPTIONS); FLAN_TEST_ALL_TEMPLATES=1 builds all ten. Every template is still rendered below."""
    if os.environ.get("FLAN_TEST_ALL_TEMPLATES"):
        return list(range(len(spec.templates)))
    turned = [i for i, t in enumerate(spec.templates) if t.turned_around]
    return [0] + turned[:1]


@needs_registry
@pytest.mark.parametrize("name", NAMES)
def test_registered_tasks_yield_tokenized_examples(mocked, collection, name):
    import seqio

    spec = BY_NAME[name]
    with _mock(MORE_EXAMPLES.get(name, NUM_EXAMPLES)):
        for i in _templates_to_build(spec):
            template = spec.templates[i]
            task = seqio.get_mixture_or_task(f"flan2021_{name}_t{i}_eval")
            assert isinstance(task.output_features["inputs"].vocabulary, seqio.ByteVocabulary)
            ds = task.get_dataset(sequence_length=None, split=spec.eval_split, shuffle=False,
                                  use_cached=False)
            examples = list(ds.take(1).as_numpy_iterator())
            assert examples, f"{name} template {i}: no examples under mock data"
            ex = examples[0]
            assert ex["inputs"].size > 1 and ex["targets"].size >= 1
            assert ex["inputs"][-1] == 1 and ex["targets"][-1] == 1  # EOS
            text = ex["inputs_pretokenized"].decode()
            wants_options = spec.is_classification and not template.turned_around
            assert text.count("OPTIONS:") == (1 if wants_options else 0), (name, i, text)


@pytest.mark.parametrize("name", NAMES)
def test_every_template_renders(name):
    """All ten templates, rendered eagerly with tasks.templates on mocked fields."""
    from tasks import templates as tpl

    spec = BY_NAME[name]
    with _mock(MORE_EXAMPLES.get(name, NUM_EXAMPLES)):
        ds = tfds.load(spec.source.name, split=spec.source.splits[spec.eval_split])
        for fields in ds.take(1).map(spec.fields_fn):
            for i, template in enumerate(spec.templates):
                inputs = tpl.render(template.inputs, fields).numpy().decode()
                targets = tpl.render(template.targets, fields)
                assert inputs.strip(), (name, i)
                assert inputs.startswith(template.inputs.split("{")[0]), (name, i)
                for field in tpl.template_fields(template.inputs):
                    assert "{" + field + "}" not in inputs, (name, i, field)
                assert targets.dtype == tf.string and targets.shape.rank == 0


# ---- flan-jax data prepare ------------------------------------------------------------------


@pytest.fixture
def offline_tfds(monkeypatch, tmp_path):
    """download_and_prepare always fails (as it does without network); records who called."""
    from flan_jax import data_cli

    calls = []

    def unreachable(self, *args, **kwargs):
        calls.append(self.data_dir)
        raise ConnectionError(f"could not reach the download server for {self.name}")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", unreachable)
    # A dataset counts as prepared when our sentinel sits in its variant dir.
    monkeypatch.setattr(data_cli, "_is_prepared",
                        lambda b: os.path.exists(os.path.join(b.data_dir, "SENTINEL")))
    return tmp_path / "data", calls


def test_data_prepare_reports_failures_and_keeps_prepared(offline_tfds, capsys):
    from flan_jax import data_cli

    data_dir, calls = offline_tfds
    sentinel = data_dir / "super_glue" / "rte" / "1.0.2" / "SENTINEL"
    sentinel.parent.mkdir(parents=True)
    sentinel.write_text("prepared earlier")

    rc = data_cli.main(["prepare", "nli", "--data_dir", str(data_dir),
                        "--datasets", "rte,cb,snli,glue/mnli"])
    out = capsys.readouterr().out
    assert rc == 1
    rows = {line.split()[0]: line for line in out.splitlines() if ":" in line.split(" ")[0]}
    assert "ready" in rows["super_glue/rte:1.0.2"]
    for name in ("super_glue/cb:1.0.2", "snli:1.1.0", "glue/mnli:2.0.0"):
        assert "failed" in rows[name] and "could not reach" in rows[name], out
    assert "mnli_matched,mnli_mismatched" in rows["glue/mnli:2.0.0"]  # prepared once
    assert len(calls) == 3 and not any("rte" in c for c in calls)
    assert sentinel.read_text() == "prepared earlier"
    assert "1 ready, 0 needs manual download, 3 failed" in out


def test_data_prepare_manual_download_and_bad_subset(offline_tfds, capsys):
    from flan_jax import data_cli

    data_dir, calls = offline_tfds
    rc = data_cli.main(["prepare", "flan2021_commonsense_eval", "--data_dir", str(data_dir),
                        "--datasets", "story_cloze"])
    out = capsys.readouterr().out
    assert rc == 0 and not calls
    assert "needs manual download" in out and "cloze_test_val__spring2016.csv" in out
    rc = data_cli.main(["prepare", "nli", "--datasets", "not_a_dataset"])
    assert rc == 2
    assert "not_a_dataset" in capsys.readouterr().err
