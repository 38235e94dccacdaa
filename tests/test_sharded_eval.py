"""Evaluation and inference on the training mesh: any mesh gives the single device's numbers.

A float32 model directory per family (random weights, saved as `convert hf` saves them) is
evaluated on a rank task and a generation task of the synthetic suite with several meshes over
the eight simulated CPU devices, and against one device.
"""

import json
import os
import pathlib
import subprocess
import sys

import flax.linen as nn
import jax
import numpy as np
import pytest

from flan_jax import checkpoints, config, partitioning
from flan_jax import evaluate as _evaluate_module  # noqa: F401  (registers `evaluate` with gin)
from flan_jax.models import TransformerConfig, build_model, init_params_fn
from flan_jax.models.config import plain_config
from tests.fixtures import xla_flags

ROOT = pathlib.Path(__file__).resolve().parents[1]
SINGLE = {"data": 1, "fsdp": 1, "tensor": 1}
MESHES = [{"data": 8, "fsdp": 1, "tensor": 1}, {"data": 1, "fsdp": 4, "tensor": 2},
          {"data": 2, "fsdp": 2, "tensor": 2}]
# The default run checks the mesh that uses every axis; `make test-slow` checks them all.
MESH_PARAMS = [pytest.param(m, marks=[] if m == MESHES[-1] else [pytest.mark.slow],
                            id="_".join(f"{k}{v}" for k, v in m.items())) for m in MESHES]
TASKS = ["synthetic_fact_nli_t0_rank", "synthetic_reverse_word_t1_eval"]
FAMILIES = {
    "encoder_decoder": dict(family="encoder_decoder", num_encoder_layers=2,
                            num_decoder_layers=2, num_kv_heads=None),
    "decoder_only": dict(family="decoder_only", num_encoder_layers=0, num_decoder_layers=2,
                         num_kv_heads=2),
}


def write_model_dir(path: pathlib.Path, family: str, seed: int = 0) -> TransformerConfig:
    """A model directory as `flan-jax convert hf` writes one: model.gin, vocab.json, params/."""
    cfg = plain_config(emb_dim=64, num_heads=4, head_dim=16, mlp_dim=128, vocab_size=259,
                       dtype="float32", **FAMILIES[family])
    model = build_model(cfg)
    params = jax.jit(lambda r: nn.meta.unbox(init_params_fn(model)(r)))(jax.random.PRNGKey(seed))
    path.mkdir(parents=True, exist_ok=True)
    checkpoints.save_params(path, jax.device_get(params))
    (path / checkpoints.MODEL_GIN).write_text(checkpoints.model_gin_text(cfg))
    (path / "vocab.json").write_text(json.dumps({"kind": "byte"}))
    return cfg


@pytest.fixture(scope="module", params=list(FAMILIES))
def model_dir(request, tmp_path_factory):
    path = tmp_path_factory.mktemp(request.param)
    write_model_dir(path, request.param)
    return path


def _evaluate(model_dir, out, mesh):
    from flan_jax.evaluate import evaluate

    bindings = [f"CHECKPOINT_PATH = '{model_dir}'", f"EVAL_MIXTURES = {TASKS!r}",
                "evaluate.max_examples_per_task = 5", "evaluate.batch_size = 4",
                "evaluate.max_input_length = 128", "evaluate.max_new_tokens = 8",
                f"evaluate.output_dir = '{out}'", f"mesh_axes.axes = {mesh!r}"]
    if mesh == SINGLE:
        bindings.append("make_mesh.num_devices = 1")
    config.parse_gin(["runs/eval.gin"], bindings)
    return evaluate()


def _predictions(report):
    return {name: (r["metrics"], r["sample"]["prediction"]) for name, r in report["tasks"].items()}


def _same_reports(got, want):
    assert set(got["tasks"]) == set(want["tasks"])
    for name, result in want["tasks"].items():
        assert got["tasks"][name]["sample"] == result["sample"], name
        for metric, value in result["metrics"].items():
            assert got["tasks"][name]["metrics"][metric] == pytest.approx(value, abs=1e-4)


@pytest.fixture(scope="module")
def single_report(model_dir, tmp_path_factory):
    report = _evaluate(model_dir, tmp_path_factory.mktemp("single"), SINGLE)
    assert report["mesh"] == SINGLE
    return report


@pytest.mark.parametrize("mesh", MESH_PARAMS)
def test_every_mesh_reports_what_one_device_reports(model_dir, single_report, mesh, tmp_path):
    got = _evaluate(model_dir, tmp_path / "mesh", mesh)
    assert got["mesh"] == mesh
    _same_reports(got, single_report)
    written = json.loads((tmp_path / "mesh" / "report.json").read_text())
    assert written["mesh"] == mesh
    assert written["param_bytes_total"] == single_report["param_bytes_total"]


@pytest.mark.slow  # make test: the evaluation on the mesh of every axis (rank and generation)
@pytest.mark.parametrize("mesh", MESH_PARAMS)
def test_predictions_and_option_scores_match_one_device(model_dir, mesh):
    """Option scores (rank) and generated text, mesh by mesh, against one device."""
    from flan_jax.placement import LoadedModel, Placement
    from flan_jax.predict import PredictSettings, predict

    inputs = ["Is a cat an animal? OPTIONS: yes, no", "Reverse: abc", "x" * 40]
    options = [["yes", "no"], ["cba", "abc", "bca"], ["a", "b", "c", "d", "e"]]
    settings = PredictSettings(batch_size=2, max_input_length=64, max_target_length=16,
                               max_new_tokens=6)

    def run(axes, num_devices=None):
        placement = Placement(partitioning.make_mesh(axes, num_devices=num_devices),
                              tuple(partitioning.logical_axis_rules()))
        cfg, params, vocab = checkpoints.load_model_dir(model_dir, placement)
        loaded = LoadedModel(build_model(cfg), params, vocab, placement)
        ranked = predict(loaded, inputs, options, settings)
        texts = predict(loaded, inputs, None, settings)
        beams = predict(loaded, inputs, None,
                        PredictSettings(**{**settings.__dict__, "method": "beam",
                                           "num_beams": 2}))
        return ranked, texts, beams

    want = run(SINGLE, num_devices=1)
    ranked, texts, beams = run(mesh)
    for g, w in zip(ranked, want[0]):
        assert g.text == w.text
        np.testing.assert_allclose(g.option_scores, w.option_scores, atol=1e-4)
    assert [t.text for t in texts] == [t.text for t in want[1]]
    assert [t.text for t in beams] == [t.text for t in want[2]]


def test_parameters_are_restored_sharded_an_eighth_per_device(model_dir):
    from flan_jax.placement import Placement, param_bytes

    placement = Placement(partitioning.make_mesh({"data": 1, "fsdp": 4, "tensor": 2}),
                          tuple(partitioning.logical_axis_rules()))
    _, params, _ = checkpoints.load_model_dir(model_dir, placement)
    total, per_device = param_bytes(params)
    leaves = jax.tree_util.tree_leaves(params)
    # vectors (norm scales, biases) may stay whole; everything else splits eight ways
    vectors = sum(x.nbytes for x in leaves if x.ndim == 1)
    assert per_device <= total / 8 + vectors + 259 * 64 * 4  # the byte vocab (259) stays whole
    assert all(x.sharding.mesh.shape == placement.mesh.shape for x in leaves)
    # the figure comes from the arrays themselves: the largest device's addressable shards
    by_device: dict = {}
    for x in leaves:
        for shard in x.addressable_shards:
            by_device[shard.device] = by_device.get(shard.device, 0) + shard.data.nbytes
    assert per_device == max(by_device.values())


def test_a_mesh_that_does_not_fit_is_one_line_before_loading(model_dir, tmp_path, capsys):
    from flan_jax import evaluate

    rc = evaluate.main([f"--gin.CHECKPOINT_PATH='{model_dir}'",
                        f"--gin.EVAL_MIXTURES={TASKS!r}",
                        "--gin.mesh_axes.axes={'data': -1, 'fsdp': 3, 'tensor': 1}",
                        f"--gin.evaluate.output_dir='{tmp_path / 'out'}'"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert err[-1] == ("flan-jax eval: mesh_axes.axes={'data': -1, 'fsdp': 3, 'tensor': 1}: the "
                       "8 devices do not divide by the fixed axes' product 3; make the sizes "
                       "divide 8 or set one to -1.")
    assert not (tmp_path / "out").exists()


def _cli(args, env_extra):
    env = {**os.environ, "PYTHONPATH": str(ROOT), **env_extra}
    return subprocess.Popen([sys.executable, "-m", "flan_jax.cli", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow
def test_two_processes_write_what_one_process_writes(tmp_path):
    """`eval` and `infer` with jax.distributed over two processes of four devices each."""
    model = tmp_path / "model"
    write_model_dir(model, "encoder_decoder")
    records = tmp_path / "in.jsonl"
    records.write_text("".join(json.dumps({"inputs": f"question {i}?",
                                           "options": ["yes", "no", "maybe"][: 2 + i % 2]}) + "\n"
                               for i in range(7)))
    mesh = "--gin.mesh_axes.axes={'data': 2, 'fsdp': 2, 'tensor': 1}"
    common_eval = ["eval", f"--gin.CHECKPOINT_PATH='{model}'", f"--gin.EVAL_MIXTURES={TASKS!r}",
                   "--gin.evaluate.max_examples_per_task=5", "--gin.evaluate.batch_size=4",
                   "--gin.evaluate.max_input_length=128", "--gin.evaluate.max_new_tokens=8",
                   mesh]

    def infer_args(out):
        return ["infer", "--mode", "rank", "--checkpoint", str(model), "--input_file",
                str(records), "--output_file", str(out), "--batch_size", "2", mesh]

    four = {"XLA_FLAGS": xla_flags(4)}
    for args in (common_eval + [f"--gin.evaluate.output_dir='{tmp_path / 'one'}'"],
                 infer_args(tmp_path / "one.jsonl")):
        proc = _cli(args, four)
        out = proc.communicate(timeout=400)[0]
        assert proc.returncode == 0, out
    port = 24567 + os.getpid() % 1000
    for args in (common_eval + [f"--gin.evaluate.output_dir='{tmp_path / 'two'}'",
                                "--gin.initialize_distributed.cpu_collectives=True"],
                 infer_args(tmp_path / "two.jsonl") +
                 ["--gin.initialize_distributed.cpu_collectives=True"]):
        procs = [_cli(args, {**{"XLA_FLAGS": xla_flags(2)},
                             "JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}",
                             "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": str(i)})
                 for i in range(2)]
        outs = [p.communicate(timeout=400)[0] for p in procs]
        assert all(p.returncode == 0 for p in procs), outs
        port += 1
    one = json.loads((tmp_path / "one" / "report.json").read_text())
    two = json.loads((tmp_path / "two" / "report.json").read_text())
    assert two["mesh"] == {"data": 2, "fsdp": 2, "tensor": 1}
    _same_reports(two, one)
    assert (tmp_path / "two.jsonl").read_bytes() == (tmp_path / "one.jsonl").read_bytes()


def test_report_names_chance_and_keeps_the_previous_one(tmp_path):
    model = tmp_path / "model"
    write_model_dir(model, "encoder_decoder")
    out = tmp_path / "out"
    first = _evaluate(model, out, SINGLE)
    first_text = (out / "report.json").read_text()
    second = _evaluate(model, out, SINGLE)
    (kept,) = (out / "previous").iterdir()
    assert (kept / "report.json").read_text() == first_text
    assert {p.name for p in kept.iterdir()} == {"report.json", "report.md", "clusters.png"}
    assert second["step"] is None  # a converted checkpoint has no training step
    rank = second["tasks"][TASKS[0]]
    import seqio

    examples = list(seqio.get_mixture_or_task(TASKS[0]).get_dataset(
        None, split=rank["split"] if "split" in rank else "validation", shuffle=False)
        .take(5).as_numpy_iterator())
    assert rank["chance"] == pytest.approx(100 * np.mean([1 / len(e["options"])
                                                          for e in examples]))
    assert second["clusters"][rank["cluster"]]["chance"] == pytest.approx(rank["chance"])
    assert first["tasks"][TASKS[0]]["metrics"] == rank["metrics"]


def test_a_read_only_run_is_refused_before_loading(tmp_path, capsys, monkeypatch):
    from flan_jax import evaluate

    model = tmp_path / "model"
    write_model_dir(model, "encoder_decoder")
    real_access = os.access
    # the tests run as root, which writes anywhere: make the run directory read-only by hand
    monkeypatch.setattr(os, "access", lambda p, mode: False if pathlib.Path(p) == model and
                        mode == os.W_OK else real_access(p, mode))
    loaded = []
    monkeypatch.setattr(checkpoints, "load_model_dir", lambda *a, **k: loaded.append(a))
    rc = evaluate.main([f"--gin.CHECKPOINT_PATH='{model}'", f"--gin.EVAL_MIXTURES={TASKS!r}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and not loaded
    assert err[-1] == (f"flan-jax eval: cannot write the reports to {model / 'eval'}: {model} "
                       "is read-only. Choose another folder with "
                       "--gin.evaluate.output_dir=\"'/path'\".")
    assert not (model / "eval").exists()
