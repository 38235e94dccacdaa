"""Template rendering with TensorFlow string ops, shared by every collection.

Templates are `str.format`-style strings ("{premise}\\nIs it true that {hypothesis}?"). They are
parsed once in python into literal pieces and field names; rendering is a `tf.strings.join` of
constants and field tensors, so it runs inside tf.data graphs on TFDS and generated records alike.
"""

from __future__ import annotations

import string
from typing import Mapping, Sequence

import tensorflow as tf

OPTIONS_HEADER = "\n\nOPTIONS:\n- "
OPTIONS_SEPARATOR = "\n- "
# Between few-shot exemplars, and between an exemplar's inputs and targets.
FEWSHOT_EXEMPLAR_SEPARATOR = "\n\n\n"
FEWSHOT_TARGET_SEPARATOR = "\n\n"


def template_fields(template: str) -> list[str]:
    """The field names a template uses, in order of first appearance."""
    names: list[str] = []
    for _, field, _, _ in string.Formatter().parse(template):
        if field is not None and field not in names:
            names.append(field)
    return names


def _pieces(template: str) -> list[tuple[str, str | None]]:
    return [(literal, field) for literal, field, _, _ in string.Formatter().parse(template)]


def as_string(value: tf.Tensor) -> tf.Tensor:
    value = tf.convert_to_tensor(value)
    return value if value.dtype == tf.string else tf.strings.as_string(value)


def render(template: str, fields: Mapping[str, tf.Tensor]) -> tf.Tensor:
    """Renders one template against a dict of scalar fields (tf.string or numeric)."""
    parts: list[tf.Tensor | str] = []
    for literal, field in _pieces(template):
        if literal:
            parts.append(literal)
        if field is not None:
            parts.append(as_string(fields[field]))
    if not parts:
        return tf.constant("")
    if all(isinstance(p, str) for p in parts):
        return tf.constant("".join(parts))  # type: ignore[arg-type]
    return tf.strings.join([tf.constant(p) if isinstance(p, str) else p for p in parts])


def options_suffix(options: tf.Tensor) -> tf.Tensor:
    """"\\n\\nOPTIONS:\\n- a\\n- b" for a 1-D tf.string tensor of answer strings."""
    return tf.strings.join(
        [OPTIONS_HEADER, tf.strings.reduce_join(options, separator=OPTIONS_SEPARATOR)]
    )


def raw_fields_text(field_names: Sequence[str], fields: Mapping[str, tf.Tensor]) -> tf.Tensor:
    """The "no template" rendering: the input fields' values, one per line."""
    values = [as_string(fields[name]) for name in field_names]
    if not values:
        return tf.constant("")
    return tf.strings.reduce_join(tf.stack(values), separator="\n")


def fewshot_prefix(inputs: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
    """Joins k rendered exemplars (1-D inputs and targets) into one prompt prefix."""
    pairs = tf.strings.join([inputs, targets], separator=FEWSHOT_TARGET_SEPARATOR)
    joined = tf.strings.reduce_join(pairs, separator=FEWSHOT_EXEMPLAR_SEPARATOR)
    return tf.cond(
        tf.size(pairs) > 0,
        lambda: tf.strings.join([joined, FEWSHOT_EXEMPLAR_SEPARATOR]),
        lambda: tf.constant(""),
    )
