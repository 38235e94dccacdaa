"""Checks a DatasetSpec at registration: templates parse, and name only fields that exist.

Generator sources are always checked (their fields are declared); TFDS sources only when asked
(`validate_tfds=True`), since that needs the TFDS builder's feature spec. Otherwise the same
error is raised when the dataset is first built (`tasks.preprocessors.prepare_fields`).
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from tasks import templates as tpl
from tasks.spec import DatasetSpec, GeneratorSource, TfdsSource

# Python field types a generator may declare -> the tf.data signature they become.
PY_TO_SPEC = {
    str: tf.TensorSpec([], tf.string),
    bytes: tf.TensorSpec([], tf.string),
    int: tf.TensorSpec([], tf.int64),
    float: tf.TensorSpec([], tf.float32),
    bool: tf.TensorSpec([], tf.bool),
    list: tf.TensorSpec([None], tf.string),
    tuple: tf.TensorSpec([None], tf.string),
}


def generator_element_spec(source: GeneratorSource) -> dict[str, tf.TensorSpec]:
    spec = {}
    for name, py_type in source.output_fields.items():
        if py_type not in PY_TO_SPEC:
            raise ValueError(f"field `{name}`: unsupported type {py_type!r}")
        spec[name] = PY_TO_SPEC[py_type]
    return spec


def tfds_element_spec(source: TfdsSource) -> Any:
    import tensorflow_datasets as tfds

    return tfds.builder(source.name).info.features.get_tensor_spec()


def produced_fields(spec: DatasetSpec, element_spec: Any) -> set[str]:
    """The field names `spec.fields_fn` produces from records of `element_spec` (traced)."""
    if spec.fields_fn is None:
        return set(element_spec)
    try:
        traced = tf.function(lambda ex: dict(spec.fields_fn(ex))).get_concrete_function(
            element_spec
        )
    except Exception as e:  # noqa: BLE001 - re-raised with the dataset named
        raise ValueError(
            f"{spec.collection}/{spec.name}: fields_fn failed on the source's fields "
            f"{sorted(element_spec)}: {type(e).__name__}: {e}"
        ) from e
    return set(traced.structured_outputs)


def required_fields(spec: DatasetSpec) -> list[str]:
    """Fields the templates (and, for classification, the answer) read, in first-use order."""
    names: list[str] = []
    for t in spec.templates:
        for f in tpl.template_fields(t.inputs) + tpl.template_fields(t.targets):
            if f not in names:
                names.append(f)
    if spec.is_classification and spec.answer_field not in names:
        names.append(spec.answer_field)
    return names


def check_fields(spec: DatasetSpec, produced: set[str]) -> None:
    where = f"collection `{spec.collection}`, dataset `{spec.name}`"
    for i, t in enumerate(spec.templates):
        for part, text in (("inputs", t.inputs), ("targets", t.targets)):
            for field in tpl.template_fields(text):
                if field not in produced:
                    raise ValueError(
                        f"{where}, template {i} ({part}): field `{{{field}}}` is not produced by "
                        f"the dataset's fields_fn (it produces: {', '.join(sorted(produced))})."
                    )
    if spec.is_classification and spec.answer_field not in produced:
        raise ValueError(f"{where}: answer_field `{spec.answer_field}` is not produced.")
    if spec.options_field is not None and spec.options_field not in produced:
        raise ValueError(f"{where}: options_field `{spec.options_field}` is not produced.")


def check_spec(spec: DatasetSpec, validate_tfds: bool) -> None:
    """Raises ValueError naming collection, dataset, template and field on a bad spec."""
    where = f"collection `{spec.collection}`, dataset `{spec.name}`"
    if not spec.templates:
        raise ValueError(f"{where}: no templates.")
    for i, t in enumerate(spec.templates):
        for text in (t.inputs, t.targets):
            try:
                tpl.template_fields(text)
            except ValueError as e:
                raise ValueError(f"{where}, template {i}: malformed template: {e}") from e
    if isinstance(spec.source, GeneratorSource):
        check_fields(spec, produced_fields(spec, generator_element_spec(spec.source)))
    elif validate_tfds:
        check_fields(spec, produced_fields(spec, tfds_element_spec(spec.source)))
