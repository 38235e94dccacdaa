"""Every FLAN 2021 dataset's evaluation split and metrics, as the release has them.

The release evaluates on the labelled `test` split where one exists (its "test" key), else on
validation; train-only datasets hold back a fixed tail of train. Edit this table only with a
reason (a TFDS deviation goes to tasks/flan2021/DEVIATIONS.md).
"""

import pytest

from tests.tasks import flan_checks as fc

CLUSTERS = ("nli", "commonsense", "sentiment", "paraphrase", "closed_book_qa", "struct_to_text",
            "translation", "reading_comprehension", "rc_commonsense", "coreference", "misc",
            "summarization")

# dataset: (TFDS name, TFDS split evaluated, metric function names)
EVAL = {
    "anli_r1": ("anli/r1:0.1.0", "test", ("accuracy",)),
    "anli_r2": ("anli/r2:0.1.0", "test", ("accuracy",)),
    "anli_r3": ("anli/r3:0.1.0", "test", ("accuracy",)),
    "cb": ("super_glue/cb:1.0.2", "validation", ("accuracy_and_mean_3class_f1",)),
    "mnli_matched": ("glue/mnli:2.0.0", "validation_matched", ("accuracy",)),
    "mnli_mismatched": ("glue/mnli:2.0.0", "validation_mismatched", ("accuracy",)),
    "qnli": ("glue/qnli:2.0.0", "validation", ("accuracy",)),
    "rte": ("super_glue/rte:1.0.2", "validation", ("accuracy",)),
    "snli": ("snli:1.1.0", "test", ("accuracy",)),
    "wnli": ("glue/wnli:2.0.0", "validation", ("accuracy",)),
    "copa": ("super_glue/copa:1.0.2", "validation", ("accuracy",)),
    "hellaswag": ("hellaswag:0.0.1", "validation", ("accuracy",)),
    "piqa": ("piqa:1.0.0", "validation", ("accuracy",)),
    "story_cloze": ("story_cloze/2016:1.0.0", "test", ("accuracy",)),
    "imdb_reviews": ("imdb_reviews/plain_text:1.0.0", "test", ("accuracy",)),
    "sentiment140": ("sentiment140:1.0.0", "test", ("accuracy",)),
    "sst2": ("glue/sst2:2.0.0", "validation", ("accuracy",)),
    "yelp_polarity_reviews": ("yelp_polarity_reviews:0.2.0", "test", ("accuracy",)),
    "mrpc": ("glue/mrpc:2.0.0", "validation", ("accuracy_and_f1",)),
    "qqp": ("glue/qqp:2.0.0", "validation", ("accuracy_and_f1",)),
    "paws_wiki": ("paws_wiki:1.1.0", "test", ("accuracy",)),
    "stsb": ("glue/stsb:2.0.0", "validation", ("pearson_corrcoef", "spearman_corrcoef")),
    "arc_easy": ("ai2_arc/ARC-Easy:1.0.0", "test", ("accuracy",)),
    "arc_challenge": ("ai2_arc/ARC-Challenge:1.0.0", "test", ("accuracy",)),
    "natural_questions": ("natural_questions_open:1.0.0", "validation", ("trivia_qa",)),
    "trivia_qa": ("trivia_qa/rc:1.1.0", "validation", ("trivia_qa",)),
    "common_gen": ("gem/common_gen:1.1.0", "validation", ("multi_reference_rouge",)),
    "dart": ("gem/dart:1.1.0", "validation", ("multi_reference_rouge",)),
    "e2e_nlg": ("gem/e2e_nlg:1.1.0", "validation", ("multi_reference_rouge",)),
    "web_nlg_en": ("gem/web_nlg_en:1.1.0", "validation", ("multi_reference_rouge",)),
    "para_crawl_enes": ("para_crawl/enes:1.2.0", "train[-1000:]", ("bleu",)),
    "wmt14_fren": ("wmt14_translate/fr-en:1.0.0", "test", ("bleu",)),
    "wmt16_csen": ("wmt16_translate/cs-en:1.0.0", "test", ("bleu",)),
    "wmt16_deen": ("wmt16_translate/de-en:1.0.0", "test", ("bleu",)),
    "wmt16_fien": ("wmt16_translate/fi-en:1.0.0", "test", ("bleu",)),
    "wmt16_roen": ("wmt16_translate/ro-en:1.0.0", "test", ("bleu",)),
    "wmt16_ruen": ("wmt16_translate/ru-en:1.0.0", "test", ("bleu",)),
    "wmt16_tren": ("wmt16_translate/tr-en:1.0.0", "test", ("bleu",)),
    "bool_q": ("bool_q:1.0.0", "validation", ("accuracy",)),
    "drop": ("drop:2.0.0", "dev", ("squad",)),
    "multirc": ("super_glue/multirc:1.0.2", "validation",
                ("multirc_f1_over_all_answers", "multirc_exact_match")),
    "openbookqa": ("openbookqa:0.1.0", "test", ("accuracy",)),
    "squad_v1": ("squad/v1.1:3.0.0", "validation", ("squad",)),
    "squad_v2": ("squad/v2.0:3.0.0", "validation", ("squad",)),
    "cosmos_qa": ("cosmos_qa:1.0.0", "validation", ("accuracy",)),
    "record": ("super_glue/record:1.0.2", "validation", ("squad",)),
    "definite_pronoun_resolution": ("definite_pronoun_resolution:1.1.0", "test", ("accuracy",)),
    "winogrande": ("winogrande:1.2.0", "validation", ("accuracy",)),
    "wsc": ("super_glue/wsc:1.0.2", "validation", ("accuracy",)),
    "wsc273": ("wsc273:1.0.0", "test", ("accuracy",)),
    "coqa": ("coqa:1.0.0", "test", ("squad",)),
    "quac": ("quac:1.0.0", "validation", ("trivia_qa",)),
    "wic": ("super_glue/wic:1.0.2", "validation", ("accuracy",)),
    "trec": ("trec:1.0.0", "test", ("accuracy",)),
    "cola": ("glue/cola:2.0.0", "validation", ("accuracy",)),
    "math_dataset": ("math_dataset/algebra__linear_1d:1.0.0", "test", ("accuracy",)),
    "fix_punct": ("para_crawl/enda:1.2.0", "train[-3000:]", ("cased_edit_distance",)),
    "true_case": ("para_crawl/enda:1.2.0", "train[-3000:]", ("cased_edit_distance",)),
    "word_segment": ("para_crawl/enda:1.2.0", "train[-3000:]", ("cased_edit_distance",)),
    "aeslc": ("aeslc:1.0.0", "test", ("rouge",)),
    "cnn_dailymail": ("cnn_dailymail:3.4.0", "test", ("rouge",)),
    "gigaword": ("gigaword:1.2.0", "test", ("rouge",)),
    "multi_news": ("multi_news:2.1.0", "test", ("rouge",)),
    "newsroom": ("newsroom:1.0.0", "test", ("rouge",)),
    "samsum": ("samsum:1.0.0", "test", ("rouge",)),
    "xsum": ("xsum:1.0.0", "test", ("rouge",)),
    "ag_news_subset": ("ag_news_subset:1.0.0", "test", ("accuracy",)),
    "opinion_abstracts_rotten_tomatoes": (
        "opinion_abstracts/rotten_tomatoes:1.0.0", "train[-500:]", ("rouge",)),
    "opinion_abstracts_idebate": ("opinion_abstracts/idebate:1.0.0", "train[-500:]", ("rouge",)),
    "wiki_lingua_english_en": ("gem/wiki_lingua_english_en:1.1.0", "test", ("rouge",)),
}

SPECS = {s.name: s for c in CLUSTERS for s in fc.cluster_specs(c)}


def _metric_names(spec):
    return tuple(getattr(f, "__name__", repr(f)) for f in spec.metric_fns)


def test_the_table_covers_every_dataset():
    assert sorted(EVAL) == sorted(SPECS)


@pytest.mark.parametrize("name", sorted(EVAL))
def test_eval_split_and_metrics(name):
    spec = SPECS[name]
    tfds_name, split, metrics = EVAL[name]
    assert spec.source.name == tfds_name
    assert spec.source.splits[spec.eval_split] == split
    assert _metric_names(spec) == metrics


def test_train_never_overlaps_the_held_back_tail():
    """Train-only datasets: the evaluated tail is not trained on."""
    assert SPECS["opinion_abstracts_idebate"].source.splits["train"] == "train[:-600]"
    enda = [s for s in SPECS.values() if s.source.name == "para_crawl/enda:1.2.0"]
    for spec in enda:
        start, end = spec.source.splits["train"][len("train["):-1].split(":")
        assert int(end) - int(start) == 30000


def test_arc_keeps_only_four_option_questions():
    import tensorflow as tf

    keep = SPECS["arc_easy"].filter_fn
    assert bool(keep({"options": tf.constant(["a", "b", "c", "d"])}))
    assert not bool(keep({"options": tf.constant(["a", "b", "c"])}))
    assert not bool(keep({"options": tf.constant(["a", "b", "c", "d", "e"])}))
