"""The TensorFlow-free core: with tensorflow, seqio and t5 unimportable (as on the accelerator
images), `convert hf`, `infer` and `bench train` still work, and `eval` says what is missing."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

BLOCKER = pathlib.Path(__file__).parent / "no_tensorflow"
REPO = pathlib.Path(__file__).resolve().parent.parent


def run_without_tf(*args: str, cwd: pathlib.Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(BLOCKER), str(REPO)])}
    code = ("import sys\nfrom flan_jax.cli import main\n"
            "rc = main(sys.argv[1:])\n"
            "leaked = [m for m in ('tensorflow', 'seqio', 't5') if m in sys.modules]\n"
            "assert not leaked, leaked\nsys.exit(rc)\n")
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def test_the_blocker_blocks(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(BLOCKER)}
    proc = subprocess.run([sys.executable, "-c", "import seqio"], env=env, capture_output=True,
                          text=True)
    assert proc.returncode != 0 and "No module named 'seqio'" in proc.stderr


def test_convert_infer_and_bench_run_without_tensorflow(tmp_path):
    torch.manual_seed(0)
    hf = transformers.T5ForConditionalGeneration(transformers.T5Config(
        vocab_size=300, d_model=16, d_ff=24, num_layers=1, num_heads=2, d_kv=8,
        feed_forward_proj="gated-gelu", decoder_start_token_id=0,
        tie_word_embeddings=False)).eval()
    hf.save_pretrained(tmp_path / "hf")

    proc = run_without_tf("convert", "hf", "--src", str(tmp_path / "hf"),
                          "--dst", str(tmp_path / "model"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "model" / "model.gin").exists()
    # The random model came without a tokenizer: score with bytes (ids below its 300 rows).
    (tmp_path / "model" / "vocab.json").write_text('{"kind": "byte"}\n')

    records = [{"inputs": "is the sky blue?", "options": ["yes", "no", "maybe"]},
               {"inputs": "2 + 2 =", "options": ["4", "5"]}]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    proc = run_without_tf("infer", "--mode", "rank", "--checkpoint", str(tmp_path / "model"),
                          "--input_file", str(tmp_path / "in.jsonl"),
                          "--output_file", str(tmp_path / "out.jsonl"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [len(r["scores"]) for r in out] == [3, 2]
    assert all(r["prediction"] == r["options"][max(range(len(r["scores"])),
                                                   key=r["scores"].__getitem__)] for r in out)

    proc = run_without_tf("bench", "train", "--quick", "--gin_file=models/decoder_tiny.gin",
                          "--results_dir", str(tmp_path / "bench"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    results = json.loads(next((tmp_path / "bench").glob("*.json")).read_text())
    rows = results["benchmarks"]["train"]["rows"]
    assert rows and all(r["tokens_per_s"] > 0 for r in rows)


def test_eval_names_the_missing_data_extra(tmp_path):
    proc = run_without_tf("eval", "--gin.CHECKPOINT_PATH='/nonexistent'", cwd=tmp_path)
    assert proc.returncode == 2
    assert "data` extra" in proc.stderr and "Traceback" not in proc.stderr


def test_no_library_module_imports_tensorflow_or_tasks_at_import_time(tmp_path):
    """Every module of flan_jax imports with TensorFlow, seqio and t5 absent, and none of them
    pulls in `tasks` (the data-facing modules import it inside functions)."""
    code = ("import importlib, pkgutil, sys\nimport flan_jax\n"
            "names = [m.name for m in pkgutil.walk_packages(flan_jax.__path__, 'flan_jax.')]\n"
            "for name in names:\n    importlib.import_module(name)\n"
            "leaked = [m for m in ('tensorflow', 'seqio', 't5', 'tasks') if m in sys.modules]\n"
            "print(len(names), leaked)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(BLOCKER), str(REPO)])}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    count, leaked = proc.stdout.split(" ", 1)
    assert int(count) > 30 and leaked.strip() == "[]"
