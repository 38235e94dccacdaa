"""tasks.names: the naming scheme, spelled once."""

import subprocess
import sys

import pytest

from tasks import names


def test_task_names():
    assert names.train_task("c", "rte") == "c_rte_train"
    assert names.train_ntemplates_task("c", "rte", 4) == "c_rte_train_4templates"
    assert names.eval_task("c", "rte", 3) == "c_rte_t3_eval"
    assert names.rank_task("c", "rte", 3) == "c_rte_t3_rank"
    assert names.fewshot_eval_task("c", "rte", 0, 5) == "c_rte_t0_5shot_eval"
    assert names.fewshot_rank_task("c", "rte", 0, 5) == "c_rte_t0_5shot_rank"
    assert names.rank_no_options_task("c", "rte", 2) == "c_rte_t2_rank_nooptions"
    assert names.ablation_train_task("c", "rte", "dsname") == "c_rte_dsname_train"
    assert names.ablation_eval_task("c", "rte", "notemplate") == "c_rte_notemplate_eval"
    assert names.fewshot_train_task("c", "rte", 3) == "c_rte_3shot_train"


def test_mixture_names():
    assert names.all_train_mixture("flan2021") == "flan2021_all_train"
    assert names.heldout_mixture("flan2021", "nli") == "flan2021_heldout_nli_train"
    assert names.all_fewshot_train_mixture("c") == "c_all_fewshot_train"
    assert names.heldout_fewshot_mixture("c", "nli") == "c_heldout_nli_fewshot_train"
    assert names.release_train_mixture("c") == "c_all_release_train"
    assert names.release_train_mixture("c", fewshot=True) == "c_all_release_fewshot_train"
    assert names.release_heldout_mixture("c", "nli") == "c_heldout_nli_release_train"
    assert names.release_heldout_mixture("c", "nli", fewshot=True) == (
        "c_heldout_nli_release_fewshot_train")
    assert names.heldout_ntemplates_mixture("c", "nli", 7) == "c_heldout_nli_7templates_train"
    assert names.heldout_ablation_mixture("c", "nli", "dsname") == "c_heldout_nli_dsname_train"
    assert names.clusters_mixture("c", 3) == "c_clusters3_train"
    assert names.cluster_eval_mixture("c", "nli") == "c_nli_eval"
    assert names.cluster_rank_mixture("c", "nli") == "c_nli_rank"
    assert names.cluster_rank_no_options_mixture("c", "nli") == "c_nli_rank_nooptions"
    assert names.fewshot_eval_mixture("c", "nli", 3) == "c_nli_3shot_eval"
    assert names.fewshot_eval_mixture("c", "nli", 0) == names.cluster_eval_mixture("c", "nli")
    assert names.ablation_eval_mixture("c", "nli", "notemplate") == "c_nli_notemplate_eval"


def test_unknown_ablation_is_refused():
    with pytest.raises(ValueError, match="notemplate, dsname"):
        names.heldout_ablation_mixture("c", "nli", "nothing")


def test_names_module_imports_nothing_heavy():
    code = ("import importlib.util, sys; spec = importlib.util.spec_from_file_location("
            "'n', 'tasks/names.py'); m = importlib.util.module_from_spec(spec); "
            "spec.loader.exec_module(m); "
            "print(sorted(k for k in ('tensorflow', 'seqio', 't5', 'jax') if k in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=__file__.rsplit("/tests/", 1)[0])
    assert out.stdout.strip() == "[]"
