"""tasks.sources: generated records (bad ones counted), train caps, mixing rates."""

import gin
import seqio

from tasks import catalogue, names, registry, sources
from tests.tasks.fake_specs import generator, spec


def test_record_problem():
    fields = {"x": str, "answer": str}
    assert sources.record_problem({"x": "a", "answer": "b"}, fields) is None
    assert sources.record_problem({"x": "a"}, fields) == "missing field `answer`"
    assert sources.record_problem({"x": "", "answer": "b"}, fields) == "empty field `x`"


def test_mixing_rates_follow_caps(fake):
    mixture = seqio.get_mixture_or_task(names.all_train_mixture("faketest"))
    rates = {t.name: mixture.get_rate(t) for t in mixture.tasks}
    assert rates[names.train_task("faketest", "a1")] == 50
    assert rates[names.train_task("faketest", "a2")] == 3000  # default rate cap
    try:
        gin.parse_config(["tasks.mixing_caps.rate_cap = 45",
                          "tasks.mixing_caps.max_train_examples = 35"])
        rates = {t.name: mixture.get_rate(t) for t in mixture.tasks}
        assert rates[names.train_task("faketest", "a1")] == 35
        assert rates[names.train_task("faketest", "d1")] == 20
        gin.parse_config(["tasks.mixing_caps.rate_cap = 25"])
        task = seqio.get_mixture_or_task(names.train_task("faketest", "a1"))
        assert mixture.get_rate(task) == 25
        gin.parse_config(["tasks.mixing_caps.max_train_examples = 7"])
        ds = task.get_dataset(None, split="train", shuffle=False)
        assert len(list(ds)) == 7  # the train cap applies when the dataset is built
    finally:
        gin.clear_config()


def test_bad_generator_records_are_counted(caplog):
    noisy = spec("noisy", "alpha", size=40, bad_every=10, collection="noisytest")
    registry.register_collection([noisy], replace=True)
    with caplog.at_level("WARNING"):
        ds = seqio.get_mixture_or_task(names.train_task("noisytest", "noisy")).get_dataset(
            None, split="train", shuffle=False)
        n = len(list(ds))
    problems = catalogue.record_problems()
    missing = problems[("noisytest", "noisy", "train", "missing field `answer`")]
    empty = problems[("noisytest", "noisy", "train", "empty field `x`")]
    assert (missing, empty) == (2, 2)
    assert n == 36
    assert "dropped 4 of 40" in caplog.text


def test_generated_records_are_deterministic_and_cached():
    s = spec("det", "alpha", size=5, collection="dettest")
    first = sources.generated_columns(s, "train", seed=3)
    assert sources.generated_columns(s, "train", seed=3) is first  # generated once
    assert [x.decode() for x in first["x"].numpy()] == [f"item train 3 {i}" for i in range(5)]
    sources.forget_collection("dettest")
    assert sources.generated_columns(s, "train", seed=3) is not first


def test_unknown_split_names_the_splits():
    import pytest

    s = spec("nosplit", "alpha", collection="splittest")
    assert s.source.num_examples == generator(50).num_examples
    with pytest.raises(ValueError, match="no split `test`"):
        sources.raw_dataset(s, "test", seed=0, shuffle_files=False)


def test_capped_train_split_is_a_fixed_subset(monkeypatch):
    """The cap takes the first N records in file order, never after shuffled file reads."""
    import tensorflow as tf
    import tensorflow_datasets as tfds

    from tasks.spec import DatasetSpec, Template, TfdsSource

    calls = []

    def load(name, split, shuffle_files):
        calls.append((split, shuffle_files))
        return tf.data.Dataset.range(10)

    monkeypatch.setattr(tfds, "load", load)
    s = DatasetSpec(name="capped", collection="captest", cluster="a",
                    source=TfdsSource("x:1.0.0", {"train": "train", "validation": "validation"}),
                    templates=(Template("{x}", "{y}"),))
    try:
        gin.parse_config(["tasks.mixing_caps.max_train_examples = 4"])
        ds = sources.raw_dataset(s, "train", seed=0, shuffle_files=True, cap_train=True)
        assert list(ds.as_numpy_iterator()) == [0, 1, 2, 3]
        assert calls[-1] == ("train", False)
        sources.raw_dataset(s, "validation", seed=0, shuffle_files=True, cap_train=True)
        assert calls[-1] == ("validation", True)  # evaluation splits are read whole
    finally:
        gin.clear_config()
