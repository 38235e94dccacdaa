"""Prompt tuning: the soft prompt in both model families (cached paths agree with full forward
passes), and the trainer: only the prompt changes and is saved, the loss falls, and the run
directory loads as base + prompt for evaluation."""

import dataclasses
import json
import pathlib

import jax
import numpy as np
import pytest

from flan_jax import checkpoints, config, decoding, scoring
from flan_jax import evaluate as _evaluate_module  # noqa: F401  (registers `evaluate` with gin)
from flan_jax.models import init_prompt
from flan_jax.placement import LoadedModel
from flan_jax.scoring import RankSettings
from tests.fixtures import DEC_ONLY, ENC_DEC, INPUTS, OPTIONS, PREFIX_LM, VOCAB, tiny_model

PROMPTED = {name: dataclasses.replace(cfg, prompt_length=5) for name, cfg in
            {"encoder_decoder": ENC_DEC, "decoder_only": DEC_ONLY, "prefix_lm": PREFIX_LM}.items()}


@pytest.mark.parametrize("name", sorted(PROMPTED))
def test_prompt_paths_agree_and_the_prompt_matters(name):
    model, params = tiny_model(PROMPTED[name])
    assert params["prompt"].shape == (5, 32)
    fast = scoring.rank_classify(LoadedModel(model, params, VOCAB), INPUTS, OPTIONS,
                                 RankSettings(batch_size=3))
    slow = scoring.rank_classify_naive(LoadedModel(model, params, VOCAB), INPUTS, OPTIONS,
                                       RankSettings(batch_size=8))
    for f, s in zip(fast, slow):
        np.testing.assert_allclose(f.log_likelihoods, s.log_likelihoods, atol=1e-4, rtol=1e-4)
    ids = [VOCAB.encode(p) for p in INPUTS]
    if model.config.family == "encoder_decoder":
        ids = [x + [VOCAB.eos_id] for x in ids]
    batch = decoding.decoding_batch(model, ids, 4, 64)
    cached = np.asarray(decoding.decode_tokens(model, params, batch, 6))
    np.testing.assert_array_equal(cached, decoding.greedy_no_cache(model, params, batch, 6))
    other = {**params, "prompt": params["prompt"] + 1.0}
    moved = scoring.rank_classify(LoadedModel(model, other, VOCAB), INPUTS, OPTIONS,
                                  RankSettings(batch_size=3))
    assert not np.allclose(moved[0].log_likelihoods, fast[0].log_likelihoods)


def test_vocab_init_copies_embedding_rows_and_random_init_is_seeded():
    table = np.random.default_rng(0).normal(size=(259, 32)).astype(np.float32)
    cfg = dataclasses.replace(ENC_DEC, prompt_length=7)
    prompt = init_prompt(cfg, table, seed=3)
    assert prompt.shape == (7, 32)
    rows = [int(np.flatnonzero((table == r).all(-1))[0]) for r in prompt]
    assert len(set(rows)) == 7 and all(3 <= i < 259 for i in rows)
    np.testing.assert_array_equal(prompt, init_prompt(cfg, table, seed=3))
    rnd = init_prompt(dataclasses.replace(cfg, prompt_init="random"), table, seed=3)
    assert not any((table == r).all(-1).any() for r in rnd)


# --- the trainer --------------------------------------------------------------------------------

def _prompt_tune(base, model_dir, *extra):
    from flan_jax.train import train
    from tests.fixtures import TINY
    from tests.fixtures import losses as _losses

    config.parse_gin([str(base / "model.gin"), "runs/prompt_tune.gin", "hardware/cpu.gin"],
                     TINY + [f"MODEL_DIR = '{model_dir}'", f"BASE_CHECKPOINT = '{base}'",
                             "PROMPT_LENGTH = 8", "TRAIN_STEPS = 24", "train.checkpoint_every = 12",
                             # TINY sets the model's rate; back to runs/prompt_tune.gin's
                             "learning_rate_schedule.base_learning_rate = 0.3", *extra])
    train()
    return _losses(model_dir)


def _batches_loss(model, params, n=6):
    """Mean token loss over the first `n` batches of the training data (the TINY settings)."""
    from flan_jax.data import DataConfig, open_source

    data = DataConfig(mixture_or_task_name="synthetic_heldout_nli_train",
                      task_feature_lengths={"inputs": 64, "targets": 16}, batch_size=8, pack=False)
    it = open_source(data).batches("encoder_decoder",
                                   jax.sharding.SingleDeviceSharding(jax.devices()[0]))
    total = tokens = 0.0
    for _ in range(n):
        b = next(it)
        ll, nt = scoring.target_log_likelihoods(model, params, {
            k: b[k] for k in ("encoder_input_tokens", "decoder_input_tokens",
                              "decoder_target_tokens", "decoder_loss_weights")})
        total, tokens = total - float(ll.sum()), tokens + float(nt.sum())
    return total / tokens


def _tree_bytes(path):
    return sum(p.stat().st_size for p in pathlib.Path(path).rglob("*") if p.is_file())


@pytest.fixture
def base_dir(tiny_run):
    """The base model: a run trained for 10 steps, never written to (prompt tuning reads it)."""
    return tiny_run(10)


def test_prompt_tuning_changes_only_the_prompt_and_lowers_the_loss(base_dir, tmp_path):
    from flan_jax.evaluate import predict_task, resolve_tasks
    from flan_jax.models import build_model
    from flan_jax.predict import PredictSettings

    base_step = checkpoints.latest_step_dir(base_dir)
    base_params = jax.tree_util.tree_map(np.asarray,
                                         checkpoints.restore_params_from_step(base_step))
    base_bytes = _tree_bytes(base_dir / "checkpoints")
    losses = _prompt_tune(base_dir, tmp_path)

    assert sorted(losses) == list(range(1, 25)) and all(np.isfinite(list(losses.values())))
    # Only the prompt (and its optimizer state) is checkpointed: no full parameters.
    assert not (tmp_path / "params").exists()
    saved = checkpoints.restore_params_from_step(checkpoints.latest_step_dir(tmp_path))
    assert set(saved) == {"prompt"} and saved["prompt"].shape == (8, 64)
    assert _tree_bytes(tmp_path / "checkpoints") < base_bytes / 10
    assert pathlib.Path((tmp_path / "prompt_base.txt").read_text().strip()) == base_dir.resolve()
    # load_model_dir merges base + prompt; every base parameter is bit-identical to the base's
    # checkpoint (which training did not touch), and the prompt moved away from its start.
    cfg, params, vocab = checkpoints.load_model_dir(tmp_path)
    assert cfg.prompt_length == 8 and cfg.prompt_init == "vocab"
    assert set(params) == set(base_params) | {"prompt"}
    jax.tree_util.tree_map(np.testing.assert_array_equal,
                           {k: v for k, v in params.items() if k != "prompt"}, base_params)
    np.testing.assert_array_equal(
        checkpoints.restore_params_from_step(base_step)["encoder"]["relpos_bias"],
        base_params["encoder"]["relpos_bias"])
    start = init_prompt(cfg, base_params["token_embed"]["embedding"], seed=0)
    assert np.abs(np.asarray(params["prompt"], np.float32) - start).max() > 1e-3
    # The loss on the run's first training batches is lower with the tuned prompt than with the
    # one it started from (per-step losses are too noisy over a few different batches).
    model = build_model(cfg)
    before = _batches_loss(model, {**params, "prompt": start})
    after = _batches_loss(model, params)
    assert after < before - 0.02, (before, after)
    # Evaluation runs on the merged model (rank and generation tasks).
    settings = PredictSettings(batch_size=8, max_input_length=64, max_new_tokens=8)
    for task in resolve_tasks(["synthetic_fact_nli_t0_rank", "synthetic_reverse_word_t1_eval"]):
        examples, predictions = predict_task(task, LoadedModel(model, params, vocab),
                                             settings, max_examples=2, stats={})
        assert len(predictions) == len(examples) == 2
    # Resuming restores the prompt run (prompt-only state) and finishes the remaining steps.
    more = _prompt_tune(base_dir, tmp_path, "TRAIN_STEPS = 26")
    assert 26 in more and np.isfinite(more[26])


def test_train_step_gives_no_gradient_to_frozen_parameters():
    import optax

    from flan_jax import partitioning
    from flan_jax.train_step import TrainState, make_train_step, merge_params

    cfg = PROMPTED["decoder_only"]
    model, params = tiny_model(cfg)
    trained = {"prompt": params["prompt"]}
    frozen = {k: v for k, v in params.items() if k != "prompt"}
    tx = optax.adam(0.1)
    step = jax.jit(make_train_step(model, tx, partitioning.DEFAULT_RULES, z_loss=0.0,
                                   loss_normalization="tokens", accumulate_steps=1,
                                   dropout=False, frozen_params=True))
    tokens = np.tile(np.arange(3, 19, dtype=np.int32), (2, 1))
    batch = {"decoder_input_tokens": tokens, "decoder_target_tokens": np.roll(tokens, -1, 1),
             "decoder_loss_weights": np.ones_like(tokens)}
    state = TrainState(np.zeros((), np.int32), trained, tx.init(trained))
    before = jax.tree_util.tree_map(np.array, frozen)
    new_state, metrics = step(state, batch, jax.random.PRNGKey(0), frozen)
    assert set(new_state.params) == {"prompt"}
    assert not np.array_equal(new_state.params["prompt"], trained["prompt"])
    jax.tree_util.tree_map(np.testing.assert_array_equal, frozen, before)
    assert set(merge_params(new_state.params, frozen)) == set(params)
    assert np.isfinite(float(metrics["loss"]))


def test_prompt_tuning_refuses_packing_and_a_missing_base(base_dir, tmp_path):
    from flan_jax.errors import TrainingError

    with pytest.raises(TrainingError, match="pack = False"):
        _prompt_tune(base_dir, tmp_path / "a", "DataConfig.pack = True")
    with pytest.raises(TrainingError, match="prompt_tuning_base"):
        _prompt_tune(base_dir, tmp_path / "b", "BASE_CHECKPOINT = None")
    assert not (tmp_path / "a" / "checkpoints").exists()
