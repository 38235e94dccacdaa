"""Shared fixtures: synthetic batches (plain and packed), gin model configs, timing."""

import numpy as np
import pytest

from flan_jax.bench.common import median_time, model_configs, synthetic_batch


def test_decoder_batch_is_shifted_sequence():
    b = synthetic_batch("decoder_only", 3, {"inputs": 5, "targets": 3}, 100)
    assert b["decoder_input_tokens"].shape == (3, 8)
    np.testing.assert_array_equal(b["decoder_input_tokens"][:, 1:],
                                  b["decoder_target_tokens"][:, :-1])
    assert b["decoder_input_tokens"].min() >= 2 and b["decoder_input_tokens"].max() < 100


def test_packed_encoder_decoder_batch_restarts_each_example():
    b = synthetic_batch("encoder_decoder", 2, {"inputs": 8, "targets": 4}, 50,
                        examples_per_row=2)
    np.testing.assert_array_equal(b["encoder_segment_ids"][0], [1, 1, 1, 1, 2, 2, 2, 2])
    np.testing.assert_array_equal(b["encoder_positions"][1], [0, 1, 2, 3, 0, 1, 2, 3])
    np.testing.assert_array_equal(b["decoder_segment_ids"][0], [1, 1, 2, 2])
    # each packed example's decoder input starts with the pad id, then its own shifted target
    np.testing.assert_array_equal(b["decoder_input_tokens"][:, [0, 2]], 0)
    np.testing.assert_array_equal(b["decoder_input_tokens"][:, 3], b["decoder_target_tokens"][:, 2])


def test_model_configs_one_per_file_with_bindings():
    dec, t5 = model_configs(["models/decoder_tiny.gin", "models/t5_tiny.gin"],
                            ["TransformerConfig.num_decoder_layers = 3"])
    assert (dec.family, t5.family) == ("decoder_only", "encoder_decoder")
    assert dec.num_decoder_layers == t5.num_decoder_layers == 3
    assert dec.vocab_size == 32000 and dec.num_kv_heads == 2


def test_median_time_counts_warmup_apart():
    calls = []
    med, times = median_time(lambda: calls.append(1), warmup=2, repeat=3)
    assert len(calls) == 5 and len(times) == 3 and med >= 0
    with pytest.raises(ZeroDivisionError):
        median_time(lambda: 1 / 0, warmup=0, repeat=1)
