"""`flan-jax bench`: throughput, MFU and memory, one module per benchmark.

- `train`    the jitted train step on synthetic batches (decoder-only and encoder-decoder)
- `compare`  the same models trained by Hugging Face transformers on PyTorch
- `pipeline` the input pipeline next to what the train step consumes (needs TensorFlow)
- `rank`     rank classification, one pass per input vs one per option
- `decode`   KV-cache decoding vs recomputing the prefix
- `mesh`     rank classification and greedy decoding on a device mesh vs one device
- `compile`  compile time of the train step, 2 vs 24 layers, with and without scanned layers
- `gpu`      the accelerator suite (1B decoder, T5 small/base, PyTorch, rank, decode), each
             section in a process of its own under one time budget (`gpu_run`)

`common` holds machine info, timing and fixtures; `results` the JSON writer and Markdown tables;
`profile` the costliest ops of a step from a jax.profiler trace; `cli` the command. Only
`pipeline` imports TensorFlow (when run).
"""

from __future__ import annotations

import os
import sys

# Benchmarks run on one device, or on the real accelerators present. `make` exports 8 simulated
# CPU devices for the tests; on a CPU they only split the same cores, so drop the flag when JAX
# is not imported yet, unless FLAN_JAX_BENCH_HOST_DEVICES asks for that many (`bench mesh`
# starts itself that way in a child process).
HOST_DEVICES_ENV = "FLAN_JAX_BENCH_HOST_DEVICES"

if "jax" not in sys.modules:
    _flags = [f for f in os.environ.get("XLA_FLAGS", "").split()
              if not f.startswith("--xla_force_host_platform_device_count")]
    if os.environ.get(HOST_DEVICES_ENV):
        _count = int(os.environ[HOST_DEVICES_ENV])
        _flags.append(f"--xla_force_host_platform_device_count={_count}")
    os.environ["XLA_FLAGS"] = " ".join(_flags)
