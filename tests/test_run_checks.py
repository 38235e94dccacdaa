"""The checks a training run makes before writing: settings changed on resume, truncation."""

import pytest

from flan_jax import run_checks

BEFORE = """
BATCH_SIZE = 8
TRAIN_STEPS = 10
DataConfig.batch_size = %BATCH_SIZE
DataConfig.task_feature_lengths = {'inputs': 64, 'targets': 16}
TransformerConfig.mlp_dim = 128
build_optimizer.name = 'adamw'
learning_rate_schedule.total_steps = %TRAIN_STEPS
train.log_every = 10
"""


def test_config_changes_split_guarded_from_other_settings():
    after = (BEFORE.replace("BATCH_SIZE = 8", "BATCH_SIZE = 16")
             .replace("TRAIN_STEPS = 10", "TRAIN_STEPS = 20")
             .replace("'adamw'", "'adafactor'").replace("log_every = 10", "log_every = 5"))
    guarded, other = run_checks.config_changes(run_checks.parse_bindings(BEFORE),
                                               run_checks.parse_bindings(after))
    assert guarded == ["BATCH_SIZE: 8 -> 16", "build_optimizer.name: 'adamw' -> 'adafactor'"]
    assert other == ["TRAIN_STEPS: 10 -> 20", "train.log_every: 10 -> 5"]
    reordered = BEFORE.replace("{'inputs': 64, 'targets': 16}", "{'targets': 16, 'inputs': 64}")
    same = run_checks.config_changes(run_checks.parse_bindings(BEFORE),
                                     run_checks.parse_bindings(reordered))
    assert same == ([], [])


def test_the_latest_start_config_is_compared(tmp_path):
    assert run_checks.latest_config(tmp_path) is None
    (tmp_path / "config.gin").write_text("")
    assert run_checks.latest_config(tmp_path).name == "config.gin"
    for step in (5, 40, 100):
        (tmp_path / run_checks.config_file_for(step)).write_text("")
    assert run_checks.latest_config(tmp_path).name == "config.restart_100.gin"


def test_truncation_is_logged_per_task(capsys):
    import tasks  # noqa: F401
    from flan_jax.data import DataConfig, open_source
    from flan_jax.progress import setup_logging

    def logged():
        return [line.split(" INFO ", 1)[1] for line in capsys.readouterr().err.splitlines()
                if " INFO " in line]

    setup_logging()
    capsys.readouterr()
    cfg = DataConfig("synthetic_owner_qa_train", {"inputs": 64, "targets": 16}, batch_size=8)
    run_checks.check_truncation(open_source(cfg), per_task=4)
    assert logged() == ["synthetic_owner_qa_train: TASK_FEATURE_LENGTHS truncates inputs in 4, "
                        "targets in 2 of 4 sampled examples."]
    cfg.task_feature_lengths = {"inputs": 256, "targets": 64}
    run_checks.check_truncation(open_source(cfg), per_task=4)
    assert logged() == ["TASK_FEATURE_LENGTHS truncates none of 4 sampled examples of 1 tasks."]
    cfg.task_feature_lengths = {"inputs": 256, "targets": 2}
    with pytest.raises(run_checks.UserError, match="truncates every sampled target"):
        run_checks.check_truncation(open_source(cfg), per_task=4)
