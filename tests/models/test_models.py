"""Behaviour shared by both families (flan_jax/models/__init__.py, config.py): logical axes on
every parameter, sharding and remat change nothing, bfloat16 compute keeps float32 parameters.
Each family's own behaviour: tests/models/test_encoder_decoder.py, test_decoder_only.py."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flan_jax import partitioning
from flan_jax.models import TransformerConfig, build_model, count_params
from tests.fixtures import DEC_ONLY_61 as DEC_ONLY
from tests.fixtures import ENC_DEC_61 as ENC_DEC
from tests.fixtures import init_model as _init
from tests.fixtures import jitted_apply
from tests.fixtures import random_tokens as _tokens


def test_parameters_carry_logical_axes():
    model = build_model(DEC_ONLY)
    boxed = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.ones((1, 4), jnp.int32))
    specs = jax.tree_util.tree_leaves(nn.get_partition_spec(boxed["params"]),
                                      is_leaf=lambda x: isinstance(x, jax.sharding.PartitionSpec))
    names = {name for spec in specs for name in spec}
    assert {"embed", "mlp", "heads", "kv_heads", "kv", "vocab"} <= names
    assert all(len(spec) > 0 for spec in specs)


@pytest.mark.parametrize("cfg", [ENC_DEC, DEC_ONLY], ids=["encoder_decoder", "decoder_only"])
def test_sharded_forward_equals_single_device(cfg):
    assert jax.device_count() == 8, "tests expect 8 simulated CPU devices (tests/conftest.py)"
    enc, dec = _tokens((4, 8), seed=5), _tokens((4, 6), seed=6)
    args = (enc, dec) if cfg.family == "encoder_decoder" else (dec,)
    model = build_model(cfg)
    boxed = jax.jit(model.init)(jax.random.PRNGKey(0), *args)["params"]
    params = nn.meta.unbox(boxed)
    expected = jitted_apply(model)({"params": params}, *args)

    mesh = partitioning.make_mesh({"data": 2, "fsdp": 1, "tensor": -1})
    assert dict(mesh.shape) == {"data": 2, "fsdp": 1, "tensor": 4}
    rules = partitioning.DEFAULT_RULES
    shardings = partitioning.params_shardings(boxed, mesh, rules)
    # Something is really split across the tensor axis.
    assert any("tensor" in str(s.spec) for s in jax.tree_util.tree_leaves(shardings))
    batch = partitioning.batch_sharding(mesh, rules)
    sharded_params = partitioning.shard_like(params, shardings)
    sharded_args = [jax.device_put(a, batch) for a in args]

    def forward(p, *xs):
        with nn.logical_axis_rules(rules):
            return model.apply({"params": p}, *xs)

    with jax.set_mesh(mesh):
        out = jax.jit(forward, in_shardings=(shardings,) + (batch,) * len(args))(
            sharded_params, *sharded_args)
    assert len(out.sharding.device_set) == 8
    np.testing.assert_allclose(np.asarray(out), np.asarray(expected), atol=1e-5, rtol=1e-5)


def test_bfloat16_compute_keeps_float32_params():
    cfg = DEC_ONLY.__class__(**{**DEC_ONLY.__dict__, "dtype": "bfloat16"})
    tokens = _tokens((1, 5))
    model, params = _init(cfg, tokens)
    assert all(x.dtype == jnp.float32 for x in jax.tree_util.tree_leaves(params))
    out = jitted_apply(model)({"params": params}, tokens)
    assert out.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(out)))
    assert count_params(params) > 0


@pytest.mark.parametrize("policy", ["full", "dots"])
def test_remat_gives_same_gradients(policy):
    tokens = _tokens((2, 6))
    model, params = _init(DEC_ONLY, tokens)
    remat_model = build_model(DEC_ONLY.__class__(**{**DEC_ONLY.__dict__, "remat_policy": policy}))

    def loss(m, p):
        return jnp.mean(m.apply({"params": p}, tokens) ** 2)

    g1 = jax.jit(jax.grad(lambda p: loss(model, p)))(params)
    g2 = jax.jit(jax.grad(lambda p: loss(remat_model, p)))(params)
    for a, b in zip(jax.tree_util.tree_leaves(g1), jax.tree_util.tree_leaves(g2)):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_plain_config_ignores_gin_bindings_of_the_process():
    import gin

    from flan_jax.models.config import plain_config

    gin.parse_config("TransformerConfig.prompt_length = 8")
    assert TransformerConfig().prompt_length == 8  # gin configures the class ...
    assert plain_config(emb_dim=16).prompt_length == 0  # ... but not converted/read configs
