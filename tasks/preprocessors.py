"""tf.data preprocessing of raw records: fields, template rendering, few-shot formatting.

Each function maps a dataset to a dataset (or renders one example's fields) and is written once
for every collection. Examples leave `render` as {"inputs", "targets"} strings, plus "options"
(1-D tf.string) for classification datasets.
"""

from __future__ import annotations

import logging
from typing import Sequence

import gin
import seqio
import tensorflow as tf

from tasks import catalogue
from tasks import templates as tpl
from tasks.spec import DatasetSpec, GeneratorSource, Template

logger = logging.getLogger(__name__)

OPTIONS_KEY = "__options__"  # the per-example answer strings, whatever the spec calls them


@gin.configurable(module="tasks")
def fewshot_length_budget(max_input_tokens: int = 960) -> int:
    """Few-shot prompts drop exemplars until the inputs (with EOS) fit this many tokens (the
    release prunes to 960, leaving room in a 1024-token input)."""
    return int(max_input_tokens)


def _not_autographed(fn):
    """Maps `fn` as written: its branches are on Python values (the mode, the templates), never
    on tensors, so AutoGraph's rewriting of it and of every template function it calls (about
    600 conversions, a third of building a mixture's dataset) buys nothing."""
    return tf.autograph.experimental.do_not_convert(fn)


def prepare_fields(
    ds: tf.data.Dataset, spec: DatasetSpec, split: str, required: Sequence[str]
) -> tf.data.Dataset:
    """Applies fields_fn, adds the options, and drops (counting) records with empty fields."""
    options = tf.constant(list(spec.options)) if spec.options is not None else None

    def to_fields(ex):
        fields = dict(spec.fields_fn(ex)) if spec.fields_fn is not None else dict(ex)
        missing = [f for f in required if f not in fields]
        if missing:
            raise ValueError(
                f"collection `{spec.collection}`, dataset `{spec.name}`: fields "
                f"{missing} used by its templates are not produced by fields_fn "
                f"(it produces: {', '.join(sorted(fields))})."
            )
        if options is not None:
            fields[OPTIONS_KEY] = options
        elif spec.options_field is not None:
            fields[OPTIONS_KEY] = tf.reshape(fields[spec.options_field], [-1])
        return fields

    def note_empty() -> bool:
        count = catalogue.note_problem(spec, split, "empty required field")
        if count == 1 or count % 100 == 0:
            logger.warning(
                "%s/%s (%s): dropped %d record(s) with an empty required field so far.",
                spec.collection, spec.name, split, count,
            )
        return False

    def keep(fields):
        checks = [
            tf.strings.length(fields[f]) > 0
            for f in required
            if fields[f].dtype == tf.string and fields[f].shape.rank == 0
        ]
        if not checks:
            return tf.constant(True)
        ok = tf.reduce_all(tf.stack(checks))
        return tf.cond(
            ok,
            lambda: tf.constant(True),
            lambda: tf.reshape(tf.py_function(note_empty, [], tf.bool), []),
        )

    ds = ds.map(to_fields, num_parallel_calls=tf.data.AUTOTUNE)
    if spec.filter_fn is not None:
        ds = ds.filter(spec.filter_fn)
    if not isinstance(spec.source, GeneratorSource):  # generator records were checked in python
        ds = ds.filter(keep)
    return ds


def render_template(spec: DatasetSpec, t: Template, fields) -> tuple[tf.Tensor, tf.Tensor]:
    """(inputs, targets) of one template; classification inputs end with the OPTIONS suffix."""
    inputs = tpl.render(t.inputs, fields)
    if spec.is_classification and not t.turned_around:
        inputs = tf.strings.join([inputs, tpl.options_suffix(fields[OPTIONS_KEY])])
    return inputs, tpl.render(t.targets, fields)


def example_key(fields) -> tf.Tensor:
    """A string identifying an example's content, for order-independent template choice."""
    parts = [
        tpl.as_string(fields[name])
        for name in sorted(fields)
        if name != OPTIONS_KEY and fields[name].shape.rank == 0
    ]
    return tf.strings.reduce_join(tf.stack(parts), separator="\x1f")


def reference_template(spec: DatasetSpec) -> Template:
    """The template whose fields and target the no-template ablations use."""
    return next((t for t in spec.templates if not t.turned_around), spec.templates[0])


def raw_text(spec: DatasetSpec, fields) -> tuple[tf.Tensor, tf.Tensor]:
    """The no-template rendering: the input fields one per line (plus OPTIONS)."""
    first = reference_template(spec)
    inputs = tpl.raw_fields_text(tpl.template_fields(first.inputs), fields)
    if spec.is_classification:
        inputs = tf.strings.join([inputs, tpl.options_suffix(fields[OPTIONS_KEY])])
    return inputs, tpl.render(first.targets, fields)


def render(
    ds: tf.data.Dataset, spec: DatasetSpec, mode: str, index: int | None, num_templates: int,
    seed: int,
) -> tf.data.Dataset:
    """mode: "template" (template `index`), "mixed" (one of the first `num_templates`, picked
    by a seeded keyed hash), "rank" (template `index`, targets = the answer), "rank_nooptions"
    (the same without the OPTIONS suffix), "notemplate", "dsname"."""
    display = (spec.display_name or spec.name) + "\n"

    @_not_autographed
    def fn(fields):
        if mode in ("template", "rank"):
            inputs, targets = render_template(spec, spec.templates[index], fields)
            if mode == "rank":
                targets = tpl.as_string(fields[spec.answer_field])
        elif mode == "rank_nooptions":
            inputs = tpl.render(spec.templates[index].inputs, fields)
            targets = tpl.as_string(fields[spec.answer_field])
        elif mode == "mixed":
            rendered = [render_template(spec, t, fields) for t in spec.templates[:num_templates]]
            choice = tf.strings.to_hash_bucket_strong(
                example_key(fields), num_templates, [seed, 7]
            )
            inputs = tf.gather(tf.stack([r[0] for r in rendered]), choice)
            targets = tf.gather(tf.stack([r[1] for r in rendered]), choice)
        else:
            inputs, targets = raw_text(spec, fields)
            if mode == "dsname":
                inputs = tf.strings.join([display, inputs])
        out = {"inputs": inputs, "targets": targets}
        if spec.is_classification:
            out["options"] = fields[OPTIONS_KEY]
        if spec.group_field is not None:
            out["group"] = tpl.as_string(fields[spec.group_field])
        if spec.answers_field is not None and mode not in ("mixed", "rank", "rank_nooptions"):
            out["answers"] = tf.reshape(fields[spec.answers_field], [-1])
        return out

    return ds.map(fn, num_parallel_calls=tf.data.AUTOTUNE)


def fewshot_format(
    ds: tf.data.Dataset, vocabulary: seqio.Vocabulary, num_shots: int
) -> tf.data.Dataset:
    """Prefixes the last j of k exemplars, j the largest that keeps inputs within budget.

    An example may carry fewer than k exemplars (a train split too small to give k others than
    the example itself): then all of them at most."""
    budget = fewshot_length_budget() - 1  # room for EOS

    @_not_autographed
    def fn(ex):
        carried = tf.shape(ex["exemplar_inputs"])[0]
        candidates = []
        for j in range(num_shots + 1):
            first = tf.maximum(carried - j, 0)
            prefix = tpl.fewshot_prefix(ex["exemplar_inputs"][first:],
                                        ex["exemplar_targets"][first:])
            candidates.append(tf.strings.join([prefix, ex["inputs"]]))
        lengths = tf.stack(
            [tf.size(vocabulary.encode_tf(c), out_type=tf.int32) for c in candidates]
        )
        fits = tf.cast(lengths <= budget, tf.int32) * tf.range(num_shots + 1)
        out = {k: v for k, v in ex.items() if not k.startswith("exemplar_")}
        out["inputs"] = tf.gather(tf.stack(candidates), tf.reduce_max(fits))
        return out

    return ds.map(fn, num_parallel_calls=tf.data.AUTOTUNE)
