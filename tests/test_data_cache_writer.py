"""flan_jax.data.cache_writer: what a task is (descriptions stable across calls, changed by
arguments), the settings a cache folder is held to, and which cached tasks went stale."""

import functools
import json

import pytest

from flan_jax.data import cache_writer
from flan_jax.errors import UserError
from tests.fixtures import CACHE_LENGTHS, cache_plan


def _scale(x, factor=2):
    return x * factor


def test_descriptions_are_stable_and_follow_arguments():
    one = functools.partial(_scale, factor=3)
    assert cache_writer.describe(one) == cache_writer.describe(functools.partial(_scale, factor=3))
    assert cache_writer.describe(one) != cache_writer.describe(functools.partial(_scale, factor=4))
    described = cache_writer.describe({"b": [1, 2.5, None], "a": b"bytes", "s": {3, 1}})
    assert described == {"a": described["a"], "b": [1, 2.5, None], "s": [1, 3]}
    assert len(described["a"]) == 16
    assert "0x" not in json.dumps(cache_writer.describe(object()))


def test_plan_settings_and_a_folder_held_to_them(tmp_path):
    plan = cache_plan(per_task=8)
    assert plan.settings() == {"mixture": "synthetic_heldout_nli_train", "split": "train",
                               "feature_lengths": CACHE_LENGTHS, "max_examples_per_task": 8,
                               "examples_per_shard": 16}
    cache_writer.check_settings(tmp_path, plan)  # the folder's first use
    saved = json.loads((tmp_path / cache_writer.BUILD).read_text())
    assert saved == {**plan.settings(), "command": plan.command}
    with pytest.raises(UserError, match="examples_per_shard: 16 there, 32 now"):
        cache_writer.check_settings(tmp_path, cache_plan(per_task=8, per_shard=32))


def test_a_current_cache_has_no_stale_task_and_a_vanished_one_is_named(synthetic_cache):
    info = synthetic_cache
    assert cache_writer.stale_tasks(info, info.split, info.feature_lengths, 40) == []
    changed = cache_writer.stale_tasks(info, info.split, info.feature_lengths, 41)
    assert changed == sorted(info.tasks)  # another cap: every fingerprint differs
    import dataclasses

    gone = dataclasses.replace(info, tasks={**info.tasks, "no_such_task": next(
        iter(info.tasks.values()))})
    assert "no_such_task (no longer registered)" in cache_writer.stale_tasks(
        gone, info.split, info.feature_lengths, 40)
