"""The miniworld collection: held-out words and skills, the corpus, labels, the vocabulary."""

import collections
import itertools
import re

import pytest

from tasks.miniworld import baselines, datasets, vocabulary, world

TRAINING = [c for c in datasets.TEMPLATES if c != datasets.HELD_OUT]


def _words(text: str) -> set[str]:
    return {w for w in text.split() if not w.startswith("{")}


def _template_words(clusters) -> set[str]:
    return {w for c in clusters for t in datasets.TEMPLATES[c] for w in _words(t.inputs)}


def _records(name: str, split: str = "train", n: int = 300) -> list[dict]:
    return list(itertools.islice(datasets.generator(name)(split, 0), n))


_SENTENCE = r"(?:the \w+ is \w+|there is a \w+) \."
FIELD_PATTERNS = {"scene": f"{_SENTENCE}(?: {_SENTENCE})*", "statement": r"the \w+ is \w+"}


def _pattern(template: str) -> re.Pattern:
    """A template's input as a regex: its literal text, and for each field what that field
    can hold (a scene: its sentences; a statement: "the X is Y"; others: one word)."""
    pieces = re.split(r"\{([a-z_]+)\}", template)
    regex = "".join(re.escape(p) if i % 2 == 0 else f"(?:{FIELD_PATTERNS.get(p, r'[a-z]+')})"
                    for i, p in enumerate(pieces))
    return re.compile(regex + r"\Z")


def test_held_out_template_words_are_training_or_world_words():
    held = _template_words([datasets.HELD_OUT])
    known = _template_words(TRAINING) | world.WORLD_WORDS
    assert held <= known, held - known
    # and the held-out templates are not the world's words alone: they carry instructions
    assert held - world.WORLD_WORDS


def test_no_held_out_template_matches_a_training_input():
    patterns = [_pattern(t.inputs) for t in datasets.TEMPLATES[datasets.HELD_OUT]]
    for cluster in TRAINING:
        spec = datasets.spec(cluster)
        for i, record in enumerate(_records(cluster, n=60)):
            text = spec.templates[i % len(spec.templates)].inputs.format(**record)
            assert not any(p.match(text) for p in patterns), (cluster, text)
    # the patterns do match the held-out cluster's own inputs (the check above can fail)
    record = _records(datasets.HELD_OUT, n=1)[0]
    assert patterns[0].match(datasets.TEMPLATES[datasets.HELD_OUT][0].inputs.format(**record))


def test_no_training_cluster_has_the_held_out_skill():
    held = datasets.SKILLS[datasets.HELD_OUT]
    assert held not in {datasets.SKILLS[c] for c in TRAINING}
    # In the data: the training datasets that answer yes/no/maybe compare two things, and those
    # that check a thing's colour against a colour answer yes/no only.
    for c in TRAINING:
        spec = datasets.spec(c)
        checks_a_colour = {"thing", "color"} <= set(spec.source.output_fields)
        three_way = tuple(spec.options or ()) == datasets.NLI_OPTIONS
        assert not (checks_a_colour and three_way), c


def test_held_out_cluster_is_in_no_training_mixture():
    import tasks  # noqa: F401
    from tasks import catalogue, names

    for mixture in [names.heldout_mixture("miniworld", "nli"),
                    names.heldout_ablation_mixture("miniworld", "nli", "notemplate")] + [
            names.clusters_mixture("miniworld", n) for n in range(1, 6)]:
        assert "nli" not in catalogue.mixture_clusters(mixture), mixture
    assert set(catalogue.mixture_clusters(names.heldout_mixture("miniworld", "nli"))) == set(
        TRAINING)


def test_corpus_has_world_words_only_and_no_task_words_or_answers():
    task_words = _template_words(datasets.TEMPLATES) - world.WORLD_WORDS
    answers = set(datasets.NLI_OPTIONS + datasets.COUNTS)
    seen = set()
    for doc in itertools.islice(world.corpus("train", 0), 2000):
        seen |= set(doc["text"].split())
    assert seen <= world.WORLD_WORDS
    assert not seen & (task_words | answers)
    assert {"question", "story", "true", "yes", "maybe", "color"} <= task_words | answers
    # every fact of a document's scene is stated at least twice (listing + restatement)
    rng = world.rng_for("test", "train", 0)
    scene = world.make_scene(rng)
    doc = world.corpus_document(scene, rng)
    for thing, color in scene.colored:
        assert doc.count(thing) >= 2 and f"{color} {thing}" in doc


@pytest.mark.parametrize("split,n", [("train", 600), ("validation", datasets.NUM_VALIDATION)])
def test_nli_labels_and_distractors_are_balanced(split, n):
    records = _records(datasets.HELD_OUT, split, n)
    counts = collections.Counter(r["answer"] for r in records)
    assert counts == {"yes": n // 3, "no": n // 3, "maybe": n // 3}
    for label in ("no", "maybe"):
        items = [r for r in records if r["answer"] == label]
        with_distractor = [r for r in items
                           if r["statement"].split()[-1] in r["scene"].split()]
        assert len(with_distractor) == len(items) // 2, label


def _lookup(record: dict) -> str:
    """The skill: the thing's stated colour compared with the statement's."""
    _, thing, _, color = record["statement"].split()
    stated = dict(re.findall(r"the (\w+) is (\w+) \.", record["scene"]))
    if thing not in stated:
        return "maybe"
    return "yes" if stated[thing] == color else "no"


def test_shortcut_baselines_stay_near_half_while_the_lookup_is_exact():
    records = _records(datasets.HELD_OUT, "validation", datasets.NUM_VALIDATION)
    assert all(_lookup(r) == r["answer"] for r in records)
    scores = baselines.nli_shortcut_baselines(datasets.NUM_VALIDATION)
    assert scores["majority"] == pytest.approx(100 / 3)
    assert scores["anything_x_yes_no"] == pytest.approx(50.0)
    assert scores["anything_x_yes_maybe"] == pytest.approx(50.0)
    assert scores["best_word_presence"] == pytest.approx(50.0)
    # the rules are not constant: on "yes" items alone "is anything red?" is always right
    yes = [r for r in records if r["answer"] == "yes"]
    assert baselines.shortcut_scores(yes)["anything_x_yes_no"] == 100.0


def test_shipped_vocabulary_is_the_word_list_and_covers_every_text():
    import sentencepiece as spm

    proto = open(vocabulary.MODEL_FILE, "rb").read()
    words = vocabulary.word_list()
    assert sorted(vocabulary.pieces(proto)[3:]) == sorted("\u2581" + w for w in words)
    assert vocabulary.pieces(proto)[:3] == ["<pad>", "</s>", "<unk>"]
    assert len(words) + 3 + vocabulary.EXTRA_IDS <= vocabulary.VOCAB_SIZE
    sp = spm.SentencePieceProcessor(model_proto=proto)
    texts = [doc["text"] for doc in itertools.islice(world.corpus("train", 0), 50)]
    for cluster, templates in datasets.TEMPLATES.items():
        for t, r in zip(templates, _records(cluster, n=len(templates))):
            texts.append(t.inputs.format(**r) + "\n\nOPTIONS:\n- yes\n- no")
    for text in texts:
        ids = sp.encode(text)
        assert sp.unk_id() not in ids, text
        assert sp.decode(ids) == " ".join(text.split())
