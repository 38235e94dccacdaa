"""Model behaviour: cached decoding equals the full forward pass; sharding changes nothing."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flan_jax import partitioning
from flan_jax.models import TransformerConfig, build_model, count_params, init_cache
from flan_jax.models.config import plain_config
from tests import fixtures

pytestmark = pytest.mark.heavy  # scheduled first (tests/conftest.py)

# the shared tiny configs with a 61-word vocabulary (`_tokens` draws ids below 61)
ENC_DEC = plain_config(**{**vars(fixtures.ENC_DEC), "vocab_size": 61})
DEC_ONLY = plain_config(**{**vars(fixtures.DEC_ONLY), "vocab_size": 61})


def _init(cfg, *args):
    model = build_model(cfg)
    params = nn.meta.unbox(model.init(jax.random.PRNGKey(0), *args)["params"])
    return model, params


def _tokens(shape, seed=0, low=3):
    return jnp.asarray(np.random.RandomState(seed).randint(low, 61, size=shape), jnp.int32)


def test_parameters_carry_logical_axes():
    model = build_model(DEC_ONLY)
    boxed = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.ones((1, 4), jnp.int32))
    specs = jax.tree_util.tree_leaves(nn.get_partition_spec(boxed["params"]),
                                      is_leaf=lambda x: isinstance(x, jax.sharding.PartitionSpec))
    names = {name for spec in specs for name in spec}
    assert {"embed", "mlp", "heads", "kv_heads", "kv", "vocab"} <= names
    assert all(len(spec) > 0 for spec in specs)


@pytest.mark.parametrize("prefix_lm", [False, True])
def test_decoder_only_cached_decoding_equals_full_forward(prefix_lm):
    cfg = DEC_ONLY if not prefix_lm else DEC_ONLY.__class__(**{**DEC_ONLY.__dict__,
                                                              "prefix_lm": True})
    tokens = _tokens((2, 10))
    prefix_len = 4
    flags = jnp.broadcast_to(jnp.arange(10) < prefix_len, tokens.shape)
    model, params = _init(cfg, tokens)
    full = model.apply({"params": params}, tokens, decoder_causal_attention=flags)

    cache = init_cache(model, params, batch_size=2, max_length=10)
    pos = jnp.broadcast_to(jnp.arange(10, dtype=jnp.int32), tokens.shape)
    seg = jnp.ones_like(tokens)
    logits, vars_ = model.apply({"params": params, "cache": cache}, tokens[:, :prefix_len],
                                seg[:, :prefix_len], pos[:, :prefix_len],
                                flags[:, :prefix_len], decode=True, mutable=["cache"])
    steps = [logits]
    for t in range(prefix_len, 10):
        logits, vars_ = model.apply({"params": params, "cache": vars_["cache"]},
                                    tokens[:, t:t + 1], seg[:, t:t + 1], pos[:, t:t + 1],
                                    flags[:, t:t + 1], decode=True, mutable=["cache"])
        steps.append(logits)
    np.testing.assert_allclose(jnp.concatenate(steps, axis=1), full, atol=1e-5, rtol=1e-5)


def test_encoder_decoder_cached_decoding_equals_full_forward():
    enc = _tokens((2, 7), seed=1).at[1, 5:].set(0)
    dec = _tokens((2, 6), seed=2).at[:, 0].set(0)
    model, params = _init(ENC_DEC, enc, dec)
    full = model.apply({"params": params}, enc, dec, decoder_segment_ids=jnp.ones_like(dec))

    encoded = model.apply({"params": params}, enc, method="encode")
    enc_seg = (enc > 0).astype(jnp.int32)
    cache = init_cache(model, params, batch_size=2, max_length=6, encoder_length=7)
    steps = []
    for t in range(6):
        pos = jnp.full((2, 1), t, jnp.int32)
        logits, vars_ = model.apply({"params": params, "cache": cache}, encoded, enc_seg,
                                    dec[:, t:t + 1], decoder_positions=pos, decode=True,
                                    method="decode", mutable=["cache"])
        cache = vars_["cache"]
        steps.append(logits)
    np.testing.assert_allclose(jnp.concatenate(steps, axis=1), full, atol=1e-5, rtol=1e-5)


def test_packed_segments_do_not_attend_to_each_other():
    """Two examples packed in one row give the logits each gives alone."""
    a, b = _tokens((1, 4), seed=3), _tokens((1, 5), seed=4)
    model, params = _init(DEC_ONLY, a)
    packed = jnp.concatenate([a, b], axis=1)
    seg = jnp.asarray([[1] * 4 + [2] * 5])
    pos = jnp.asarray([list(range(4)) + list(range(5))])
    out = model.apply({"params": params}, packed, seg, pos)
    np.testing.assert_allclose(out[:, :4], model.apply({"params": params}, a), atol=1e-5)
    np.testing.assert_allclose(out[:, 4:], model.apply({"params": params}, b), atol=1e-5)


@pytest.mark.parametrize("cfg", [ENC_DEC, DEC_ONLY], ids=["encoder_decoder", "decoder_only"])
def test_sharded_forward_equals_single_device(cfg):
    assert jax.device_count() == 8, "tests expect 8 simulated CPU devices (tests/conftest.py)"
    enc, dec = _tokens((4, 8), seed=5), _tokens((4, 6), seed=6)
    args = (enc, dec) if cfg.family == "encoder_decoder" else (dec,)
    model = build_model(cfg)
    boxed = model.init(jax.random.PRNGKey(0), *args)["params"]
    params = nn.meta.unbox(boxed)
    expected = model.apply({"params": params}, *args)

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
    out = model.apply({"params": params}, tokens)
    assert out.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(out)))
    assert count_params(params) > 0


@pytest.mark.parametrize("policy", ["full", "dots"])
def test_remat_gives_same_gradients(policy):
    tokens = _tokens((2, 6))
    model, params = _init(DEC_ONLY, tokens)
    remat_model = build_model(DEC_ONLY.__class__(**{**DEC_ONLY.__dict__, "remat_policy": policy}))

    def loss(m, p):
        return jnp.mean(m.apply({"params": p}, tokens) ** 2)

    g1 = jax.grad(lambda p: loss(model, p))(params)
    g2 = jax.grad(lambda p: loss(remat_model, p))(params)
    for a, b in zip(jax.tree_util.tree_leaves(g1), jax.tree_util.tree_leaves(g2)):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_plain_config_ignores_gin_bindings_of_the_process():
    import gin

    from flan_jax.models.config import plain_config

    gin.parse_config("TransformerConfig.prompt_length = 8")
    assert TransformerConfig().prompt_length == 8  # gin configures the class ...
    assert plain_config(emb_dim=16).prompt_length == 0  # ... but not converted/read configs
