"""Flan 2022 template styles: how one record becomes a prompt in each style of the release.

    zs_opt    zero-shot; a classification record lists its answer options, in a list style
              drawn per example (a header, an item marker family, an item ending), and when
              the markers enumerate (A., (2), iv.) the target becomes the answer's marker
    zs_noopt  zero-shot, no options listed, the target is the answer text
    fs_opt    few-shot with options: exemplars (then the example) all in the example's
              template and list style, letter targets included
    fs_noopt  few-shot without options
    cot       zero-shot Chain-of-Thought: the CoT datasets' templates put the reasoning before
              the answer in every target
    fs_cot    few-shot Chain-of-Thought: exemplars carry their reasoning too

A record is first "prerendered" (`prerender`): every template's inputs and targets (the answer
left as a placeholder so a letter can replace it), its options and answer. `compose` then makes
the prompt for one template and list style. Few-shot prompts (`with_exemplars`) take exemplars
from the same dataset's train split in a seeded shuffled order, skip any with the example's own
content, render them with the example's template and list style, and keep the first m that fit
`fewshot_token_budget()` tokens with the example (at most `MAX_EXEMPLARS`); an example no
exemplar fits with is dropped, as in the release. All of it is TensorFlow ops in tf.data graphs.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

import gin
import seqio
import tensorflow as tf

from tasks import preprocessors
from tasks import templates as tpl
from tasks.preprocessors import OPTIONS_KEY
from tasks.spec import DatasetSpec


@dataclasses.dataclass(frozen=True)
class Style:
    name: str
    few_shot: bool
    options: bool  # list a classification record's options (and use letter targets)


STYLES: Mapping[str, Style] = {s.name: s for s in (
    Style("zs_opt", False, True), Style("zs_noopt", False, False),
    Style("fs_opt", True, True), Style("fs_noopt", True, False),
    Style("cot", False, True), Style("fs_cot", True, True),
)}
MAX_EXEMPLARS = 5  # the release's five-shot form; fewer when the budget is reached
EXEMPLAR_SHUFFLE_BUFFER = 10_000
ANSWER_PLACEHOLDER = "\x1eANSWER\x1e"  # never in real text; replaced by the shown answer


@gin.configurable(module="flan2022")
def fewshot_token_budget(max_input_tokens: int = 1920) -> int:
    """Few-shot inputs (exemplars plus the example, EOS included) stay within this many tokens
    (the release's 1,920, in a 2,048-token input)."""
    return int(max_input_tokens)


# ---- answer-option list styles ----------------------------------------------------------

OPTION_HEADERS = (
    "", "OPTIONS:", "Options:", "Choices:", "Answer choices:", "Possible answers:",
    "Pick one:", "Choose one:", "Select one of the following:", "Candidates:",
    "Your options are:", "Answers to choose from:",
)
OPTION_ITEM_ENDINGS = ("", ";", ".")
_MAX_ENUMERATED = 26
_ROMAN = ("i", "ii", "iii", "iv", "v", "vi", "vii", "viii", "ix", "x", "xi", "xii", "xiii",
          "xiv", "xv", "xvi", "xvii", "xviii", "xix", "xx", "xxi", "xxii", "xxiii", "xxiv",
          "xxv", "xxvi")
_LABELS = (
    tuple(chr(ord("A") + i) for i in range(_MAX_ENUMERATED)),
    tuple(chr(ord("a") + i) for i in range(_MAX_ENUMERATED)),
    tuple(str(i + 1) for i in range(_MAX_ENUMERATED)),
    _ROMAN,
    tuple(r.upper() for r in _ROMAN),
)
_BULLETS = ("\n- ", "\n* ", "\n+ ", "\n-- ", "\n> ", " - ", " * ", " + ", " | ")
_ENUMERATIONS = ("\n{}. ", "\n({}) ", "\n{}) ", "\n[{}] ", " ({}) ", " {}. ")
# One row of 26 markers per family: bullets repeat, enumerations count.
MARKER_FAMILIES: tuple[tuple[str, ...], ...] = tuple(
    [(b,) * _MAX_ENUMERATED for b in _BULLETS]
    + [tuple(fmt.format(x) for x in labels) for fmt in _ENUMERATIONS for labels in _LABELS])
ENUMERATED = tuple(len(set(f)) > 1 for f in MARKER_FAMILIES)


@dataclasses.dataclass(frozen=True)
class Variety:
    """One list style, as indices into the tables above (scalar int tensors)."""

    header: tf.Tensor
    family: tf.Tensor
    ending: tf.Tensor


def choose(key: tf.Tensor, n: int, seed: int, salt: int) -> tf.Tensor:
    """A seeded choice in [0, n) keyed by an example's content (the same in every run)."""
    return tf.cast(tf.strings.to_hash_bucket_strong(key, n, [seed, salt]), tf.int32)


def choose_variety(key: tf.Tensor, seed: int) -> Variety:
    return Variety(choose(key, len(OPTION_HEADERS), seed, 11),
                   choose(key, len(MARKER_FAMILIES), seed, 13),
                   choose(key, len(OPTION_ITEM_ENDINGS), seed, 17))


def format_options(options: tf.Tensor, num: tf.Tensor, answer: tf.Tensor,
                   v: Variety) -> tuple[tf.Tensor, tf.Tensor]:
    """(the options block, the answer as shown): the answer's marker when the family
    enumerates (stripped, e.g. "(B)"), else the answer text. Over 26 options fall back to
    dashes."""
    options = options[:num]
    counting = tf.gather(tf.constant(ENUMERATED), v.family)
    enumerated = tf.logical_and(counting, num <= _MAX_ENUMERATED)
    family = tf.gather(tf.constant([list(f) for f in MARKER_FAMILIES]), v.family)
    markers = tf.cond(enumerated, lambda: family[:num],
                      lambda: tf.fill([num], tf.where(counting, "\n- ", family[0])))
    ending = tf.gather(tf.constant(OPTION_ITEM_ENDINGS), v.ending)
    items = tf.strings.reduce_join(tf.strings.join([markers, options, ending]))
    block = tf.strings.regex_replace(
        tf.strings.join([tf.gather(tf.constant(OPTION_HEADERS), v.header), items]), r"^\s+", "")
    hits = tf.cast(tf.where(tf.equal(tf.strings.strip(options), tf.strings.strip(answer))),
                   tf.int32)
    found = tf.size(hits) > 0
    index = tf.cond(found, lambda: hits[0, 0], lambda: tf.constant(0))
    letter = tf.strings.strip(tf.gather(tf.concat([markers, [""]], 0), index))
    return block, tf.where(tf.logical_and(enumerated, found), letter, answer)


# ---- prerendering and composing ---------------------------------------------------------


def has_options(spec: DatasetSpec) -> tuple[bool, ...]:
    """Per template: does it take an options block (classification, not turned around)."""
    return tuple(spec.is_classification and not t.turned_around for t in spec.templates)


def prerender(spec: DatasetSpec, fields) -> dict[str, tf.Tensor]:
    """Every template rendered (answers in option-taking targets left as a placeholder), and
    what composing needs: options, their count, the answer, a content key."""
    bodies, targets = [], []
    for t, opts in zip(spec.templates, has_options(spec)):
        bodies.append(tpl.render(t.inputs, fields))
        target_fields = fields
        if opts:
            target_fields = dict(fields, **{spec.answer_field: tf.constant(ANSWER_PLACEHOLDER)})
        targets.append(tpl.render(t.targets, target_fields))
    if spec.is_classification:
        options = tf.reshape(fields[OPTIONS_KEY], [-1])
        answer = tpl.as_string(fields[spec.answer_field])
    else:
        options, answer = tf.zeros([0], tf.string), tf.constant("")
    return {"bodies": tf.stack(bodies), "targets": tf.stack(targets), "options": options,
            "num_options": tf.size(options), "answer": answer,
            "key": preprocessors.example_key(fields)}


def compose(spec: DatasetSpec, rec, template: tf.Tensor, v: Variety,
            style: Style) -> tuple[tf.Tensor, tf.Tensor]:
    """(inputs, targets) of a prerendered record in one template and list style."""
    body, target, answer = rec["bodies"][template], rec["targets"][template], rec["answer"]
    if style.options and any(has_options(spec)):
        block, shown = format_options(rec["options"], rec["num_options"], answer, v)
        listed = tf.logical_and(tf.gather(tf.constant(has_options(spec)), template),
                                rec["num_options"] > 0)
        body = tf.where(listed, tf.strings.join([body, "\n\n", block]), body)
        answer = tf.where(listed, shown, answer)
    escaped = tf.strings.regex_replace(answer, r"\\", r"\\\\")
    return body, tf.strings.regex_replace(target, ANSWER_PLACEHOLDER, escaped)


def zero_shot(spec: DatasetSpec, style: Style, seed: int):
    """A map function: prerendered record -> {"inputs", "targets"}."""
    n = len(spec.templates)

    def fn(rec):
        key = rec["key"]
        inputs, targets = compose(spec, rec, choose(key, n, seed, 7), choose_variety(key, seed),
                                  style)
        return {"inputs": inputs, "targets": targets}

    return fn


def with_exemplars(query: tf.data.Dataset, exemplars: tf.data.Dataset, spec: DatasetSpec,
                   style: Style, seed: int, vocabulary: seqio.Vocabulary) -> tf.data.Dataset:
    """Few-shot examples: prerendered queries zipped with prerendered train exemplars."""
    n, k = len(spec.templates), MAX_EXEMPLARS
    budget = fewshot_token_budget() - 1  # room for EOS
    exemplars = (exemplars.shuffle(EXEMPLAR_SHUFFLE_BUFFER, seed=seed,
                                   reshuffle_each_iteration=False)
                 .repeat().padded_batch(k + 1, drop_remainder=True))

    def merge(q, e):
        key = q["key"]
        template, v = choose(key, n, seed, 7), choose_variety(key, seed)
        inputs, targets = compose(spec, q, template, v, style)
        composed = [compose(spec, {name: e[name][j] for name in e}, template, v, style)
                    for j in range(k + 1)]
        # Never the example itself, nor an exemplar twice (a small pool, as NIv2's positive
        # examples, comes round again within one batch of the repeated stream).
        same = tf.equal(e["key"][:, None], e["key"][None, :])
        earlier = tf.cast(tf.linalg.band_part(tf.ones_like(same, tf.int32), -1, 0)
                          - tf.eye(k + 1, dtype=tf.int32), tf.bool)
        repeated = tf.reduce_any(tf.logical_and(same, earlier), axis=1)
        others = tf.where(tf.logical_and(tf.not_equal(e["key"], key),
                                         tf.logical_not(repeated)))[:k, 0]
        ex_in = tf.gather(tf.stack([c[0] for c in composed]), others)
        ex_tg = tf.gather(tf.stack([c[1] for c in composed]), others)
        prompts = tf.stack([tf.strings.join([tpl.fewshot_prefix(ex_in[:m], ex_tg[:m]), inputs])
                            for m in range(k + 1)])
        lengths = tf.stack([tf.size(vocabulary.encode_tf(prompts[m]), out_type=tf.int32)
                            for m in range(k + 1)])
        available = tf.size(others, out_type=tf.int32)
        fits = tf.logical_and(lengths <= budget, tf.range(k + 1) <= available)
        # Lengths grow with m, so the exemplars kept are the first ones that fit.
        m = tf.reduce_sum(tf.cast(fits[1:], tf.int32))
        return {"inputs": prompts[m], "targets": targets, "num_exemplars": m}

    ds = tf.data.Dataset.zip((query, exemplars)).map(merge, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.filter(lambda ex: ex["num_exemplars"] > 0)
    return ds.map(lambda ex: {"inputs": ex["inputs"], "targets": ex["targets"]})
