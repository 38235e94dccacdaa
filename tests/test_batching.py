"""Token ids and padded batches shared by scoring, decoding and infer."""

import numpy as np
import pytest

from flan_jax import batching
from flan_jax.vocab import ByteVocab

V = ByteVocab()


def test_buckets_are_powers_of_two_within_caps():
    assert [batching.bucket_length(n) for n in (1, 8, 9, 100)] == [8, 8, 16, 128]
    assert batching.bucket_length(100, cap=64) == 100  # never shorter than the row
    assert batching.bucket_length(40, cap=64) == 64
    assert [batching.bucket_batch(n, 8) for n in (1, 3, 8, 11)] == [1, 4, 8, 11]


def test_truncation_keeps_the_right_end_and_counts():
    stats = {}
    enc = batching.input_ids(V, "abcdef", "encoder_decoder", 4, stats)
    assert enc == V.encode("abc") + [V.eos_id]
    dec = batching.input_ids(V, "abcdef", "decoder_only", 4, stats)
    assert dec == V.encode("cdef")  # the end, next to the continuation
    assert stats == {"inputs_truncated": 2}
    assert batching.target_ids(V, "xyz", "encoder_decoder", 2, stats) == V.encode("xy")
    assert stats["targets_truncated"] == 1


def test_decoder_only_batch_weights_only_the_targets():
    b = batching.decoder_only_batch([[5, 6]], [[7, 8, 9]], batch=2, length=8, prefix_lm=True)
    np.testing.assert_array_equal(b["decoder_input_tokens"][0], [5, 6, 7, 8, 9, 0, 0, 0])
    np.testing.assert_array_equal(b["decoder_loss_weights"][0], [0, 0, 1, 1, 1, 0, 0, 0])
    np.testing.assert_array_equal(b["decoder_causal_attention"][0], [1, 1, 0, 0, 0, 0, 0, 0])
    assert not b["decoder_segment_ids"][1].any()  # the padding row


def test_encdec_batch_shifts_targets_right():
    b = batching.encdec_batch([[3, 4, 1]], [[7, 8, 1]])
    np.testing.assert_array_equal(b["decoder_input_tokens"][0], [0, 7, 8])
    np.testing.assert_array_equal(b["decoder_loss_weights"][0], [1, 1, 1])


def test_model_kwargs_keep_the_family_features():
    batch = {"decoder_input_tokens": 1, "decoder_loss_weights": 2, "encoder_input_tokens": 3}
    assert batching.model_kwargs(batch, "decoder_only") == {"decoder_input_tokens": 1}
    assert set(batching.model_kwargs(batch, "encoder_decoder")) == {"decoder_input_tokens",
                                                                    "encoder_input_tokens"}


def test_evaluation_can_keep_the_end_of_encoder_inputs():
    """Instructions end with the question and OPTIONS: evaluation cuts the start instead."""
    text = "A long passage. " * 4 + "Question? OPTIONS: yes, no"
    enc = batching.input_ids(V, text, "encoder_decoder", 20, keep="end")
    assert enc == V.encode(text)[-19:] + [V.eos_id]
    assert V.decode(enc[:-1]).endswith("OPTIONS: yes, no")
    assert batching.input_ids(V, text, "decoder_only", 10, keep="start") == V.encode(text)[:10]
    with pytest.raises(ValueError, match="keep='middle': use one of start, end"):
        batching.input_ids(V, text, "encoder_decoder", 10, keep="middle")
