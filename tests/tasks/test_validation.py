"""tasks.validation: specs are checked when registered, naming dataset, template and field."""

import dataclasses

import pytest

from tasks import catalogue, registry, validation
from tasks.spec import Template
from tests.tasks.fake_specs import spec


def test_template_naming_missing_field_fails_at_registration():
    bad = spec("broken", "alpha", collection="badtest",
               templates=(Template("{x}", "{answer}"), Template("{x} {nope}", "{answer}")))
    with pytest.raises(ValueError) as e:
        registry.register_collection([bad])
    message = str(e.value)
    assert "badtest" in message and "broken" in message
    assert "template 1" in message and "nope" in message
    assert "badtest" not in catalogue.collection_names()


def test_fields_fn_is_traced_at_registration():
    traced = dataclasses.replace(spec("traced", "alpha", collection="tracetest"),
                                 fields_fn=lambda ex: {"y": ex["x"], "answer": ex["answer"]})
    with pytest.raises(ValueError, match=r"traced.*template 0.*\{x\}"):
        registry.register_collection([traced])


def test_malformed_template_and_empty_templates():
    with pytest.raises(ValueError, match="template 0: malformed"):
        validation.check_spec(spec("m", "alpha", templates=(Template("{x", "{answer}"),)), False)
    with pytest.raises(ValueError, match="no templates"):
        validation.check_spec(dataclasses.replace(spec("e", "alpha"), templates=()), False)


def test_required_fields_in_first_use_order():
    s = spec("r", "alpha", templates=(Template("{x} and {y}", "{z}"), Template("{y}", "{x}")))
    assert validation.required_fields(s) == ["x", "y", "z", "answer"]


def test_duplicate_datasets_and_clashing_names_are_refused():
    with pytest.raises(ValueError, match="declared twice"):
        registry.register_collection([spec("d", "alpha", collection="duptest")] * 2)
    with pytest.raises(ValueError, match="clash"):
        registry.register_collection([spec("alpha", "alpha", collection="clashtest")])
