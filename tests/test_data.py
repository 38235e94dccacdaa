"""The seqio side of the data (`flan_jax.data.seqio_source`, opened through
`flan_jax.data.open_source`): vocabulary of a task, checks against a checkpoint's vocabulary,
and readable errors for unknown names."""

import pytest

from flan_jax import data
from flan_jax.data import seqio_source
from flan_jax.errors import UserError
from flan_jax.vocab import ByteVocab


def test_vocabulary_spec_of_a_byte_task():
    assert seqio_source.vocabulary_spec("synthetic_heldout_nli_train") == ({"kind": "byte"}, None)


def test_unknown_task_suggests_the_close_name():
    cfg = data.DataConfig(mixture_or_task_name="synthetic_heldout_nil_train",
                          task_feature_lengths={"inputs": 8, "targets": 8}, batch_size=8)
    with pytest.raises(KeyError, match="synthetic_heldout_nli_train"):
        data.open_source(cfg)


def test_vocabulary_mismatch_names_task_and_checkpoint(tmp_path):
    import seqio

    import tasks  # noqa: F401

    task = seqio.get_mixture_or_task("synthetic_fact_nli_t0_rank")
    seqio_source.check_vocabulary(task, ByteVocab(), "ckpt")  # same vocabulary: fine

    class OtherVocab:
        path = str(tmp_path / "spiece.model")

    with pytest.raises(UserError, match="'synthetic_fact_nli_t0_rank' is tokenized with bytes, "
                                        ".* checkpoint ckpt uses .*spiece.model"):
        seqio_source.check_vocabulary(task, OtherVocab(), "ckpt")
