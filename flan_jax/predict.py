"""The one place that decides how an input becomes a prediction, for `eval` and `infer` alike:
inputs with answer options are rank-classified (each input once, every option scored against
it); inputs without are decoded (greedy, sampling or beam search)."""

from __future__ import annotations

import dataclasses
from typing import Sequence

from flan_jax import decoding, scoring
from flan_jax.placement import LoadedModel


@dataclasses.dataclass(frozen=True)
class PredictSettings:
    """Everything `eval` and `infer` set about predicting (one flat record, as the commands
    and gin bind it); `rank()` and `decode()` are the parts scoring and decoding take."""
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

    def rank(self) -> scoring.RankSettings:
        """The rank-classification settings (options cut to `max_target_length`)."""
        return scoring.RankSettings(
            score=self.rank_score, batch_size=self.batch_size,
            max_input_length=self.max_input_length, max_option_length=self.max_target_length,
            option_tokens_per_call=self.option_tokens_per_call, keep_input=self.keep_input)

    def decode(self) -> decoding.DecodeSettings:
        """The decoding settings (`max_new_tokens`, else `max_target_length`, new tokens)."""
        return decoding.DecodeSettings(
            max_new_tokens=self.max_new_tokens or self.max_target_length, method=self.method,
            temperature=self.temperature, top_k=self.top_k, top_p=self.top_p,
            num_beams=self.num_beams, length_penalty=self.length_penalty, seed=self.seed,
            batch_size=self.batch_size, max_input_length=self.max_input_length,
            keep_input=self.keep_input)


@dataclasses.dataclass(frozen=True)
class Prediction:
    text: str
    option_scores: list[float] | None = None  # rank classification only


def predict(loaded: LoadedModel, inputs: Sequence[str],
            options: Sequence[Sequence[str]] | None, settings: PredictSettings,
            stats: dict | None = None, example_offset: int = 0) -> list[Prediction]:
    """Predictions for `inputs`: the best of each input's `options`, or generated text, on
    `loaded.placement` (sampling keys start at `example_offset`; `stats` counts truncations)."""
    if options is not None:
        ranked = scoring.rank_classify(loaded, inputs, options, settings.rank(), stats=stats)
        return [Prediction(opts[r.prediction_index], list(r.scores))
                for opts, r in zip(options, ranked)]
    texts = decoding.generate(loaded, inputs, settings.decode(), stats=stats,
                              example_offset=example_offset)
    return [Prediction(t) for t in texts]
