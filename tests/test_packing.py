"""flan_jax.data.packing against seqio's own feature converters on the same examples."""

import numpy as np
import pytest

from flan_jax.data.packing import Packer


def _examples(n: int, seed: int, max_inputs: int, max_targets: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        # some longer than the feature lengths (trimmed), some short; tokens never 0 but EOS=1
        ni, nt = rng.integers(1, max_inputs + 1), rng.integers(1, max_targets + 1)
        out.append({"inputs": np.append(rng.integers(2, 50, ni - 1), 1).astype(np.int32),
                    "targets": np.append(rng.integers(2, 50, nt - 1), 1).astype(np.int32)})
    return out


def _seqio_rows(examples, family, lengths, pack):
    import tensorflow as tf

    from flan_jax.data.seqio_source import feature_converter

    ds = tf.data.Dataset.from_generator(
        lambda: iter(examples), output_signature={
            k: tf.TensorSpec([None], tf.int32) for k in ("inputs", "targets")})
    # the task stage trims each feature to its length before the converter (seqio.get_dataset)
    ds = ds.map(lambda ex: {k: v[:lengths[k]] for k, v in ex.items()})
    return list(feature_converter(family, pack)(ds, lengths).as_numpy_iterator())


@pytest.mark.parametrize("family", ["encoder_decoder", "decoder_only"])
@pytest.mark.parametrize("pack", [True, False])
def test_rows_equal_seqio_feature_converters(family, pack):
    lengths = {"inputs": 12, "targets": 6}
    examples = _examples(70, seed=1, max_inputs=16, max_targets=8)  # > one packing window
    expected = _seqio_rows(examples, family, lengths, pack)
    got = list(Packer(family, lengths, pack).rows(examples))
    assert len(got) == len(expected)
    if pack:
        assert len(got) < len(examples)  # packing did put several examples in a row
    for g, e in zip(got, expected):
        assert sorted(g) == sorted(e)
        for k in e:
            np.testing.assert_array_equal(g[k], e[k], err_msg=k)


def test_a_packer_continued_from_its_window_position_gives_the_same_rows():
    lengths = {"inputs": 10, "targets": 5}
    examples = _examples(40, seed=2, max_inputs=9, max_targets=4)
    whole = list(Packer("encoder_decoder", lengths).rows(examples))
    first = Packer("encoder_decoder", lengths)
    rows, taken = [], 0
    for ex in examples:  # stop right after a row is completed with an empty partial row
        rows += [first.features(r) for r in first.add(ex)]
        taken += 1
        if rows and first.row_is_empty() and taken > 15:
            break
    rest = Packer("encoder_decoder", lengths, window_position=first.window_position)
    rows += list(rest.rows(examples[taken:]))
    assert len(rows) == len(whole)
    for a, b in zip(rows, whole):
        for k in b:
            np.testing.assert_array_equal(a[k], b[k])
