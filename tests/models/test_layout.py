"""Scanned layers: the same numbers as the per-layer layout, conversion both ways, KV-cache
decoding, training and checkpoints in either layout."""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from flan_jax import checkpoints, partitioning
from flan_jax.models import build_model, init_cache, layout
from flan_jax.models.config import plain_config
from tests.fixtures import jitted_apply

ENC_DEC = plain_config(family="encoder_decoder", vocab_size=61, emb_dim=32, num_heads=4,
                       num_kv_heads=2, head_dim=8, mlp_dim=48, num_encoder_layers=2,
                       num_decoder_layers=3, relative_attention_num_buckets=8,
                       relative_attention_max_distance=16)
DEC_ONLY = plain_config(family="decoder_only", vocab_size=61, emb_dim=32, num_heads=4,
                        num_kv_heads=2, head_dim=8, mlp_dim=48, num_encoder_layers=0,
                        num_decoder_layers=3, mlp_activation="silu")
PREFIX_LM = dataclasses.replace(DEC_ONLY, prefix_lm=True, num_kv_heads=1)  # MQA as well
CONFIGS = {"encoder_decoder": ENC_DEC, "decoder_only": DEC_ONLY, "prefix_lm": PREFIX_LM}


def _scanned(cfg, **kw):
    return dataclasses.replace(cfg, scan_layers=True, **kw)


def _tokens(shape, seed=0):
    return jnp.asarray(np.random.RandomState(seed).randint(3, 61, size=shape), jnp.int32)


def _inputs(cfg):
    """Model arguments with padding (and packing for the decoder-only models)."""
    if cfg.family == "encoder_decoder":
        enc = _tokens((2, 7), 1).at[1, 5:].set(0)
        dec = _tokens((2, 6), 2).at[:, 0].set(0)
        return (enc, dec), {"decoder_segment_ids": jnp.asarray([[1] * 6, [1] * 4 + [0] * 2])}
    tokens = _tokens((2, 9), 3)
    seg = jnp.asarray([[1] * 4 + [2] * 5, [1] * 7 + [0] * 2])
    pos = jnp.asarray([list(range(4)) + list(range(5)), list(range(9))])
    flags = jnp.asarray([[1, 1, 0, 0, 1, 1, 1, 0, 0], [1, 1, 1, 0, 0, 0, 0, 0, 0]], bool)
    return (tokens, seg, pos, flags), {}


def _init(cfg):
    args, kw = _inputs(cfg)
    init = jax.jit(build_model(cfg).init)  # jitted: eager Flax runs op by op, far slower
    return nn.meta.unbox(init(jax.random.PRNGKey(0), *args, **kw)["params"])


def _shapes(tree):
    return jax.tree_util.tree_map(lambda x: tuple(x.shape), tree)


@pytest.mark.parametrize("name", CONFIGS)
def test_scanned_logits_equal_unscanned_on_the_same_weights(name):
    cfg = CONFIGS[name]
    params = _init(cfg)
    scanned = layout.scan_params(params, cfg)
    assert layout.params_layout(params) == "unscanned"
    assert layout.params_layout(scanned) == "scanned"
    # The converted tree is exactly what a scanned model creates.
    assert _shapes(scanned) == _shapes(_init(_scanned(cfg)))
    stack = scanned["decoder"]["layers"] if name == "encoder_decoder" else scanned["layers"]
    assert stack["mlp"]["wo"]["kernel"].shape == (3, 48, 32)

    args, kw = _inputs(cfg)
    expected = jitted_apply(build_model(cfg))({"params": params}, *args, **kw)
    got = jitted_apply(build_model(_scanned(cfg)))({"params": scanned}, *args, **kw)
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5)

    back = layout.unscan_params(scanned, cfg)
    jax.tree_util.tree_map(np.testing.assert_array_equal, back, params)


def test_scanned_parameters_carry_the_layers_axis_and_shard():
    cfg = _scanned(DEC_ONLY)
    model = build_model(cfg)
    boxed = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.ones((1, 4), jnp.int32))
    specs = nn.get_partition_spec(boxed["params"])
    assert tuple(specs["layers"]["self_attention"]["query"]["kernel"]) == (
        "layers", "embed", "heads", "kv")
    assert ("layers", None) in partitioning.DEFAULT_RULES
    mesh = partitioning.make_mesh({"data": 2, "fsdp": 2, "tensor": 2})
    sh = partitioning.params_shardings(boxed["params"], mesh, partitioning.DEFAULT_RULES)
    assert tuple(sh["layers"]["mlp"]["wi_0"]["kernel"].spec) == (None, "fsdp", "tensor")


@pytest.mark.parametrize("name", ["decoder_only", "prefix_lm"])
def test_scanned_cached_decoding_equals_full_forward(name):
    """Prefill a chunk, gather the cache rows (as beams do), then one token a step; with a
    soft prompt already written into the cache."""
    cfg = _scanned(CONFIGS[name], prompt_length=2)
    model = build_model(cfg)
    tokens = _tokens((2, 8), 5)
    flags = jnp.broadcast_to(jnp.arange(8) < 3, tokens.shape)
    params = nn.meta.unbox(jax.jit(model.init)(jax.random.PRNGKey(1), tokens)["params"])
    rows = jnp.asarray([1, 0, 1])
    full = jitted_apply(model)({"params": params}, tokens[rows], decoder_causal_attention=flags[rows])

    cache = init_cache(model, params, batch_size=2, max_length=8)
    run = jitted_apply(model, decode=True, mutable=["cache"])
    assert cache["layers"]["self_attention"]["cached_key"].shape == (3, 2, 10, cfg.kv_heads, 8)
    pos = jnp.broadcast_to(jnp.arange(8, dtype=jnp.int32), tokens.shape)
    seg = jnp.ones_like(tokens)
    logits, state = run({"params": params, "cache": cache}, tokens[:, :3], seg[:, :3],
                        pos[:, :3], flags[:, :3])
    cache = layout.gather_cache(state["cache"], rows)
    steps = [logits[rows]]
    for t in range(3, 8):
        logits, state = run({"params": params, "cache": cache}, tokens[rows, t:t + 1],
                            seg[rows, t:t + 1], pos[rows, t:t + 1], flags[rows, t:t + 1])
        cache = state["cache"]
        steps.append(logits)
    np.testing.assert_allclose(jnp.concatenate(steps, axis=1), full, atol=1e-5, rtol=1e-5)


def test_scanned_encoder_decoder_cached_decoding_equals_full_forward():
    cfg = _scanned(ENC_DEC, prompt_length=2)
    model = build_model(cfg)
    (enc, dec), _ = _inputs(cfg)
    params = nn.meta.unbox(jax.jit(model.init)(jax.random.PRNGKey(2), enc, dec)["params"])
    rows = jnp.asarray([1, 1, 0])
    full = jitted_apply(model)({"params": params}, enc[rows], dec[rows],
                         decoder_segment_ids=jnp.ones_like(dec[rows]))

    encoded = jitted_apply(model, method="encode")({"params": params}, enc)
    kv = jitted_apply(model, method="cross_kv")({"params": params}, encoded)
    assert kv[0].shape == (2, 3, 9, 2, 8)  # [batch, layers, prompt + input, kv_heads, d]
    kv = jax.tree_util.tree_map(lambda x: x[rows], kv)
    enc_seg = (enc[rows] > 0).astype(jnp.int32)
    cache = init_cache(model, params, batch_size=3, max_length=6, encoder_length=9)
    run = jitted_apply(model, decode=True, method="decode", mutable=["cache"])
    steps = []
    for t in range(6):
        logits, state = run({"params": params, "cache": cache}, None, enc_seg, dec[rows, t:t + 1],
                            decoder_positions=jnp.full((3, 1), t, jnp.int32), cross_kv=kv)
        cache = state["cache"]
        steps.append(logits)
    np.testing.assert_allclose(jnp.concatenate(steps, axis=1), full, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["encoder_decoder", "decoder_only"])
def test_beam_search_and_ranking_agree_across_layouts(name):
    """decoding.py and scoring.py (cache gathers, cross-attention rows) in both layouts."""
    from flan_jax.decoding import decode_tokens
    from flan_jax.placement import LoadedModel
    from flan_jax.scoring import rank_classify
    from flan_jax.vocab import ByteVocab

    cfg = dataclasses.replace(CONFIGS[name], vocab_size=259)
    params = nn.meta.unbox(jax.jit(build_model(cfg).init)(
        jax.random.PRNGKey(3), *([jnp.ones((1, 4), jnp.int32)] *
                                 (2 if name == "encoder_decoder" else 1)))["params"])
    scfg = _scanned(cfg)
    sparams = layout.scan_params(params, cfg)
    if name == "encoder_decoder":
        batch = {"encoder_input_tokens": _tokens((2, 5), 7).at[1, 3:].set(0)}
    else:
        batch = {"decoder_input_tokens": _tokens((2, 5), 7).at[1, 3:].set(0),
                 "decoder_segment_ids": jnp.asarray([[1] * 5, [1] * 3 + [0] * 2])}
    beams = [decode_tokens(build_model(c), p, batch, 4, method="beam", num_beams=2, eos_id=1)
             for c, p in ((cfg, params), (scfg, sparams))]
    np.testing.assert_array_equal(beams[0], beams[1])
    ranks = [rank_classify(LoadedModel(build_model(c), p, ByteVocab()), ["ab", "cde"],
                           [["x", "yz"], ["u", "v", "w"]]) for c, p in
             ((cfg, params), (scfg, sparams))]
    for a, b in zip(*ranks):
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-4)


@pytest.mark.slow
def test_scanned_training_step_matches_unscanned_and_learns():
    """One train step (remat inside the scan, data-parallel mesh) updates the weights as the
    per-layer model does; a few steps with dropout lower the loss."""
    from flan_jax.train_step import TrainState, make_train_step

    cfg = dataclasses.replace(DEC_ONLY, remat_policy="full")
    scfg = _scanned(cfg, dropout_rate=0.1)
    rng = np.random.RandomState(0)
    tokens = jnp.asarray(rng.randint(3, 61, size=(8, 12)), jnp.int32)
    batch = {"decoder_input_tokens": jnp.pad(tokens[:, :-1], ((0, 0), (1, 0))),
             "decoder_target_tokens": tokens,
             "decoder_segment_ids": jnp.ones_like(tokens),
             "decoder_positions": jnp.broadcast_to(jnp.arange(12), tokens.shape),
             "decoder_loss_weights": jnp.ones(tokens.shape, jnp.float32)}
    tx = optax.adam(1e-2)
    rules = partitioning.DEFAULT_RULES
    params = _init(cfg)
    sparams = layout.scan_params(params, cfg)

    def run(c, p, steps, dropout):
        step = jax.jit(make_train_step(build_model(c), tx, rules, z_loss=0.0,
                                       loss_normalization="tokens", accumulate_steps=1,
                                       dropout=dropout))
        state, losses = TrainState(jnp.zeros((), jnp.int32), p, tx.init(p)), []
        mesh = partitioning.make_mesh({"data": -1, "fsdp": 1, "tensor": 1})
        with jax.set_mesh(mesh):
            for _ in range(steps):
                state, metrics = step(state, batch, jax.random.PRNGKey(0))
                losses.append(float(metrics["loss"]))
        return state, losses

    ref, _ = run(cfg, params, 1, False)
    got, _ = run(scfg, sparams, 1, False)  # dropout configured but disabled: same numbers
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5),
                           got.params, layout.scan_params(ref.params, cfg))
    _, losses = run(scfg, sparams, 4, True)
    assert all(np.isfinite(losses)) and losses[-1] < losses[0] - 0.1, losses


@pytest.mark.parametrize("saved_scanned", [False, True])
def test_checkpoint_loads_into_the_other_layout(tmp_path, saved_scanned):
    cfg = ENC_DEC
    params = jax.tree_util.tree_map(np.asarray, _init(cfg))
    saved_cfg, load_cfg = (_scanned(cfg), cfg) if saved_scanned else (cfg, _scanned(cfg))
    checkpoints.save_params(tmp_path, layout.to_layout(params, layout.config_layout(saved_cfg)))
    (tmp_path / checkpoints.MODEL_GIN).write_text(checkpoints.model_gin_text(load_cfg))
    (tmp_path / "vocab.json").write_text('{"kind": "byte"}\n')
    want = layout.to_layout(params, layout.config_layout(load_cfg))

    # The model directory's model.gin asks for the other layout: converted on load.
    got_cfg, got, _ = checkpoints.load_model_dir(tmp_path)
    assert got_cfg.scan_layers == load_cfg.scan_layers
    jax.tree_util.tree_map(np.testing.assert_array_equal, got, want)
    # A sharded target in the other layout: restored into its shardings, then converted.
    model = build_model(load_cfg)
    boxed = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.ones((1, 4), jnp.int32),
                           jnp.ones((1, 4), jnp.int32))["params"]
    mesh = partitioning.make_mesh({"data": 2, "fsdp": 2, "tensor": 2})
    shardings = partitioning.params_shardings(boxed, mesh, partitioning.DEFAULT_RULES)
    target = jax.tree_util.tree_map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype,
                                                                      sharding=s),
                                    nn.meta.unbox(boxed), shardings)
    restored = checkpoints.load_params(tmp_path, target=target)
    for r, w, s in zip(*(jax.tree_util.tree_leaves(t) for t in (restored, want, shardings))):
        assert r.sharding == s
        np.testing.assert_array_equal(np.asarray(r), w)
    # No target, a config: converted too.
    jax.tree_util.tree_map(np.testing.assert_array_equal,
                           checkpoints.load_params(tmp_path, config=load_cfg), want)


def test_training_step_checkpoint_restores_in_the_configured_layout(tmp_path):
    import orbax.checkpoint as ocp

    params = _init(DEC_ONLY)
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save(tmp_path / "7" / "state", {"params": params, "step": np.int32(7)})
    got = checkpoints.restore_params_from_step(tmp_path / "7", config=_scanned(DEC_ONLY))
    assert layout.params_layout(got) == "scanned"
    jax.tree_util.tree_map(np.testing.assert_array_equal, got,
                           layout.scan_params(params, DEC_ONLY))


def test_layout_errors_name_both_sides(tmp_path):
    params = jax.tree_util.tree_map(np.asarray, _init(DEC_ONLY))
    deeper = _scanned(dataclasses.replace(DEC_ONLY, num_decoder_layers=4))
    checkpoints.save_params(tmp_path, params)
    with pytest.raises(layout.LayoutError) as e:
        checkpoints.load_params(tmp_path, config=deeper)
    msg = str(e.value)
    assert "unscanned layers" in msg and "wants scanned layers" in msg
    assert "3 decoder layers" in msg and "4 of them" in msg and "model.gin" in msg

    mixed = {**params, "layers": params["layers_0"]}
    with pytest.raises(layout.LayoutError, match="mixes `layers` with `layers_N`"):
        layout.convert_params(mixed, _scanned(DEC_ONLY), source="ckpt")
    with pytest.raises(layout.LayoutError, match="no transformer layers"):
        layout.params_layout({"prompt": np.zeros((2, 4))})
    # A prompt-only tree has no layout to convert and passes through.
    assert layout.convert_params({"prompt": 1}, _scanned(DEC_ONLY)) == {"prompt": 1}
