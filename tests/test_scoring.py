"""Scoring: shared-input rank classification equals per-option scoring and the transformers
reference; score choices, truncation counts and bad inputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flan_jax import batching, scoring
from flan_jax.placement import LoadedModel
from flan_jax.scoring import RankSettings
from tests.fixtures import DEC_ONLY, ENC_DEC, INPUTS, OPTIONS, PREFIX_LM, VOCAB, converted, tiny_model

CONFIGS = {"encoder_decoder": ENC_DEC, "decoder_only": DEC_ONLY, "prefix_lm": PREFIX_LM}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_shared_input_rank_equals_naive(name):
    model, params = tiny_model(CONFIGS[name])
    stats = {}
    loaded = LoadedModel(model, params, VOCAB)
    fast = scoring.rank_classify(loaded, INPUTS, OPTIONS, RankSettings(batch_size=3),
                                 stats=stats)
    slow = scoring.rank_classify_naive(loaded, INPUTS, OPTIONS, RankSettings(batch_size=8))
    assert [len(r.scores) for r in fast] == [len(o) for o in OPTIONS]
    for f, s, opts in zip(fast, slow, OPTIONS):
        np.testing.assert_allclose(f.log_likelihoods, s.log_likelihoods, atol=1e-5, rtol=1e-5)
        assert f.num_tokens == s.num_tokens
        extra = 1 if name == "encoder_decoder" else 0  # EOS ends encoder-decoder targets
        assert f.num_tokens == [len(o.encode()) + extra for o in opts]
        assert f.prediction_index == s.prediction_index == int(np.argmax(f.scores))
    assert stats == {}


def test_score_choices_truncation_and_errors():
    loaded = LoadedModel(*tiny_model(DEC_ONLY), VOCAB)
    res = {score: scoring.rank_classify(loaded, INPUTS[:2], OPTIONS[:2],
                                        RankSettings(score=score, batch_size=3))
           for score in ("sum", "mean", "per_char")}
    for i, opts in enumerate(OPTIONS[:2]):
        ll, nt = res["sum"][i].log_likelihoods, res["sum"][i].num_tokens
        np.testing.assert_allclose(res["mean"][i].scores, np.divide(ll, nt), rtol=1e-6)
        np.testing.assert_allclose(res["per_char"][i].scores, [a / len(o) for a, o in
                                                               zip(ll, opts)], rtol=1e-6)
    stats = {}
    scoring.rank_classify(loaded, ["x" * 40, "short"], [["a"], ["bcdefgh"]],
                          RankSettings(max_input_length=16, max_option_length=4), stats=stats)
    assert stats == {"inputs_truncated": 1, "targets_truncated": 1}
    with pytest.raises(ValueError, match="example 1 has no options"):
        scoring.rank_classify(loaded, ["a", "b"], [["x"], []])
    with pytest.raises(ValueError, match="score="):
        scoring.rank_classify(loaded, ["a"], [["x"]], RankSettings(score="max"))


# --- agreement with the transformers reference -------------------------------------------------

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


def torch_loglik(hf, family, prompt_ids, target_ids):
    with torch.no_grad():
        if family == "encoder_decoder":
            dec_in = [0] + target_ids[:-1]
            logits = hf(input_ids=torch.tensor([prompt_ids]),
                        decoder_input_ids=torch.tensor([dec_in])).logits[0]
            logp = torch.log_softmax(logits.double(), -1)
            return float(sum(logp[t, tok] for t, tok in enumerate(target_ids)))
        seq = prompt_ids + target_ids
        logits = hf(input_ids=torch.tensor([seq])).logits[0]
        logp = torch.log_softmax(logits.double(), -1)
        return float(sum(logp[len(prompt_ids) + j - 1, tok] for j, tok in enumerate(target_ids)))


@pytest.mark.parametrize("family", ["encoder_decoder", "decoder_only"])
def test_rank_and_loglik_match_transformers(tmp_path, family):
    hf, model, params, vocab, _ = converted(tmp_path, family)
    ranked = scoring.rank_classify(LoadedModel(model, params, vocab), INPUTS, OPTIONS,
                                   RankSettings(batch_size=3))
    for x, opts, res in zip(INPUTS, OPTIONS, ranked):
        prompt = batching.input_ids(vocab, x, family, None)
        ref = [torch_loglik(hf, family, prompt, batching.target_ids(vocab, o, family, None))
               for o in opts]
        np.testing.assert_allclose(res.log_likelihoods, ref, atol=1e-4, rtol=1e-5)
        assert res.prediction_index == int(np.argmax(ref))
    # target_log_likelihoods on a hand-built batch agrees too.
    prompts = [batching.input_ids(vocab, x, family, None) for x in INPUTS[:2]]
    targets = [batching.target_ids(vocab, o[0], family, None) for o in OPTIONS[:2]]
    batch = (batching.encdec_batch(prompts, targets) if family == "encoder_decoder"
             else batching.decoder_only_batch(prompts, targets))
    ll, nt = scoring.target_log_likelihoods(model, params, batch)
    ref = [torch_loglik(hf, family, p, t) for p, t in zip(prompts, targets)]
    np.testing.assert_allclose(np.asarray(ll), ref, atol=1e-4, rtol=1e-5)
    assert list(np.asarray(nt)) == [len(t) for t in targets]


@pytest.mark.parametrize("name", ["encoder_decoder", "decoder_only"])
def test_many_options_are_scored_in_bounded_calls(name):
    """1,000 options cost more calls, not more memory: every device call holds at most the
    option-token budget, so its compiled memory equals the 10-option call's (within 1.5x)."""
    model, params = tiny_model(CONFIGS[name])
    budget = 16 * 8  # 16 option rows of 8 tokens a call
    fns = scoring.jitted_functions(model.config)
    fn = fns["rank_encdec" if name == "encoder_decoder" else "rank_decoder_only"]

    def peak(n_options):
        options = [[f"o{i}" for i in range(n_options)]]
        shapes: set = set()
        loaded = LoadedModel(model, params, VOCAB)
        chunked = scoring.rank_classify(loaded, ["Which one?"], options,
                                        RankSettings(option_tokens_per_call=budget),
                                        call_shapes=shapes)
        whole = scoring.rank_classify(loaded, ["Which one?"], options,
                                      RankSettings(option_tokens_per_call=10**9))
        np.testing.assert_allclose(chunked[0].log_likelihoods, whole[0].log_likelihoods,
                                   atol=1e-5)
        memory = []
        for b, lp, m, lo in shapes:
            assert m * lo <= budget
            args = (params, jnp.zeros((b, lp), jnp.int32), jnp.ones((b,), jnp.int32),
                    jnp.zeros((m, lo), jnp.int32), jnp.ones((m,), jnp.int32),
                    jnp.zeros((m,), jnp.int32))
            analysis = fn.lower(*args).compile().memory_analysis()
            memory.append(analysis.temp_size_in_bytes + analysis.argument_size_in_bytes)
        return max(memory)

    assert peak(1000) <= 1.5 * peak(10)
