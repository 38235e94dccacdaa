"""The one place that decides how an input becomes a prediction, for `eval` and `infer` alike:
inputs with answer options are rank-classified (each input once, every option scored against
it); inputs without are decoded (greedy, sampling or beam search)."""

from __future__ import annotations

import dataclasses
from typing import Sequence

from flan_jax import decoding, scoring
from flan_jax.placement import Placement


@dataclasses.dataclass(frozen=True)
class PredictSettings:
    batch_size: int = 32
    max_input_length: int | None = 512
    keep_input: str | None = None  # side of a too-long input that stays (batching.input_ids)
    max_target_length: int | None = 128  # options are cut to this; decoding's default length
    max_new_tokens: int | None = None  # None: max_target_length
    rank_score: str = "sum"  # scoring.SCORES
    method: str = "greedy"  # decoding.METHODS
    num_beams: int = 4
    length_penalty: float = 0.6
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int = 0
    option_tokens_per_call: int = scoring.DEFAULT_OPTION_TOKENS_PER_CALL


@dataclasses.dataclass(frozen=True)
class Prediction:
    text: str
    option_scores: list[float] | None = None  # rank classification only


def predict(model, params, vocab, inputs: Sequence[str],
            options: Sequence[Sequence[str]] | None, settings: PredictSettings,
            stats: dict | None = None, example_offset: int = 0,
            placement: Placement | None = None) -> list[Prediction]:
    """Predictions for `inputs`: the best of each input's `options`, or generated text, on
    `placement`'s mesh when given (the parameters already in their shardings there)."""
    if options is not None:
        ranked = scoring.rank_classify(
            model, params, vocab, inputs, options, score=settings.rank_score,
            batch_size=settings.batch_size, max_input_length=settings.max_input_length,
            max_option_length=settings.max_target_length, stats=stats, placement=placement,
            option_tokens_per_call=settings.option_tokens_per_call,
            keep_input=settings.keep_input)
        return [Prediction(opts[r.prediction_index], list(r.scores))
                for opts, r in zip(options, ranked)]
    texts = decoding.generate(
        model, params, vocab, inputs,
        max_new_tokens=settings.max_new_tokens or settings.max_target_length,
        batch_size=settings.batch_size, max_input_length=settings.max_input_length,
        method=settings.method, temperature=settings.temperature, top_k=settings.top_k,
        top_p=settings.top_p, num_beams=settings.num_beams,
        length_penalty=settings.length_penalty, seed=settings.seed,
        example_offset=example_offset, stats=stats, placement=placement,
        keep_input=settings.keep_input)
    return [Prediction(t) for t in texts]
