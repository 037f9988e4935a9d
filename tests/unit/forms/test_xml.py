import time

import pytest

from forms.xml import MAX_DEPTH, XmlRejected, parse_xml

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE data [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<data id="x">&secret;</data>"""

BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol0 "lol">'
    + b"".join(b'<!ENTITY lol%d "%s">' % (i, b"&lol%d;" % (i - 1) * 10) for i in range(1, 10))
    + b"]><lolz>&lol9;</lolz>"
)


def nested(depth: int) -> bytes:
    return b"<a>" * depth + b"</a>" * depth


def test_parse_xml__returns_the_root_element():
    root = parse_xml(b'<?xml version="1.0"?><!-- hi --><data id="f"><q>1</q></data>')
    assert root.tag == "data"
    assert root.get("id") == "f"
    assert root.findtext("q") == "1"


def test_parse_xml__external_entity_doctype_is_rejected():
    with pytest.raises(XmlRejected, match="DTD not allowed") as exc:
        parse_xml(XXE)
    assert exc.value.reason == "dtd"


def test_parse_xml__billion_laughs_is_rejected_fast():
    started = time.perf_counter()
    with pytest.raises(XmlRejected) as exc:
        parse_xml(BILLION_LAUGHS)
    assert exc.value.reason == "dtd"
    assert time.perf_counter() - started < 0.5


def test_parse_xml__doctype_after_comments_and_processing_instructions_is_rejected():
    doc = b'\xef\xbb\xbf<?xml version="1.0"?>\n<!-- a > b -->\n<?pi x?>\n<!DOCTYPE a><a/>'
    with pytest.raises(XmlRejected, match="DTD not allowed"):
        parse_xml(doc)


def test_parse_xml__doctype_in_utf16_is_rejected_after_parsing():
    doc = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE a><a/>'.encode("utf-16")
    with pytest.raises(XmlRejected) as exc:
        parse_xml(doc)
    assert exc.value.reason == "dtd"


def test_parse_xml__doctype_text_inside_cdata_is_just_text():
    root = parse_xml(b"<a><![CDATA[<!DOCTYPE html>]]></a>")
    assert root.text == "<!DOCTYPE html>"


def test_parse_xml__very_deep_nesting_is_rejected_without_recursion_error():
    with pytest.raises(XmlRejected):
        parse_xml(nested(100_000))


def test_parse_xml__depth_limit_is_our_own_not_only_libxml2s():
    parse_xml(nested(MAX_DEPTH))
    with pytest.raises(XmlRejected) as exc:
        parse_xml(nested(MAX_DEPTH + 1))
    assert exc.value.reason == "depth"


@pytest.mark.parametrize("data", [
    b"<a>\xff\xfe</a>",
    b'<?xml version="1.0" encoding="UTF-8"?><a>caf\xe9</a>',
    b"",
    b"<a><b></a>",
    b"not xml at all",
])
def test_parse_xml__malformed_or_badly_encoded_input_is_rejected(data):
    with pytest.raises(XmlRejected, match="XML could not be parsed") as exc:
        parse_xml(data)
    assert exc.value.reason == "syntax"
