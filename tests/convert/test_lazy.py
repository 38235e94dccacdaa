"""flan_jax.convert.lazy: LazyTensor's operations match numpy's, nothing is read before
materialize, and a lazily written orbax checkpoint restores to the same arrays."""

import numpy as np
import pytest

from flan_jax.convert.lazy import LazyTensor, lazy_restore, save_lazy_params


def _lazy(value, reads=None):
    def load():
        if reads is not None:
            reads.append(1)
        return value
    return LazyTensor(value.shape, value.dtype, load)


def test_operations_are_lazy_and_equal_numpys():
    value = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    reads = []
    t = _lazy(value, reads)
    chained = t[1].T.reshape(-1).astype(np.float16)
    assert reads == [] and chained.shape == (12,) and chained.dtype == np.float16
    np.testing.assert_array_equal(chained.materialize(),
                                  value[1].T.reshape(-1).astype(np.float16))
    assert reads == [1]
    assert (t.size, t.nbytes, t.ndim) == (24, 96, 3)
    assert t.astype(np.float32) is t
    with pytest.raises(ValueError, match=r"cannot reshape \[2, 3, 4\] into \[5, 5\]"):
        t.reshape(5, 5)


def test_a_wrong_declared_shape_is_caught_when_read():
    bad = LazyTensor((3,), np.dtype(np.float32), lambda: np.zeros(4, np.float32))
    with pytest.raises(ValueError, match=r"produced float32\[4\], declared float32\[3\]"):
        bad.materialize()


def test_saved_lazily_restores_the_same_tree(tmp_path):
    rng = np.random.default_rng(0)
    tree = {"encoder": {"kernel": rng.standard_normal((4, 8)).astype(np.float32)},
            "embed": rng.standard_normal((16, 4)).astype(np.float32)}
    lazy = {"encoder": {"kernel": _lazy(tree["encoder"]["kernel"])}, "embed": _lazy(tree["embed"])}
    save_lazy_params(tmp_path / "params", lazy)
    restored = lazy_restore(tmp_path / "params")
    assert restored["embed"].shape == (16, 4) and restored["embed"].dtype == np.float32
    np.testing.assert_array_equal(restored["embed"].materialize(), tree["embed"])
    np.testing.assert_array_equal(restored["encoder"]["kernel"].materialize(),
                                  tree["encoder"]["kernel"])
