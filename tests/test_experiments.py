"""`flan-jax experiment run` on a two-run miniature: table, plot, and resuming."""

import json

import pytest

from tests.fixtures import TINY

MINIATURE = """
include 'experiments/num_templates.gin'
experiment.name = 'mini'
experiment.output_dir = '{out}'
num_templates_runs.counts = [1, 2]
evaluate.max_examples_per_task = 2
TRAIN_STEPS = 3
train.checkpoint_every = 3
""" + "\n".join(TINY[:4])


@pytest.mark.slow  # two trainings and two evaluations end to end (~70 s cold)
def test_two_run_miniature_writes_table_and_plot_then_resumes(tmp_path, monkeypatch):
    from flan_jax import experiments

    gin_file = tmp_path / "mini.gin"
    gin_file.write_text(MINIATURE.format(out=tmp_path / "out"))
    results = experiments.run_experiment(str(gin_file))
    rows = results["rows"]
    assert [r["x"] for r in rows] == [1, 2]
    assert all(r["held_out_clusters"] == ["nli"] for r in rows)
    assert all(0.0 <= r["score"] <= 100.0 for r in rows)
    out = tmp_path / "out"
    assert json.loads((out / "results.json").read_text())["rows"] == rows
    table = (out / "results.md").read_text()
    assert "| 1 templates | instruction tuning | 1 |" in table
    assert (out / "results.png").stat().st_size > 1000
    assert len({r["model_dir"] for r in rows}) == 2

    # A second call trains and evaluates nothing again, and gives the same table.
    import flan_jax.evaluate
    import flan_jax.train

    def refuse(*args, **kwargs):
        raise AssertionError("finished work was redone")

    monkeypatch.setattr(flan_jax.train, "train", refuse)
    monkeypatch.setattr(flan_jax.evaluate, "evaluate", refuse)
    again = experiments.run_experiment(str(gin_file))
    assert again["rows"] == rows


def test_unknown_experiment_is_explained(capsys):
    from flan_jax import experiments

    assert experiments.main(["run", "num_clusterz"]) == 2
    err = capsys.readouterr().err
    assert "num_clusters" in err
    assert experiments.main(["list"]) == 0
    assert "prompt_tuning" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["num_clusters", "num_clusters_miniworld", "num_templates",
                                  "instructions", "fewshot",
                                  "scale", "prompt_tuning"])
def test_every_experiment_file_builds_its_runs(name):
    from flan_jax import config, experiments
    from flan_jax.data import import_tasks_if_read

    # as `flan-jax experiment run` parses it (the run builders name tasks: they are imported
    # before gin is locked, whatever ran before in this process)
    config.parse_gin([f"experiments/{name}.gin"], imports=import_tasks_if_read)
    spec = experiments.experiment()
    assert spec["name"] == name and len(spec["runs"]) >= 1
    from tasks import catalogue

    for run in spec["runs"]:
        for b in run.train:
            if b.startswith("MIXTURE_OR_TASK_NAME"):
                catalogue.get_task_or_mixture(b.split("'")[1])
        for ev in run.evals:
            for b in ev:
                if b.startswith("EVAL_MIXTURES"):
                    for m in b.split("[")[1].rstrip("]").split(","):
                        catalogue.get_task_or_mixture(m.strip().strip("'"))


def test_run_directories_are_keyed_by_the_whole_config():
    from flan_jax.experiments import config_key

    files = ["experiments/num_templates.gin"]
    base = config_key(files, ["MODEL_DIR = ''"], [])
    assert base == config_key(files, ["MODEL_DIR = ''"], [])
    assert base != config_key(files, ["TRAIN_STEPS = 1000", "MODEL_DIR = ''"], [])
