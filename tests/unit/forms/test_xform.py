import base64
import csv
import re

import pytest
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_der_public_key

from forms.xform import EntityDeclaration, MediaRef, XFormInvalid, parse_xform
from tests.forms_corpus import FORMS_DIR, compile_md, corpus_xform, md_to_xform

EN, SW = "English (en)", "Kiswahili (sw)"


@pytest.fixture(scope="module")
def household():
    return parse_xform(compile_md("household_migration"))


def types(info, *paths):
    return {p: info.schema.field(p).type for p in paths}


# -- household_migration.md: nested repeats, groups in repeats, cascades, translations ----

def test_household__identity(household):
    assert household.form_id == "household_migration"
    assert household.version == "2024061201"
    assert household.title == "Household Migration Survey"
    assert household.instance_name == "data"
    assert household.encryption_key is None


def test_household__nested_repeats_roster_stays_transfers(household):
    schema = household.schema
    assert [(r.path, r.repeat) for r in schema.repeats()] == [
        ("/roster", None),
        ("/roster/stays_abroad", "/roster"),
        ("/roster/stays_abroad/transfers", "/roster/stays_abroad"),
    ]
    assert [f.path for f in schema.fields_in("/roster/stays_abroad/transfers")] == [
        "/roster/stays_abroad/transfers/transfer_date",
        "/roster/stays_abroad/transfers/amount_kes",
        "/roster/stays_abroad/transfers/transfer_channel",
    ]


def test_household__repeat_template_and_instance_copy_give_one_field_each(household):
    paths = [f.path for f in household.schema.fields]
    assert len(paths) == len(set(paths))
    assert paths.count("/roster/stays_abroad/transfers/amount_kes") == 1
    assert [f.order for f in household.schema.fields] == list(range(len(paths)))


def test_household__group_inside_repeat(household):
    group = household.schema.field("/roster/livelihood")
    assert (group.type, group.kind, group.repeat, group.group) == (
        "structure", "group", "/roster", "/roster")
    assert group.appearance == "field-list"
    income = household.schema.field("/roster/livelihood/monthly_income")
    assert (income.repeat, income.group) == ("/roster", "/roster/livelihood")
    job = household.schema.field("/roster/stays_abroad/job/wage_usd")
    assert (job.repeat, job.group) == ("/roster/stays_abroad", "/roster/stays_abroad/job")


def test_household__bind_and_control_types(household):
    assert types(
        household, "/consent", "/village", "/household_gps", "/dwelling_photo",
        "/roster/member_age", "/roster/member_sex", "/roster/livelihood/income_sources",
        "/roster/livelihood/monthly_income", "/roster/stays_abroad/reasons_ranked",
        "/roster/stays_abroad/transfers/transfer_date", "/household_size",
    ) == {
        "/consent": "string",
        "/village": "string",
        "/household_gps": "geopoint",
        "/dwelling_photo": "binary",
        "/roster/member_age": "int",
        "/roster/member_sex": "select1",
        "/roster/livelihood/income_sources": "select",
        "/roster/livelihood/monthly_income": "decimal",
        "/roster/stays_abroad/reasons_ranked": "rank",
        "/roster/stays_abroad/transfers/transfer_date": "date",
        "/household_size": "string",
    }
    assert household.schema.field("/dwelling_photo").binary
    assert household.schema.field("/household_size").calculate == "count( /data/roster )"
    assert household.schema.field("/roster/stays_abroad").relevant == "../ever_abroad  = 'yes'"
    assert household.schema.field("/region").required
    assert not household.schema.field("/village").required


def test_household__metadata_is_kept_but_is_not_a_question(household):
    schema = household.schema
    meta = [(f.path, f.type) for f in schema.fields if f.kind == "meta"]
    assert meta == [
        ("/start", "dateTime"), ("/end", "dateTime"), ("/deviceid", "string"),
        ("/meta", "structure"), ("/meta/audit", "binary"), ("/meta/instanceID", "string"),
    ]
    assert schema.field("/meta/audit").binary
    questions = [f.path for f in schema.questions()]
    assert questions[:3] == ["/consent", "/region", "/district"]
    assert not {"/start", "/meta/instanceID", "/roster", "/roster/livelihood"} & set(questions)


def test_household__labels_per_language(household):
    schema = household.schema
    assert schema.languages == (EN, SW)
    assert schema.default_language == EN
    assert schema.field("/district").labels == {EN: "District", SW: "Wilaya"}
    assert schema.field("/roster").labels == {EN: "Household members", SW: "Wanakaya"}
    assert schema.field("/thanks").labels == {
        EN: "Thank you, ${household_size} members recorded",
        SW: "Asante, wanakaya ${household_size} wamerekodiwa",
    }


def test_household__cascading_select_choices(household):
    schema = household.schema
    district = schema.field("/district")
    assert (district.choice_list, district.choice_filter) == ("district", True)
    assert not schema.field("/region").choice_filter
    districts = schema.choice_lists["district"]
    assert districts.source == "instance"
    assert districts.values() == ["mombasa", "kilifi", "kakamega"]
    coast = schema.choice_lists["region"].choices[0]
    assert (coast.value, coast.labels) == ("coast", {EN: "Coast", SW: "Pwani"})
    ranked = schema.field("/roster/stays_abroad/reasons_ranked")
    assert ranked.choice_list == "reasons"
    assert schema.choice_lists["reasons"].values() == ["work", "family", "study"]


def test_household__label_media_are_media_not_labels(household):
    assert set(household.media) == {
        MediaRef("coast.png", "image", "label_media"),
        MediaRef("western.png", "image", "label_media"),
        MediaRef("regions_map.png", "image", "label_media"),
        MediaRef("consent_sw.mp3", "audio", "label_media"),
    }
    assert household.schema.field("/region").labels == {EN: "Region", SW: "Mkoa"}
    assert household.csv_columns == {}
    assert household.entities == ()


# -- agency_fees.md: select_one_from_file, pulldata ------------------------------------

def test_agency_fees__csv_select_and_pulldata_columns():
    info = parse_xform(compile_md("agency_fees"))
    agency = info.schema.field("/agency")
    assert (agency.type, agency.choice_list, agency.choice_filter) == ("select1", "agencies", True)
    assert info.schema.choice_lists["agencies"].source == "file"
    assert info.schema.choice_lists["agencies"].choices == ()
    assert info.csv_columns == {
        "agencies.csv": {"name", "label", "county", "licence_no"},
        "fees.csv": {"agency_id", "fee_kes"},
    }
    assert info.media == (
        MediaRef("agencies.csv", "file-csv", "itemset", "agencies"),
        MediaRef("agencies.csv", "file-csv", "pulldata", "agencies"),
        MediaRef("fees.csv", "file-csv", "pulldata", "fees"),
    )


def test_agency_fees__corpus_csv_files_have_the_columns_the_form_reads():
    info = parse_xform(compile_md("agency_fees"))
    for name, columns in info.csv_columns.items():
        with (FORMS_DIR / name).open(encoding="utf-8") as f:
            assert columns <= set(next(csv.reader(f)))


# -- border_monitoring.md: geo and media questions --------------------------------------

def test_border_monitoring__geo_and_media_question_types():
    info = parse_xform(compile_md("border_monitoring"))
    assert {f.name: (f.type, f.binary) for f in info.schema.questions()} == {
        "crossing_point": ("geopoint", False),
        "route": ("geotrace", False),
        "camp_area": ("geoshape", False),
        "crossing_date": ("date", False),
        "crossing_time": ("time", False),
        "interview_started": ("dateTime", False),
        "passport_scan": ("barcode", False),
        "id_photo": ("binary", True),
        "testimony": ("binary", True),
        "crossing_video": ("binary", True),
        "travel_permit": ("binary", True),
        "signature": ("binary", True),
    }
    assert info.schema.field("/signature").appearance == "signature"
    assert info.schema.field("/route").labels == {"default": "Route taken"}
    assert info.schema.languages == ()
    assert info.schema.default_language is None
    assert info.media == ()


# -- worker_registry.md / worker_followup.md: entities ----------------------------------

def test_worker_registry__entity_creation_and_saved_properties():
    info = parse_xform(compile_md("worker_registry"))
    assert info.entities == (EntityDeclaration(
        dataset="migrant_workers",
        actions=("create",),
        properties=(
            ("/full_name", "full_name"), ("/age", "age"), ("/phone", "phone"),
            ("/last_country", "last_country"),
        ),
        path="/meta/entity",
    ),)
    entity = info.schema.field("/meta/entity")
    assert (entity.type, entity.kind) == ("structure", "meta")
    assert "/remarks" not in dict(info.entities[0].properties)


def test_worker_followup__entity_update_from_its_own_list():
    info = parse_xform(compile_md("worker_followup"))
    assert info.entities == (EntityDeclaration(
        "migrant_workers", ("update",), (("/new_phone", "phone"),)),)
    # The entity element has no children here; it is still a structure, as in Central.
    assert info.schema.field("/meta/entity").type == "structure"
    assert info.media == (
        MediaRef("migrant_workers.csv", "file-csv", "itemset", "migrant_workers"),)
    # baseVersion/trunkVersion lookups are pyxform plumbing, not columns of an uploaded CSV.
    assert info.csv_columns == {"migrant_workers.csv": {"name", "label"}}


# -- exit_interview_encrypted.md: encryption ---------------------------------------------

def test_exit_interview__public_key_and_submission_url():
    info = parse_xform(compile_md("exit_interview_encrypted"))
    md = (FORMS_DIR / "exit_interview_encrypted.md").read_text(encoding="utf-8")
    assert info.encryption_key == re.search(r"\| (MII[A-Za-z0-9+/=]+) \|", md).group(1)
    key = load_der_public_key(base64.b64decode(info.encryption_key))
    assert isinstance(key, RSAPublicKey)
    assert key.key_size == 2048
    assert info.submission_action == "https://dodoso.example.org/submission"
    assert info.submission_method == "post"


# -- handwritten.xml: ODK XForms spec without pyxform's habits ---------------------------

def test_handwritten__identity_and_namespaced_meta():
    info = parse_xform(corpus_xform("handwritten"))
    assert (info.form_id, info.version, info.title, info.instance_name) == (
        "returnee_health", "7", "Returnee Health Screening", "screening")
    instance_id = info.schema.field("/meta/instanceID")
    assert (instance_id.type, instance_id.kind, instance_id.group) == ("string", "meta", "/meta")


def test_handwritten__relative_refs_inline_items_and_template_repeat():
    schema = parse_xform(corpus_xform("handwritten")).schema
    assert [(f.path, f.type, f.repeat) for f in schema.fields if f.kind != "meta"] == [
        ("/visit", "structure", None),
        ("/visit/visit_date", "date", None),
        ("/visit/clinic", "select1", None),
        ("/symptoms", "select", None),
        ("/contacts", "repeat", None),
        ("/contacts/contact_name", "string", "/contacts"),
        ("/contacts/days_since_contact", "int", "/contacts"),
    ]
    clinic = schema.field("/visit/clinic")
    assert clinic.labels == {"default": "Clinic"}
    assert clinic.appearance == "minimal"
    assert schema.field("/visit/visit_date").required
    clinics = schema.choice_lists[clinic.choice_list]
    assert clinics.source == "inline"
    assert [(c.value, c.labels) for c in clinics.choices] == [
        ("mombasa", {"default": "Mombasa Port Clinic"}),
        ("busia", {"default": "Busia Border Post"}),
    ]
    days = schema.field("/contacts/days_since_contact")
    assert days.labels == {"default": "Days since last seeing ${contact_name}"}
    assert days.relevant == "string-length(../contact_name) > 0"


# -- hand-written fragments for what pyxform does not emit -------------------------------

def xform(model: str, body: str = "", root: str = '<data id="f"><q/></data>') -> bytes:
    return f"""<?xml version="1.0"?>
<h:html xmlns="http://www.w3.org/2002/xforms" xmlns:h="http://www.w3.org/1999/xhtml"
        xmlns:jr="http://openrosa.org/javarosa">
  <h:head><h:title>t</h:title><model>
    <instance>{root}</instance>
    {model}
  </model></h:head>
  <h:body>{body}</h:body>
</h:html>""".encode()


def test_pulldata_without_a_declared_instance_expects_id_dot_csv():
    info = parse_xform(xform(
        """<bind nodeset="/data/q" type="string"
                 calculate="pulldata('wages', 'median', 'country', /data/c)"/>"""))
    assert info.media == (MediaRef("wages.csv", "file-csv", "pulldata"),)
    assert info.csv_columns == {"wages.csv": {"median", "country"}}


def test_instance_lookups_and_itemset_predicates_name_csv_columns():
    info = parse_xform(xform(
        """<instance id="towns" src="jr://file-csv/towns.csv"/>
           <bind nodeset="/data/q" type="string"/>
           <bind nodeset="/data/pop" type="int"
                 calculate="instance('towns')/root/item[name = /data/q]/population"/>""",
        """<select1 ref="/data/q"><label>Town</label>
             <itemset nodeset="instance('towns')/root/item[state = /data/s and
                 starts-with(display, /data/prefix) and region = current()/../r]">
               <value ref="name"/><label ref="display"/>
             </itemset></select1>""",
        root='<data id="f"><s/><prefix/><r/><q/><pop/></data>'))
    assert info.csv_columns == {
        "towns.csv": {"name", "display", "state", "region", "population"}}
    assert info.schema.field("/q").choice_filter


def test_search_appearance_and_default_media():
    info = parse_xform(xform(
        '<bind nodeset="/data/q" type="string"/><bind nodeset="/data/pic" type="binary"/>',
        """<select1 ref="/data/q" appearance="minimal search('clinics', 'matches', 'k', 'v')">
             <label>Clinic</label><item><label>x</label><value>name</value></item></select1>
           <upload ref="/data/pic" mediatype="image/*" appearance="annotate">
             <label>Mark the route</label></upload>""",
        root='<data id="f"><q/><pic>jr://images/blank_map.png</pic></data>'))
    assert info.media == (
        MediaRef("blank_map.png", "image", "default"),
        MediaRef("clinics.csv", "file-csv", "search"),
    )


def test_unknown_bind_type_is_string_and_leaf_without_bind_is_string():
    schema = parse_xform(xform(
        '<bind nodeset="/data/q" type="odk:wibble"/>',
        root='<data id="f"><q/><hidden/></data>')).schema
    assert (schema.field("/q").type, schema.field("/hidden").type) == ("string", "string")


@pytest.mark.parametrize(("xml", "code"), [
    (b"<h:html", "xform.unparseable"),
    (b'<!DOCTYPE h [<!ENTITY x SYSTEM "file:///etc/passwd">]><h>&x;</h>', "xform.dtd"),
    (b'<h:html xmlns:h="http://www.w3.org/1999/xhtml"><h:head/></h:html>', "xform.no_instance"),
    (xform("", root=""), "xform.no_instance"),
    (xform("", root="<data><q/></data>"), "xform.no_id"),
    (xform("", root='<data id="  "><q/></data>'), "xform.no_id"),
])
def test_broken_xforms_are_rejected_with_a_code(xml, code):
    with pytest.raises(XFormInvalid) as exc:
        parse_xform(xml)
    assert [i.code for i in exc.value.errors] == [code]


def test_pyxform_output_from_inline_markdown():
    info = parse_xform(md_to_xform("""
        | survey |
        | | type | name | label |
        | | begin_group | g | Group |
        | | begin_repeat | r | Repeat |
        | | integer | n | Number |
        | | end_repeat | | |
        | | end_group | | |
    """))
    assert [(f.path, f.type, f.kind, f.repeat, f.group) for f in info.schema.fields][:3] == [
        ("/g", "structure", "group", None, None),
        ("/g/r", "repeat", "repeat", None, "/g"),
        ("/g/r/n", "int", "question", "/g/r", "/g/r"),
    ]


def test_entity_declared_in_a_repeat_owns_the_fields_saved_from_that_repeat():
    info = parse_xform(md_to_xform("""
        | survey |
        | | type | name | label | save_to |
        | | text | head | Household head | |
        | | begin_repeat | emigrants | Members abroad | |
        | | text | emigrant_name | Name | full_name |
        | | text | country | Country | country |
        | | end_repeat | | | |
        | entities |
        | | list_name | label | repeat |
        | | emigrants | ${emigrant_name} | ${emigrants} |
    """))
    assert info.entities == (EntityDeclaration(
        dataset="emigrants",
        actions=("create",),
        properties=(("/emigrants/emigrant_name", "full_name"), ("/emigrants/country", "country")),
        path="/emigrants/meta/entity",
    ),)
    assert info.schema.field("/emigrants/meta/entity").repeat == "/emigrants"
    assert [f.path for f in info.schema.fields_in("/emigrants") if f.kind != "meta"] == [
        "/emigrants/emigrant_name", "/emigrants/country"]
