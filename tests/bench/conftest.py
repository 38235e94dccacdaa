"""Shared fixtures of the benchmark tests: tiny float32 models of both families."""

import dataclasses

import pytest

from flan_jax.bench.common import BYTE_VOCAB, Settings, f32, model_configs

QUICK = Settings.make(True)


@pytest.fixture(scope="session")
def tiny_models():
    """(name, config) of decoder_tiny and t5_tiny from their gin files: byte vocabulary, one
    layer per stack."""
    configs = model_configs(["models/decoder_tiny.gin", "models/t5_tiny.gin"])
    return [(name, dataclasses.replace(f32(c), vocab_size=BYTE_VOCAB, num_decoder_layers=1,
                                       num_encoder_layers=min(c.num_encoder_layers, 1)))
            for name, c in zip(("decoder_tiny", "t5_tiny"), configs)]
