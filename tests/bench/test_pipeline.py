"""`bench pipeline` (needs TensorFlow): packed batches counted against the train step."""

import numpy as np

from flan_jax.bench.pipeline import count_packed


def test_count_packed_counts_slots_and_real_tokens():
    batch = {"encoder_input_tokens": np.array([[5, 6, 0, 0]]),
             "decoder_target_tokens": np.array([[7, 0]]), "other": np.ones((1, 9))}
    assert count_packed(batch) == (6, 3)
