import gc
import socket
import sys
import time
import unicodedata
from pathlib import Path

import pytest
from lxml import etree

import forms.xml
import sync.instance
from forms.xform import parse_xform
from sync.instance import (
    InstanceInvalid,
    is_storable_file_name,
    is_valid_instance_id,
    layout_of,
    parse_instance,
    referenced_files,
)
from tests.forms_corpus import compile_md, md_to_xform

SUBMISSIONS = Path(__file__).parents[2] / "data" / "submissions"
HOUSEHOLD_ID = "uuid:6f1c3b5e-2d4a-4b8e-9c61-0a7e5d3f9b12"


def submission(name: str) -> bytes:
    return (SUBMISSIONS / name).read_bytes()


def schema_of(form: str):
    return parse_xform(compile_md(form)).schema


def with_instance_id(value: str, tag: str = "instanceID") -> bytes:
    return (f'<data id="f"><q>1</q><meta><{tag}>{value}</{tag}></meta></data>').encode()


def code_of(xml: bytes) -> str:
    with pytest.raises(InstanceInvalid) as exc:
        parse_instance(xml)
    return exc.value.code


# -- identity ----------------------------------------------------------------------------

def test_parse_instance__reads_identity_of_a_collect_submission():
    instance = parse_instance(submission("household_migration.xml"))
    assert instance.root_name == "data"
    assert instance.root.tag == "data"
    assert instance.form_id == "household_migration"
    assert instance.version == "2024061201"
    assert instance.instance_id == HOUSEHOLD_ID
    assert instance.deprecated_id is None
    assert instance.instance_name is None
    assert instance.encrypted is False
    assert instance.encrypted_media == ()
    assert instance.encrypted_xml_file is None


def test_parse_instance__edit_carries_deprecated_id():
    instance = parse_instance(submission("household_migration_edit.xml"))
    assert instance.instance_id == "uuid:0b9d7e21-8c3f-4a55-b6d2-5e14f7a0c3d8"
    assert instance.deprecated_id == HOUSEHOLD_ID


def test_parse_instance__namespaced_orx_meta_is_read():
    instance = parse_instance(submission("border_monitoring.xml"))
    assert instance.instance_id == "uuid:3a8f0c44-71b2-4e09-8d5a-c2e6b9f41d07"
    assert instance.version == ""


def test_parse_instance__character_references_are_decoded():
    xml = (b'<data id="f&#64;x"><meta><instanceID>uuid:a&#64;b</instanceID>'
           b"<instanceName>Juma &#64; home</instanceName></meta></data>")
    instance = parse_instance(xml)
    assert instance.form_id == "f@x"
    assert instance.instance_id == "uuid:a@b"
    assert instance.instance_name == "Juma @ home"


def test_parse_instance__outer_whitespace_of_ids_is_stripped():
    xml = b'<data id=" f " version=" 3 "><meta><instanceID>\n  uuid:a\n</instanceID></meta></data>'
    instance = parse_instance(xml)
    assert (instance.form_id, instance.version, instance.instance_id) == ("f", "3", "uuid:a")


@pytest.mark.parametrize("xml", [
    b'<data id="f"><q/></data>',
    b'<data id="f"><meta><instanceID/></meta></data>',
    b'<data id="f"><meta><instanceID>  \n </instanceID></meta></data>',
])
def test_parse_instance__missing_or_blank_instance_id_is_none(xml):
    assert parse_instance(xml).instance_id is None


def test_parse_instance__root_level_instance_id_is_a_fallback():
    assert parse_instance(b'<data id="f"><instanceID>uuid:r</instanceID></data>').instance_id \
        == "uuid:r"
    assert parse_instance(b'<data id="f" instanceID="uuid:attr"/>').instance_id == "uuid:attr"
    both = b'<data id="f"><instanceID>uuid:r</instanceID><meta><instanceID>uuid:m</instanceID>' \
        b"</meta></data>"
    assert parse_instance(both).instance_id == "uuid:m"


def test_parse_instance__default_namespace_on_root_is_fine():
    xml = (b'<data xmlns="http://opendatakit.org/submissions" id="f">'
           b"<meta><instanceID>uuid:n</instanceID></meta></data>")
    instance = parse_instance(xml)
    assert (instance.root_name, instance.instance_id) == ("data", "uuid:n")


@pytest.mark.parametrize("xml", [
    b"<data><meta><instanceID>uuid:a</instanceID></meta></data>",
    b'<data id=""/>',
    b'<data id="  "/>',
    b'<data xmlns:x="urn:x" x:id="f"/>',
])
def test_parse_instance__root_without_form_id_is_rejected(xml):
    assert code_of(xml) == "instance.no_form_id"


# -- hostile instanceIDs -----------------------------------------------------------------

@pytest.mark.parametrize("value", [
    "uuid:" + "a" * 10_000,
    "x" * 256,
    "uuid:abc\u202edef",
    "\u202euuid:abc",
    "uuid:a\u200bb",
    "\ufeffuuid:a",
    "uuid:a\u00a0b",
    "../x",
    "uuid:../../etc/passwd",
    "/abs",
    "a\\b",
    "..",
    ".",
    "uuid:a b",
    "uuid:a\tb",
    "uuid:a\nb",
    "uuid:a\u2028b",
    "uuid:a\x7fb",
    "uuid:a\ue000b",
])
def test_parse_instance__hostile_instance_ids_are_rejected(value):
    assert not is_valid_instance_id(value.strip())
    escaped = value.replace("&", "&amp;").replace("<", "&lt;")
    assert code_of(with_instance_id(escaped)) == "instance.bad_instance_id"
    assert code_of(with_instance_id(escaped, "deprecatedID")) == "instance.bad_instance_id"


@pytest.mark.parametrize("value", [
    "uuid:6f1c3b5e-2d4a-4b8e-9c61-0a7e5d3f9b12",
    "bad-id:",
    "%2F",
    "x" * 255,
    "uuid:مرحبا",
    "2024-06-12_kilifi_07",
])
def test_parse_instance__printable_instance_ids_are_accepted(value):
    assert parse_instance(with_instance_id(value)).instance_id == value


def test_is_valid_instance_id__refuses_exactly_the_unicode_categories_c_and_z():
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        refused = unicodedata.category(char)[0] in "CZ" or char in "/\\"
        assert is_valid_instance_id(f"uuid:{char}") is not refused, hex(code)


def test_parse_instance__an_instance_id_is_not_unicode_normalised():
    nfd = unicodedata.normalize("NFD", "uuid:é")
    assert parse_instance(with_instance_id(nfd)).instance_id == nfd


# -- hostile XML -------------------------------------------------------------------------

@pytest.mark.parametrize("xml", [
    b"<test",
    b"",
    b"not xml",
    b'<data id="f"><q>\xc3\x28</q></data>',
    b'<?xml version="1.0" encoding="x-klingon"?><data id="f"/>',
    b'<data id="f"><q>&#1;</q></data>',
    b'<data id="f"><q>&undefined;</q></data>',
    b'<data id="f"><a></b></data>',
])
def test_parse_instance__unparseable_xml_is_rejected(xml):
    assert code_of(xml) == "instance.unparseable"


def test_parse_instance__external_entity_is_rejected_and_the_secret_appears_nowhere(tmp_path):
    secret = "s3cr3t-7f2d9a"
    target = tmp_path / "passwd"
    target.write_text(secret)
    for encoding in ("utf-8", "utf-16"):
        doc = (f'<?xml version="1.0" encoding="{encoding.upper()}"?>'
               f'<!DOCTYPE data [<!ENTITY x SYSTEM "file://{target}">]>'
               f'<data id="f"><q>&x;</q><meta><instanceID>&x;</instanceID></meta></data>')
        with pytest.raises(InstanceInvalid) as exc:
            parse_instance(doc.encode(encoding))
        assert exc.value.code == "instance.dtd"
        assert secret not in str(exc.value)
        assert secret not in repr(exc.value)
        assert exc.value.__cause__ is None


def test_parse_instance__billion_laughs_is_rejected_fast():
    bomb = (b'<?xml version="1.0"?><!DOCTYPE data [<!ENTITY l0 "lol">'
            + b"".join(b'<!ENTITY l%d "%s">' % (i, b"&l%d;" % (i - 1) * 10) for i in range(1, 10))
            + b']><data id="f"><q>&l9;</q></data>')
    started = time.perf_counter()
    assert code_of(bomb) == "instance.dtd"
    # In UTF-16 the DOCTYPE is not seen before parsing; libxml2's amplification cap stops it.
    utf16 = bomb.replace(b'"1.0"?>', b'"1.0" encoding="UTF-16"?>').decode().encode("utf-16")
    assert code_of(utf16) in ("instance.dtd", "instance.unparseable")
    assert time.perf_counter() - started < 1


def test_parse_instance__external_dtd_and_parameter_entity_open_no_connection():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    try:
        docs = [
            f'<!DOCTYPE data SYSTEM "http://127.0.0.1:{port}/x.dtd"><data id="f"/>',
            f'<!DOCTYPE data [<!ENTITY % p SYSTEM "http://127.0.0.1:{port}/p.dtd"> %p;]>'
            '<data id="f"/>',
            f'<?xml version="1.0"?><!-- c --><!DOCTYPE data PUBLIC "-//x" '
            f'"http://127.0.0.1:{port}/y.dtd"><data id="f"/>',
        ]
        for doc in docs:
            assert code_of(doc.encode()) == "instance.dtd"
        time.sleep(0.05)
        with pytest.raises(BlockingIOError):
            listener.accept()
    finally:
        listener.close()


@pytest.mark.parametrize("depth", [200, 100_000])
def test_parse_instance__deep_nesting_is_rejected_without_recursion_error(depth):
    xml = b'<data id="f">' + b"<a>" * depth + b"</a>" * depth + b"</data>"
    assert code_of(xml) == "instance.too_deep"


def test_parse_instance__depth_is_checked_even_when_xpath_cannot_hold_the_tree(monkeypatch):
    def overflow(root):  # what libxml2 does past ten million elements in one step
        raise etree.XPathEvalError("unknown error")

    monkeypatch.setattr(forms.xml, "_TOO_DEEP", overflow)
    nested = b'<data id="f">' + b"<a>" * 127 + b"</a>" * 127 + b"</data>"
    assert parse_instance(nested).form_id == "f"
    assert code_of(nested.replace(b"<a>", b"<a><a>", 1).replace(b"</a>", b"</a></a>", 1)) == (
        "instance.too_deep")


# -- encrypted envelopes -----------------------------------------------------------------

def test_parse_instance__reads_an_encrypted_envelope():
    instance = parse_instance(submission("exit_interview_encrypted.xml"))
    assert instance.encrypted is True
    assert instance.form_id == "exit_interview"
    assert instance.version == "2"
    assert instance.instance_id == "uuid:9e27c5d1-4f3a-4b6c-a8e2-71d0f5b39c64"
    assert instance.encrypted_xml_file == "submission.xml.enc"
    assert instance.encrypted_media == ("1718190000001.jpg.enc", "1718190000002.m4a.enc")
    assert instance.base64_encrypted_key and instance.signature


def test_parse_instance__an_encrypted_key_without_the_attribute_still_means_encrypted():
    xml = (b'<data id="f"><base64EncryptedKey>AAA=</base64EncryptedKey>'
           b"<meta><instanceID>uuid:e</instanceID></meta>"
           b"<encryptedXmlFile>submission.xml.enc</encryptedXmlFile></data>")
    instance = parse_instance(xml)
    assert instance.encrypted and instance.encrypted_media == ()


def test_parse_instance__encrypted_without_instance_id_is_rejected():
    xml = submission("exit_interview_encrypted.xml").replace(
        b"uuid:9e27c5d1-4f3a-4b6c-a8e2-71d0f5b39c64", b"")
    assert code_of(xml) == "instance.encrypted_without_id"


@pytest.mark.parametrize("element", [b"encryptedXmlFile", b"base64EncryptedKey"])
def test_parse_instance__encrypted_envelope_missing_its_parts_is_rejected(element):
    xml = submission("exit_interview_encrypted.xml")
    start, end = xml.index(b"<" + element), xml.index(b"</" + element + b">")
    xml = xml[:start] + xml[end + len(element) + 3:]
    assert code_of(xml) == "instance.encrypted_malformed"


# -- referenced files --------------------------------------------------------------------

NESTED_MEDIA_FORM = """
| survey |
| | type         | name     | label    |
| | image        | cover    | Cover    |
| | begin_group  | hh       | House    |
| | begin_repeat | person   | Person   |
| | text         | name     | Name     |
| | image        | portrait | Portrait |
| | begin_repeat | doc      | Document |
| | begin_group  | scan     | Scan     |
| | file         | pdf      | PDF      |
| | end_group    |          |          |
| | audio        | note     | Note     |
| | end_repeat   |          |          |
| | end_repeat   |          |          |
| | end_group    |          |          |
"""


def nested_media_schema():
    return parse_xform(md_to_xform(NESTED_MEDIA_FORM)).schema


def test_referenced_files__lists_binary_values_of_the_household():
    instance = parse_instance(submission("household_migration.xml"))
    assert referenced_files(instance, schema_of("household_migration")) == [
        "1718173211000.jpg", "audit.csv"]


def test_referenced_files__lists_every_media_type_in_element_order():
    instance = parse_instance(submission("border_monitoring.xml"))
    assert referenced_files(instance, schema_of("border_monitoring")) == [
        "1718180000001.jpg", "1718180000002.m4a", "1718180000003.mp4", "permit_2024.pdf",
        "1718180000005.png"]


def test_referenced_files__finds_files_inside_nested_repeats_and_groups():
    xml = b"""<data id="nested" xmlns:jr="http://openrosa.org/javarosa">
      <cover>cover.jpg</cover>
      <hh>
        <person jr:template=""><portrait>template.jpg</portrait></person>
        <person><name>A</name><portrait>a.jpg</portrait>
          <doc><scan><pdf>a1.pdf</pdf></scan><note>a1.m4a</note></doc>
          <doc><scan><pdf>a2.pdf</pdf></scan><note/></doc>
        </person>
        <person><name>B</name><portrait> b.jpg </portrait>
          <doc><scan><pdf>a1.pdf</pdf></scan><note>b1.m4a</note></doc>
        </person>
      </hh>
      <unknown><portrait>stray.jpg</portrait></unknown>
      <name>not-a-file.jpg</name>
      <meta><instanceID>uuid:n</instanceID></meta>
    </data>"""
    files = referenced_files(parse_instance(xml), nested_media_schema())
    assert files == ["cover.jpg", "a.jpg", "a1.pdf", "a1.m4a", "a2.pdf", "b.jpg", "b1.m4a"]


def test_referenced_files__names_that_can_never_be_stored_are_left_out():
    long_name = "é" * 128 + ".jpg"  # 260 UTF-8 bytes
    names = ["../../etc/passwd", "/abs/x.jpg", "..\\..\\x.jpg", "..", long_name,
             "CON", ".htaccess", "ملف.jpg", "ok.jpg"]
    persons = "".join(f"<person><portrait>{n}</portrait></person>" for n in names)
    xml = f'<data id="nested"><hh>{persons}</hh></data>'.encode()
    files = referenced_files(parse_instance(xml), nested_media_schema())
    assert files == ["CON", ".htaccess", "ملف.jpg", "ok.jpg"]
    assert not is_storable_file_name("a\x00b.jpg")
    assert is_storable_file_name("x" * 251 + ".jpg")
    assert not is_storable_file_name("x" * 252 + ".jpg")


def test_referenced_files__names_are_matched_exactly_not_normalised():
    nfc, nfd = "café.jpg", unicodedata.normalize("NFD", "café.jpg")
    xml = (f'<data id="nested"><hh><person><portrait>{nfc}</portrait></person>'
           f"<person><portrait>{nfd}</portrait></person></hh></data>").encode()
    assert referenced_files(parse_instance(xml), nested_media_schema()) == [nfc, nfd]


def test_referenced_files__of_an_encrypted_submission_are_media_then_xml_file():
    instance = parse_instance(submission("exit_interview_encrypted.xml"))
    expected = ["1718190000001.jpg.enc", "1718190000002.m4a.enc", "submission.xml.enc"]
    assert referenced_files(instance, None) == expected
    assert referenced_files(instance, schema_of("exit_interview_encrypted")) == expected


def test_referenced_files__without_a_schema_a_plaintext_submission_refers_to_nothing():
    assert referenced_files(parse_instance(submission("household_migration.xml")), None) == []


def test_referenced_files__a_form_without_file_fields_refers_to_nothing():
    instance = parse_instance(submission("household_migration.xml"))
    assert referenced_files(instance, schema_of("worker_registry")) == []


def test_referenced_files__are_the_same_when_the_template_scan_cannot_run(monkeypatch):
    xml = b"""<data id="nested" xmlns:jr="http://openrosa.org/javarosa"><cover>c.jpg</cover>
      <hh><person jr:template=""><portrait>template.jpg</portrait></person>
        <person><portrait>a.jpg</portrait></person></hh></data>"""

    def overflow(root):  # what libxml2 does past ten million elements in one step
        raise etree.XPathEvalError("unknown error")

    monkeypatch.setattr(sync.instance, "_ANY_TEMPLATE", overflow)
    assert referenced_files(parse_instance(xml), nested_media_schema()) == ["c.jpg", "a.jpg"]


def test_layout_of__is_built_once_per_schema_and_dropped_with_it():
    schema = nested_media_schema()
    assert layout_of(schema) is layout_of(schema)
    key = id(schema)
    del schema
    gc.collect()
    assert key not in sync.instance._LAYOUTS
