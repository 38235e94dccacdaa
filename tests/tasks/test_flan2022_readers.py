"""Readers of the Flan 2022 file sources on fixture files in their published formats."""

import json
import os

import pytest

from tasks.flan2022 import mock_files, readers


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return mock_files.write(str(tmp_path_factory.mktemp("flan2022_files")))


def test_niv2_task_json(root):
    task = readers.niv2_task(os.path.join(root, "niv2", "tasks", "task1003_fixture_capital.json"))
    assert task.name == "task1003_fixture_capital"
    assert task.definition == "Name the capital city of the given country."
    assert task.positive_examples == (("France", "Paris"), ("Japan", "Tokyo"))
    assert task.instances == (("Italy", "Rome"), ("Kenya", "Nairobi"), ("Peru", "Lima"))


def test_niv2_first_reference_and_empty_outputs(tmp_path):
    path = tmp_path / "task5_x.json"
    path.write_text(json.dumps({
        "Definition": ["  Say it.  "], "Positive Examples": [],
        "Instances": [{"input": "a", "output": ["first", "second"]},
                      {"input": "b", "output": []}]}))
    task = readers.niv2_task(path)
    assert task.definition == "Say it."
    assert task.instances == (("a", "first"),)  # no reference output: dropped


def test_niv2_bad_file_is_named(tmp_path):
    path = tmp_path / "task6_y.json"
    path.write_text(json.dumps({"Definition": ["x"]}))
    with pytest.raises(readers.DataFileError, match="task6_y.json: not an NIv2 task file"):
        readers.niv2_task(path)
    with pytest.raises(readers.DataFileError, match="data prepare"):
        readers.niv2_task(tmp_path / "missing.json")


def test_p3_parquet_rows_are_stripped(root):
    rows = list(readers.p3_rows(os.path.join(root, "p3", "fixture_qa_title")))
    assert len(rows) == 6
    assert rows[2] == {"inputs": "Suggest a title for story 2.", "targets": "Story 2",
                       "answer_choices": []}
    mc = list(readers.p3_rows(os.path.join(root, "p3", "fixture_mc_choices")))
    assert mc[0] == {"inputs": "Is the sky green in example 0?", "targets": "yes",
                     "answer_choices": ["yes", "no"]}


def test_p3_tfrecord_rows(root):
    kind, files = readers.p3_files(os.path.join(root, "p3", "fixture_mc_inline"), "train")
    assert kind == "tfrecord" and len(files) == 1
    rows = list(readers.p3_rows(os.path.join(root, "p3", "fixture_mc_inline")))
    assert [r["targets"] for r in rows] == ["blue", "red", "blue", "red", "blue"]
    assert rows[1]["answer_choices"] == ["red", "blue"]


def test_p3_folder_without_files(tmp_path):
    with pytest.raises(readers.DataFileError, match="data prepare t0_sf"):
        list(readers.p3_rows(tmp_path))


def test_mmlu_csv(root):
    rows = readers.mmlu_rows(readers.mmlu_path(os.path.join(root, "mmlu"), "astronomy", "test"))
    assert len(rows) == 3
    assert rows[1] == readers.MMLURow("How many planets orbit the Sun?", ("7", "8", "9", "10"),
                                      "B")


def test_mmlu_bad_row(tmp_path):
    path = tmp_path / "x_test.csv"
    path.write_text("q,a,b,c,d,E\n")
    with pytest.raises(readers.DataFileError, match="x_test.csv:1"):
        readers.mmlu_rows(path)


def test_bbh_json_and_cot_prompt(root):
    examples = readers.bbh_examples(os.path.join(root, "bbh", "bbh", "boolean_expressions.json"))
    assert examples[0] == {"input": "not ( True ) and ( True ) is", "target": "False"}
    prompt = readers.bbh_cot_prompt(
        os.path.join(root, "bbh", "cot-prompts", "boolean_expressions.txt"))
    assert prompt.description == ("Evaluate a Boolean expression made of True, False, not, and, "
                                  "or.")
    assert [e.answer for e in prompt.exemplars] == ["False", "False", "True"]
    assert prompt.exemplars[2].question == "not not ( not ( False ) ) is"
    assert prompt.exemplars[2].reasoning.startswith("Let's think step by step.\nnot ( False )")
    assert prompt.exemplars[2].reasoning.endswith("So the answer is True.")


def test_bbh_bad_files(tmp_path):
    (tmp_path / "t.json").write_text(json.dumps({"examples": [{"input": "x"}]}))
    with pytest.raises(readers.DataFileError, match="not a BBH task file"):
        readers.bbh_examples(tmp_path / "t.json")
    (tmp_path / "t.txt").write_text("Describe.\n\nQ: x\nA: no answer sentence here\n")
    with pytest.raises(readers.DataFileError, match="So the answer is"):
        readers.bbh_cot_prompt(tmp_path / "t.txt")
