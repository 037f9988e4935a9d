import json

import pytest

from forms.schema import Choice, ChoiceList, Field, FormSchema
from forms.xform import parse_xform
from tests.forms_corpus import MD_FORMS, XML_FORMS, corpus_xform, md_to_xform


@pytest.mark.parametrize("name", MD_FORMS + XML_FORMS)
def test_schema_json__round_trips_exactly_for_every_corpus_form(name):
    schema = parse_xform(corpus_xform(name)).schema
    stored = json.loads(json.dumps(schema.to_json()))
    restored = FormSchema.from_json(stored)
    assert restored == schema
    assert restored.to_json() == schema.to_json()
    assert restored.field(schema.fields[-1].path) == schema.fields[-1]


def test_schema_json__is_plain_and_names_every_attribute():
    schema = FormSchema(
        fields=(Field(
            path="/q", name="q", type="select1", kind="question", repeat=None, group=None,
            order=0, choice_list="yn", labels={"default": "OK?"}, required=True),),
        choice_lists={"yn": ChoiceList("yn", (Choice("yes", {"default": "Yes"}),), "instance")},
    )
    assert schema.to_json() == {
        "format": 1,
        "fields": [{
            "path": "/q", "name": "q", "type": "select1", "kind": "question", "repeat": None,
            "group": None, "order": 0, "binary": False, "choice_list": "yn",
            "choice_filter": False, "labels": {"default": "OK?"}, "appearance": None,
            "required": True, "relevant": None, "calculate": None,
        }],
        "choice_lists": {
            "yn": {
                "source": "instance",
                "choices": [{"value": "yes", "labels": {"default": "Yes"}}],
            },
        },
        "languages": [],
        "default_language": None,
    }


def test_schema_json__unknown_format_is_refused():
    with pytest.raises(ValueError, match="format"):
        FormSchema.from_json({"format": 99, "fields": []})


ROSTER = """
| survey |
| | type | name | label |
| | start | start | |
| | text | village | Village |
| | begin_repeat | members | Members |
| | text | name | Name |
| | begin_group | work | Work |
| | integer | wage | Wage |
| | end_group | | |
| | begin_repeat | trips | Trips |
| | date | left_on | Left on |
| | end_repeat | | |
| | end_repeat | | |
"""


def test_fields_in__gives_each_export_table_its_columns_in_form_order():
    schema = parse_xform(md_to_xform(ROSTER)).schema
    assert [f.path for f in schema.fields_in(None)] == [
        "/start", "/village", "/members", "/meta", "/meta/instanceID"]
    assert [f.path for f in schema.fields_in("/members")] == [
        "/members/name", "/members/work", "/members/work/wage", "/members/trips"]
    assert [f.path for f in schema.fields_in("/members/trips")] == ["/members/trips/left_on"]
    assert [f.path for f in schema.repeats()] == ["/members", "/members/trips"]


def test_questions__leave_out_groups_repeats_and_metadata():
    schema = parse_xform(md_to_xform(ROSTER)).schema
    assert [f.path for f in schema.questions()] == [
        "/village", "/members/name", "/members/work/wage", "/members/trips/left_on"]
    assert schema.field("/nope") is None
