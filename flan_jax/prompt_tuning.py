"""Prompt tuning (Lester et al., 2021) in the trainer: checks, the frozen base, the prompt split.

Only the "prompt" parameter is optimised and checkpointed; the base model's parameters are
loaded from `train.prompt_tuning_base` and stay frozen."""

from __future__ import annotations

import jax
from etils import epath

from flan_jax import checkpoints, paths
from flan_jax.errors import TrainingError
from flan_jax.models import TransformerConfig


def check_prompt_tuning(cfg: TransformerConfig, data, base: str | None,
                        init_checkpoint: str | None) -> epath.Path:
    """The base model directory, after checking the run can tune a prompt on it."""
    if not base:
        raise TrainingError(
            f"TransformerConfig.prompt_length={cfg.prompt_length} tunes a soft prompt on a frozen "
            "model: set train.prompt_tuning_base (runs/prompt_tune.gin: BASE_CHECKPOINT) to a "
            "converted or trained model directory.")
    if init_checkpoint:
        raise TrainingError("Prompt tuning loads its model from train.prompt_tuning_base; "
                            "leave INIT_CHECKPOINT unset.")
    if data.pack:
        raise TrainingError("Prompt tuning prepends one prompt to each row, so packed rows "
                            "cannot be used: set DataConfig.pack = False.")
    base_dir = paths.as_path(base)
    if not (base_dir / checkpoints.MODEL_GIN).exists():
        raise TrainingError(f"train.prompt_tuning_base={base!r} is not a model directory "
                            f"(no {checkpoints.MODEL_GIN}).")
    if checkpoints.prompt_base_dir(base_dir) is not None:
        raise TrainingError(f"train.prompt_tuning_base={base!r} is itself a prompt-tuning run; "
                            "name the model directory it was tuned on instead.")
    return base_dir


def load_frozen_params(base_dir: epath.Path, abstract, shardings):
    """The base model's parameters (without a prompt), placed with the run's shardings."""
    mismatch = TrainingError(f"{base_dir} has other parameter shapes than the configured model; "
                             "use the base's model.gin (plus the prompt settings).")
    if (base_dir / checkpoints.PARAMS_DIR).is_dir():
        if not checkpoints.params_shapes_match(base_dir, abstract):
            raise mismatch
        return checkpoints.load_params(base_dir, target=checkpoints.sharded_abstract(
            abstract, shardings))
    step_dir = checkpoints.latest_step_dir(base_dir)
    if step_dir is None:
        raise TrainingError(f"{base_dir} has neither {checkpoints.PARAMS_DIR}/ nor saved steps.")
    params = checkpoints.restore_params_from_step(step_dir)
    if checkpoints.tree_shapes(params) != checkpoints.tree_shapes(abstract):
        raise mismatch
    return jax.tree_util.tree_map(lambda x, a, s: jax.device_put(x.astype(a.dtype), s),
                                  params, abstract, shardings)


def split_prompt(tree) -> tuple[dict, dict]:
    """({"prompt": ...}, everything else) of a params-shaped tree."""
    key = checkpoints.PROMPT_PARAM
    return {key: tree[key]}, {k: v for k, v in tree.items() if k != key}
