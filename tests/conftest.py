"""Test-wide setup: eight simulated CPU devices, float32 matmuls, quiet TensorFlow."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax  # noqa: E402

jax.config.update("jax_default_matmul_precision", "float32")


import gin  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_gin():
    """Gin bindings parsed by one test (a training run's) must not configure the next one."""
    yield
    gin.clear_config()


@pytest.fixture(scope="session")
def synthetic_cache(tmp_path_factory):
    """A data cache of synthetic_heldout_nli_train (40 examples per task, 16 per shard, lengths
    64/16), built once per test session for every module that reads one."""
    from flan_jax.data import cache_writer
    from tests.fixtures import cache_plan

    return cache_writer.build_cache(cache_plan(), str(tmp_path_factory.mktemp("cache")),
                                    show_progress=False)
