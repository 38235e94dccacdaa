"""flan_jax.placement: one device is a Placement like a mesh is; host batches go in split over
the data axes and come back whole; parameter bytes per device follow the shardings."""

import dataclasses

import jax
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from flan_jax import partitioning
from flan_jax.models import build_model
from flan_jax.placement import LoadedModel, Placement, param_bytes, resolve, round_up
from tests.fixtures import DEC_ONLY, VOCAB


def _mesh_placement(axes):
    return Placement(partitioning.make_mesh(axes), partitioning.logical_axis_rules())


def test_a_loaded_model_runs_on_one_device_unless_placed():
    model = build_model(DEC_ONLY)
    loaded = LoadedModel(model, {"w": np.zeros(3)}, VOCAB)
    assert loaded.family == "decoder_only" and loaded.vocab is VOCAB
    assert loaded.placement.axis_sizes() == {"data": 1, "fsdp": 1, "tensor": 1}
    placed = LoadedModel(model, {}, VOCAB, _mesh_placement({"data": 2, "fsdp": 2, "tensor": 2}))
    assert placed.placement.batch_multiple == 4
    with pytest.raises(dataclasses.FrozenInstanceError):
        loaded.params = {}


def test_a_single_device_placement_has_every_axis_of_size_one():
    one = Placement.single_device()
    assert one.axis_sizes() == {"data": 1, "fsdp": 1, "tensor": 1}
    assert one.mesh.devices.ravel().tolist() == [jax.devices()[0]]
    assert one.batch_multiple == 1 and one.data_axes == ("data", "fsdp")
    assert resolve(None).axis_sizes() == one.axis_sizes()
    assert resolve(one) is one
    last = Placement.single_device(jax.devices()[-1])
    assert last.mesh.devices.ravel().tolist() == [jax.devices()[-1]]


def test_batches_are_split_over_the_data_axes_and_fetched_whole():
    placement = _mesh_placement({"data": 4, "fsdp": 2, "tensor": 1})
    assert placement.data_axes == ("data", "fsdp") and placement.batch_multiple == 8
    batch = np.arange(16 * 3).reshape(16, 3)
    tokens, scalar = placement.put_tree((batch, np.int32(7)))
    assert tokens.sharding.spec == P(("data", "fsdp"), None)
    assert len({s.device for s in tokens.addressable_shards}) == 8
    assert tokens.addressable_shards[0].data.shape == (2, 3)
    with placement.context():
        doubled = jax.jit(lambda x: x * 2)(tokens)
    np.testing.assert_array_equal(placement.fetch_tree({"x": doubled})["x"], batch * 2)
    assert int(Placement.fetch(scalar)) == 7
    with pytest.raises(ValueError, match="a batch of 12 rows does not split over the data axes"):
        placement.put(np.zeros((12, 3)))
    assert [round_up(n, 8) for n in (1, 8, 9)] == [8, 8, 16]


def test_param_bytes_counts_the_largest_share_of_one_device():
    placement = _mesh_placement({"data": 1, "fsdp": 8, "tensor": 1})
    split = jax.device_put(np.zeros((16, 4), np.float32),
                           NamedSharding(placement.mesh, P("fsdp", None)))
    whole = jax.device_put(np.zeros((10,), np.float32), NamedSharding(placement.mesh, P()))
    assert param_bytes({"split": split, "whole": whole}) == (16 * 4 * 4 + 40, 2 * 4 * 4 + 40)
