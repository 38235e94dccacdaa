"""`bench decode`: cached, beam and uncached decoding all measured; the flags drop the slow ones."""

import pytest

from flan_jax.bench.common import init_params
from flan_jax.bench.decode import measure_decode
from flan_jax.models import build_model

from tests.bench.conftest import QUICK


pytestmark = pytest.mark.slow  # compiles models; `bench all --quick` (test_cli) covers it


def test_measure_decode(tiny_models):
    _, cfg = tiny_models[0]
    model = build_model(cfg)
    params = init_params(model)
    r = measure_decode(model, params, QUICK, batch=2, prompt_len=8, new=4)
    assert r["speedup_greedy"] * r["greedy_cache_tokens_per_s"] > 0
    assert r["beam4_cache_tokens_per_s"] > 0
    only = measure_decode(model, params, QUICK, batch=2, prompt_len=8, new=4, beam=False,
                          no_cache=False)
    assert set(only) == {"batch", "prompt_tokens", "new_tokens", "greedy_cache_tokens_per_s"}
