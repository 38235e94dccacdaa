"""`bench rank`: both ways score every option."""

import pytest

from flan_jax.bench.common import init_params
from flan_jax.bench.rank import measure_rank
from flan_jax.models import build_model

from tests.bench.conftest import QUICK


pytestmark = pytest.mark.slow  # compiles models; `bench all --quick` (test_cli) covers it


def test_measure_rank(tiny_models):
    for _, cfg in tiny_models:
        model = build_model(cfg)
        r = measure_rank(model, init_params(model), QUICK, n_inputs=2, input_len=16, options=3)
        assert r["speedup"] == r["shared_options_per_s"] / r["naive_options_per_s"] > 0
        assert (r["options"], r["inputs"], r["input_tokens"]) == (3, 2, 16)
