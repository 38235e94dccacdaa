"""`flan-jax data cache` and the Grain reader: the cached examples are the task's, batches equal
seqio's packed batches of the same examples, the stream continues exactly from its state, and
every kind of bad cache is explained."""

import json
import pathlib

import numpy as np
import pytest

from flan_jax.data import cache_format as data_cache
from flan_jax.data import cache_writer
from flan_jax.data.cache_reader import CacheBatchIterator, example_stream
from flan_jax.errors import UserError
from tests.fixtures import cache_plan

MIXTURE = "synthetic_heldout_nli_train"
LENGTHS = {"inputs": 64, "targets": 16}
PER_TASK = 40


def _plan(name=MIXTURE, per_task=PER_TASK, per_shard=16):
    return cache_plan(name, per_task, per_shard)


@pytest.fixture
def cache(synthetic_cache):
    return synthetic_cache


def _records(info, task):
    from array_record.python.array_record_data_source import ArrayRecordDataSource

    source = ArrayRecordDataSource(info.files(task))
    return [data_cache.decode(source[i], info.features) for i in range(len(source))]


def test_the_cache_holds_each_tasks_examples_as_seqio_produces_them(cache):
    import seqio

    assert cache.mixture == MIXTURE and cache.feature_lengths == LENGTHS
    assert len(cache.tasks) == 14 and all(t.examples == PER_TASK for t in cache.tasks.values())
    mixture = seqio.get_mixture_or_task(MIXTURE)
    for task in mixture.tasks[:3]:
        assert cache.tasks[task.name].rate == mixture.get_rate(task)
        expected = list(task.get_dataset(LENGTHS, split="train", shuffle=False, num_epochs=1,
                                         use_cached=False).take(PER_TASK).as_numpy_iterator())
        got = _records(cache, task.name)
        assert len(got) == PER_TASK
        for g, e in zip(got, expected):
            for k in LENGTHS:
                np.testing.assert_array_equal(g[k], e[k])
    assert len(cache.tasks[mixture.tasks[0].name].shards) == 3  # 16 + 16 + 8


@pytest.mark.parametrize("family", ["encoder_decoder", "decoder_only"])
def test_batches_equal_seqio_packed_batches_of_the_same_examples(cache, family):
    from tests.fixtures import seqio_rows as _seqio_rows

    rates = {t: c.rate for t, c in cache.tasks.items()}
    stream = example_stream(cache, rates, seed=0, shuffle=True)
    examples = [stream[i] for i in range(96)]
    it = CacheBatchIterator(cache, rates, family, LENGTHS, rows=4, seed=0)
    got = [next(it) for _ in range(3)]
    expected = _seqio_rows(examples, family, LENGTHS, pack=True)[:12]
    assert len(expected) == 12
    for b, batch in enumerate(got):
        for r in range(4):
            for k, v in expected[4 * b + r].items():
                np.testing.assert_array_equal(batch[k][r], v, err_msg=f"{k} batch {b} row {r}")


def test_mixing_follows_the_cached_rates_and_tasks_are_shuffled(cache):
    rates = {"synthetic_count_letter_train": 3.0, "synthetic_num_compare_train": 1.0}
    stream = example_stream(cache, rates, seed=0, shuffle=True)
    firsts = {t: _records(cache, t) for t in rates}
    owner = []
    for i in range(400):
        ex = stream[i]
        owner.append(next(t for t, recs in firsts.items()
                          if any(np.array_equal(ex["inputs"], r["inputs"]) for r in recs)))
    share = owner.count("synthetic_count_letter_train") / len(owner)
    assert abs(share - 0.75) < 0.02
    first_task = [stream[i]["inputs"] for i in range(400)
                  if owner[i] == "synthetic_count_letter_train"][:PER_TASK]
    assert not all(np.array_equal(a, b["inputs"])
                   for a, b in zip(first_task, firsts["synthetic_count_letter_train"]))


@pytest.mark.parametrize("pack", [True, False])
def test_the_stream_continues_exactly_from_a_saved_state(cache, pack):
    rates = {t: c.rate for t, c in cache.tasks.items()}
    kwargs = dict(family="encoder_decoder", task_lengths=LENGTHS, rows=3, seed=5, pack=pack)
    whole = CacheBatchIterator(cache, rates, **kwargs)
    batches = [next(whole) for _ in range(12)]
    for cut in (1, 4, 7):
        first = CacheBatchIterator(cache, rates, **kwargs)
        for _ in range(cut):
            next(first)
        state = json.loads(json.dumps(first.state()))  # as the checkpoint stores it
        again = CacheBatchIterator(cache, rates, **kwargs, state=state)
        for b in batches[cut:]:
            nb = next(again)
            for k in b:
                np.testing.assert_array_equal(nb[k], b[k], err_msg=f"cut {cut} {k}")


def test_two_host_shards_split_the_stream(cache):
    rates = {t: c.rate for t, c in cache.tasks.items()}
    whole = example_stream(cache, rates, seed=1, shuffle=True)
    halves = [example_stream(cache, rates, seed=1, shuffle=True, shard_index=i, num_shards=2)
              for i in range(2)]
    for i in range(20):
        np.testing.assert_array_equal(halves[i % 2][i // 2]["inputs"], whole[i]["inputs"])


def test_a_killed_build_continues_from_its_finished_shards(tmp_path, monkeypatch, cache):
    plan = _plan("synthetic_clusters1_train", per_task=40, per_shard=16)
    original = cache_writer.write_task
    calls = {"n": 0}

    def dies_in_second_task(task, *args):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # as if killed while writing it
        return original(task, *args)

    monkeypatch.setattr(cache_writer, "write_task", dies_in_second_task)
    with pytest.raises(KeyboardInterrupt):
        cache_writer.build_cache(plan, str(tmp_path), show_progress=False)
    with pytest.raises(UserError, match="half-written"):
        data_cache.open_cache(str(tmp_path))
    finished = sorted(tmp_path.glob("tasks/*/task.json"))
    assert len(finished) == 1
    stamp = {p: p.stat().st_mtime_ns for p in finished[0].parent.iterdir()}
    monkeypatch.setattr(cache_writer, "write_task", original)
    info = cache_writer.build_cache(plan, str(tmp_path), show_progress=False)
    assert {p: p.stat().st_mtime_ns for p in finished[0].parent.iterdir()} == stamp  # kept
    assert all(t.examples == 40 for t in info.tasks.values())


def test_a_finished_cache_is_never_rewritten_and_stale_tasks_are_named(tmp_path):
    plan = _plan("synthetic_clusters1_train", per_task=8, per_shard=16)
    info = cache_writer.build_cache(plan, str(tmp_path), show_progress=False)
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    assert cache_writer.build_cache(plan, str(tmp_path), show_progress=False).fingerprint \
        == info.fingerprint
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")} == before
    task = sorted(info.tasks)[0]
    meta = json.loads((tmp_path / "cache.json").read_text())
    meta["tasks"][task]["fingerprint"] = "0" * 16  # built from an older definition
    (tmp_path / "cache.json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match=f"stale for 1 task.*{task}"):
        cache_writer.build_cache(plan, str(tmp_path), show_progress=False)



def test_continuing_a_cache_with_other_settings_is_refused(tmp_path):
    cache_writer.check_settings(tmp_path, _plan(per_task=8))
    with pytest.raises(UserError, match="other settings .*max_examples_per_task: 8 there, 9"):
        cache_writer.check_settings(tmp_path, _plan(per_task=9))


def test_fingerprints_change_with_a_template_and_not_between_processes():
    import functools

    import seqio

    task = seqio.get_mixture_or_task("synthetic_clusters1_train").tasks[0]
    base = cache_writer.task_fingerprint(task, "train", LENGTHS, None)
    assert base == cache_writer.task_fingerprint(task, "train", LENGTHS, None)
    assert base != cache_writer.task_fingerprint(task, "train", {"inputs": 65, "targets": 16},
                                                 None)
    changed = [functools.partial(p, extra="x") if i == 0 else p
               for i, p in enumerate(task.preprocessors)]
    assert cache_writer.describe(changed) != cache_writer.describe(list(task.preprocessors))


def test_bad_caches_are_explained(tmp_path, cache):
    from flan_jax.data import DataConfig, open_source

    def cfg(**kw):
        base = dict(mixture_or_task_name=MIXTURE, task_feature_lengths=LENGTHS, batch_size=8,
                    source="cache", cache_dir=str(cache.path))
        return DataConfig(**{**base, **kw})

    open_source(cfg())
    open_source(cfg(mixture_or_task_name="synthetic_count_letter_train"))
    with pytest.raises(UserError, match="no data cache at .*flan-jax data cache"):
        open_source(cfg(cache_dir=str(tmp_path / "nothing")))
    with pytest.raises(UserError, match="needs DataConfig.cache_dir"):
        open_source(cfg(cache_dir=None))
    with pytest.raises(UserError, match=r"TASK_FEATURE_LENGTHS=\{'inputs': 64"):
        open_source(cfg(task_feature_lengths={"inputs": 128, "targets": 16}))
    with pytest.raises(UserError, match="needs 2 task.*nli"):
        open_source(cfg(mixture_or_task_name="synthetic_all_train"))
    (tmp_path / "half" / "tasks").mkdir(parents=True)
    with pytest.raises(UserError, match="half-written"):
        open_source(cfg(cache_dir=str(tmp_path / "half")))
    (tmp_path / "vocab").mkdir()
    (tmp_path / "vocab" / "vocab.json").write_text(json.dumps(
        {"kind": "sentencepiece", "file": "other.model"}))
    with pytest.raises(UserError, match="another vocabulary"):
        data_cache.check_vocabulary(cache, pathlib.Path(tmp_path / "vocab" / "vocab.json"))


def test_records_round_trip_and_a_malformed_one_is_explained():
    example = {"inputs": np.array([5, 6, 1], np.int32), "targets": np.array([], np.int32)}
    record = data_cache.encode(example, ["inputs", "targets"])
    back = data_cache.decode(record, ["inputs", "targets"])
    np.testing.assert_array_equal(back["inputs"], example["inputs"])
    assert back["targets"].size == 0
    for broken in (record[:-2], record + b"\0\0\0\0", b"\1"):
        with pytest.raises(UserError, match="malformed"):
            data_cache.decode(broken, ["inputs", "targets"])
