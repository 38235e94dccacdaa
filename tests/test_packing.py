"""flan_jax.data.packing against seqio's own feature converters on the same examples."""

import numpy as np
import pytest

from flan_jax.data.packing import Packer
from tests.fixtures import random_examples as _examples
from tests.fixtures import seqio_rows as _seqio_rows


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
