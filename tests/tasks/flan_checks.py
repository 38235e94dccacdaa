"""Checks shared by the FLAN 2021 declaration tests (both halves of the collection)."""

import tensorflow as tf

from tasks.templates import template_fields


def check_fields_dataset(name: str, spec, ds: tf.data.Dataset) -> set[str]:
    """Every template field is produced; fields are scalar strings (options: 1-D); returns the
    produced field names."""
    produced = set(ds.element_spec)
    for i, template in enumerate(spec.templates):
        used = set(template_fields(template.inputs) + template_fields(template.targets))
        assert used <= produced, f"{name} template {i}: missing {used - produced}"
    for field, field_spec in ds.element_spec.items():
        assert field_spec.dtype == tf.string, (name, field)
        expected_rank = 1 if field == spec.options_field else 0
        assert field_spec.shape.rank == expected_rank, (name, field, field_spec.shape)
    return produced
