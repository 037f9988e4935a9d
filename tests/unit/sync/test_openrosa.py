"""OpenRosa documents and headers, read back the way ODK Collect reads them."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

import pytest
from lxml import etree

from server.errors import Problem, Problems
from sync import openrosa
from sync.openrosa import (
    FormListEntry,
    ManifestFile,
    check_openrosa_version,
    etag,
    form_list_xml,
    if_none_match,
    manifest_xml,
    openrosa_headers,
    problem_xml,
    response_xml,
)

LIST = "{http://openrosa.org/xforms/xformsList}"
MANIFEST = "{http://openrosa.org/xforms/xformsManifest}"
RESPONSE = "{http://openrosa.org/http/response}"
MD5 = "0123456789abcdef0123456789abcdef"
BASE = "https://dodoso.example/v1/key/tok/projects/7"

HOSTILE_NAMES = [
    'Safari <za> "kazi" & ndoto',          # markup characters
    "Uhamiaji wa Wafanyakazi — Dodoso la Kaya",  # Kiswahili, with an em dash
    "استبيان هجرة العمال",                  # Arabic
    "]]> <!-- not a comment -->",
]


def parse(body: bytes) -> etree._Element:
    return etree.fromstring(body, etree.XMLParser(resolve_entities=False, no_network=True))


def children(el: etree._Element) -> list[tuple[str, str | None]]:
    return [(c.tag, c.text) for c in el]


# --- protocol literals --------------------------------------------------------------------


def test_literals__are_the_wire_values():
    assert openrosa.OPENROSA_VERSION == "1.0"
    assert openrosa.OPENROSA_VERSION_HEADER == "X-OpenRosa-Version"
    assert openrosa.ACCEPT_CONTENT_LENGTH_HEADER == "X-OpenRosa-Accept-Content-Length"
    assert openrosa.XML_SUBMISSION_FILE == "xml_submission_file"
    assert openrosa.INCOMPLETE_MARKER == "*isIncomplete*"
    assert openrosa.SUBMISSION_SUCCESS == "full submission upload was successful!"
    assert openrosa.XFORMS_LIST_NS == "http://openrosa.org/xforms/xformsList"
    assert openrosa.XFORMS_MANIFEST_NS == "http://openrosa.org/xforms/xformsManifest"
    assert openrosa.RESPONSE_NS == "http://openrosa.org/http/response"
    assert "text/xml" in openrosa.OPENROSA_CONTENT_TYPE


# --- headers ------------------------------------------------------------------------------


def test_openrosa_headers__carry_version_length_language_and_gmt_date():
    now = datetime(2026, 3, 5, 14, 7, 9, tzinfo=timezone.utc)
    headers = openrosa_headers(100_000_000, now)
    assert headers == {
        "X-OpenRosa-Version": "1.0",
        "X-OpenRosa-Accept-Content-Length": "100000000",
        "Date": "Thu, 05 Mar 2026 14:07:09 GMT",
        "Content-Language": "en",
    }


def test_openrosa_headers__date_is_converted_to_gmt_and_naive_means_utc():
    nairobi = timezone(timedelta(hours=3))
    aware = openrosa_headers(1, datetime(2026, 1, 1, 2, 30, tzinfo=nairobi))
    assert aware["Date"] == "Wed, 31 Dec 2025 23:30:00 GMT"
    naive = openrosa_headers(1, datetime(2026, 1, 1, 2, 30))
    assert naive["Date"] == "Thu, 01 Jan 2026 02:30:00 GMT"


def test_openrosa_headers__default_date_is_now_in_rfc1123():
    date = openrosa_headers(1)["Date"]
    assert date.endswith(" GMT")
    parsed = parsedate_to_datetime(date)
    assert abs((parsed - datetime.now(timezone.utc)).total_seconds()) < 60


@pytest.mark.parametrize("headers", [
    {"X-OpenRosa-Version": "1.0"},
    {"x-openrosa-version": "1.0"},
    {"X-OPENROSA-VERSION": " 1.0 "},
])
def test_check_openrosa_version__accepts_1_0_under_any_header_case(headers):
    assert check_openrosa_version(headers) is None


@pytest.mark.parametrize("headers", [
    {},
    {"X-OpenRosa-Version": ""},
    {"X-OpenRosa-Version": "2.0"},
    {"X-OpenRosa-Version": "1"},
    {"Content-Type": "text/xml"},
])
def test_check_openrosa_version__missing_or_wrong_is_400_2(headers):
    with pytest.raises(Problem) as caught:
        check_openrosa_version(headers)
    assert caught.value.code == 400.2
    assert caught.value.status == 400
    assert caught.value.details["field"] == "X-OpenRosa-Version"


# --- OpenRosaResponse ---------------------------------------------------------------------


def test_response_xml__success_is_centrals_document():
    root = parse(response_xml(openrosa.SUBMISSION_SUCCESS))
    assert root.tag == RESPONSE + "OpenRosaResponse"
    assert root.nsmap == {None: "http://openrosa.org/http/response"}
    assert root.get("items") == "0"
    [message] = root
    assert message.tag == RESPONSE + "message"
    assert message.get("nature") == ""
    assert message.text == "full submission upload was successful!"


@pytest.mark.parametrize("text", HOSTILE_NAMES)
def test_response_xml__escapes_any_message(text):
    body = response_xml(text, nature='odd "nature" <&>')
    message = parse(body)[0]
    assert message.text == text
    assert message.get("nature") == 'odd "nature" <&>'
    assert body.decode("utf-8")  # UTF-8, not character references only


def test_problem_xml__is_an_error_message_with_the_problems_text():
    problem = Problems.missing_multipart(field="xml_submission_file")
    root = parse(problem_xml(problem))
    assert root.tag == RESPONSE + "OpenRosaResponse"
    [message] = root
    assert message.get("nature") == "error"
    assert message.text == "Required multipart POST field xml_submission_file missing."


# --- formList -----------------------------------------------------------------------------


def entry(form_id="household", **kw) -> FormListEntry:
    defaults = {
        "name": "Household survey",
        "version": "2026030501",
        "hash_md5": MD5,
        "download_url": f"{BASE}/forms/{form_id}.xml",
        "manifest_url": None,
    }
    return FormListEntry(form_id=form_id, **{**defaults, **kw})


def test_form_list_xml__structure_and_element_order():
    body = form_list_xml([entry()])
    assert body.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    root = parse(body)
    assert root.tag == LIST + "xforms"
    assert root.nsmap == {None: "http://openrosa.org/xforms/xformsList"}
    [xform] = root
    assert xform.tag == LIST + "xform"
    assert children(xform) == [
        (LIST + "formID", "household"),
        (LIST + "name", "Household survey"),
        (LIST + "version", "2026030501"),
        (LIST + "hash", "md5:" + MD5),
        (LIST + "downloadUrl", f"{BASE}/forms/household.xml"),
    ]


def test_form_list_xml__manifest_url_only_for_forms_with_media():
    with_media = entry("with_media", manifest_url=f"{BASE}/forms/with_media/manifest")
    root = parse(form_list_xml([entry("plain"), with_media]))
    plain, media = root
    assert [c.tag for c in plain][-1] == LIST + "downloadUrl"
    assert plain.find(LIST + "manifestUrl") is None
    assert [c.tag for c in media][-2:] == [LIST + "downloadUrl", LIST + "manifestUrl"]
    assert media.findtext(LIST + "manifestUrl") == f"{BASE}/forms/with_media/manifest"


@pytest.mark.parametrize("version", [None, ""])
def test_form_list_xml__unversioned_form_keeps_an_empty_version_element(version):
    xform = parse(form_list_xml([entry(version=version)]))[0]
    assert [c.tag for c in xform][2] == LIST + "version"
    assert xform.findtext(LIST + "version") == ""


@pytest.mark.parametrize("name", [None, ""])
def test_form_list_xml__nameless_form_is_listed_under_its_id(name):
    xform = parse(form_list_xml([entry("labour_v2", name=name)]))[0]
    assert xform.findtext(LIST + "name") == "labour_v2"


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_form_list_xml__escapes_names_in_any_script(name):
    body = form_list_xml([entry(name=name, version='v<1>&"2"')])
    xform = parse(body)[0]
    assert xform.findtext(LIST + "name") == name
    assert xform.findtext(LIST + "version") == 'v<1>&"2"'


def test_form_list_xml__empty_list_is_an_empty_xforms_element():
    root = parse(form_list_xml([]))
    assert root.tag == LIST + "xforms"
    assert len(root) == 0


def test_form_list_xml__uppercase_md5_is_normalised():
    xform = parse(form_list_xml([entry(hash_md5=MD5.upper())]))[0]
    assert xform.findtext(LIST + "hash") == "md5:" + MD5


@pytest.mark.parametrize("bad", [
    {"form_id": ""},
    {"download_url": ""},
    {"hash_md5": ""},
    {"hash_md5": "md5:" + MD5},
    {"hash_md5": "not-a-digest"},
])
def test_form_list_xml__refuses_an_entry_collect_would_reject_the_list_for(bad):
    with pytest.raises(ValueError):
        form_list_xml([entry(), entry(**{"form_id": "other", **bad})])


# --- manifest -----------------------------------------------------------------------------


def media(name: str, md5: str = MD5) -> ManifestFile:
    return ManifestFile(name=name, hash_md5=md5,
                        download_url=f"{BASE}/forms/household/attachments/{name}")


def test_manifest_xml__structure_and_element_order():
    body = manifest_xml([media("districts.csv"), media("logo.png", "f" * 32)])
    assert body.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    root = parse(body)
    assert root.tag == MANIFEST + "manifest"
    assert root.nsmap == {None: "http://openrosa.org/xforms/xformsManifest"}
    assert [c.tag for c in root] == [MANIFEST + "mediaFile"] * 2
    assert children(root[0]) == [
        (MANIFEST + "filename", "districts.csv"),
        (MANIFEST + "hash", "md5:" + MD5),
        (MANIFEST + "downloadUrl", f"{BASE}/forms/household/attachments/districts.csv"),
    ]
    assert root[1].findtext(MANIFEST + "hash") == "md5:" + "f" * 32


def test_manifest_xml__no_media_is_an_empty_manifest():
    root = parse(manifest_xml([]))
    assert root.tag == MANIFEST + "manifest"
    assert len(root) == 0


@pytest.mark.parametrize("name", ["picha ya kaya & <shamba>.jpg", "خريطة.png"])
def test_manifest_xml__escapes_file_names(name):
    root = parse(manifest_xml([media(name)]))
    assert root[0].findtext(MANIFEST + "filename") == name


@pytest.mark.parametrize("bad", [
    ManifestFile(name="", hash_md5=MD5, download_url="https://x/a"),
    ManifestFile(name="a.csv", hash_md5="", download_url="https://x/a"),
    ManifestFile(name="a.csv", hash_md5=MD5, download_url=""),
])
def test_manifest_xml__refuses_an_entry_collect_would_drop_the_manifest_for(bad):
    with pytest.raises(ValueError):
        manifest_xml([media("ok.csv"), bad])


# --- URL segments -------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "encoded"), [
    ("household", "household"),
    ("a b", "a%20b"),
    ("x/y?z#w&v=1", "x%2Fy%3Fz%23w%26v%3D1"),
    ("kaya_ñ", "kaya_%C3%B1"),
    ("keep-_.!~*'()", "keep-_.!~*'()"),
])
def test_url_component__matches_encodeURIComponent(raw, encoded):
    assert openrosa.url_component(raw) == encoded


# --- ETags --------------------------------------------------------------------------------


def test_etag__is_the_quoted_md5():
    assert etag(MD5) == f'"{MD5}"'


@pytest.mark.parametrize(("header", "matches"), [
    (None, False),
    ("", False),
    (f'"{MD5}"', True),
    (f'W/"{MD5}"', True),                       # weakened by a gzipping proxy
    (f'"aaa", W/"bbb", "{MD5}"', True),
    (f'"aaa",W/"{MD5}"', True),
    ('"aaa", "bbb"', False),
    ("*", True),
    (f"{MD5}", True),                           # unquoted, as some clients send
    (f'"{MD5}x"', False),
    (f'"x{MD5}"', False),
    (f'"{MD5[:-1]}"', False),
])
def test_if_none_match(header, matches):
    assert if_none_match(header, etag(MD5)) is matches


def test_if_none_match__our_tag_may_itself_be_weak():
    assert if_none_match(f'"{MD5}"', f'W/"{MD5}"')
