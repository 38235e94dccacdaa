"""Trainer behaviour on the offline synthetic suite: learning, sharding invariance, exact resume,
preemption, gradient accumulation, multi-host agreement, and clear refusals."""

import json
import os
import pathlib
import shutil
import signal
import time

import jax
import numpy as np
import pytest

from flan_jax import config
from tests.fixtures import TINY
from tests.fixtures import snapshot as _snapshot
from tests.fixtures import train_main as _main
from tests.fixtures import cli_process as _cli
from tests.fixtures import losses as _losses
from tests.fixtures import train_run as _train
from tests.fixtures import wait_for_step as _wait_for_step
from tests.fixtures import xla_flags


def test_loss_decreases_and_run_files_are_written(tmp_path):
    losses = _train(tmp_path, "TRAIN_STEPS = 24", "train.checkpoint_every = 8")
    first, last = np.mean([losses[s] for s in range(1, 6)]), np.mean(
        [losses[s] for s in range(20, 25)])
    assert last < 0.7 * first, (first, last)
    gin_text = (tmp_path / "config.gin").read_text()
    assert "synthetic_heldout_nli_train" in gin_text and "TRAIN_STEPS = 24" in gin_text
    assert (tmp_path / "model.gin").exists() and (tmp_path / "vocab.json").exists()
    row = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
    for key in ("step", "loss", "z_loss", "accuracy", "learning_rate", "grad_norm",
                "tokens_per_sec", "mfu"):
        assert key in row
    assert list((tmp_path / "tensorboard" / "train").iterdir())
    assert sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir()) == [8, 16, 24]


# End to end through the trainer; `make test` covers both at the step's level
# (tests/test_train_step.py, tests/models/test_models.py::test_sharded_forward_equals_single_device).
@pytest.mark.slow
def test_one_device_and_eight_devices_give_the_same_losses(tmp_path):
    single = _train(tmp_path / "one", "make_mesh.num_devices = 1")
    sharded = _train(tmp_path / "eight",
                     "mesh_axes.axes = {'data': 2, 'fsdp': 2, 'tensor': 2}")
    assert sorted(single) == sorted(sharded) == list(range(1, 13))
    np.testing.assert_allclose([sharded[s] for s in single], list(single.values()), rtol=1e-5)


@pytest.mark.slow
def test_gradient_accumulation_equals_larger_batch(tmp_path):
    whole = _train(tmp_path / "whole", "TRAIN_STEPS = 4")
    accumulated = _train(tmp_path / "accum", "TRAIN_STEPS = 4", "train.accumulate_steps = 4")
    np.testing.assert_allclose(list(accumulated.values()), list(whole.values()), rtol=1e-5)


def test_a_resume_with_other_settings_is_refused_before_writing(tiny_run, tmp_path, capsys):
    tiny_run(10, copy_to=tmp_path)  # checkpoints at steps 5 and 10
    before = _snapshot(tmp_path)
    code, _, err = _main(capsys, tmp_path, "BATCH_SIZE = 16", "TransformerConfig.mlp_dim = 96")
    assert code == 2 and err.strip() == (
        f"flan-jax train: MODEL_DIR {tmp_path} holds a run (step 10) with other settings: "
        "BATCH_SIZE: 8 -> 16; TransformerConfig.mlp_dim: 128 -> 96. Resume with its settings "
        "(config.gin), use another MODEL_DIR, or pass --gin.train.allow_config_change=True.")
    assert _snapshot(tmp_path) == before
    # allowed, a checkpoint of another model is still refused
    code, _, err = _main(capsys, tmp_path, "TransformerConfig.mlp_dim = 96",
                         "train.allow_config_change = True")
    assert code == 1 and "holds a checkpoint of a different model" in err.splitlines()[-1]
    # allowed, another batch size resumes; the first start's config.gin stays
    code, _, err = _main(capsys, tmp_path, "TRAIN_STEPS = 11", "BATCH_SIZE = 16",
                         "train.allow_config_change = True")  # one step of 16 examples
    assert code == 0, err
    assert "BATCH_SIZE: 8 -> 16" in err and "Resumed from step 10" in err
    assert max(_losses(tmp_path)) == 11
    assert (tmp_path / "config.gin").read_bytes() == before["config.gin"]
    assert "BATCH_SIZE = 16" in (tmp_path / "config.restart_10.gin").read_text()


def test_resume_keeps_configs_logs_and_one_metrics_line_per_step(tmp_path, capsys):
    _train(tmp_path, "TRAIN_STEPS = 8", stop_after=7)  # a crash after step 7; step 5 is saved
    assert list(_losses(tmp_path)) == list(range(1, 8))
    first_config = (tmp_path / "config.gin").read_bytes()
    code, out, err = _main(capsys, tmp_path, "TRAIN_STEPS = 9")
    assert code == 0, err
    assert f"Resumed from step 5 in {tmp_path}." in err
    assert "Training 181,504 parameters for 9 steps on 8 devices" in err
    assert "Changed since the run's last start: TRAIN_STEPS: 8 -> 9." in err
    assert (tmp_path / "config.gin").read_bytes() == first_config
    assert "TRAIN_STEPS = 9" in (tmp_path / "config.restart_5.gin").read_text()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").open()]
    assert [r["step"] for r in rows] == list(range(1, 10))
    # step 6 restored and compiled: no rates; the steps after it have them
    assert "tokens_per_sec" not in rows[5] and "mfu" not in rows[5]
    assert all("tokens_per_sec" in r and "mfu" in r for r in rows[6:])
    assert "step 6/9" in out and "- tok/s  MFU -  ETA ?" in out.splitlines()[0]


def test_a_damaged_checkpoint_is_named_in_one_line(tiny_run, tmp_path, capsys):
    tiny_run(10, copy_to=tmp_path)
    step_dir = tmp_path / "checkpoints" / "10"
    biggest = max((p for p in step_dir.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    biggest.write_bytes(biggest.read_bytes()[:1000])
    before = _snapshot(tmp_path)
    code, out, err = _main(capsys, tmp_path, "TRAIN_STEPS = 12")
    assert code == 1 and err.strip() == (
        f"flan-jax train: the checkpoint {step_dir} is damaged or incomplete (Exception while "
        f"reading it). Delete that step directory (rm -r {step_dir}) to resume from the previous "
        "saved step, or use another MODEL_DIR.")
    assert out == "" and _snapshot(tmp_path) == before


def test_feature_lengths_that_cut_every_target_are_refused(tmp_path, capsys):
    code, _, err = _main(capsys, tmp_path / "run", "train.truncation_sample = 2",
                         "TASK_FEATURE_LENGTHS = {'inputs': 64, 'targets': 1}")
    assert code == 2 and err.splitlines()[-1] == (
        "flan-jax train: TASK_FEATURE_LENGTHS={'inputs': 64, 'targets': 1} truncates every "
        "sampled target of synthetic_heldout_nli_train (28 examples, up to 25 tokens long): "
        "raise 'targets' (to 25 to keep them all).")
    assert not (tmp_path / "run").exists()


def test_batch_size_and_model_dir_are_checked_before_writing(tmp_path, capsys, monkeypatch):
    from flan_jax import run_checks

    run = tmp_path / "run"
    code, _, err = _main(capsys, run, "BATCH_SIZE = 12",
                         "mesh_axes.axes = {'data': 4, 'fsdp': 2, 'tensor': 1}")
    assert code == 2 and err.strip() == (
        "flan-jax train: BATCH_SIZE=12 does not split over the 8 data devices (mesh axes "
        "data=4 x fsdp=2): use a multiple of 8 or change mesh_axes.axes.")
    assert not run.exists()
    run.write_text("not a directory")
    code, _, err = _main(capsys, run)
    assert code == 2 and err.strip() == (
        f"flan-jax train: MODEL_DIR {run} is a file, not a directory: pass a directory, e.g. "
        f"--gin.MODEL_DIR=\"'{run}_run'\".")
    code, _, err = _main(capsys, run / "sub")
    assert code == 2 and err.strip() == (
        f"flan-jax train: MODEL_DIR {run}/sub cannot be created: {run} is a file. Pass a "
        "MODEL_DIR under a directory.")
    assert run.read_text() == "not a directory"
    read_only = tmp_path / "read_only"
    read_only.mkdir()
    # (root may write anywhere: pretend the permission bits apply)
    monkeypatch.setattr(run_checks.os, "access", lambda p, mode: pathlib.Path(p) != read_only)
    code, _, err = _main(capsys, read_only / "run")
    assert code == 2 and err.strip() == (
        f"flan-jax train: MODEL_DIR {read_only}/run cannot be created: {read_only} is "
        "read-only. Pass a MODEL_DIR you can write to.")
    code, _, err = _main(capsys, read_only)
    assert code == 2 and err.strip() == (
        f"flan-jax train: MODEL_DIR {read_only} is read-only. Pass a MODEL_DIR you can write to.")
    assert not list(read_only.iterdir())


def test_unknown_binding_and_mixture_are_explained(tmp_path, capsys):
    from flan_jax import train as train_lib

    code = train_lib.main(["--gin_file=runs/demo.gin", "--gin.train.trian_steps=3",
                           f"--gin.MODEL_DIR='{tmp_path}'"])
    err = capsys.readouterr().err
    assert code == 2 and "trian_steps" in err and "train_steps" in err
    code = train_lib.main(["--gin_file=runs/demo.gin", f"--gin.MODEL_DIR='{tmp_path}'",
                           "--gin.MIXTURE_OR_TASK_NAME='synthetic_heldout_nil_train'"])
    err = capsys.readouterr().err
    assert code == 2 and "synthetic_heldout_nli_train" in err
    code, _, err = _main(capsys, tmp_path / "run", "MIXTURE_OR_TASK_NAME = 'synthetc'")
    assert code == 2 and err.strip() == (
        "flan-jax train: unknown task or mixture `synthetc`. Did you mean the collection "
        "`synthetic`? Its training mixture is synthetic_all_train; `flan-jax tasks list "
        "--mixtures --collection synthetic` lists the others.")
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "run").exists()


def test_misspelled_macro_and_missing_model_file_stop_before_writing(tmp_path, capsys):
    from flan_jax import train as train_lib

    run = tmp_path / "run"
    code = train_lib.main(["--gin_file=runs/demo.gin", "--gin.TRAIN_STEPZ=5",
                           f"--gin.MODEL_DIR='{run}'"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == ("flan-jax train: the gin macro TRAIN_STEPZ is bound but nothing "
                                 "uses it. Did you mean: TRAIN_STEPS?")
    code = train_lib.main(["--gin_file=runs/train.gin", "--gin_file=hardware/cpu.gin",
                           f"--gin.MODEL_DIR='{run}'"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "no model is configured: add a model gin file" in err
    assert not run.exists()


# --- subprocess tests: real signals and real processes --------------------------------------

@pytest.mark.slow
def test_sigkill_after_checkpoint_then_resume_gives_identical_losses(tmp_path):
    reference = _cli(tmp_path / "ref", "TRAIN_STEPS = 20")
    assert reference.wait(timeout=300) == 0, reference.stdout.read()
    proc = _cli(tmp_path / "run", "TRAIN_STEPS = 20", "train.async_checkpoints = False")
    _wait_for_step(tmp_path / "run", 10, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    resumed = _cli(tmp_path / "run", "TRAIN_STEPS = 20")
    out = resumed.communicate(timeout=300)[0]
    assert resumed.returncode == 0, out
    ref, run = _losses(tmp_path / "ref"), _losses(tmp_path / "run")
    first_resumed = min(s for s in range(11, 21) if s in run)
    assert first_resumed <= 16  # it resumed from a checkpoint, not from scratch
    for step in range(first_resumed, 21):
        assert run[step] == ref[step], (step, run[step], ref[step])


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint(tmp_path):
    proc = _cli(tmp_path, "TRAIN_STEPS = 1000", "train.checkpoint_every = 1000")
    deadline = time.time() + 240
    metrics = tmp_path / "metrics.jsonl"
    while time.time() < deadline and not (metrics.exists() and metrics.read_text().count(
            "\n") >= 3):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 143, out  # preempted and saved (flan_jax/errors.py)
    steps = [int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit()]
    assert steps and out.splitlines()[-1] == (
        f"flan-jax train: received signal 15: saved step {max(steps)} in {tmp_path}; rerun the "
        "same command to resume.")
    assert max(steps) >= 3


@pytest.mark.slow
def test_two_processes_agree_with_one_process_on_eight_devices(tmp_path):
    common = ["TRAIN_STEPS = 4", "DataConfig.host_data = 'slice'",
              "mesh_axes.axes = {'data': 2, 'fsdp': 2, 'tensor': 2}",
              "train.async_checkpoints = False"]
    single = _cli(tmp_path / "single", *common)
    assert single.wait(timeout=300) == 0, single.stdout.read()
    port = 23456 + os.getpid() % 1000
    procs = [_cli(tmp_path / "multi", *common, "initialize_distributed.cpu_collectives = True",
                  env={"XLA_FLAGS": xla_flags(4),
                       "JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}",
                       "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": str(i)}) for i in range(2)]
    outs = [p.communicate(timeout=400)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    single_losses, multi_losses = _losses(tmp_path / "single"), _losses(tmp_path / "multi")
    assert sorted(multi_losses) == [1, 2, 3, 4]
    np.testing.assert_allclose([multi_losses[s] for s in single_losses],
                               list(single_losses.values()), rtol=1e-5)


def test_non_finite_loss_stops_naming_the_step(tmp_path):
    from flan_jax.errors import TrainingError

    with pytest.raises(TrainingError, match="at step 1"):
        _train(tmp_path, "train.z_loss = 1e999")
    assert not any(p.name.isdigit() for p in (tmp_path / "checkpoints").iterdir())


@pytest.mark.slow  # make test: the miniworld demo's stage 1 starts from its exported base
def test_fine_tuning_starts_from_a_converted_checkpoint(tmp_path):
    from flan_jax import checkpoints

    scratch = _train(tmp_path / "base", "TRAIN_STEPS = 15")
    exported = tmp_path / "exported"
    exported.mkdir()
    params = checkpoints.restore_params_from_step(checkpoints.latest_step_dir(tmp_path / "base"))
    checkpoints.save_params(exported, params)
    shutil.copy(tmp_path / "base" / "model.gin", exported / "model.gin")
    tuned = _train(tmp_path / "tuned", "TRAIN_STEPS = 1", f"INIT_CHECKPOINT = '{exported}'")
    assert tuned[1] < scratch[1] - 0.5  # starts where the base run got to, not from scratch


def test_zero_steps_saves_the_initialisation(tmp_path):
    from flan_jax import checkpoints

    config.parse_gin(["runs/demo.gin"], TINY + [f"MODEL_DIR = '{tmp_path}'", "TRAIN_STEPS = 0"])
    from flan_jax.train import train

    train()
    assert checkpoints.latest_step_dir(tmp_path).name == "0"
    cfg, params, _ = checkpoints.load_model_dir(tmp_path)
    assert cfg.emb_dim == 64 and params
