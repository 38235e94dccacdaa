"""Mesh shapes, logical-axis rules and shardings on 8 simulated CPU devices."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest
from jax.sharding import PartitionSpec as P

from flan_jax import partitioning
from flan_jax.models import TransformerConfig, build_model


def test_minus_one_takes_the_remaining_devices():
    assert partitioning.resolve_mesh_shape({"data": -1, "fsdp": 2, "tensor": 2}, 8) == \
        {"data": 2, "fsdp": 2, "tensor": 2}


@pytest.mark.parametrize("axes, message", [
    ({"data": -1, "fsdp": -1}, "at most one axis"),
    ({"data": -1, "fsdp": 3}, "the 8 devices do not divide by the fixed axes' product 3"),
    ({"data": 2, "fsdp": 2}, "needs 4 devices but 8"),
])
def test_meshes_that_do_not_fit_are_explained(axes, message):
    with pytest.raises(partitioning.MeshError, match=message):
        partitioning.resolve_mesh_shape(axes, 8)


def test_params_shard_by_their_logical_axes():
    cfg = TransformerConfig(family="decoder_only", emb_dim=64, num_heads=4, head_dim=16,
                            mlp_dim=128, num_decoder_layers=1, vocab_size=64)
    model = build_model(cfg)
    mesh = partitioning.make_mesh({"data": 2, "fsdp": 2, "tensor": 2})
    rules = partitioning.logical_axis_rules()
    boxed = jax.eval_shape(lambda r: model.init(r, jnp.ones((1, 4), jnp.int32))["params"],
                           jax.random.PRNGKey(0))
    shardings = partitioning.params_shardings(boxed, mesh, rules)
    flat = {jax.tree_util.keystr(k): s for k, s in
            jax.tree_util.tree_flatten_with_path(shardings)[0]}
    specs = {k: s.spec for k, s in flat.items()}
    # An MLP kernel [embed, mlp] is split over fsdp x tensor; a norm scale [embed] over fsdp.
    mlp = [s for k, s in specs.items() if "mlp" in k and "wi" in k]
    assert mlp and all(s == P("fsdp", "tensor") for s in mlp)
    norms = [s for k, s in specs.items() if "norm" in k]
    assert norms and all(tuple(s) in (("fsdp",), ()) for s in norms)


def test_batches_shard_over_data_and_fsdp():
    mesh = partitioning.make_mesh({"data": 2, "fsdp": 4, "tensor": 1})
    sharding = partitioning.batch_sharding(mesh, partitioning.logical_axis_rules())
    assert sharding.spec == P(("data", "fsdp"), None)
    x = jax.device_put(jnp.zeros((8, 3)), sharding)
    assert {s.data.shape for s in x.addressable_shards} == {(1, 3)}


def test_indivisible_dimensions_stay_whole():
    mesh = partitioning.make_mesh({"data": 1, "fsdp": 1, "tensor": 8})
    shardings = partitioning.logical_to_shardings(
        {"k": P("embed", "heads")}, {"k": jax.ShapeDtypeStruct((4, 6), jnp.float32)}, mesh,
        partitioning.logical_axis_rules())
    assert shardings["k"].spec == P("fsdp", None)  # 6 heads do not split over 8 devices


def test_no_distributed_setup_without_a_coordinator(monkeypatch):
    monkeypatch.delenv("JAX_COORDINATOR_ADDRESS", raising=False)
    called = []
    monkeypatch.setattr(jax.distributed, "initialize", lambda **kw: called.append(kw))
    partitioning.initialize_distributed()
    assert called == []
    monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "127.0.0.1:1234")
    monkeypatch.setenv("JAX_NUM_PROCESSES", "2")
    monkeypatch.setenv("JAX_PROCESS_ID", "1")
    partitioning.initialize_distributed()
    assert called == [{"coordinator_address": "127.0.0.1:1234", "num_processes": 2,
                       "process_id": 1}]


def test_rules_from_gin_lists_become_tuples():
    rules = partitioning.logical_axis_rules([("batch", ["data", "fsdp"]), ("embed", None)])
    assert rules == (("batch", ("data", "fsdp")), ("embed", None))
    assert nn.logical_to_mesh_axes(("batch", "embed"), rules) == P(("data", "fsdp"), None)


def test_a_dimension_that_does_not_divide_its_mesh_axis_is_named():
    mesh = partitioning.make_mesh({"data": 4, "fsdp": 1, "tensor": 2})
    with pytest.raises(partitioning.MeshError) as e:
        partitioning.logical_to_shardings(
            {"attn": {"q": P("embed", "heads")}},
            {"attn": {"q": jax.ShapeDtypeStruct((4, 5), jnp.float32)}}, mesh,
            partitioning.logical_axis_rules())
    assert str(e.value) == (
        "attn/q: dimension 1 of size 5 (logical axis 'heads') does not divide over mesh axis "
        "'tensor' (2) of size 2; pick mesh_axes.axes sizes that divide it (mesh now "
        "{'data': 4, 'fsdp': 1, 'tensor': 2}) or map 'heads' to None in logical_axis_rules.")



def test_mesh_axes_left_out_have_size_one():
    from flan_jax.partitioning import make_mesh, mesh_axes

    assert mesh_axes({"fsdp": -1}) == {"data": 1, "fsdp": -1, "tensor": 1}
    assert mesh_axes() == {"data": -1, "fsdp": 1, "tensor": 1}
    mesh = make_mesh({"tensor": 2, "data": -1})
    assert dict(mesh.shape) == {"data": jax.device_count() // 2, "fsdp": 1, "tensor": 2}
