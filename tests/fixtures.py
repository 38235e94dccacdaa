"""Shared test fixtures and helpers: tiny model configs, the tiny training settings and a
trained run, the seqio reference rows for packing. Test modules import these from here, never
from one another."""

import json
import os
import pathlib
import subprocess
import sys
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from flan_jax import config
from flan_jax.models import TransformerConfig, build_model
from flan_jax.models.config import plain_config
from flan_jax.vocab import ByteVocab

REPO = pathlib.Path(__file__).resolve().parent.parent
GCS_BUCKET = "flan-jax-test"  # the bucket of conftest.py's GCS emulator (the `gcs` fixture)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


TINY = [
    "TransformerConfig.emb_dim = 64", "TransformerConfig.num_heads = 2",
    "TransformerConfig.head_dim = 16", "TransformerConfig.mlp_dim = 128",
    "TRAIN_STEPS = 12", "BATCH_SIZE = 8", "TASK_FEATURE_LENGTHS = {'inputs': 64, 'targets': 16}",
    "MIXTURE_OR_TASK_NAME = 'synthetic_heldout_nli_train'", "train.log_every = 1",
    "train.checkpoint_every = 5", "learning_rate_schedule.warmup_steps = 0",
    "learning_rate_schedule.base_learning_rate = 3e-3",
    "train.truncation_sample = 0",  # tests/test_run_checks.py and the test below check it
]


def train_run(model_dir, *extra, files=("runs/demo.gin",), **kwargs):
    from flan_jax.train import train

    config.parse_gin(list(files), TINY + [f"MODEL_DIR = '{model_dir}'", *extra])
    train(**kwargs)
    return losses(model_dir)


def train_main(capsys, model_dir, *extra):
    """`flan-jax train` in this process: (exit code, stdout, stderr)."""
    from flan_jax import train as train_lib

    capsys.readouterr()  # what came before is not this command's
    code = train_lib.main(["--gin_file=runs/demo.gin", f"--gin.MODEL_DIR='{model_dir}'"] + [
        f"--gin.{b.replace(' = ', '=', 1)}" for b in TINY + list(extra)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def snapshot(path):
    """Every file and folder under `path` with its bytes (None when `path` does not exist)."""
    path = pathlib.Path(path)
    if not path.exists():
        return None
    if path.is_file():
        return path.read_bytes()
    return {str(p.relative_to(path)): p.read_bytes() if p.is_file() else "dir"
            for p in sorted(path.rglob("*"))}


def losses(model_dir):
    rows = [json.loads(line) for line in (pathlib.Path(model_dir) / "metrics.jsonl").open()]
    return {r["step"]: r["loss"] for r in rows}


def xla_flags(devices: int = 8) -> str:
    """This session's XLA_FLAGS (conftest.py's) with `devices` simulated CPU devices, for a
    subprocess."""
    kept = [f for f in os.environ.get("XLA_FLAGS", "").split()
            if not f.startswith("--xla_force_host_platform_device_count")]
    return " ".join([f"--xla_force_host_platform_device_count={devices}", *kept])


def cli_process(model_dir, *extra, env=None):
    args = [sys.executable, "-m", "flan_jax.cli", "train", "--gin_file=runs/demo.gin",
            f"--gin.MODEL_DIR='{model_dir}'"] + [f"--gin.{b.replace(' = ', '=', 1)}" for b in
                                                  TINY + list(extra)]
    full_env = {**os.environ, "XLA_FLAGS": xla_flags(8),
                "JAX_PLATFORMS": "cpu", **(env or {})}
    return subprocess.Popen(args, cwd=REPO, env=full_env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def wait_for_step(model_dir, step, proc, timeout=240):
    target = pathlib.Path(model_dir) / "checkpoints" / str(step)
    start = time.time()
    while time.time() - start < timeout:
        if target.is_dir() and not any(p.name.endswith(".orbax-checkpoint-tmp")
                                       for p in target.parent.iterdir()):
            return
        if proc.poll() is not None:
            raise AssertionError(f"trainer exited early:\n{proc.stdout.read()}")
        time.sleep(0.2)
    raise AssertionError(f"no checkpoint {step} after {timeout}s")


VOCAB = ByteVocab()
ENC_DEC = TransformerConfig(family="encoder_decoder", vocab_size=259, emb_dim=32, num_heads=4,
                            head_dim=8, mlp_dim=48, num_encoder_layers=2, num_decoder_layers=2,
                            relative_attention_num_buckets=8, relative_attention_max_distance=16)
DEC_ONLY = TransformerConfig(family="decoder_only", vocab_size=259, emb_dim=32, num_heads=4,
                             num_kv_heads=2, head_dim=8, mlp_dim=48, num_encoder_layers=0,
                             num_decoder_layers=2, mlp_activation="silu")
PREFIX_LM = TransformerConfig(**{**DEC_ONLY.__dict__, "prefix_lm": True})
CONFIGS = {"encoder_decoder": ENC_DEC, "decoder_only": DEC_ONLY, "prefix_lm": PREFIX_LM}

INPUTS = ["Is the sky blue?", "Pick a letter:", "What is the capital of France? Answer:", "ok"]
OPTIONS = [["yes", "no"], ["a", "bb", "ccc", "dddd", "e"], [" Paris"], [" fine", "good"]]


def tiny_model(cfg, seed=0):
    """`cfg`'s model and parameters initialised on a [1, 4] batch of ones."""
    tokens = jnp.ones((1, 4), jnp.int32)
    args = (tokens, tokens) if cfg.family == "encoder_decoder" else (tokens,)
    return init_model(cfg, *args, seed=seed)


# The tiny configs with a 61-word vocabulary, for model tests that draw their own token ids.
SMALL_VOCAB = 61
ENC_DEC_61 = plain_config(**{**vars(ENC_DEC), "vocab_size": SMALL_VOCAB})
DEC_ONLY_61 = plain_config(**{**vars(DEC_ONLY), "vocab_size": SMALL_VOCAB})


def random_tokens(shape, seed=0, low=3):
    """int32 token ids in [low, SMALL_VOCAB) (0 is padding; 1 and 2 are EOS and UNK)."""
    return jnp.asarray(np.random.RandomState(seed).randint(low, SMALL_VOCAB, size=shape),
                       jnp.int32)


def init_model(cfg, *args, seed=0):
    """`cfg`'s model and its unboxed parameters initialised (PRNGKey(seed)) on `args`."""
    model = build_model(cfg)
    variables = jax.jit(model.init)(jax.random.PRNGKey(seed), *args)  # one compile, not one an op
    return model, nn.meta.unbox(variables["params"])


def jitted_apply(model, **static):
    """`model.apply` compiled whole, once per input shape (an eager apply compiles each operation
    on its own: ten times the compile time of a test). `static`: keyword arguments fixed at
    trace time (decode=True, mutable=["cache"], method="encode", return_hidden=True)."""
    return jax.jit(lambda variables, *args, **kwargs: model.apply(variables, *args, **static,
                                                                  **kwargs))


def random_model_dir(path, cfg, seed=0):
    """A byte-vocabulary model directory of randomly initialised `cfg`, as `flan-jax convert`
    writes one (model.gin, vocab.json, params/)."""
    from flan_jax import checkpoints
    from flan_jax.vocab import save_vocab_json

    _, params = tiny_model(cfg, seed)
    checkpoints.save_params(path, params)
    (path / checkpoints.MODEL_GIN).write_text(checkpoints.model_gin_text(cfg))
    save_vocab_json(path, VOCAB.to_json())
    return path


def converted(tmp_path, family):
    """A tiny random transformers model saved, converted to a flan-jax dir with a byte vocab."""
    import pytest

    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from flan_jax import checkpoints
    from flan_jax.convert.hf import convert

    torch.manual_seed(0)
    if family == "encoder_decoder":
        hf = transformers.T5ForConditionalGeneration(transformers.T5Config(
            vocab_size=259, d_model=24, d_ff=40, num_layers=2, num_heads=3, d_kv=8,
            feed_forward_proj="gated-gelu", decoder_start_token_id=0, pad_token_id=0,
            eos_token_id=1, relative_attention_num_buckets=8,
            relative_attention_max_distance=20, tie_word_embeddings=False)).eval()
    else:
        hf = transformers.LlamaForCausalLM(transformers.LlamaConfig(
            vocab_size=259, hidden_size=32, intermediate_size=44, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-5,
            tie_word_embeddings=False)).eval()
    src, dst = tmp_path / f"hf_{family}", tmp_path / f"model_{family}"
    hf.save_pretrained(src)
    convert(src, dst)
    (dst / "vocab.json").write_text(json.dumps({"kind": "byte"}))
    cfg, params, vocab = checkpoints.load_model_dir(dst)
    return hf, build_model(cfg), params, vocab, dst


def random_examples(n: int, seed: int, max_inputs: int, max_targets: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        # some longer than the feature lengths (trimmed), some short; tokens never 0 but EOS=1
        ni, nt = rng.integers(1, max_inputs + 1), rng.integers(1, max_targets + 1)
        out.append({"inputs": np.append(rng.integers(2, 50, ni - 1), 1).astype(np.int32),
                    "targets": np.append(rng.integers(2, 50, nt - 1), 1).astype(np.int32)})
    return out


def seqio_rows(examples, family, lengths, pack):
    import tensorflow as tf

    from flan_jax.data.seqio_source import feature_converter

    ds = tf.data.Dataset.from_generator(
        lambda: iter(examples), output_signature={
            k: tf.TensorSpec([None], tf.int32) for k in ("inputs", "targets")})
    # the task stage trims each feature to its length before the converter (seqio.get_dataset)
    ds = ds.map(lambda ex: {k: v[:lengths[k]] for k, v in ex.items()})
    return list(feature_converter(family, pack)(ds, lengths).as_numpy_iterator())


CACHE_MIXTURE = "synthetic_heldout_nli_train"
CACHE_LENGTHS = {"inputs": 64, "targets": 16}


def cache_plan(name=CACHE_MIXTURE, per_task=40, per_shard=16):
    """The cache_writer.Plan of the session's `synthetic_cache` (or of a variant)."""
    from flan_jax.data import cache_writer

    return cache_writer.Plan(name, "train", dict(CACHE_LENGTHS), per_task, per_shard,
                             f"flan-jax data cache {name} --out DIR")
