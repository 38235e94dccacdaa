"""flan_jax.data.cache_reader through flan_jax.data.open_source: a cache source is opened once
and answers identity, vocabulary, truncation sample and global batches whose state continues
the stream exactly; a checkpoint of another number of reading processes is refused."""

import json

import jax
import numpy as np
import pytest

from flan_jax.data import DataConfig, open_source
from flan_jax.data.cache_reader import CacheSource
from flan_jax.errors import UserError
from tests.fixtures import CACHE_LENGTHS, CACHE_MIXTURE


def _cfg(cache, **kw):
    return DataConfig(**{"mixture_or_task_name": CACHE_MIXTURE,
                         "task_feature_lengths": CACHE_LENGTHS, "batch_size": 8,
                         "source": "cache", "cache_dir": str(cache.path), **kw})


def test_the_source_answers_from_the_caches_metadata(synthetic_cache):
    source = open_source(_cfg(synthetic_cache))
    assert isinstance(source.backend, CacheSource)
    assert source.identity() == {
        "source": "cache", "mixture_or_task_name": CACHE_MIXTURE,
        "task_feature_lengths": CACHE_LENGTHS, "seed": 0, "pack": True, "shuffle": True,
        "split": "train", "host_data": "shard", "cache_fingerprint": synthetic_cache.fingerprint}
    assert source.vocabulary() == ({"kind": "byte"}, None)
    report = source.truncation_sample(max_tasks=3)
    assert [t.task for t in report] == sorted(synthetic_cache.tasks)[:3]
    assert all(t.sampled == 8 and set(t.longest) == {"inputs", "targets"} for t in report)
    one = open_source(_cfg(synthetic_cache, mixture_or_task_name=sorted(synthetic_cache.tasks)[0]))
    assert one.backend.rates == {sorted(synthetic_cache.tasks)[0]: 1.0}


def test_batches_are_global_and_their_state_continues_the_stream(synthetic_cache):
    source = open_source(_cfg(synthetic_cache, host_data="slice"))
    sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    first = source.batches("encoder_decoder", sharding)
    for _ in range(2):
        next(first)
    state = json.loads(json.dumps(first.state()))  # as the checkpoint stores it
    assert state["position"] == 2 and len(state["processes"]) == 1
    assert state["cache_fingerprint"] == synthetic_cache.fingerprint
    expected = next(first)
    assert expected["encoder_input_tokens"].shape == (8, 64)
    again = source.batches("encoder_decoder", sharding, state)
    got = next(again)
    for k in expected:
        np.testing.assert_array_equal(np.asarray(got[k]), np.asarray(expected[k]))
    assert again.state()["position"] == 3
    source.check_same_stream(state)
    with pytest.raises(UserError, match="seed: 0 in the checkpoint, 1 now"):
        open_source(_cfg(synthetic_cache, host_data="slice", seed=1)).check_same_stream(state)
    with pytest.raises(UserError, match="data state of 2 reading process"):
        source.batches("encoder_decoder", sharding, {**state, "processes": [{}, {}]})
