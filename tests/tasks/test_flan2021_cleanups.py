"""The clean-ups the FLAN release applies to raw records, on hand-made records."""

import pytest
import tensorflow as tf

from tests.tasks import flan_checks as fc

SPECS = {s.name: s for c in ("sentiment", "commonsense", "summarization", "struct_to_text")
         for s in fc.cluster_specs(c)}

# dataset: (raw record, field, expected value)
CASES = [
    ("imdb_reviews", {"text": "Great.<br /><br />Loved it.", "label": 1}, "text",
     "Great.\n\nLoved it."),
    ("yelp_polarity_reviews", {"text": 'He said \\""hi\\"".\\nBye', "label": 0}, "text",
     'He said "hi". Bye'),
    ("sentiment140", {"text": "meh", "polarity": 2}, "answer", "negative"),  # neutral
    ("sentiment140", {"text": "ok", "polarity": 4}, "answer", "positive"),
    ("sentiment140", {"text": "bad", "polarity": 0}, "answer", "negative"),
    ("hellaswag", {"context": "[header] How to cook [title] Boil water. [step] Add salt.",
                   "activity_label": "a", "endings": ["[step] Stir it.", "[substeps] Eat."],
                   "label": 0},  # markers become newlines, the spaces before them stay
     "context", "How to cook \nBoil water. \nAdd salt."),
    ("hellaswag", {"context": "c", "activity_label": "a",
                   "endings": ["[step] Stir it.", "[substeps] Eat."], "label": 0}, "options",
     ["Stir it.", "Eat."]),
    ("cnn_dailymail", {"article": "LONDON, England (CNN) -- The story begins.",
                       "highlights": "h", "id": ""}, "article", "The story begins."),
    ("samsum", {"dialogue": "Amy: look <file_photo>\r\nBob: nice", "summary": "s", "id": ""},
     "dialogue", "Amy: look  \nBob: nice"),
    ("aeslc", {"email_body": "Hi,\nsee below.", "subject_line": "Re:\nmeeting"}, "email",
     "Hi, see below."),
    ("dart", {"tripleset": ["[TABLECONTEXT] | [TITLE] | Cars", "Mazda | year | 1990"],
              "target": "t", "references": ["r"]}, "triples", " |  | Cars; Mazda | year | 1990"),
    ("e2e_nlg", {"meaning_representation": "name[The Eagle], food[French]", "target": "t",
                 "references": ["r"]}, "data", "name = The Eagle, food = French"),
    ("web_nlg_en", {"input": ["Alan_Bean | birthPlace | Wheeler,_Texas"], "target": "t",
                    "references": ["r"]}, "triples", "Alan Bean, birthPlace, Wheeler, Texas"),
]


@pytest.mark.parametrize("name,record,field,expected", CASES,
                         ids=[f"{c[0]}-{c[2]}-{i}" for i, c in enumerate(CASES)])
def test_cleanup(name, record, field, expected):
    fields = fc.fields_of(SPECS[name], record)
    assert fc.decoded(fields[field]) == expected


def test_opinion_abstracts_show_the_first_ten_numbered_reviews():
    critics = {"key": [f"k{i}" for i in range(12)], "value": [f"review {i}" for i in range(12)]}
    fields = fc.fields_of(SPECS["opinion_abstracts_rotten_tomatoes"], {
        "_movie_name": "m", "_critic_consensus": "c", "_critics": critics})
    reviews = fc.decoded(fields["reviews"]).split("\n")
    assert reviews == [f"{i + 1}. review {i}" for i in range(10)]


def test_aeslc_drops_empty_records():
    keep = SPECS["aeslc"].filter_fn
    assert not bool(keep({"email": tf.constant(" "), "subject": tf.constant("")}))
    assert bool(keep({"email": tf.constant("hi"), "subject": tf.constant("")}))
