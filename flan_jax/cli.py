"""The single `flan-jax` entry point: `flan-jax COMMAND [ARGS...]`.

Each command lives in its own module and is imported only when used, so `flan-jax convert`
or `flan-jax infer` never pays for TensorFlow.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys

# TensorFlow (behind seqio) is chatty; keep the console for progress and results.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


class _QuietAbsl(logging.Filter):
    """Drops seqio's advice to cache tasks: the synthetic suite is generated in memory."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "uncached FunctionDataset" not in record.getMessage()

def _import_tensorflow_quietly() -> None:
    """Imports TensorFlow with the process's stderr (fd 2) in a temporary file: its C++
    start-up lines ("All log messages before absl::InitializeLog() ...", "Could not find cuda
    drivers ...") ignore TF_CPP_MIN_LOG_LEVEL. They are shown only if the import fails; a
    missing TensorFlow is left for the command to explain."""
    import importlib.util
    import tempfile

    try:
        if "tensorflow" in sys.modules or importlib.util.find_spec("tensorflow") is None:
            return
    except (ImportError, ValueError):
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
            failed = False
        except Exception:  # noqa: BLE001 - the command's own import reports it
            failed = True
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        if failed:
            captured.seek(0)
            sys.stderr.write(captured.read().decode("utf-8", "replace"))


# Commands whose README runs use the 8-device mesh: on a CPU they get 8 simulated devices.
SIMULATED_DEVICE_COMMANDS = ("demo", "experiment")
SIMULATED_DEVICES = 8


def default_simulated_devices(name: str) -> None:
    """Asks XLA for 8 simulated CPU devices for `demo` and `experiment` unless the user's
    XLA_FLAGS say how many (it only affects the CPU platform: a GPU or TPU run keeps its
    chips). It must be set before JAX starts, which is why it is here and not in gin."""
    flags = os.environ.get("XLA_FLAGS", "")
    if name in SIMULATED_DEVICE_COMMANDS and "xla_force_host_platform_device_count" not in flags:
        os.environ["XLA_FLAGS"] = (
            f"{flags} --xla_force_host_platform_device_count={SIMULATED_DEVICES}").strip()


# Commands that read tasks (and so import TensorFlow).
TENSORFLOW_COMMANDS = ("train", "eval", "tasks", "data", "demo", "experiment")

# command -> (module, function, one-line help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "train": ("flan_jax.train", "main", "train or fine-tune a model from gin files"),
    "eval": ("flan_jax.evaluate", "main", "evaluate a checkpoint on a task or mixture"),
    "infer": ("flan_jax.infer", "main", "score, rank or predict JSONL inputs with a checkpoint"),
    "convert": ("flan_jax.convert.cli", "main",
                "import a Hugging Face checkpoint (hf) or export one (to-hf)"),
    "tasks": ("flan_jax.tasks_cli", "main", "list registered tasks or show rendered examples"),
    "data": ("flan_jax.data.cli", "main", "prepare a mixture's TFDS datasets, or cache it tokenized"),
    "bench": ("flan_jax.bench.cli", "main", "measure throughput, MFU and memory"),
    "demo": ("flan_jax.demo", "main", "train and evaluate a tiny model on the offline suite"),
    "experiment": ("flan_jax.experiments", "main", "run one of the paper's experiments"),
}


def _usage() -> str:
    lines = ["usage: flan-jax COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<11} {help_}" for name, (_, _, help_) in COMMANDS.items()]
    lines += ["", "Run `flan-jax COMMAND --help` for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        import difflib

        close = difflib.get_close_matches(name, COMMANDS, n=1)
        hint = f" Did you mean `{close[0]}`?" if close else ""
        print(f"flan-jax: unknown command `{name}`.{hint}\n\n{_usage()}", file=sys.stderr)
        return 2
    from flan_jax import errors

    errors.stop_on_sigterm(name)  # from the start: a SIGTERM while importing exits 143 too
    default_simulated_devices(name)
    try:
        return _run(name, rest)
    except errors.UserError as e:  # what a command did not catch itself: one line, exit 2
        print(f"flan-jax {name}: {errors.message(e)}", file=sys.stderr)
        return errors.EXIT_USER_ERROR
    except errors.TrainingError as e:  # e.g. a damaged checkpoint: one line, exit 1
        print(f"flan-jax {name}: {errors.message(e)}", file=sys.stderr)
        return errors.EXIT_FAILURE
    except errors.Preempted as e:  # SIGTERM: what was saved is kept; rerun to resume
        print(f"flan-jax {name}: {errors.message(e)}", file=sys.stderr)
        return errors.EXIT_PREEMPTED


def _run(name: str, rest: list[str]) -> int:
    from flan_jax import paths

    paths.check_urls_reachable(rest)  # an unreachable bucket fails in seconds, in one line
    logging.getLogger("absl").addFilter(_QuietAbsl())
    if name in TENSORFLOW_COMMANDS and not any(a in ("-h", "--help") for a in rest):
        _import_tensorflow_quietly()
    module_name, func_name, _ = COMMANDS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and e.name.startswith("flan_jax"):
            print(f"flan-jax: `{name}` is not available in this version.", file=sys.stderr)
            return 2
        raise
    result = getattr(module, func_name)(rest)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
