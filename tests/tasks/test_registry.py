"""tasks.registry: registration checks, held-out exclusions, mixing caps, bad records."""

import gin
import numpy as np
import pytest
import seqio
from t5.evaluation import metrics

import tasks  # noqa: F401 - registers the synthetic suite
from tasks import registry
from tasks.spec import ClusterExclusion, DatasetSpec, GeneratorSource, Template

COLLECTION = "faketest"


def _gen(size: int, bad_every: int = 0):
    def generate(split, seed):
        i = 0
        while True:
            record = {"x": f"item {split} {seed} {i}", "answer": "yes" if i % 2 else "no"}
            if bad_every and i % bad_every == 0:
                record = {"x": f"item {i}"} if (i // bad_every) % 2 else {"x": "", "answer": "no"}
            yield record
            i += 1

    return GeneratorSource(generate=generate, output_fields={"x": str, "answer": str},
                           num_examples={"train": size, "validation": 10})


def _spec(name, cluster, size=50, templates=None, bad_every=0, collection=COLLECTION):
    return DatasetSpec(
        name=name, collection=collection, cluster=cluster, source=_gen(size, bad_every),
        templates=templates or (Template("{x}?", "{answer}"),
                                Template("Say {x}.", "{answer}"),
                                Template("Make a {answer} item.", "{x}", turned_around=True)),
        options=("yes", "no"), metric_fns=(metrics.accuracy,),
    )


@pytest.fixture(scope="module")
def fake():
    specs = [_spec("a1", "alpha", 50), _spec("a2", "alpha", 8000), _spec("b1", "beta", 40),
             _spec("c1", "gamma", 30), _spec("d1", "delta", 20)]
    return registry.register_collection(
        specs, exclusions=[ClusterExclusion("alpha", ("beta",))],
        cluster_order=["gamma", "beta", "alpha"], replace=True,
    )


def _mixture_tasks(name):
    return sorted(t.name for t in seqio.get_mixture_or_task(name).tasks)


def test_heldout_mixtures_obey_exclusions(fake):
    assert fake.training_clusters("alpha") == ("gamma", "delta")
    assert _mixture_tasks(f"{COLLECTION}_heldout_alpha_train") == [
        f"{COLLECTION}_c1_train", f"{COLLECTION}_d1_train"]
    assert registry.mixture_clusters(f"{COLLECTION}_heldout_alpha_train") == ("gamma", "delta")
    # No exclusion for beta: every other cluster trains.
    assert _mixture_tasks(f"{COLLECTION}_heldout_beta_train") == sorted(
        f"{COLLECTION}_{d}_train" for d in ("a1", "a2", "c1", "d1"))
    assert fake.heldout_mixtures["alpha"] == f"{COLLECTION}_heldout_alpha_train"
    assert _mixture_tasks(f"{COLLECTION}_heldout_alpha_notemplate_train") == [
        f"{COLLECTION}_c1_notemplate_train", f"{COLLECTION}_d1_notemplate_train"]
    assert _mixture_tasks(f"{COLLECTION}_clusters2_train") == [
        f"{COLLECTION}_b1_train", f"{COLLECTION}_c1_train"]


def test_eval_and_rank_mixtures(fake):
    eval_tasks = _mixture_tasks(f"{COLLECTION}_alpha_eval")
    # Two non-turned-around templates x (generation + rank) x two datasets.
    assert len(eval_tasks) == 8
    assert f"{COLLECTION}_a1_t2_eval" not in eval_tasks  # turned around
    assert f"{COLLECTION}_a1_t2_rank" not in seqio.TaskRegistry.names()
    assert all(n.endswith("_rank") for n in _mixture_tasks(f"{COLLECTION}_alpha_rank"))
    assert len(_mixture_tasks(f"{COLLECTION}_alpha_2shot_eval")) == 8
    info = registry.task_info(f"{COLLECTION}_a1_t1_3shot_rank")
    assert (info.kind, info.template_index, info.num_shots, info.metrics) == (
        "fewshot_rank", 1, 3, ("accuracy",))
    assert registry.task_info(f"{COLLECTION}_a1_train").template_index is None
    assert registry.task_info(f"{COLLECTION}_a1_train_10templates").num_templates == 3


def test_mixing_rates_follow_caps(fake):
    mixture = seqio.get_mixture_or_task(f"{COLLECTION}_all_train")
    rates = {t.name: mixture.get_rate(t) for t in mixture.tasks}
    assert rates[f"{COLLECTION}_a1_train"] == 50
    assert rates[f"{COLLECTION}_a2_train"] == 3000  # default rate cap
    try:
        gin.parse_config(["tasks.mixing_caps.rate_cap = 45",
                          "tasks.mixing_caps.max_train_examples = 35"])
        rates = {t.name: mixture.get_rate(t) for t in mixture.tasks}
        assert rates[f"{COLLECTION}_a1_train"] == 35
        assert rates[f"{COLLECTION}_d1_train"] == 20
        gin.parse_config(["tasks.mixing_caps.rate_cap = 25"])
        assert mixture.get_rate(seqio.get_mixture_or_task(f"{COLLECTION}_a1_train")) == 25
        gin.parse_config(["tasks.mixing_caps.max_train_examples = 7"])
        ds = seqio.get_mixture_or_task(f"{COLLECTION}_a1_train").get_dataset(
            None, split="train", shuffle=False)
        assert len(list(ds)) == 7  # the train cap applies when the dataset is built
    finally:
        gin.clear_config()


def test_template_naming_missing_field_fails_at_registration():
    bad = _spec("broken", "alpha", collection="badtest",
                templates=(Template("{x}", "{answer}"), Template("{x} {nope}", "{answer}")))
    with pytest.raises(ValueError) as e:
        registry.register_collection([bad])
    message = str(e.value)
    assert "badtest" in message and "broken" in message
    assert "template 1" in message and "nope" in message
    assert "badtest" not in registry.collection_names()


def test_fields_fn_is_traced_at_registration():
    spec = _spec("traced", "alpha", collection="tracetest")
    import dataclasses

    spec = dataclasses.replace(spec, fields_fn=lambda ex: {"y": ex["x"], "answer": ex["answer"]})
    with pytest.raises(ValueError, match=r"traced.*template 0.*\{x\}"):
        registry.register_collection([spec])


def test_bad_generator_records_are_counted(caplog):
    spec = _spec("noisy", "alpha", size=40, bad_every=10, collection="noisytest")
    registry.register_collection([spec], replace=True)
    with caplog.at_level("WARNING"):
        ds = seqio.get_mixture_or_task("noisytest_noisy_train").get_dataset(
            None, split="train", shuffle=False)
        n = len(list(ds))
    problems = registry.record_problems()
    missing = problems[("noisytest", "noisy", "train", "missing field `answer`")]
    empty = problems[("noisytest", "noisy", "train", "empty field `x`")]
    assert (missing, empty) == (2, 2)
    assert n == 36
    assert "dropped 4 of 40" in caplog.text


def test_unknown_names_suggest_close_matches():
    with pytest.raises(registry.UnknownTaskError, match="synthetic_fact_nli_t1_eval"):
        registry.get_task_or_mixture("synthetic_fact_nli_t1_evl")
    with pytest.raises(KeyError):
        registry.task_info("synthetic_nope")
    assert isinstance(registry.get_task_or_mixture("synthetic_all_train"), seqio.Mixture)


def test_packed_batches_through_feature_converters():
    mixture = seqio.get_mixture_or_task("synthetic_heldout_nli_train")
    lengths = {"inputs": 256, "targets": 64}
    ds = mixture.get_dataset(lengths, split="train", shuffle=False, seed=0)
    enc_dec = seqio.EncDecFeatureConverter(pack=True)(ds, lengths)
    ex = next(iter(enc_dec.batch(4).as_numpy_iterator()))
    for key in ("encoder_input_tokens", "encoder_segment_ids", "encoder_positions"):
        assert ex[key].shape == (4, 256), key
    for key in ("decoder_target_tokens", "decoder_segment_ids", "decoder_positions"):
        assert ex[key].shape == (4, 64), key
    assert ex["encoder_segment_ids"].max() >= 2  # several examples packed into one row
    decoder = seqio.DecoderFeatureConverter(pack=True)(ds, lengths)
    ex = next(iter(decoder.batch(4).as_numpy_iterator()))
    for key in ("decoder_target_tokens", "decoder_segment_ids", "decoder_positions",
                "decoder_causal_attention"):
        assert ex[key].shape == (4, 320), key
    assert np.max(ex["decoder_segment_ids"]) >= 2
