"""FLAN 2021 few-shot training tasks and mixtures, on TFDS mock data.

A few-shot training example is a train example after k others from the same (capped) train
split, rendered as the dataset's zero-shot train task renders them, pruned from the front to
the 960-token budget; the few-shot training mixtures obey the held-out cluster rules and never
hold an evaluation-only dataset.
"""

import pytest
import seqio

from tasks import catalogue, names, preprocessors, templates
from tests.tasks import flan_checks as fc

C = "flan2021"
NUM_TRAIN = 12  # mocked train records per dataset


def _rendered(task_name):
    task = seqio.get_mixture_or_task(task_name)
    return [(ex["inputs_pretokenized"].decode(), ex["targets_pretokenized"].decode(),
             ex["inputs"].size)
            for ex in task.get_dataset(None, split="train", shuffle=False).as_numpy_iterator()]


def _exemplars(prefix, train_pairs):
    """The train (inputs, targets) pairs whose few-shot rendering, joined, is `prefix`."""
    if not prefix:
        return []
    for pair in train_pairs:
        inputs, targets = pair
        shown = (inputs + templates.FEWSHOT_TARGET_SEPARATOR + targets
                 + templates.FEWSHOT_EXEMPLAR_SEPARATOR)
        if prefix.startswith(shown):
            rest = _exemplars(prefix[len(shown):], train_pairs)
            if rest is not None:
                return [pair] + rest
    return None


def _fewshot_and_zero_shot(dataset, shots):
    with fc.mock(NUM_TRAIN):
        zero = _rendered(names.train_task(C, dataset))
        few = _rendered(names.fewshot_train_task(C, dataset, shots))
    return zero, few


@pytest.mark.parametrize("dataset", ["rte", "trec", "squad_v1"])
def test_fewshot_training_example_has_k_train_exemplars_never_itself(flan, dataset):
    info = catalogue.task_info(names.fewshot_train_task(C, dataset, 3))
    assert (info.kind, info.split, info.num_shots, info.dataset) == (
        "fewshot_train", "train", 3, dataset)
    zero, few = _fewshot_and_zero_shot(dataset, 3)
    assert len(zero) == len(few) == NUM_TRAIN  # one few-shot example per train example
    train_pairs = {(inputs, targets) for inputs, targets, _ in zero}
    # Mocked records render short enough for three exemplars within the budget.
    for (own_inputs, own_targets, _), (inputs, targets, num_tokens) in zip(zero, few):
        assert targets == own_targets and inputs.endswith(own_inputs)
        shown = _exemplars(inputs[:-len(own_inputs)], train_pairs)
        assert shown is not None and len(shown) == 3, inputs
        assert (own_inputs, own_targets) not in shown
        assert num_tokens <= preprocessors.fewshot_length_budget() == 960


def test_fewshot_training_prunes_exemplars_to_the_budget(flan):
    zero, few = _fewshot_and_zero_shot("rte", 10)
    train_pairs = {(inputs, targets) for inputs, targets, _ in zero}
    counts = []
    for (own_inputs, own_targets, _), (inputs, _, num_tokens) in zip(zero, few):
        shown = _exemplars(inputs[:-len(own_inputs)], train_pairs)
        assert shown is not None and (own_inputs, own_targets) not in shown
        assert num_tokens <= 960
        counts.append(len(shown))
    # Ten mocked RTE exemplars exceed 960 bytes: fewer are kept, dropped from the front.
    assert max(counts) < 10 and min(counts) >= 1


def _datasets(mixture):
    return {s.name for s in catalogue.dataset_specs(mixture)}


def _clusters(flan, datasets):
    return {s.cluster for s in flan.specs if s.name in datasets}


CLUSTERS = ("nli", "commonsense", "sentiment", "paraphrase", "closed_book_qa", "struct_to_text",
            "translation", "reading_comprehension", "rc_commonsense", "coreference", "misc",
            "summarization")


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_fewshot_training_mixtures_respect_held_out_clusters(flan, cluster):
    eval_only = {s.name for s in flan.specs if s.eval_only}
    extras = set(flan.release_extras)
    allowed = set(flan.training_clusters(cluster))
    paper = names.heldout_fewshot_mixture(C, cluster)
    assert flan.fewshot_heldout_mixtures[cluster] == paper
    release = names.release_heldout_mixture(C, cluster, fewshot=True)
    for mixture in (paper, release):
        datasets = _datasets(mixture)
        assert _clusters(flan, datasets) == allowed, mixture
        assert not datasets & eval_only, mixture
        assert catalogue.mixture_clusters(mixture) == tuple(
            c for c in flan.clusters if c in allowed)
        kinds = {catalogue.task_info(t.name).kind
                 for t in seqio.get_mixture_or_task(mixture).tasks}
        assert kinds == {"train", "fewshot_train"}
    assert not _datasets(paper) & extras
    assert (_datasets(release) & extras == extras) == ("misc" in allowed)
    # The few-shot mixture trains exactly the zero-shot mixture's datasets.
    assert _datasets(paper) == _datasets(names.heldout_mixture(C, cluster))
    assert _datasets(release) == _datasets(names.release_heldout_mixture(C, cluster))


def test_full_fewshot_training_mixtures(flan):
    eval_only = {s.name for s in flan.specs if s.eval_only}
    trainable = {s.name for s in flan.specs if not s.eval_only}
    extras = set(flan.release_extras)
    assert flan.fewshot_train_mixture == names.all_fewshot_train_mixture(C)
    assert _datasets(flan.fewshot_train_mixture) == trainable - extras
    assert _datasets(names.release_train_mixture(C, fewshot=True)) == trainable
    for mixture in (flan.fewshot_train_mixture, names.release_train_mixture(C, fewshot=True)):
        assert not _datasets(mixture) & eval_only
        tasks = [t.name for t in seqio.get_mixture_or_task(mixture).tasks]
        # Per dataset: its zero-shot train task and one k-shot train task per k.
        assert len(tasks) == 6 * len(_datasets(mixture))
