"""Checkpoint layout and orbax I/O shared by the converter, the trainer and inference.

A model directory holds:
  model.gin       the model's `TransformerConfig` bindings (gin, re-runnable)
  vocab.json      which vocabulary (bytes, or a SentencePiece file next to it)
  params/         orbax checkpoint of the parameters (converted checkpoints)
  checkpoints/    orbax CheckpointManager steps (training runs: params, optimizer, data state)
  config.gin      the full resolved gin config of a training run
  prompt_base.txt prompt-tuning runs: the model directory whose frozen parameters the saved
                  prompt goes with (their checkpoints hold only the "prompt" parameter)
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from typing import Any

import flax.linen as nn
import gin
import jax
import numpy as np
import orbax.checkpoint as ocp

from etils import epath

from flan_jax import paths
from flan_jax.models import layout
from flan_jax.models.config import TransformerConfig, plain_config

MODEL_GIN = "model.gin"
PARAMS_DIR = "params"
STEPS_DIR = "checkpoints"
PROMPT_BASE = "prompt_base.txt"
PROMPT_PARAM = "prompt"
# what orbax writes last into a step folder on a bucket (orbax.checkpoint atomicity)
COMMIT_FILE = "commit_success.txt"


def model_gin_text(cfg: TransformerConfig, header: str = "") -> str:
    """Gin bindings that rebuild `cfg` exactly (a gin file of its own: it imports what it
    configures)."""
    lines = [f"# {line}" for line in header.splitlines()] if header else []
    lines.append("import flan_jax.models.config")
    for field in dataclasses.fields(cfg):
        lines.append(f"TransformerConfig.{field.name} = {getattr(cfg, field.name)!r}")
    return "\n".join(lines) + "\n"


def read_model_config(path: str | os.PathLike) -> TransformerConfig:
    """Reads `TransformerConfig.*` bindings from a gin file without touching global gin state."""
    text = paths.as_path(path).read_text()
    parser = gin.config_parser.ConfigParser(text, gin.config.ParserDelegate(skip_unknown=True))
    names = {f.name for f in dataclasses.fields(TransformerConfig)}
    values: dict[str, Any] = {}
    for statement in parser:
        if isinstance(statement, gin.config_parser.BindingStatement) and \
                statement.selector.split(".")[-1] == "TransformerConfig" and \
                statement.arg_name in names:
            values[statement.arg_name] = statement.value
    if not values:
        raise ValueError(f"{path} has no TransformerConfig bindings; is it a model gin file?")
    return plain_config(**values)


def unbox(params):
    """Plain arrays from a tree that may hold flax `Partitioned` boxes."""
    return nn.meta.unbox(params)


def save_params(directory: str | os.PathLike, params) -> None:
    """Writes params (numpy or jax arrays) as an orbax checkpoint at `directory/params`."""
    path = paths.as_path(directory) / PARAMS_DIR
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save(path, unbox(params))
        ckptr.wait_until_finished()


def load_params(directory: str | os.PathLike, target=None,
                config: TransformerConfig | None = None):
    """Restores `directory/params`; `target` (arrays or ShapeDtypeStructs with shardings)
    places the result, otherwise it lands on the default device.

    Saved in the other layer layout than `target` (or else `config`) has, the parameters are
    converted (`flan_jax.models.layout`), each restored straight into its sharding."""
    return _load_tree(paths.as_path(directory) / PARAMS_DIR, target, config)


def restore_params_from_step(step_dir: str | os.PathLike, config: TransformerConfig | None = None,
                             target=None):
    """The parameters of a training run's saved step, in `config`'s (or `target`'s) layer
    layout; only the parameter subtree is read, never the optimizer state."""
    return _load_tree(paths.as_path(step_dir) / "state", target, config,
                      subtree="params")


def _load_tree(path: epath.Path, target, config: TransformerConfig | None,
               subtree: str | None = None):
    """The saved tree at `path` (or its `subtree`), converted to the wanted layer layout and
    restored into `target`'s shardings when given."""
    saved = _saved_tree(path, subtree)
    want = (layout.params_layout(target) if target is not None and layout.has_layers(target)
            else layout.config_layout(config) if config is not None else None)
    have = layout.params_layout(saved) if want is not None and layout.has_layers(saved) else want
    if have == want:
        return _restore(path, target, subtree, saved)
    if target is None:
        return layout.convert_params(_restore(path, None, subtree, saved), config,
                                     source=str(path))
    try:  # the target in the saved layout, so every array lands in its final sharding at once
        saved_target = layout.to_layout(target, have, config)
    except layout.LayoutError as e:
        raise layout.LayoutError(f"{path} has {have} layers and the model wants {want} layers, "
                                 f"but they do not convert: {e}") from e
    restored = _restore(path, saved_target, subtree, saved)
    shardings = [getattr(t, "sharding", None) for t in jax.tree_util.tree_leaves(target)]
    convert = lambda p: layout.to_layout(p, want, config)  # noqa: E731
    if any(s is None for s in shardings):
        return convert(restored)
    return jax.jit(convert, out_shardings=jax.tree_util.tree_map(lambda t: t.sharding, target)
                   )(restored)


def _saved_tree(path: epath.Path, subtree: str | None = None) -> dict:
    """The saved tree's arrays' metadata as nested dicts (no array is read)."""
    # The handler, not a Checkpointer: a step's state/ has no checkpoint-level metadata file of
    # its own (the step directory holds it), and a Checkpointer warns about that on every read.
    with reading(path):
        meta = ocp.PyTreeCheckpointHandler().metadata(path)
    flat, tree = jax.tree_util.tree_flatten_with_path(getattr(meta, "tree", meta))[0], {}
    for keys, leaf in flat:
        node = tree
        names = [str(getattr(k, "key", getattr(k, "name", k))) for k in keys]
        for name in names[:-1]:
            node = node.setdefault(name, {})
        node[names[-1]] = leaf
    if subtree is not None:
        if subtree not in tree:
            raise FileNotFoundError(f"{path} holds no {subtree!r}; is it a flan-jax checkpoint?")
        tree = tree[subtree]
    return tree


def _restore(path: epath.Path, target=None, subtree: str | None = None, saved=None):
    """Restores the tree (or its `subtree` alone: the rest is never read) into `target`, or
    onto the default device."""
    if target is None:
        device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
        target = jax.tree_util.tree_map(
            lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
            saved if saved is not None else _saved_tree(path, subtree))
    item = {subtree: target} if subtree is not None else target
    restore_args = ocp.checkpoint_utils.construct_restore_args(item)
    handler = ocp.PyTreeCheckpointHandler()
    try:
        with reading(path):
            restored = handler.restore(path, args=ocp.args.PyTreeRestore(
                item=item, restore_args=restore_args, partial_restore=subtree is not None))
    finally:
        handler.close()
    return restored[subtree] if subtree is not None else restored


@contextlib.contextmanager
def reading(path: epath.Path):
    """Whatever orbax or tensorstore raise while reading a saved tree (a truncated file, a
    missing _METADATA, a decompression error) becomes one line naming what to delete."""
    try:
        yield
    except Exception as e:  # noqa: BLE001 - any failure here means the files are unreadable
        raise damaged(path, e) from None


def damaged(path: str | os.PathLike, error: BaseException):
    """The one-line error for an unreadable saved tree: a step's `state` names its step
    directory (as `train` does), a converted model's `params` says to convert it again."""
    path = paths.as_path(path)
    if path.name == "state":
        return _unreadable(path.parent, error)
    from flan_jax.errors import TrainingError

    rm = "gcloud storage rm -r" if paths.is_url(path) else "rm -r"
    return TrainingError(
        f"the checkpoint {path} is damaged or incomplete ({type(error).__name__} while reading "
        f"it). Delete it ({rm} {path}) and convert or copy the model again.")


def latest_step_dir(directory: str | os.PathLike) -> epath.Path | None:
    steps_root = paths.as_path(directory) / STEPS_DIR
    if not steps_root.is_dir():
        return None
    steps = sorted((int(p.name) for p in steps_root.iterdir() if p.name.isdigit()), reverse=True)
    for step in steps:
        if _finished(steps_root / str(step)):
            return steps_root / str(step)
    return None


def _finished(step_dir: epath.Path) -> bool:
    """Whether orbax finished writing the step. Locally it writes under a temporary name and
    renames; on a bucket (no atomic folder rename) it writes in place and adds a commit file
    last, so a step folder without it is a save cut short."""
    return not paths.is_url(step_dir) or (step_dir / COMMIT_FILE).exists()


def saved_step(directory: str | os.PathLike) -> int | None:
    """The step `load_model_dir` reads: a training run's latest step, None for a converted
    checkpoint (params/)."""
    directory = paths.as_path(directory)
    if (directory / PARAMS_DIR).is_dir():
        return None
    step_dir = latest_step_dir(directory)
    return int(step_dir.name) if step_dir is not None else None


def sharded_model_params(cfg: TransformerConfig, placement) -> Any:
    """ShapeDtypeStructs of `cfg`'s parameters in their shardings on `placement`'s mesh."""
    from flan_jax import partitioning
    from flan_jax.models import abstract_params, build_model

    boxed = abstract_params(build_model(cfg))
    shardings = partitioning.params_shardings(boxed, placement.mesh, placement.rules)
    return sharded_abstract(nn.meta.unbox(boxed), shardings)


def require_model_dir(directory: str | os.PathLike) -> None:
    """Raises FileNotFoundError (one line, what to pass instead) unless `directory` exists and
    holds a model.gin."""
    shown, directory = paths.display(directory), paths.as_path(directory)
    paths.check_reachable(directory)  # a bucket with no network: one line in seconds
    if not directory.exists():
        raise FileNotFoundError(
            f"the model directory {shown} does not exist: pass a `flan-jax train` MODEL_DIR or "
            "a `flan-jax convert hf` --dst.")
    if not (directory / MODEL_GIN).exists():
        raise FileNotFoundError(
            f"{shown} is not a flan-jax model directory (no {MODEL_GIN}). Convert a Hugging "
            "Face checkpoint with `flan-jax convert hf --src ... --dst ...` or train one.")


def load_model_dir(directory: str | os.PathLike, placement=None):
    """(config, params, vocab) of a converted checkpoint or a training run's latest step.

    With a `placement` (`flan_jax.placement.Placement`) every parameter is restored straight
    into its sharding on that mesh; without, the parameters come back as host arrays.
    A prompt-tuning run (only the prompt saved) comes back merged with its base's parameters."""
    from flan_jax.vocab import load_vocab

    shown, directory = paths.display(directory), paths.as_path(directory)
    require_model_dir(directory)
    gin_path = directory / MODEL_GIN
    cfg = read_model_config(gin_path)
    if (directory / PARAMS_DIR).is_dir():
        path, subtree = directory / PARAMS_DIR, None
    else:
        step_dir = latest_step_dir(directory)
        if step_dir is None:
            raise FileNotFoundError(f"{shown} has neither {PARAMS_DIR}/ nor saved steps.")
        path, subtree = step_dir / "state", "params"
    target = sharded_model_params(cfg, placement) if placement is not None else None
    prompt_only = set(_saved_tree(path, subtree)) == {PROMPT_PARAM}
    if prompt_only:
        base = prompt_base_dir(directory)
        if base is None:
            raise FileNotFoundError(
                f"{shown} holds only a soft prompt but no {PROMPT_BASE} naming the model "
                "directory it was tuned on; write that directory's path into it.")
        prompt_target = None if target is None else {PROMPT_PARAM: target[PROMPT_PARAM]}
        prompt = _restore(path, prompt_target, subtree)
        _, base_params, _ = load_model_dir(base, placement)
        params = {**base_params, PROMPT_PARAM: prompt[PROMPT_PARAM]}
    else:
        # model.gin's scan_layers decides the layout; the arrays may have been saved in the other.
        params = _load_tree(path, target, cfg, subtree)
    if placement is None:
        params = jax.tree_util.tree_map(np.asarray, params)
    return cfg, params, load_vocab(directory)


def prompt_base_dir(directory: str | os.PathLike) -> epath.Path | None:
    """The base model directory of a prompt-tuning run (None for other directories)."""
    path = paths.as_path(directory) / PROMPT_BASE
    if not path.exists():
        return None
    base = path.read_text().strip()
    if paths.is_url(base) or os.path.isabs(base):
        return paths.as_path(base)
    return paths.as_path(os.fspath(paths.as_path(directory) / base))


# --- training runs: the step manager and its checks -------------------------------------------

def checkpoint_manager(model_dir: str | os.PathLike, keep: int, every: int,
                       use_async: bool) -> ocp.CheckpointManager:
    """Steps under MODEL_DIR/checkpoints, each with the train state and the data position.

    Steps are saved every `every` steps (and when forced): not, as orbax does by default, also
    the first step of a fresh run, which would take one of the `keep` places."""
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep, should_save_fn=lambda step, _last: step % every == 0,
        enable_async_checkpointing=use_async, create=True)
    return ocp.CheckpointManager(
        paths.as_path(model_dir) / STEPS_DIR, options=options,
        item_handlers={"state": ocp.StandardCheckpointHandler(),
                       "data": ocp.JsonCheckpointHandler()})


def save_args(state, data_state: dict) -> ocp.args.Composite:
    return ocp.args.Composite(state=ocp.args.StandardSave(state),
                              data=ocp.args.JsonSave(data_state))


def tree_shapes(tree) -> dict:
    """{path: shape} of every leaf (arrays, ShapeDtypeStructs or orbax metadata)."""
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {jax.tree_util.keystr(p): tuple(x.shape) for p, x in flat}


def sharded_abstract(abstract, shardings):
    """ShapeDtypeStructs that restore straight into `shardings`."""
    return jax.tree_util.tree_map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), abstract, shardings)


def check_compatible(saved, expected, where: str) -> None:
    """Refuses to resume from a checkpoint of another model, naming one mismatching array."""
    from flan_jax.errors import TrainingError

    saved, expected = tree_shapes(saved), tree_shapes(expected)
    diffs = [f"{k}: saved {saved.get(k)} vs model {v}" for k, v in expected.items()
             if saved.get(k) != v]
    if diffs:
        raise TrainingError(
            f"{where} holds a checkpoint of a different model ({len(diffs)} mismatching "
            f"arrays, e.g. {diffs[0]}). Use another MODEL_DIR or delete that one.")


def params_shapes_match(directory: str | os.PathLike, abstract_params) -> bool:
    """Whether `directory/params` holds arrays of the shapes of `abstract_params` (in either
    layer layout)."""
    saved = _saved_tree(paths.as_path(directory) / PARAMS_DIR)
    if layout.has_layers(saved) and layout.has_layers(abstract_params):
        # the other layer layout converts on load: compare in the saved one
        abstract_params = layout.to_layout(abstract_params, layout.params_layout(saved))
    return tree_shapes(saved) == tree_shapes(abstract_params)


def write_run_files(model_dir: str | os.PathLike, cfg: TransformerConfig, vocab_spec: dict,
                    vocab_file: str | None, prompt_base: str | os.PathLike | None = None,
                    config_name: str = "config.gin") -> None:
    """`config_name` (the resolved run: config.gin at the first start, config.restart_STEP.gin
    at a resume), model.gin, vocab.json (+ its SentencePiece file) and, for prompt tuning,
    prompt_base.txt; each written whole under a temporary name first."""
    from flan_jax.vocab import save_vocab_json

    model_dir = paths.ensure_dir(model_dir)
    if prompt_base is not None:
        paths.write_text_atomic(model_dir / PROMPT_BASE, f"{paths.as_path(prompt_base)}\n")
    paths.write_text_atomic(model_dir / config_name, gin.config_str())
    paths.write_text_atomic(model_dir / MODEL_GIN,
                            model_gin_text(cfg, header="Model of this training run."))
    if vocab_file:
        paths.copy_file(vocab_file, model_dir / paths.as_path(vocab_file).name)
    save_vocab_json(model_dir, vocab_spec)


def restore_step(manager: ocp.CheckpointManager, step: int, abstract_state, abstract_params,
                 where: str):
    """(train state, data state) of a saved step, after checking it holds this model.

    A step that cannot be read (a truncated or missing file) stops with one line naming its
    directory, instead of orbax's stack of errors."""
    step_dir = paths.as_path(manager.directory) / str(step)
    try:
        meta = manager.item_metadata(step)["state"]
    except Exception as e:  # noqa: BLE001 - anything orbax raises means the step is unreadable
        raise _unreadable(step_dir, e) from None
    if meta is None:  # state/_METADATA is missing
        raise _unreadable(step_dir, FileNotFoundError("state/_METADATA"))
    check_compatible(meta["params"], abstract_params, where)
    try:
        restored = manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore()))
    except Exception as e:  # noqa: BLE001
        raise _unreadable(step_dir, e) from None
    if restored.get("data") is None or "position" not in restored["data"]:
        raise _unreadable(step_dir, ValueError("no data position"))
    return restored["state"], restored["data"]


def _unreadable(step_dir: epath.Path, error: BaseException):
    from flan_jax.errors import TrainingError

    rm = "gcloud storage rm -r" if paths.is_url(step_dir) else "rm -r"
    return TrainingError(
        f"the checkpoint {step_dir} is damaged or incomplete ({type(error).__name__} while "
        f"reading it). Delete that step directory ({rm} {step_dir}) to resume from the "
        "previous saved step, or use another MODEL_DIR.")
