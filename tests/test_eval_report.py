"""flan_jax.eval_report: scores per dataset and cluster from per-task results, the Markdown
table, and the files a report run writes (the replaced report kept under previous/)."""

import json
import os

import pytest

from flan_jax import eval_report
from flan_jax.errors import UserError


def _result(dataset, cluster, method, score, chance=None):
    return {"dataset": dataset, "cluster": cluster, "method": method, "score": score,
            "chance": chance}


RESULTS = {
    "rte_t0_rank": _result("rte", "nli", "rank", 60.0, chance=50.0),
    "rte_t1_rank": _result("rte", "nli", "rank", 70.0, chance=50.0),
    "rte_t0_gen": _result("rte", "nli", "generation", 10.0),
    "squad_t0": _result("squad", "rc", "generation", 40.0),
}


def test_aggregate_prefers_rank_tasks_and_averages_templates_then_datasets():
    datasets, clusters = eval_report.aggregate(RESULTS, held_out={"nli"})
    assert datasets["rte"] == {"cluster": "nli", "method": "rank", "score": 65.0,
                               "best_template": 70.0, "num_templates": 2,
                               "generation_score": 10.0, "chance": 50.0}
    assert datasets["squad"]["score"] == 40.0 and "chance" not in datasets["squad"]
    assert list(clusters) == ["nli", "rc"]
    assert clusters["nli"] == {"datasets": ["rte"], "score": 65.0, "held_out": True,
                               "chance": 50.0}
    assert clusters["rc"] == {"datasets": ["squad"], "score": 40.0, "held_out": False}
    assert eval_report.primary({"accuracy": 3.0, "f1": 1.0}) == 3.0


def test_markdown_table_marks_held_out_clusters_and_sums_them_up():
    datasets, clusters = eval_report.aggregate(RESULTS, held_out={"nli"})
    assert eval_report.markdown_report(datasets, clusters, "run step 5") == (
        "### run step 5\n\n"
        "| cluster | held out | score | datasets (mean / best template) |\n"
        "|---|---|---|---|\n"
        "| nli | yes | 65.0 | rte 65.0/70.0 |\n"
        "| rc |  | 40.0 | squad 40.0/40.0 |\n\n"
        "Held-out clusters: 65.0; training clusters: 40.0.\n")


def test_write_keeps_the_report_it_replaces(tmp_path):
    datasets, clusters = eval_report.aggregate(RESULTS, held_out=set())
    report = {"step": 3, "clusters": clusters, "datasets": datasets}
    eval_report.write(tmp_path, report, "table 1\n", "run")
    assert json.loads((tmp_path / "report.json").read_text()) == report
    assert (tmp_path / "clusters.png").read_bytes()[:4] == b"\x89PNG"
    assert list((tmp_path / "tensorboard").iterdir())
    eval_report.write(tmp_path, {**report, "step": 4}, "table 2\n", "run")
    assert (tmp_path / "report.md").read_text() == "table 2\n"
    (previous,) = (tmp_path / "previous").iterdir()
    assert (previous / "report.md").read_text() == "table 1\n"
    assert json.loads((previous / "report.json").read_text())["step"] == 3


def test_an_unwritable_report_folder_is_refused(tmp_path):
    eval_report.check_writable(tmp_path / "new" / "eval")  # created later: fine
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match="is not a directory"):
        eval_report.check_writable(tmp_path / "file" / "eval")
    if os.geteuid() != 0:  # root writes anywhere
        (tmp_path / "ro").mkdir(mode=0o555)
        with pytest.raises(UserError, match="read-only"):
            eval_report.check_writable(tmp_path / "ro" / "eval")
