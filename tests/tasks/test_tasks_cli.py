"""`flan-jax tasks list|show`, run in-process."""

import json

from flan_jax import tasks_cli


def test_list_json_has_one_row_per_task(capsys):
    assert tasks_cli.main(["list", "--json", "--collection", "synthetic"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    by_name = {r["name"]: r for r in rows}
    row = by_name["synthetic_fact_nli_t0_rank"]
    assert (row["collection"], row["cluster"], row["dataset"], row["kind"]) == (
        "synthetic", "nli", "fact_nli", "rank")
    assert row["metrics"] == ["accuracy"]
    assert by_name["synthetic_fact_nli_train"]["templates"] == 5
    assert all(r["collection"] == "synthetic" for r in rows)


def test_list_table_and_mixtures(capsys):
    assert tasks_cli.main(["list", "--kind", "train", "--collection", "synthetic"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["NAME", "COLLECTION", "CLUSTER"]
    assert len(out) == 1 + 16
    assert tasks_cli.main(["list", "--mixtures", "--collection", "synthetic"]) == 0
    assert "synthetic_heldout_nli_train" in capsys.readouterr().out


def test_show_prints_rendered_examples(capsys):
    assert tasks_cli.main(["show", "synthetic_num_max_t0_rank", "-n", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("=== synthetic_num_max_t0_rank") == 2
    assert "--- inputs\nWhich is larger" in out and "--- options\n- " in out
    assert tasks_cli.main(["show", "synthetic_qa_eval", "-n", "1"]) == 0
    assert "--- targets" in capsys.readouterr().out


def test_unknown_name_is_one_line_with_close_matches(capsys):
    assert tasks_cli.main(["show", "synthetic_fact_nli_t0_evl"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert "synthetic_fact_nli_t0_eval" in err
    assert tasks_cli.main(["list", "--collection", "nope"]) == 2


def _register_tfds_rte():
    """A collection `tfdstest` reading super_glue/rte from TFDS (its templates are checked)."""
    import dataclasses

    import pytest
    import tensorflow as tf

    from tasks import registry
    from tasks.spec import DatasetSpec, Template, TfdsSource

    def fields(ex):
        answer = tf.gather(tf.constant(["yes", "no"]), tf.clip_by_value(ex["label"], 0, 1))
        return {"premise": ex["premise"], "hypothesis": ex["hypothesis"], "answer": answer}

    spec = DatasetSpec(
        name="rte", collection="tfdstest", cluster="nli",
        source=TfdsSource("super_glue/rte:1.0.2", {"train": "train", "validation": "validation"}),
        templates=(Template("{premise}\nIs \"{hypothesis}\" true?", "{answer}"),),
        fields_fn=fields, options=("yes", "no"),
    )
    broken = dataclasses.replace(spec, templates=(Template("{premise} {nope}", "{answer}"),))
    with pytest.raises(ValueError, match=r"tfdstest.*rte.*template 0.*nope"):
        registry.register_collection([broken], validate_tfds=True, replace=True)
    registry.register_collection([spec], validate_tfds=True, replace=True)


def test_show_mock_renders_a_tfds_backed_task(capsys):
    _register_tfds_rte()
    assert tasks_cli.main(["show", "tfdstest_rte_t0_rank", "--mock", "-n", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("=== tfdstest_rte_t0_rank") == 2
    assert "OPTIONS:\n- yes\n- no" in out


def test_show_without_mock_never_downloads_an_unprepared_dataset(capsys, monkeypatch, tmp_path):
    import tensorflow_datasets as tfds

    _register_tfds_rte()
    # an empty TFDS data directory: the dataset is unprepared whatever this machine holds
    monkeypatch.setattr(tfds.core.constants, "DATA_DIR", str(tmp_path))
    builder = tfds.builder("super_glue/rte:1.0.2")
    assert not builder.is_prepared()
    calls = []
    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare",
                        lambda self, *a, **k: calls.append(self.name))
    assert tasks_cli.main(["show", "tfdstest_rte_t0_rank", "-n", "1"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and calls == []
    assert captured.err.strip() == (
        "flan-jax tasks: `tfdstest_rte_t0_rank` reads TFDS data that is not prepared: "
        f"super_glue/rte:1.0.2 (in {builder.data_dir_root}). Run `flan-jax data prepare "
        "tfdstest_rte_t0_rank`, or add --mock to show mock examples.")
