"""tasks.registry: which tasks and mixtures a collection gets, and re-registration."""

import gin
import numpy as np
import seqio

from tasks import catalogue, names, registry
from tests.tasks.fake_specs import COLLECTION, spec

C = COLLECTION


def _mixture_tasks(name):
    return sorted(t.name for t in seqio.get_mixture_or_task(name).tasks)


def test_heldout_mixtures_obey_exclusions(fake):
    assert fake.training_clusters("alpha") == ("gamma", "delta")
    heldout_alpha = names.heldout_mixture(C, "alpha")
    assert _mixture_tasks(heldout_alpha) == [names.train_task(C, "c1"), names.train_task(C, "d1")]
    assert catalogue.mixture_clusters(heldout_alpha) == ("gamma", "delta")
    # No exclusion for beta: every other cluster trains.
    assert _mixture_tasks(names.heldout_mixture(C, "beta")) == sorted(
        names.train_task(C, d) for d in ("a1", "a2", "c1", "d1"))
    assert fake.heldout_mixtures["alpha"] == heldout_alpha
    assert _mixture_tasks(names.heldout_ablation_mixture(C, "alpha", "notemplate")) == [
        names.ablation_train_task(C, d, "notemplate") for d in ("c1", "d1")]
    assert _mixture_tasks(names.clusters_mixture(C, 2)) == [
        names.train_task(C, "b1"), names.train_task(C, "c1")]


def test_eval_and_rank_mixtures(fake):
    eval_tasks = _mixture_tasks(names.cluster_eval_mixture(C, "alpha"))
    # Two non-turned-around templates x (generation + rank) x two datasets.
    assert len(eval_tasks) == 8
    assert names.eval_task(C, "a1", 2) not in eval_tasks  # turned around
    assert names.rank_task(C, "a1", 2) not in seqio.TaskRegistry.names()
    assert all(n.endswith("_rank") for n in _mixture_tasks(names.cluster_rank_mixture(C, "alpha")))
    assert len(_mixture_tasks(names.fewshot_eval_mixture(C, "alpha", 2))) == 8
    info = catalogue.task_info(names.fewshot_rank_task(C, "a1", 1, 3))
    assert (info.kind, info.template_index, info.num_shots, info.metrics) == (
        "fewshot_rank", 1, 3, ("accuracy",))
    assert catalogue.task_info(names.train_task(C, "a1")).template_index is None
    assert catalogue.task_info(names.train_ntemplates_task(C, "a1", 10)).num_templates == 3


def test_every_registered_name_follows_the_naming_scheme(fake):
    expected = {names.all_train_mixture(C)}
    for cl in fake.clusters:
        expected |= {names.cluster_eval_mixture(C, cl), names.cluster_rank_mixture(C, cl)}
    assert expected <= set(catalogue.mixture_names(C))
    assert all(n.startswith(names.collection_prefix(C)) for n in catalogue.task_names(C))


def test_replace_re_registers_and_forgets_old_tasks():
    registry.register_collection([spec("x1", "alpha", collection="replacetest")])
    assert names.train_task("replacetest", "x1") in catalogue.task_names("replacetest")
    registry.register_collection([spec("y1", "alpha", collection="replacetest")], replace=True)
    assert names.train_task("replacetest", "x1") not in seqio.TaskRegistry.names()
    assert catalogue.task_names("replacetest")[0].startswith("replacetest_y1_")
    registry.forget_collection("replacetest")
    assert "replacetest" not in catalogue.collection_names()


def test_packed_batches_through_feature_converters():
    mixture = seqio.get_mixture_or_task(names.heldout_mixture("synthetic", "nli"))
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


def test_evaluation_only_datasets_get_eval_tasks_only():
    import dataclasses

    only_eval = dataclasses.replace(spec("e1", "alpha", collection="evalonlytest"),
                                    eval_only=True)
    registry.register_collection([only_eval, spec("t1", "alpha", collection="evalonlytest")],
                                 replace=True)
    kinds = {catalogue.task_info(n).kind for n in catalogue.task_names("evalonlytest")
             if catalogue.task_info(n).dataset == "e1"}
    assert kinds == {"eval", "rank", "notemplate_eval", "dsname_eval"}
    assert _mixture_tasks(names.all_train_mixture("evalonlytest")) == [
        names.train_task("evalonlytest", "t1")]
    assert {catalogue.task_info(n).dataset for n in _mixture_tasks(
        names.all_fewshot_train_mixture("evalonlytest"))} == {"t1"}
    assert names.rank_task("evalonlytest", "e1", 0) in _mixture_tasks(
        names.cluster_eval_mixture("evalonlytest", "alpha"))
    registry.forget_collection("evalonlytest")


def test_fewshot_exemplars_come_from_a_shuffled_train_split(fake):
    """k in 1, 2, 3, 5, 10; exemplars are not consecutive train records, but the same ones
    every time; the default budget is the release's 960 tokens."""
    from tasks import preprocessors

    assert registry.FEWSHOT_SHOTS == (1, 2, 3, 5, 10)
    assert preprocessors.fewshot_length_budget() == 960
    task = seqio.get_mixture_or_task(names.fewshot_eval_task(C, "a1", 0, 10))

    def first_prompt():
        ex = next(iter(task.get_dataset(None, split="validation", shuffle=False)))
        return ex["inputs_pretokenized"].numpy().decode()

    prompt = first_prompt()
    exemplars = prompt.split("\n\n\n")[:-1]
    assert len(exemplars) == 10
    used = [int(e.split("?")[0].split()[-1]) for e in exemplars]  # "item train 0 {i}?..."
    assert used != sorted(used)  # a shuffled order, not consecutive records
    assert len(set(used)) == 10
    assert first_prompt() == prompt


def test_rank_variants_without_options(fake):
    import tensorflow as tf  # noqa: F401 - datasets below

    with_options = seqio.get_mixture_or_task(names.rank_task(C, "a1", 0))
    without = seqio.get_mixture_or_task(names.rank_no_options_task(C, "a1", 0))
    a = next(iter(with_options.get_dataset(None, split="validation", shuffle=False)))
    b = next(iter(without.get_dataset(None, split="validation", shuffle=False)))
    assert a["inputs_pretokenized"].numpy().decode() == (
        b["inputs_pretokenized"].numpy().decode() + "\n\nOPTIONS:\n- yes\n- no")
    assert a["targets_pretokenized"] == b["targets_pretokenized"]
    assert list(b["options"].numpy()) == [b"yes", b"no"]  # still ranked over the options
    info = catalogue.task_info(names.rank_no_options_task(C, "a1", 0))
    assert (info.kind, info.options_in_prompt) == ("rank", False)
    mixture = _mixture_tasks(names.cluster_rank_no_options_mixture(C, "alpha"))
    assert mixture == sorted(names.rank_no_options_task(C, d, i) for d in ("a1", "a2")
                             for i in (0, 1))
    # Not in the default evaluation mixture.
    assert not set(mixture) & set(_mixture_tasks(names.cluster_eval_mixture(C, "alpha")))


def _pairs(prompt):
    """Few-shot prompt -> ([(exemplar inputs, targets)], the example's own inputs), for the fake
    specs' one-line templates."""
    from tasks import templates

    *exemplars, own = prompt.split(templates.FEWSHOT_EXEMPLAR_SEPARATOR)
    return [tuple(e.rsplit(templates.FEWSHOT_TARGET_SEPARATOR, 1)) for e in exemplars], own


def test_fewshot_train_tasks_show_k_train_examples_never_themselves():
    """k exemplars from the train split (rendered as its train task renders them), none the
    example itself, even when the train split is barely larger than k."""
    registry.register_collection([spec("s1", "alpha", size=11, collection="shottest"),
                                  spec("s2", "beta", size=40, collection="shottest")],
                                 replace=True)
    try:
        for dataset, size in (("s1", 11), ("s2", 40)):
            zero = seqio.get_mixture_or_task(names.train_task("shottest", dataset))
            train = {(ex["inputs_pretokenized"].decode(), ex["targets_pretokenized"].decode())
                     for ex in zero.get_dataset(None, split="train", shuffle=False)
                     .as_numpy_iterator()}
            assert len(train) == size
            for k in registry.FEWSHOT_SHOTS:
                name = names.fewshot_train_task("shottest", dataset, k)
                info = catalogue.task_info(name)
                assert (info.kind, info.num_shots, info.split, info.template_index) == (
                    "fewshot_train", k, "train", None)
                task = seqio.get_mixture_or_task(name)
                examples = list(task.get_dataset(None, split="train", shuffle=False)
                                .as_numpy_iterator())
                assert len(examples) == size  # every train example, once per epoch
                for ex in examples:
                    exemplars, own = _pairs(ex["inputs_pretokenized"].decode())
                    itself = (own, ex["targets_pretokenized"].decode())
                    assert itself in train
                    assert len(exemplars) == k and len(set(exemplars)) == k
                    assert set(exemplars) <= train and itself not in exemplars
                    assert ex["inputs"].size <= 960
    finally:
        registry.forget_collection("shottest")


def test_fewshot_training_mixtures_share_each_datasets_rate(fake):
    from tasks import sources

    heldout = names.heldout_fewshot_mixture(C, "alpha")
    assert fake.fewshot_heldout_mixtures["alpha"] == heldout
    assert catalogue.mixture_clusters(heldout) == ("gamma", "delta")
    expected = [names.train_task(C, d) for d in ("c1", "d1")] + [
        names.fewshot_train_task(C, d, k) for d in ("c1", "d1") for k in registry.FEWSHOT_SHOTS]
    assert _mixture_tasks(heldout) == sorted(expected)
    assert fake.fewshot_train_mixture == names.all_fewshot_train_mixture(C)
    mixture = seqio.get_mixture_or_task(fake.fewshot_train_mixture)
    rates = {t.name: mixture.get_rate(t) for t in mixture.tasks}
    for s in fake.specs:
        zero = rates[names.train_task(C, s.name)]
        shots = [rates[names.fewshot_train_task(C, s.name, k)] for k in registry.FEWSHOT_SHOTS]
        # Half zero-shot, half k-shot; together the dataset's capped examples-proportional rate.
        assert np.isclose(zero, sources.examples_rate(s) / 2) and np.allclose(shots, zero / 5)
        assert np.isclose(zero + sum(shots), sources.examples_rate(s))
    assert rates[names.train_task(C, "a2")] == 1500  # half the rate cap
    try:
        gin.parse_config(["tasks.zero_shot_share.share = 0.8"])
        assert np.isclose(mixture.get_rate(seqio.get_mixture_or_task(names.train_task(C, "a1"))),
                          0.8 * 50)
    finally:
        gin.clear_config()


def test_release_extras_train_only_in_release_style_mixtures():
    import dataclasses

    extra = dataclasses.replace(spec("x1", "alpha", collection="extratest"), release_extra=True)
    info = registry.register_collection(
        [extra, spec("p1", "alpha", collection="extratest"),
         spec("p2", "beta", collection="extratest")], replace=True)
    try:
        assert info.release_extras == ("x1",)
        paper = [names.all_train_mixture("extratest"), names.heldout_mixture("extratest", "beta"),
                 names.all_fewshot_train_mixture("extratest"),
                 names.heldout_fewshot_mixture("extratest", "beta"),
                 names.heldout_ntemplates_mixture("extratest", "beta", 4),
                 names.heldout_ablation_mixture("extratest", "beta", "dsname"),
                 names.clusters_mixture("extratest", 1)]
        release = [names.release_train_mixture("extratest"),
                   names.release_train_mixture("extratest", fewshot=True),
                   names.release_heldout_mixture("extratest", "beta"),
                   names.release_heldout_mixture("extratest", "beta", fewshot=True)]
        for mixture in paper:
            assert {s.name for s in catalogue.dataset_specs(mixture)} & {"x1", "p1"} == {"p1"}
        for mixture in release:
            assert {"x1", "p1"} <= {s.name for s in catalogue.dataset_specs(mixture)}, mixture
        assert {s.name for s in catalogue.dataset_specs(
            names.release_heldout_mixture("extratest", "alpha"))} == {"p2"}
        # Evaluated as any dataset.
        assert names.eval_task("extratest", "x1", 0) in _mixture_tasks(
            names.cluster_eval_mixture("extratest", "alpha"))
    finally:
        registry.forget_collection("extratest")
    # Collections without extras get no release-style mixtures.
    assert not [m for m in catalogue.mixture_names(C) if "release" in m]
