"""Shortcut baselines of the held-out NLI cluster: what a rule that never binds a thing to its
colour scores on the same evaluation examples.

A statement names a thing and a colour ("the key is red"). The rules see only whether those
words occur in the scene:
    majority            the most frequent label
    anything_x_yes_no   "is anything red?": yes if the colour occurs in the scene, else no
    anything_x_yes_maybe  the same, answering maybe instead of no
    best_word_presence  the best labelling of (thing occurs, colour occurs), fitted on the
                        evaluation examples themselves (an upper bound for such rules)
Every thing a statement names occurs in its scene ("there is a key ." for things of unknown
colour), and half the "no" and "maybe" items name a colour another thing has, so these rules
stay near 50 while looking the thing's colour up scores 100.
"""

from __future__ import annotations

import collections
import itertools
from typing import Iterable, Mapping

import gin

from tasks.miniworld import datasets


def _features(record: Mapping[str, str]) -> tuple[bool, bool]:
    scene = set(record["scene"].split())
    _, thing, _, color = record["statement"].split()
    return thing in scene, color in scene


def shortcut_scores(records: Iterable[Mapping[str, str]]) -> dict[str, float]:
    """Accuracy (percent) of each shortcut rule on NLI records (scene, statement, answer)."""
    records = list(records)
    if not records:
        raise ValueError("shortcut_scores: no records given.")
    answers = [r["answer"] for r in records]
    feats = [_features(r) for r in records]

    def accuracy(predictions) -> float:
        return 100.0 * sum(p == a for p, a in zip(predictions, answers)) / len(answers)

    majority = collections.Counter(answers).most_common(1)[0][0]
    by_feature: dict[tuple[bool, bool], collections.Counter] = collections.defaultdict(
        collections.Counter)
    for f, a in zip(feats, answers):
        by_feature[f][a] += 1
    best = {f: c.most_common(1)[0][0] for f, c in by_feature.items()}
    return {
        "majority": accuracy([majority] * len(answers)),
        "anything_x_yes_no": accuracy(["yes" if c else "no" for _, c in feats]),
        "anything_x_yes_maybe": accuracy(["yes" if c else "maybe" for _, c in feats]),
        "best_word_presence": accuracy([best[f] for f in feats]),
    }


@gin.configurable(module="miniworld")
def nli_shortcut_baselines(num_examples: int, seed: int = 0) -> dict[str, float]:
    """The shortcut scores on the first `num_examples` NLI validation records (the ones that
    evaluation with `max_examples_per_task = num_examples` reads)."""
    generate = datasets.generator(datasets.HELD_OUT)
    n = min(num_examples, datasets.NUM_VALIDATION)
    return shortcut_scores(itertools.islice(generate("validation", seed), n))
