"""The rank-or-generate dispatch shared by eval and infer equals calling scoring/decoding."""

import jax
import jax.numpy as jnp

from flan_jax import decoding, scoring
from flan_jax.decoding import DecodeSettings
from flan_jax.models import TransformerConfig, build_model
from flan_jax.placement import LoadedModel
from flan_jax.predict import PredictSettings, predict
from flan_jax.scoring import RankSettings
from flan_jax.vocab import ByteVocab

CFG = TransformerConfig(family="encoder_decoder", emb_dim=32, num_heads=2, head_dim=16,
                        mlp_dim=64, num_encoder_layers=1, num_decoder_layers=1, vocab_size=259)
INPUTS = ["is it red?", "two plus two"]
OPTIONS = [["yes", "no"], ["four", "five", "six"]]


def _model():
    model = build_model(CFG)
    params = jax.jit(model.init)(jax.random.PRNGKey(0), jnp.ones((1, 4), jnp.int32),
                                 jnp.ones((1, 4), jnp.int32))["params"]
    return model, params


def test_options_are_ranked_and_plain_inputs_decoded():
    model, params = _model()
    vocab, settings = ByteVocab(), PredictSettings(batch_size=2, max_input_length=32,
                                                   max_target_length=8)
    loaded = LoadedModel(model, params, vocab)
    ranked = predict(loaded, INPUTS, OPTIONS, settings)
    ref = scoring.rank_classify(loaded, INPUTS, OPTIONS, RankSettings(
        batch_size=2, max_input_length=32, max_option_length=8))
    assert [p.text for p in ranked] == [o[r.prediction_index] for o, r in zip(OPTIONS, ref)]
    assert [p.option_scores for p in ranked] == [list(r.scores) for r in ref]
    generated = predict(loaded, INPUTS, None, settings)
    assert [p.text for p in generated] == decoding.generate(
        loaded, INPUTS, DecodeSettings(max_new_tokens=8, batch_size=2, max_input_length=32))
    assert all(p.option_scores is None for p in generated)
