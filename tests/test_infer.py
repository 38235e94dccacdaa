"""`flan-jax infer` end to end on a converted tiny T5: score/rank/predict outputs, malformed
lines, --skip_bad_lines, and resuming an interrupted run."""

import json

import numpy as np
import pytest

from flan_jax import batching, decoding, infer, scoring
from flan_jax.decoding import DecodeSettings
from flan_jax.placement import LoadedModel
from flan_jax.scoring import RankSettings

pytest.importorskip("torch")
pytest.importorskip("transformers")

from tests.fixtures import converted  # noqa: E402

RECORDS = [
    {"inputs": "Is the sky blue?", "targets": "yes", "options": ["yes", "no"], "id": 0},
    {"inputs": "Pick a letter:", "targets": "bb", "options": ["a", "bb", "ccc"], "id": 1},
    {"inputs": "2 + 2 =", "targets": "4", "options": ["4"], "id": 2},
    {"inputs": "Say something long " * 3, "targets": "ok", "options": ["ok", "no"], "id": 3},
    {"inputs": "Last one", "targets": "end", "options": ["end", "stop"], "id": 4},
]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    hf, model, params, vocab, path = converted(tmp_path_factory.mktemp("infer"),
                                               "encoder_decoder")
    return model, params, vocab, path


def write(path, lines):
    path.write_text("".join(line + "\n" for line in lines))
    return path


def run(ckpt, tmp_path, mode, lines, *extra, name="out.jsonl"):
    src = write(tmp_path / "in.jsonl", lines)
    out = tmp_path / name
    rc = infer.main(["--mode", mode, "--checkpoint", str(ckpt[3]), "--input_file", str(src),
                     "--output_file", str(out), "--batch_size", "2", "--chunk_size", "2",
                     "--max_input_length", "32", "--max_target_length", "8", *extra])
    return rc, out


def read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_score_mode_equals_target_log_likelihoods(ckpt, tmp_path, capsys):
    model, params, vocab, _ = ckpt
    rc, out = run(ckpt, tmp_path, "score", [json.dumps(r) for r in RECORDS])
    assert rc == 0
    got = read(out)
    assert [r["id"] for r in got] == [r["id"] for r in RECORDS]
    for rec, res in zip(RECORDS, got):
        stats = {}
        prompt = batching.input_ids(vocab, rec["inputs"], "encoder_decoder", 32, stats)
        target = batching.target_ids(vocab, rec["targets"], "encoder_decoder", 8)
        ll, nt = scoring.target_log_likelihoods(model, params,
                                                batching.encdec_batch([prompt], [target]))
        assert res["num_target_tokens"] == int(nt[0]) == len(target)
        assert res["score"] == pytest.approx(float(ll[0]), rel=1e-6)  # float32 sums
    assert "1 inputs and 0 targets/options truncated" in capsys.readouterr().err


def test_rank_and_predict_modes(ckpt, tmp_path):
    model, params, vocab, _ = ckpt
    rc, out = run(ckpt, tmp_path, "rank", [json.dumps(r) for r in RECORDS])
    assert rc == 0
    loaded = LoadedModel(model, params, vocab)
    expected = scoring.rank_classify(loaded, [r["inputs"] for r in RECORDS],
                                     [r["options"] for r in RECORDS], RankSettings(
                                         batch_size=2, max_input_length=32,
                                         max_option_length=8))
    for rec, res, exp in zip(RECORDS, read(out), expected):
        np.testing.assert_allclose(res["scores"], exp.scores, atol=1e-5)
        assert res["prediction"] == rec["options"][exp.prediction_index]
    rc, out = run(ckpt, tmp_path, "predict", [json.dumps(r) for r in RECORDS],
                  "--max_new_tokens", "4", name="pred.jsonl")
    assert rc == 0
    assert [r["prediction"] for r in read(out)] == decoding.generate(
        loaded, [r["inputs"] for r in RECORDS],
        DecodeSettings(max_new_tokens=4, batch_size=2, max_input_length=32))


@pytest.mark.parametrize("bad, reason", [
    ('{"inputs": "x", "targets": ', "not valid JSON"),
    ('{"inputs": "x"}', "missing key 'targets'"),
    ('{"inputs": 3, "targets": "y"}', "'inputs' must be a string"),
    ('["inputs"]', "expected a JSON object"),
])
def test_malformed_line_names_its_number(ckpt, tmp_path, capsys, bad, reason):
    lines = [json.dumps(RECORDS[0]), "", bad, json.dumps(RECORDS[1])]
    rc, out = run(ckpt, tmp_path, "score", lines)
    err = capsys.readouterr().err
    assert rc == 2 and ":3:" in err and reason in err and "--skip_bad_lines" in err
    assert not out.exists()


def test_skip_bad_lines_counts(ckpt, tmp_path, capsys):
    lines = [json.dumps(RECORDS[0]), "not json", json.dumps(RECORDS[1]),
             json.dumps({"inputs": "x", "options": []}), json.dumps(RECORDS[2])]
    rc, out = run(ckpt, tmp_path, "rank", lines, "--skip_bad_lines")
    assert rc == 0
    assert [r["id"] for r in read(out)] == [0, 1, 2]
    assert "2 bad lines skipped" in capsys.readouterr().err


def test_interrupted_run_resumes_to_the_same_file(ckpt, tmp_path, capsys):
    lines = [json.dumps(r) for r in RECORDS]
    lines.insert(2, "{broken")
    args = ("--skip_bad_lines", "--method", "sample", "--top_k", "20", "--seed", "7",
            "--max_new_tokens", "4")
    rc, full = run(ckpt, tmp_path, "predict", lines, *args, name="full.jsonl")
    assert rc == 0
    expected = full.read_text()
    assert len(expected.splitlines()) == len(RECORDS)

    part = tmp_path / "part.jsonl"
    kept = expected.splitlines(keepends=True)
    part.write_text("".join(kept[:2]) + kept[2][:7])  # two lines, then a partial third
    (tmp_path / "part.jsonl.infer.json").write_text(
        (tmp_path / "full.jsonl.infer.json").read_text())
    capsys.readouterr()
    rc, _ = run(ckpt, tmp_path, "predict", lines, *args, name="part.jsonl")
    assert rc == 0 and part.read_text() == expected
    assert "2 already there (resumed)" in capsys.readouterr().err

    rc, _ = run(ckpt, tmp_path, "predict", lines, *args, name="part.jsonl")  # nothing left
    assert rc == 0 and part.read_text() == expected


@pytest.mark.parametrize("flag", ["--batch_size=0", "--max_input_length=0"])
def test_zero_sizes_are_refused_before_writing(tmp_path, capsys, flag):
    (tmp_path / "in.jsonl").write_text(json.dumps({"inputs": "x"}) + "\n")
    out = tmp_path / "out.jsonl"
    rc = infer.main(["--mode", "predict", "--checkpoint", str(tmp_path), "--input_file",
                     str(tmp_path / "in.jsonl"), "--output_file", str(out), flag])
    name = flag.split("=")[0]
    assert rc == 2 and capsys.readouterr().err.strip() == \
        f"flan-jax infer: {name} must be at least 1 (got 0)."
    assert not out.exists()


def test_unwritable_output_is_refused_before_loading_the_model(tmp_path, capsys):
    (tmp_path / "in.jsonl").write_text(json.dumps({"inputs": "x"}) + "\n")
    out = tmp_path / "missing_dir" / "out.jsonl"
    rc = infer.main(["--mode", "predict", "--checkpoint", str(tmp_path / "nomodel"),
                     "--input_file", str(tmp_path / "in.jsonl"), "--output_file", str(out)])
    assert rc == 2 and "cannot write" in capsys.readouterr().err
    assert not out.parent.exists()


def test_resume_refuses_an_output_made_another_way(ckpt, tmp_path, capsys):
    lines = [json.dumps(r) for r in RECORDS]
    rc, out = run(ckpt, tmp_path, "predict", lines, "--max_new_tokens", "4")
    assert rc == 0
    before = out.read_bytes()
    capsys.readouterr()
    cases = [
        (("rank", lines), "was written with mode='predict' but this run has mode='rank'"),
        (("predict", lines, "--max_new_tokens", "5"),
         "was written with max_new_tokens=4 but this run has max_new_tokens=5"),
        (("predict", [json.dumps({**RECORDS[0], "inputs": "other"})] + lines[1:],
          "--max_new_tokens", "4"),
         "are not those"),
    ]
    for (mode, src, *flags), message in cases:
        out.write_bytes(before[:len(before) // 2 + 3])  # half done, a partial line last
        half = out.read_bytes()
        rc, _ = run(ckpt, tmp_path, mode, src, *flags)
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and message in err[0], err
        assert err[0].endswith("pass --overwrite to start it again, or choose another "
                               "--output_file.")
        assert out.read_bytes() == half
    (tmp_path / "out.jsonl.infer.json").unlink()
    rc, _ = run(ckpt, tmp_path, "predict", lines, "--max_new_tokens", "4")
    assert rc == 2 and "no " in capsys.readouterr().err
    rc, _ = run(ckpt, tmp_path, "predict", lines, "--max_new_tokens", "4", "--overwrite")
    assert rc == 0 and out.read_bytes() == before
