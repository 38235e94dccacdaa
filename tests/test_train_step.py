"""flan_jax.train_step: the state layout carries the mesh's shardings, a new state starts at
step 0 with those shardings, a step lowers the loss, gradient accumulation equals the whole
batch, and a saved state is restored instead of initialised."""

import jax
import numpy as np
import optax
import pytest

from flan_jax import checkpoints, partitioning
from flan_jax.models import TransformerConfig, build_model
from flan_jax.train_step import init_or_restore, make_train_step, merge_params, state_layout

CFG = TransformerConfig(family="decoder_only", emb_dim=16, num_heads=2, head_dim=8, mlp_dim=32,
                        num_decoder_layers=1, vocab_size=40)


def _setup(axes=None):
    mesh = partitioning.make_mesh(axes or {"data": 4, "fsdp": 2, "tensor": 1})
    rules = partitioning.logical_axis_rules()
    model = build_model(CFG)
    tx = optax.adam(1e-2)
    return mesh, rules, model, tx, state_layout(model, tx, mesh, rules, seed=0)


def _batch(n=8, length=8):
    rng = np.random.default_rng(0)
    tokens = rng.integers(2, CFG.vocab_size, (n, length)).astype(np.int32)
    inputs = np.concatenate([np.zeros((n, 1), np.int32), tokens[:, :-1]], axis=1)
    return {"decoder_input_tokens": inputs, "decoder_target_tokens": tokens,
            "decoder_loss_weights": np.ones((n, length), np.float32),
            "decoder_segment_ids": np.ones((n, length), np.int32),
            "decoder_positions": np.tile(np.arange(length, dtype=np.int32), (n, 1)),
            "decoder_causal_attention": np.zeros((n, length), np.int32)}


class _NoCheckpoint:
    def latest_step(self):
        return None


def test_a_new_state_has_the_layouts_shardings_and_step_zero():
    mesh, rules, model, tx, layout = _setup()
    assert layout.frozen is None
    state, data_state, latest = init_or_restore(layout, tx, _NoCheckpoint(), mesh, CFG, 0,
                                                None, "nowhere")
    assert (int(state.step), data_state, latest) == (0, None, None)
    same = jax.tree_util.tree_map(lambda x, a: x.shape == a.shape and x.sharding == a.sharding,
                                  state.params, layout.abstract.params)
    assert all(jax.tree_util.tree_leaves(same))
    assert merge_params(state.params, None) is state.params
    assert merge_params({"prompt": 1}, {"embed": 2}) == {"embed": 2, "prompt": 1}


def test_steps_lower_the_loss_and_accumulation_equals_the_whole_batch():
    mesh, rules, model, tx, layout = _setup()
    state, _, _ = init_or_restore(layout, tx, _NoCheckpoint(), mesh, CFG, 0, None, "nowhere")
    batch, rng = _batch(), jax.random.PRNGKey(1)

    def step_fn(accumulate):
        fn = make_train_step(model, tx, rules, z_loss=0.0, loss_normalization="tokens",
                             accumulate_steps=accumulate, dropout=False)
        with jax.set_mesh(mesh):
            return jax.jit(fn)

    whole, halves = step_fn(1), step_fn(2)
    with jax.set_mesh(mesh):
        one, m1 = whole(state, batch, rng)
        two, m2 = halves(state, batch, rng)
        assert float(m1["num_tokens"]) == 64.0 and float(m2["num_tokens"]) == 64.0
        assert float(m2["loss"]) == pytest.approx(float(m1["loss"]), rel=1e-5)
        np.testing.assert_allclose(jax.tree_util.tree_leaves(one.params)[0],
                                   jax.tree_util.tree_leaves(two.params)[0], rtol=1e-4, atol=1e-6)
        losses = [float(m1["loss"])]
        for _ in range(5):
            one, m = whole(one, batch, rng)
            losses.append(float(m["loss"]))
    assert int(one.step) == 6 and losses[-1] < losses[0]


def test_a_saved_step_is_restored_not_initialised(tmp_path):
    mesh, rules, model, tx, layout = _setup()
    state, _, _ = init_or_restore(layout, tx, _NoCheckpoint(), mesh, CFG, 0, None, "nowhere")
    manager = checkpoints.checkpoint_manager(tmp_path, keep=2, every=1, use_async=False)
    state = state.replace(step=state.step + 3)
    manager.save(3, args=checkpoints.save_args(state, {"position": 3}), force=True)
    manager.wait_until_finished()
    other = state_layout(model, tx, mesh, rules, seed=5)  # another seed: other initial values
    restored, data_state, latest = init_or_restore(other, tx, manager, mesh, CFG, 5, None,
                                                   str(tmp_path))
    assert latest == 3 and int(restored.step) == 3 and data_state == {"position": 3}
    for a, b in zip(jax.tree_util.tree_leaves(restored.params),
                    jax.tree_util.tree_leaves(state.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
