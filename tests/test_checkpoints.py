"""Model directories: model.gin, params, training-run steps and their checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flan_jax import checkpoints, partitioning
from flan_jax.errors import TrainingError
from flan_jax.models import TransformerConfig
from flan_jax.train_step import TrainState

CFG = TransformerConfig(family="decoder_only", emb_dim=16, num_heads=2, head_dim=8, mlp_dim=32,
                        num_decoder_layers=1, vocab_size=40)


def test_model_gin_round_trips_and_imports_what_it_configures(tmp_path):
    path = tmp_path / "model.gin"
    path.write_text(checkpoints.model_gin_text(CFG, header="a test"))
    assert "import flan_jax.models.config" in path.read_text()
    assert checkpoints.read_model_config(path) == CFG


def test_read_model_config_refuses_a_file_without_model_bindings(tmp_path):
    (tmp_path / "x.gin").write_text("TRAIN_STEPS = 3\n")
    with pytest.raises(ValueError, match="no TransformerConfig bindings"):
        checkpoints.read_model_config(tmp_path / "x.gin")


def test_params_restore_into_the_asked_shardings(tmp_path):
    params = {"a": {"kernel": np.arange(32, dtype=np.float32).reshape(8, 4)},
              "b": np.ones((3,), np.float32)}
    checkpoints.save_params(tmp_path, params)
    mesh = partitioning.make_mesh({"data": 1, "fsdp": 8, "tensor": 1})
    shardings = {"a": {"kernel": jax.NamedSharding(mesh, jax.sharding.PartitionSpec("fsdp"))},
                 "b": partitioning.replicated(mesh)}
    abstract = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), params)
    assert checkpoints.params_shapes_match(tmp_path, abstract)
    restored = checkpoints.load_params(tmp_path, checkpoints.sharded_abstract(abstract,
                                                                              shardings))
    assert restored["a"]["kernel"].sharding == shardings["a"]["kernel"]
    assert {s.data.shape for s in restored["a"]["kernel"].addressable_shards} == {(1, 4)}
    np.testing.assert_array_equal(restored["a"]["kernel"], params["a"]["kernel"])
    other = {**abstract, "b": jax.ShapeDtypeStruct((4,), np.float32)}
    assert not checkpoints.params_shapes_match(tmp_path, other)


def test_manager_saves_state_with_data_position_and_refuses_another_model(tmp_path):
    state = TrainState(jnp.asarray(3), {"w": jnp.ones((2, 2))}, {"m": jnp.zeros((2, 2))})
    manager = checkpoints.checkpoint_manager(tmp_path, keep=2, every=1, use_async=False)
    manager.save(3, args=checkpoints.save_args(state, {"position": 7}))
    manager.wait_until_finished()
    assert checkpoints.latest_step_dir(tmp_path).name == "3"
    saved = checkpoints.restore_params_from_step(checkpoints.latest_step_dir(tmp_path))
    np.testing.assert_array_equal(saved["w"], np.ones((2, 2)))
    meta = manager.item_metadata(3)["state"]
    checkpoints.check_compatible(meta["params"], {"w": jnp.zeros((2, 2))}, str(tmp_path))
    with pytest.raises(TrainingError, match=r"1 mismatching arrays, e.g. \['w'\]: saved "
                                            r"\(2, 2\) vs model \(3, 2\)"):
        checkpoints.check_compatible(meta["params"], {"w": jnp.zeros((3, 2))}, str(tmp_path))
    manager.close()


def test_a_directory_without_model_gin_says_how_to_make_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="flan-jax convert hf"):
        checkpoints.load_model_dir(tmp_path)


def test_params_shapes_match_across_layer_layouts(tmp_path):
    import dataclasses

    from flan_jax.models import build_model

    cfg = dataclasses.replace(CFG, num_decoder_layers=2)
    init = lambda c: build_model(c).init(jax.random.PRNGKey(0),  # noqa: E731
                                         jnp.ones((1, 4), jnp.int32))["params"]
    checkpoints.save_params(tmp_path, checkpoints.unbox(init(cfg)))
    scanned = jax.eval_shape(lambda: checkpoints.unbox(init(dataclasses.replace(
        cfg, scan_layers=True))))
    assert checkpoints.params_shapes_match(tmp_path, scanned)
    wider = jax.eval_shape(lambda: checkpoints.unbox(init(dataclasses.replace(
        cfg, scan_layers=True, mlp_dim=64))))
    assert not checkpoints.params_shapes_match(tmp_path, wider)


def test_a_fresh_run_keeps_only_interval_steps(tmp_path):
    """orbax would also save a fresh run's first step, taking one of the `keep` places."""
    state = TrainState(jnp.asarray(0), {"w": jnp.ones((2, 2))}, {"m": jnp.zeros((2, 2))})
    manager = checkpoints.checkpoint_manager(tmp_path, keep=2, every=5, use_async=False)
    saved = [step for step in range(1, 11)
             if manager.save(step, args=checkpoints.save_args(state, {"position": step}))]
    manager.wait_until_finished()
    assert saved == [5, 10] and manager.all_steps() == [5, 10]
    manager.close()


def test_reading_a_steps_parameters_warns_about_nothing(tmp_path, caplog):
    """A step's state/ has no checkpoint-level metadata of its own (the step holds it): reading
    the parameters must not log orbax's "Metadata file does not exist" on every eval."""
    state = TrainState(jnp.asarray(2), {"w": jnp.ones((2, 2))}, {"m": jnp.zeros((2, 2))})
    manager = checkpoints.checkpoint_manager(tmp_path, keep=2, every=1, use_async=False)
    manager.save(2, args=checkpoints.save_args(state, {"position": 4}))
    manager.wait_until_finished()
    manager.close()
    with caplog.at_level("WARNING"):
        params = checkpoints.restore_params_from_step(checkpoints.latest_step_dir(tmp_path))
    assert set(params) == {"w"}  # the parameter subtree alone
    assert not [r for r in caplog.records if "Metadata file" in r.getMessage()]
