"""The form library in tests: each form compiled (and checked by ODK Validate, where Java
exists) once per test session, and a realistic filled-in instance of each, made from the
form's own primary instance the way Collect makes one."""

from __future__ import annotations

import copy
import csv
import io
import uuid
from dataclasses import dataclass
from functools import cache

from lxml import etree

from forms.library import FORMS, LibraryForm, get
from forms.pipeline import PreparedForm, prepare_form
from forms.schema import Field, FormSchema
from forms.validate import java_available

XFORMS = "http://www.w3.org/2002/xforms"
JR_TEMPLATE = "{http://openrosa.org/javarosa}template"
FORM_IDS = [f.form_id for f in FORMS]
REPEAT_ROWS = 2
"""Instances made of every repeat (the roster's count question says the same)."""


# A fixed (version 4) entity id for follow-up forms, as Collect would send.
ENTITY_ID = str(uuid.UUID(int=7, version=4))


@cache
def prepared(form_id: str) -> PreparedForm:
    """The form through dodoso's pipeline: sandboxed pyxform, lint, ODK Validate."""
    form = get(form_id)
    assert form is not None, form_id
    return prepare_form(form.xlsx(), filename=form.xlsx_path.name,
                        validate=java_available("java"))


def by_source() -> dict[bytes, PreparedForm]:
    """Every library workbook's bytes → its prepared form (compiling those not yet)."""
    return {f.xlsx(): prepared(f.form_id) for f in FORMS}


@dataclass
class Filled:
    """A filled-in instance: its XML and, per row (instanceID first, then each repeat
    instance by position), the values it holds by field path."""

    xml: bytes
    instance_id: str
    values: dict[str, str]
    """Field path (``/grp/q``) → text, for the root row's leaves."""
    repeat_values: dict[str, list[dict[str, str]]]
    """Repeat path → one dict (field path → text) per instance, in order."""


# Values a person would give, by field name; any other field gets one by its type.
ANSWERS: dict[str, str] = {
    "enumerator": "enum07", "age_ok": "yes", "privacy_ok": "yes", "consent": "yes",
    "questions_answered": "no", "consent_recontact": "yes", "consent_share_hosts": "yes",
    "interviewed_before": "no", "enum_confirm": "OK",
    "hh_size": str(REPEAT_ROWS), "emig_count": str(REPEAT_ROWS), "rem_count": str(REPEAT_ROWS),
    "age": "38", "emig_age_left": "24", "year_left": "2016", "year_return": "2022",
    "emig_year_left": "2019", "rc_year_left": "2019", "year_left_tz": "2009", "yob": "1984",
    "months_worked_abroad": "48", "hours_usual": "45", "years_experience": "15",
    "avail_months_per_year": "2", "trained_women": "14", "trained_men": "9",
    "months_to_repay": "7", "loan_interest_month": "10",
    "earn_month": "650000", "rem_amount_12m": "2400000", "rem_last_amount": "200000",
    "rem_fee_amount": "9000", "cost_amount": "350000", "loan_amount": "800000",
    "first_month_earn": "1200", "amount_sent": "500000", "amount_received": "480000",
    "fee_paid": "12000", "fee_pct": "2.4", "assignment_days": "61",
    "mem_name": "Amina", "region": "TZ-22", "council_code": "TZ-22-msalala-dc",
    "site_region_tz": "TZ-05", "site_council_code_tz": "TZ-05-bukoba-mc",
    "city_res": "Muscat",
    "occ_title": "Paediatric nurse", "specialisation": "Neonatal care",
    "phone_recontact": "+255712345678", "contact_phone": "+96891234567",
    "contact_email": "expert@example.org", "case_id": "TZR-000123",
    "expert_code": "DX-1a2b3c4d", "expert_code_manual": "DX-1a2b3c4d",
    "start_date": "2026-03-02", "end_date": "2026-05-01", "avail_earliest": "2027-01-15",
    "transfer_date": "2026-11-02", "return_date": "2023-06-01",
    "country_birth": "TZA", "citizenship_other": "KEN", "prev_res_country": "OMN",
    "last_country_work": "OMN", "emig_dest_country": "SAU", "rem_sender_country": "ARE",
    "rc_dest_country": "QAT", "country_res": "OMN", "edu_country": "ZAF",
    "return_country": "SAU", "site_country": "UGA", "nationality": "UGA",
    "counterpart_country": "TZA", "site_district_ug": "UG-102",
    "rc_member": "Amina", "rc_who": "current_member", "citizenship": "tz_only",
}
SELECT_MULTIPLE_ANSWERS: dict[str, str] = {
    "rem_channel": "mobile_money_xborder bank", "rem_use": "food_daily education",
    "purpose": "education health", "languages": "sw en", "pref_region_tz": "TZ-02 TZ-25",
    "contrib_current": "remittances knowledge", "challenges": "logistics language",
}


def _csv_values(name: str) -> list[str]:
    from forms.library import MEDIA_DIR

    with (MEDIA_DIR / name).open(encoding="utf-8", newline="") as f:
        return [row["name"] for row in csv.DictReader(f)]


def _answer(field: Field, schema: FormSchema, form: LibraryForm, now: str) -> str:
    if field.name in ANSWERS:
        return ANSWERS[field.name]
    if field.type == "select":
        if field.name in SELECT_MULTIPLE_ANSWERS:
            return SELECT_MULTIPLE_ANSWERS[field.name]
        return " ".join(_choices(field, schema, form)[:2])
    if field.type == "select1":
        return _choices(field, schema, form)[0]
    return {
        "int": "3", "decimal": "1250.5", "date": now[:10], "dateTime": now,
        "time": now[11:23], "string": "Answered in the field",
    }.get(field.type, "1")


def _choices(field: Field, schema: FormSchema, form: LibraryForm) -> list[str]:
    listed = schema.choice_lists[field.choice_list or ""]
    if listed.source == "file":
        name = f"{field.choice_list}.csv"
        if field.choice_list in form.entity_lists:
            return [ENTITY_ID]  # an entity's id
        return _csv_values(name)
    values = listed.values()
    if field.choice_filter and field.choice_list == "isco_submajor":
        return ["22"]
    return values


def fill(form_id: str, *, instance_id: str | None = None) -> Filled:
    """A submission of the form as Collect would send it: every question answered (a
    value of its type, from its choices), notes left empty, each repeat twice."""
    form = get(form_id)
    assert form is not None
    prep = prepared(form_id)
    schema = prep.info.schema
    root_xform = etree.fromstring(prep.xform)
    template = root_xform.find(f".//{{{XFORMS}}}model/{{{XFORMS}}}instance")[0]
    readonly = {
        _path(bind.get("nodeset")) for bind in root_xform.iterfind(f".//{{{XFORMS}}}bind")
        if bind.get("readonly") == "true()" and bind.get("calculate") is None}
    root = copy.deepcopy(template)
    instance_id = instance_id or f"uuid:{uuid.uuid4()}"
    now = "2026-11-20T09:15:00.000+03:00"
    values: dict[str, str] = {}
    repeat_values: dict[str, list[dict[str, str]]] = {}
    _fill(root, "", schema, form, now, readonly, values, repeat_values, None)
    meta = root.find(f"{{{XFORMS}}}meta")
    meta.find(f"{{{XFORMS}}}instanceID").text = instance_id
    name = meta.find(f"{{{XFORMS}}}instanceName")
    if name is not None:
        name.text = f"{form_id} test"
    entity = meta.find(f"{{{XFORMS}}}entity")
    if entity is not None:
        entity.set("id", str(uuid.uuid4()) if entity.get("create") else ENTITY_ID)
        label = entity.find(f"{{{XFORMS}}}label")
        if label is not None:
            label.text = "DX-1a2b3c4d – Paediatric nurse"
    for el in meta.iter(f"{{{XFORMS}}}*"):
        if len(el) == 0 and el.text:
            steps = [etree.QName(a).localname for a in reversed(list(el.iterancestors()))]
            values["/" + "/".join([*steps[1:], etree.QName(el).localname])] = el.text
    xml = etree.tostring(root, xml_declaration=True, encoding="utf-8")
    return Filled(xml, instance_id, values, repeat_values)


def _path(nodeset: str | None) -> str:
    return "/" + "/".join((nodeset or "").strip().split("/")[2:])


def _fill(el: etree._Element, parent: str, schema: FormSchema, form: LibraryForm, now: str,
          readonly: set[str], values: dict[str, str],
          repeat_values: dict[str, list[dict[str, str]]], row: dict[str, str] | None) -> None:
    for child in list(el):
        if not isinstance(child.tag, str):
            continue
        name = etree.QName(child).localname
        path = f"{parent}/{name}"
        if child.get(JR_TEMPLATE) is not None:
            el.remove(child)
            continue
        field = schema.field(path)
        if name == "meta" and not parent:
            continue
        if field is None:
            continue
        if field.kind == "repeat":
            position = list(el).index(child)
            el.remove(child)
            rows = repeat_values.setdefault(path, [])
            for i in range(REPEAT_ROWS):
                copy_ = copy.deepcopy(child)
                own: dict[str, str] = {}
                _fill(copy_, path, schema, form, now, readonly, values, repeat_values, own)
                el.insert(position + i, copy_)
                rows.append(own)
            continue
        if field.kind == "group":
            _fill(child, path, schema, form, now, readonly, values, repeat_values, row)
            continue
        if path in readonly:
            continue  # a note: Collect sends it empty
        child.text = _answer(field, schema, form, now)
        (row if row is not None else values)[path] = child.text


def csv_zip_tables(data: bytes) -> dict[str, list[list[str]]]:
    """A ``submissions.csv.zip``'s CSV files (media folders skipped), parsed."""
    import zipfile

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: list(csv.reader(io.StringIO(archive.read(name).decode("utf-8-sig"))))
                for name in archive.namelist() if name.endswith(".csv")}

