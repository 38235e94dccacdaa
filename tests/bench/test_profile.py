"""The profile summary: a real jax.profiler trace of a tiny CPU step, and a device-style trace
(an "XLA Ops" thread) parsed without TensorBoard."""

import gzip
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flan_jax.bench import profile


def test_top_ops_of_a_real_cpu_trace(tmp_path):
    @jax.jit
    def step(w, x):
        return jnp.exp(x @ w).sum(), jnp.tanh(w)

    w = jnp.asarray(np.random.default_rng(0).normal(size=(256, 512)), jnp.float32)
    x = jnp.ones((128, 256), jnp.float32)
    compiled = step.lower(w, x).compile()
    compiled(w, x)[0].block_until_ready()
    trace = profile.trace_steps(lambda: compiled(w, x)[0].block_until_ready(), tmp_path, 3)
    assert trace.name.endswith(".trace.json.gz")
    times = profile.op_times(trace)
    hlo = compiled.as_text()
    index = profile.hlo_index(hlo)
    assert times and set(times) <= set(index), set(times) - set(index)
    assert all(t["count"] == 3 and t["us"] > 0 for t in times.values())
    rows = profile.top_ops(times, 3, hlo, n=2)
    assert len(rows) == min(2, len(times))
    assert rows[0]["ms_per_step"] >= rows[-1]["ms_per_step"] > 0
    assert rows[0]["calls_per_step"] == 1
    assert sum(r["share"] for r in profile.top_ops(times, 3, hlo)) == pytest.approx(1.0)
    # the matmul is found inside whichever kernel computes it, with the JAX op of its root
    (dot,) = [r for r in profile.top_ops(times, 3, hlo) if "dot" in r["fused"].split(", ")
              or r["opcode"] == "dot"]
    assert dot["source"].startswith("jit(step)/")
    (tanh,) = [r for r in profile.top_ops(times, 3, hlo) if r["source"].endswith("/tanh")]
    assert tanh["shape"] == "f32[256,512]"
    assert "tanh" in tanh["fused"].split(", ") or tanh["opcode"] == "tanh"
    md = "\n".join(profile.render_profile("tiny", {"ops": rows, "steps": 3,
                                                   "op_ms_per_step": 1.0}))
    assert f"| 1 | `{rows[0]['op']}` |" in md


def test_device_trace_counts_only_the_xla_ops_thread(tmp_path):
    events = [
        {"ph": "M", "pid": 1, "tid": 7, "name": "thread_name", "args": {"name": "XLA Ops"}},
        {"ph": "M", "pid": 1, "tid": 8, "name": "thread_name", "args": {"name": "Stream #1"}},
        {"ph": "X", "pid": 1, "tid": 7, "ts": 0, "dur": 300.0, "name": "fusion.1"},
        {"ph": "X", "pid": 1, "tid": 7, "ts": 400, "dur": 100.0, "name": "fusion.1"},
        {"ph": "X", "pid": 1, "tid": 7, "ts": 600, "dur": 50.0, "name": "cudnn-conv.2",
         "args": {"hlo_op": "custom-call.2"}},
        # the kernel of fusion.1 on its stream, and host events: not counted again
        {"ph": "X", "pid": 1, "tid": 8, "ts": 0, "dur": 290.0, "name": "loop_fusion_kernel",
         "args": {"hlo_op": "fusion.1"}},
        {"ph": "X", "pid": 2, "tid": 3, "ts": 0, "dur": 9999.0, "name": "$python step"},
    ]
    path = tmp_path / "host.trace.json.gz"
    with gzip.open(path, "wt") as f:
        json.dump({"traceEvents": events}, f)
    assert profile.op_times(path) == {"fusion.1": {"us": 400.0, "count": 2},
                                      "custom-call.2": {"us": 50.0, "count": 1}}
    hlo = ('  %fusion.1 = bf16[4,2048,8192]{2,1,0} fusion(%p0), kind=kLoop, calls=%f, '
           'metadata={op_name="jit(train_step)/mlp/wi_0/dot_general"}')
    (top, second) = profile.top_ops(profile.op_times(path), 2, hlo)
    assert top == {"op": "fusion.1", "ms_per_step": 0.2, "share": 400 / 450,
                   "calls_per_step": 1.0, "shape": "bf16[4,2048,8192]", "opcode": "fusion",
                   "fused": "", "source": "jit(train_step)/mlp/wi_0/dot_general"}
    assert second["source"] == ""


def test_a_run_without_steps_has_no_ops(tmp_path):
    trace = profile.trace_steps(lambda: None, tmp_path, 0)
    assert profile.op_times(trace) == {}
