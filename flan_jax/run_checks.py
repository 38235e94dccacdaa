"""Checks a training run makes before it writes anything to MODEL_DIR.

Each raises `UserError` with one line that says what to change: a MODEL_DIR that cannot be
written, a batch that does not split over the data devices, or a resume whose settings differ
from the run it continues (batch size, model, optimizer, mixture or feature lengths).
"""

from __future__ import annotations

import logging
import os
import pathlib
import re

import gin
import numpy as np

from etils import epath

from flan_jax import paths
from flan_jax.errors import UserError

logger = logging.getLogger("flan_jax.train")

FIRST_CONFIG = "config.gin"
RESTART_CONFIG = "config.restart_{step}.gin"
_RESTART_RE = re.compile(r"config\.restart_(\d+)\.gin")

# Settings a resumed run may not change: every parameter of these configurables ...
GUARDED_CONFIGURABLES = ("TransformerConfig", "build_optimizer")
# ... and these parameters.
GUARDED_PARAMETERS = ("DataConfig.batch_size", "DataConfig.mixture_or_task_name",
                      "DataConfig.task_feature_lengths")


# --- MODEL_DIR ---------------------------------------------------------------------------------

def check_model_dir(model_dir: str | os.PathLike) -> None:
    """MODEL_DIR (or the nearest folder above it that exists) must be a writable directory.

    On a bucket (gs://...) a probe object is written and removed: missing credentials, a
    missing bucket or no permission stop here, in one line, before any training starts."""
    if paths.is_url(model_dir):
        paths.check_bucket_writable(model_dir, "MODEL_DIR")
        return
    path = pathlib.Path(model_dir)
    if path.exists() and not path.is_dir():
        raise UserError(f"MODEL_DIR {path} is a file, not a directory: pass a directory, e.g. "
                        f"--gin.MODEL_DIR=\"'{path}_run'\".")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"MODEL_DIR {path} cannot be created: {existing} is a file. "
                        "Pass a MODEL_DIR under a directory.")
    if not os.access(existing, os.W_OK | os.X_OK):
        where = f"MODEL_DIR {path}" if existing == path else \
            f"MODEL_DIR {path} cannot be created: {existing}"
        raise UserError(f"{where} is read-only. Pass a MODEL_DIR you can write to.")


# --- the data settings themselves ---------------------------------------------------------------

def check_data_config(cfg) -> None:
    """TASK_FEATURE_LENGTHS must give 'inputs' and 'targets' each at least one token and
    BATCH_SIZE must be at least 1: a zero length crashes XLA (a segmentation fault), a missing
    key or a negative length fails deep inside seqio, a zero batch inside TensorFlow."""
    from flan_jax import input_checks

    input_checks.check_feature_lengths(cfg.task_feature_lengths)
    input_checks.check_positive(cfg.batch_size, "BATCH_SIZE")


def already_trained(model_dir, saved_step: int, train_steps: int) -> str:
    """What a run says when MODEL_DIR is already at (or past) TRAIN_STEPS: nothing to do."""
    return (f"flan-jax train: {model_dir} already holds step {saved_step}, at or past "
            f"TRAIN_STEPS={train_steps}: nothing to train. Raise TRAIN_STEPS to continue it, or "
            "use another MODEL_DIR for a new run.")


def non_finite_loss(loss: float, step: int, saved_step: int | None, model_dir) -> str:
    """The NaN/Inf stop: which step, and which checkpoint (if any) the run keeps."""
    kept = (f"The last good checkpoint (step {saved_step}) is kept in {model_dir}."
            if saved_step is not None else f"No checkpoint was saved yet in {model_dir}.")
    return (f"loss is {loss} at step {step}; stopping. {kept} Lower the learning rate or check "
            "the data.")


# --- the batch over the mesh -------------------------------------------------------------------

def check_batch_size(batch_size: int, mesh, rules, num_processes: int = 1) -> None:
    """The global batch must split evenly over the mesh axes the batch dimension is sharded on."""
    mapped = dict(rules).get("batch")
    axes = [mapped] if isinstance(mapped, str) else list(mapped or ())
    sizes = {a: int(mesh.shape[a]) for a in axes if a in mesh.shape}
    devices = int(np.prod(list(sizes.values()))) if sizes else 1
    if batch_size % devices:
        described = " x ".join(f"{a}={s}" for a, s in sizes.items())
        raise UserError(
            f"BATCH_SIZE={batch_size} does not split over the {devices} data devices (mesh "
            f"axes {described}): use a multiple of {devices} or change mesh_axes.axes.")
    if batch_size % num_processes:
        raise UserError(f"BATCH_SIZE={batch_size} does not split over the {num_processes} "
                        f"processes: use a multiple of {num_processes}.")


# --- examples cut by the feature lengths --------------------------------------------------------

def check_truncation(source, per_task: int) -> None:
    """Logs the share of each task's sampled examples that TASK_FEATURE_LENGTHS truncates;
    refuses when every sampled target is truncated (the model would never see one end).
    `source`: a `flan_jax.data.DataSource`."""
    cfg = source.cfg
    report = source.truncation_sample(per_task)
    cut = [r for r in report if any(r.cut.values())]
    for r in cut:
        logger.info("%s: TASK_FEATURE_LENGTHS truncates %s of %d sampled examples.", r.task,
                    ", ".join(f"{k} in {n}" for k, n in r.cut.items() if n), r.sampled)
    if report and not cut:
        logger.info("TASK_FEATURE_LENGTHS truncates none of %d sampled examples of %d tasks.",
                    sum(r.sampled for r in report), len(report))
    sampled = sum(r.sampled for r in report if "targets" in r.cut)
    if sampled and sum(r.cut.get("targets", 0) for r in report) == sampled:
        longest = max(r.longest["targets"] for r in report if "targets" in r.longest)
        raise UserError(
            f"TASK_FEATURE_LENGTHS={dict(cfg.task_feature_lengths)} truncates every sampled target "
            f"of {cfg.mixture_or_task_name} ({sampled} examples, up to {longest} tokens long): "
            f"raise 'targets' (to {longest} to keep them all).")


# --- resuming with the same settings ------------------------------------------------------------

def parse_bindings(text: str) -> dict:
    """{`[scope/]selector.param` or MACRO: value} of a gin config's text."""
    parser = gin.config_parser.ConfigParser(text, gin.config.ParserDelegate(skip_unknown=True))
    out = {}
    for statement in parser:
        if isinstance(statement, gin.config_parser.BindingStatement):
            key = statement.selector.split(".")[-1]
            key = f"{key}.{statement.arg_name}" if statement.arg_name else key
            out[f"{statement.scope}/{key}" if statement.scope else key] = statement.value
    return out


def _macro(value) -> str | None:
    text = repr(value) if isinstance(value, gin.config.ConfigurableReference) else ""
    return text[1:] if text.startswith("%") else None


def _resolve(bindings: dict, key: str) -> tuple[str, object]:
    """(the name to report, the value) of `key`, following macro references (`%X`)."""
    name, value, seen = key, bindings.get(key), set()
    while (macro := _macro(value)) is not None and macro not in seen:
        name = macro
        seen.add(name)
        value = bindings.get(name)
    return name, value


def _same(a, b) -> bool:
    """Equal values ({'inputs': 1, 'targets': 2} in either order), or references written the
    same way."""
    try:
        if a == b:
            return True
    except Exception:  # noqa: BLE001 - values that cannot be compared are compared as text
        pass
    return repr(a) == repr(b)


def _is_guarded(key: str) -> bool:
    selector = key.split("/")[-1]
    return selector.split(".")[0] in GUARDED_CONFIGURABLES or selector in GUARDED_PARAMETERS


def config_changes(before: dict, after: dict) -> tuple[list[str], list[str]]:
    """(guarded changes, other changes), each as `NAME: old -> new`. A macro is guarded when a
    guarded parameter takes its value (BATCH_SIZE through DataConfig.batch_size)."""
    changes: dict[str, list] = {}  # name -> [old, new, guarded]
    for key in sorted(set(before) | set(after)):
        old_name, old = _resolve(before, key)
        new_name, new = _resolve(after, key)
        if _same(old, new):
            continue
        name = old_name if old_name == new_name else key
        guarded = _is_guarded(key) and old is not None and new is not None
        change = changes.setdefault(name, [old, new, False])
        change[2] = change[2] or guarded
    text = {name: f"{name}: {'(unset)' if old is None else repr(old)} -> "
                  f"{'(unset)' if new is None else repr(new)}"
            for name, (old, new, _) in changes.items()}
    return ([text[n] for n, c in changes.items() if c[2]],
            [text[n] for n, c in changes.items() if not c[2]])


def latest_config(model_dir: str | os.PathLike) -> epath.Path | None:
    """The config written by the run's most recent start (config.gin or a restart's)."""
    model_dir = paths.as_path(model_dir)
    restarts = sorted((int(m.group(1)), p) for p in model_dir.glob("config.*.gin")
                      if (m := _RESTART_RE.fullmatch(p.name)))
    if restarts:
        return restarts[-1][1]
    first = model_dir / FIRST_CONFIG
    return first if first.exists() else None


def check_resume_config(model_dir: str | os.PathLike, step: int, allow_change: bool) -> list[str]:
    """Compares the current gin config with the one of the run's last start; refuses changes
    of guarded settings unless `allow_change`. Returns every change (to log)."""
    previous = latest_config(model_dir)
    if previous is None:
        return []
    guarded, other = config_changes(parse_bindings(previous.read_text()),
                                    parse_bindings(gin.config_str()))
    if guarded and not allow_change:
        raise UserError(
            f"MODEL_DIR {model_dir} holds a run (step {step}) with other settings: "
            f"{'; '.join(guarded)}. Resume with its settings ({previous.name}), use another "
            "MODEL_DIR, or pass --gin.train.allow_config_change=True.")
    return guarded + other


def config_file_for(step: int | None) -> str:
    """config.gin for a fresh run; config.restart_STEP.gin when resuming from STEP."""
    return FIRST_CONFIG if step is None else RESTART_CONFIG.format(step=step)
