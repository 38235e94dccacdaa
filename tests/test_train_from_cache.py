"""Training from a data cache: no TensorFlow in the process, SIGKILL/resume exactness, two
processes = one process, and a resume onto another data stream refused unless asked for."""

import signal
import subprocess
import sys

import numpy as np
import pytest

from flan_jax import config
from flan_jax.data import cache_writer
from flan_jax.errors import UserError
from tests.fixtures import REPO, TINY
from tests.fixtures import cli_process as _cli
from tests.fixtures import losses as _losses
from tests.fixtures import train_run as _train
from tests.fixtures import wait_for_step as _wait_for_step
from tests.fixtures import xla_flags

LENGTHS = {"inputs": 64, "targets": 16}


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cache")
    plan = cache_writer.Plan("synthetic_heldout_nli_train", "train", LENGTHS, 200, 64, "test")
    cache_writer.build_cache(plan, str(out), show_progress=False)
    return out


def _from_cache(cache_dir):
    return ["DataConfig.source = 'cache'", f"DataConfig.cache_dir = '{cache_dir}'"]


NO_TENSORFLOW = """
import importlib.abc, importlib.util, sys
class Refuse(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    # finding succeeds (etils asks whether TensorFlow is installed); importing fails
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('tensorflow', 'seqio', 't5', 'tensorflow_datasets', 'tasks'):
            return importlib.util.spec_from_loader(name, self)
    def create_module(self, spec):
        raise ImportError(f'{spec.name} imported while training from a cache')
    def exec_module(self, module):
        pass
sys.meta_path.insert(0, Refuse())
from flan_jax import train
code = train.main(sys.argv[1:])
loaded = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'seqio', 'tasks')]
print('EXIT', code, 'LOADED', loaded)
"""


def test_training_from_a_cache_imports_no_tensorflow(tmp_path, cache_dir):
    args = ["--gin_file=runs/demo.gin", f"--gin.MODEL_DIR='{tmp_path}'"] + [
        f"--gin.{b.replace(' = ', '=', 1)}" for b in
        TINY + ["TRAIN_STEPS = 3", "train.truncation_sample = 8"] + _from_cache(cache_dir)]
    out = subprocess.run([sys.executable, "-c", NO_TENSORFLOW, *args], cwd=REPO, text=True,
                         capture_output=True, timeout=300)
    assert "EXIT 0 LOADED []" in out.stdout, out.stdout + out.stderr
    assert sorted(_losses(tmp_path)) == [1, 2, 3]
    assert (tmp_path / "vocab.json").read_text().strip().startswith("{")


def test_a_resume_onto_another_data_stream_is_refused_unless_asked(tmp_path, cache_dir,
                                                                  tiny_run):
    tiny_run(10, copy_to=tmp_path)  # 10 steps from the seqio source
    for change, named in ((_from_cache(cache_dir), "source: 'seqio' in the checkpoint, "
                                                   "'cache' now"),
                          (["DataConfig.seed = 3"], "seed: 0 in the checkpoint, 3 now")):
        with pytest.raises(UserError, match=named):
            _train(tmp_path, "TRAIN_STEPS = 12", "train.allow_config_change = True", *change)
        assert max(_losses(tmp_path)) == 10  # nothing trained
    losses = _train(tmp_path, "TRAIN_STEPS = 12", "train.allow_config_change = True",
                    "train.restart_data_stream = True", *_from_cache(cache_dir))
    assert sorted(losses) == list(range(1, 13))


@pytest.mark.slow
def test_sigkill_then_resume_from_a_cache_gives_identical_losses(tmp_path, cache_dir):
    common = ["TRAIN_STEPS = 20", *_from_cache(cache_dir)]
    reference = _cli(tmp_path / "ref", *common)
    assert reference.wait(timeout=300) == 0, reference.stdout.read()
    proc = _cli(tmp_path / "run", *common, "train.async_checkpoints = False")
    _wait_for_step(tmp_path / "run", 10, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    resumed = _cli(tmp_path / "run", *common)
    out = resumed.communicate(timeout=300)[0]
    assert resumed.returncode == 0, out
    ref, run = _losses(tmp_path / "ref"), _losses(tmp_path / "run")
    first_resumed = min(s for s in range(11, 21) if s in run)
    assert first_resumed <= 16
    for step in range(first_resumed, 21):
        assert run[step] == ref[step], (step, run[step], ref[step])


@pytest.mark.slow
@pytest.mark.parametrize("host_data", ["slice", "shard"])
def test_two_processes_agree_with_one_process_from_a_cache(tmp_path, cache_dir, host_data):
    """'slice': both build every row, so they equal one process. 'shard': each process reads
    half the stream; a resume of that two-process run continues each process's own state."""
    import os

    common = ["TRAIN_STEPS = 4", f"DataConfig.host_data = '{host_data}'",
              "mesh_axes.axes = {'data': 2, 'fsdp': 2, 'tensor': 2}",
              "train.async_checkpoints = False", "train.checkpoint_every = 2",
              "learning_rate_schedule.total_steps = 4",  # the same schedule in 2- and 4-step runs
              *_from_cache(cache_dir)]
    port = 24456 + os.getpid() % 1000 + (host_data == "shard")

    def two(model_dir, steps):
        procs = [_cli(model_dir, *common, f"TRAIN_STEPS = {steps}",
                      "initialize_distributed.cpu_collectives = True",
                      env={"XLA_FLAGS": xla_flags(4),
                           "JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}",
                           "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": str(i)})
                 for i in range(2)]
        outs = [p.communicate(timeout=400)[0] for p in procs]
        assert all(p.returncode == 0 for p in procs), outs
        return _losses(model_dir)

    if host_data == "slice":
        single = _cli(tmp_path / "single", *common)
        assert single.wait(timeout=300) == 0, single.stdout.read()
        multi = two(tmp_path / "multi", 4)
        expected = _losses(tmp_path / "single")
    else:  # 2 steps, then resume to 4, equals 4 steps straight
        expected = two(tmp_path / "straight", 4)
        two(tmp_path / "multi", 2)
        multi = two(tmp_path / "multi", 4)
    assert sorted(multi) == [1, 2, 3, 4]
    np.testing.assert_allclose([multi[s] for s in sorted(expected)],
                               [expected[s] for s in sorted(expected)], rtol=1e-5)
