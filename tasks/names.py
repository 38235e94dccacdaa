"""The naming scheme of every registered task and mixture, in one place.

Registration (`tasks.registry`) and every caller that spells a name (experiments, CLIs, gin
files through them) build names with these functions, so the scheme can change here alone.
Pure string functions: this module imports nothing beyond the standard library.

Tasks of collection `c`, dataset `ds` (i: template index, k: shots, n: template count):
    train_task                {c}_{ds}_train
    train_ntemplates_task     {c}_{ds}_train_{n}templates
    ablation_train_task       {c}_{ds}_{notemplate|dsname}_train
    ablation_eval_task        {c}_{ds}_{notemplate|dsname}_eval
    eval_task                 {c}_{ds}_t{i}_eval
    rank_task                 {c}_{ds}_t{i}_rank
    rank_no_options_task      {c}_{ds}_t{i}_rank_nooptions  (no OPTIONS in the prompt)
    fewshot_eval_task         {c}_{ds}_t{i}_{k}shot_eval
    fewshot_rank_task         {c}_{ds}_t{i}_{k}shot_rank
    fewshot_train_task        {c}_{ds}_{k}shot_train  (train split, templates mixed as train_task)
Mixtures (cl: cluster):
    all_train_mixture         {c}_all_train
    all_fewshot_train_mixture {c}_all_fewshot_train  (zero-shot and k-shot train tasks)
    release_train_mixture     {c}_all_release[_fewshot]_train  (plus the release extras)
    heldout_mixture           {c}_heldout_{cl}_train
    heldout_fewshot_mixture   {c}_heldout_{cl}_fewshot_train
    release_heldout_mixture   {c}_heldout_{cl}_release[_fewshot]_train
    heldout_ntemplates_mixture  {c}_heldout_{cl}_{n}templates_train
    heldout_ablation_mixture  {c}_heldout_{cl}_{notemplate|dsname}_train
    clusters_mixture          {c}_clusters{n}_train
    cluster_eval_mixture      {c}_{cl}_eval
    cluster_rank_mixture      {c}_{cl}_rank
    cluster_rank_no_options_mixture  {c}_{cl}_rank_nooptions
    fewshot_eval_mixture      {c}_{cl}_{k}shot_eval  (k = 0 is the zero-shot cluster_eval_mixture)
    ablation_eval_mixture     {c}_{cl}_{notemplate|dsname}_eval

Training mixtures without `release` in their name hold the paper's datasets only; the `release`
ones add a collection's release extras (`DatasetSpec.release_extra`: FLAN 2021's True Case and
Word Segment) and exist only for collections that have some.
"""

from __future__ import annotations

# The ablations that replace instructions: raw fields only, or the dataset's name then the fields.
ABLATIONS = ("notemplate", "dsname")


def _check_ablation(ablation: str) -> None:
    if ablation not in ABLATIONS:
        raise ValueError(f"unknown ablation `{ablation}` (known: {', '.join(ABLATIONS)}).")


def collection_prefix(collection: str) -> str:
    """What every task and mixture name of `collection` starts with."""
    return f"{collection}_"


# ---- tasks ------------------------------------------------------------------------------------


def train_task(collection: str, dataset: str) -> str:
    return f"{collection}_{dataset}_train"


def train_ntemplates_task(collection: str, dataset: str, num_templates: int) -> str:
    return f"{collection}_{dataset}_train_{num_templates}templates"


def ablation_train_task(collection: str, dataset: str, ablation: str) -> str:
    _check_ablation(ablation)
    return f"{collection}_{dataset}_{ablation}_train"


def ablation_eval_task(collection: str, dataset: str, ablation: str) -> str:
    _check_ablation(ablation)
    return f"{collection}_{dataset}_{ablation}_eval"


def eval_task(collection: str, dataset: str, template: int) -> str:
    return f"{collection}_{dataset}_t{template}_eval"


def rank_task(collection: str, dataset: str, template: int) -> str:
    return f"{collection}_{dataset}_t{template}_rank"


def rank_no_options_task(collection: str, dataset: str, template: int) -> str:
    """Rank classification with the template alone: the options are scored, not listed."""
    return f"{collection}_{dataset}_t{template}_rank_nooptions"


def fewshot_eval_task(collection: str, dataset: str, template: int, shots: int) -> str:
    return f"{collection}_{dataset}_t{template}_{shots}shot_eval"


def fewshot_rank_task(collection: str, dataset: str, template: int, shots: int) -> str:
    return f"{collection}_{dataset}_t{template}_{shots}shot_rank"


def fewshot_train_task(collection: str, dataset: str, shots: int) -> str:
    """Training examples of the train split, each after `shots` other train examples."""
    return f"{collection}_{dataset}_{shots}shot_train"


# ---- mixtures ---------------------------------------------------------------------------------


def _training_style(fewshot: bool, release: bool) -> str:
    return ("_release" if release else "") + ("_fewshot" if fewshot else "")


def all_train_mixture(collection: str) -> str:
    return f"{collection}_all_train"


def all_fewshot_train_mixture(collection: str) -> str:
    """Every trainable dataset, zero-shot and few-shot formatted."""
    return f"{collection}_all_fewshot_train"


def release_train_mixture(collection: str, fewshot: bool = False) -> str:
    """`all_train_mixture` (or its few-shot form) plus the release extras."""
    return f"{collection}_all{_training_style(fewshot, True)}_train"


def heldout_mixture(collection: str, cluster: str) -> str:
    """Training mixture of every cluster but `cluster` (and those its exclusions drop)."""
    return f"{collection}_heldout_{cluster}_train"


def heldout_fewshot_mixture(collection: str, cluster: str) -> str:
    """`heldout_mixture` with few-shot formatted training examples mixed in."""
    return f"{collection}_heldout_{cluster}_fewshot_train"


def release_heldout_mixture(collection: str, cluster: str, fewshot: bool = False) -> str:
    """`heldout_mixture` (or its few-shot form) plus the release extras of training clusters."""
    return f"{collection}_heldout_{cluster}{_training_style(fewshot, True)}_train"


def heldout_ntemplates_mixture(collection: str, cluster: str, num_templates: int) -> str:
    return f"{collection}_heldout_{cluster}_{num_templates}templates_train"


def heldout_ablation_mixture(collection: str, cluster: str, ablation: str) -> str:
    _check_ablation(ablation)
    return f"{collection}_heldout_{cluster}_{ablation}_train"


def clusters_mixture(collection: str, num_clusters: int) -> str:
    """Training mixture of the first `num_clusters` clusters of the collection's order."""
    return f"{collection}_clusters{num_clusters}_train"


def cluster_eval_mixture(collection: str, cluster: str) -> str:
    """Zero-shot evaluation of a cluster: generation and rank-classification tasks."""
    return f"{collection}_{cluster}_eval"


def cluster_rank_mixture(collection: str, cluster: str) -> str:
    return f"{collection}_{cluster}_rank"


def cluster_rank_no_options_mixture(collection: str, cluster: str) -> str:
    return f"{collection}_{cluster}_rank_nooptions"


def fewshot_eval_mixture(collection: str, cluster: str, shots: int) -> str:
    """`shots`-shot evaluation of a cluster; 0 shots is `cluster_eval_mixture`."""
    if shots == 0:
        return cluster_eval_mixture(collection, cluster)
    return f"{collection}_{cluster}_{shots}shot_eval"


def ablation_eval_mixture(collection: str, cluster: str, ablation: str) -> str:
    _check_ablation(ablation)
    return f"{collection}_{cluster}_{ablation}_eval"
