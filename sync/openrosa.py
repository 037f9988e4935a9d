"""OpenRosa protocol literals and the XML documents dodoso answers ODK Collect with.

Everything here mirrors what ODK Central sends (central-backend ``lib/formats/openrosa.js``
for the documents, ``lib/http/endpoint.js`` for the headers and the version check) and what
ODK Collect accepts (``OpenRosaResponseParserImpl.java``). Documents are built with lxml so
names with ``<&"`` or any script are escaped, never concatenated.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import format_datetime
from urllib.parse import quote

from lxml import etree

from server.errors import Problem, Problems

OPENROSA_VERSION = "1.0"
OPENROSA_VERSION_HEADER = "X-OpenRosa-Version"
ACCEPT_CONTENT_LENGTH_HEADER = "X-OpenRosa-Accept-Content-Length"
#: Central's value; Collect reads it only from the 204 answer to ``HEAD …/submission``.
DEFAULT_ACCEPT_CONTENT_LENGTH = 100_000_000

XML_SUBMISSION_FILE = "xml_submission_file"
INCOMPLETE_MARKER = "*isIncomplete*"

#: formList, manifest and OpenRosaResponse bodies (Collect requires ``text/xml`` on formList).
OPENROSA_CONTENT_TYPE = "text/xml; charset=utf-8"
#: The XForm download itself.
FORM_XML_CONTENT_TYPE = "application/xml; charset=utf-8"

XFORMS_LIST_NS = "http://openrosa.org/xforms/xformsList"
XFORMS_MANIFEST_NS = "http://openrosa.org/xforms/xformsManifest"
RESPONSE_NS = "http://openrosa.org/http/response"

SUBMISSION_SUCCESS = "full submission upload was successful!"

_MD5_HEX = re.compile(r"[0-9a-f]{32}")


def openrosa_headers(accept_content_length: int = DEFAULT_ACCEPT_CONTENT_LENGTH,
                     now: datetime | None = None) -> dict[str, str]:
    """The headers Central puts on every OpenRosa answer. A naive ``now`` is taken as UTC."""
    if now is None:
        date = _http_date_now()
    else:
        moment = now if now.tzinfo is not None else now.replace(tzinfo=timezone.utc)
        date = format_datetime(moment.astimezone(timezone.utc), usegmt=True)
    return {
        OPENROSA_VERSION_HEADER: OPENROSA_VERSION,
        ACCEPT_CONTENT_LENGTH_HEADER: str(int(accept_content_length)),
        "Date": date,
        "Content-Language": "en",
    }


_last_date: tuple[int, str] = (0, "")


def _http_date_now() -> str:
    """``Date`` has a resolution of one second: format it once per second."""
    global _last_date
    second = int(time.time())
    cached_second, text = _last_date
    if cached_second != second:
        text = format_datetime(datetime.fromtimestamp(second, timezone.utc), usegmt=True)
        _last_date = (second, text)
    return text


def check_openrosa_version(headers: Mapping[str, str]) -> None:
    """Refuse (400.2) a request without ``X-OpenRosa-Version: 1.0``, as Central does.

    Central compares the header to ``"1.0"`` exactly; only surrounding whitespace is
    forgiven here. ``Date`` is not checked: Collect localises it (Central gave up too).
    """
    value = _header(headers, OPENROSA_VERSION_HEADER)
    if value is None or value.strip() != OPENROSA_VERSION:
        extra = {} if value is None else {"value": value}
        raise Problems.missing_header(field=OPENROSA_VERSION_HEADER, **extra)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    wanted = name.lower()
    return next((v for k, v in headers.items() if k.lower() == wanted), None)


# --- OpenRosaResponse ----------------------------------------------------------------------


def response_xml(message: str, *, nature: str = "") -> bytes:
    """``<OpenRosaResponse items="0"><message nature=…>`` — Collect shows the first message."""
    root = etree.Element(f"{{{RESPONSE_NS}}}OpenRosaResponse", nsmap={None: RESPONSE_NS})
    root.set("items", "0")
    msg = etree.SubElement(root, f"{{{RESPONSE_NS}}}message")
    msg.set("nature", nature)
    msg.text = message
    return etree.tostring(root, encoding="UTF-8", xml_declaration=False)


SUBMISSION_SUCCESS_XML = response_xml(SUBMISSION_SUCCESS)


def problem_xml(problem: Problem) -> bytes:
    """A Problem on the OpenRosa surface (the HTTP status is ``problem.status``)."""
    return response_xml(problem.message, nature="error")


# --- formList -----------------------------------------------------------------------------


@dataclass(frozen=True)
class FormListEntry:
    """One ``<xform>``; ``manifest_url`` is ``None`` unless the form has media."""

    form_id: str
    name: str | None
    version: str | None
    hash_md5: str
    download_url: str
    manifest_url: str | None = None


def form_list_xml(entries: Iterable[FormListEntry]) -> bytes:
    """The OpenRosa xformsList document, entries in the order given.

    Collect drops the *whole* list if any entry lacks formID, name or downloadUrl, so a
    bad entry raises ``ValueError`` here instead. Like Central, an empty name falls back
    to the form ID, and ``<version>`` is always present (empty for an unversioned form,
    which Collect reads as no version).
    """
    root = etree.Element(f"{{{XFORMS_LIST_NS}}}xforms", nsmap={None: XFORMS_LIST_NS})
    for entry in entries:
        if not entry.form_id or not entry.download_url:
            raise ValueError(f"formList entry needs a form ID and a download URL: {entry!r}")
        xform = etree.SubElement(root, f"{{{XFORMS_LIST_NS}}}xform")
        _child(xform, XFORMS_LIST_NS, "formID", entry.form_id)
        _child(xform, XFORMS_LIST_NS, "name", entry.name or entry.form_id)
        _child(xform, XFORMS_LIST_NS, "version", entry.version or "")
        _child(xform, XFORMS_LIST_NS, "hash", md5_hash_value(entry.hash_md5))
        _child(xform, XFORMS_LIST_NS, "downloadUrl", entry.download_url)
        if entry.manifest_url is not None:
            _child(xform, XFORMS_LIST_NS, "manifestUrl", entry.manifest_url)
    return _document(root)


# --- manifest -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ManifestFile:
    """One ``<mediaFile>``: a form attachment whose content is present."""

    name: str
    hash_md5: str
    download_url: str


def manifest_xml(files: Iterable[ManifestFile]) -> bytes:
    """The OpenRosa xformsManifest document.

    Pass only attachments that have content. Central lists an expected attachment only once
    a file (or an entity list) backs it — a missing one is simply absent, so Collect
    downloads the form without it. Collect throws away the whole manifest if any entry lacks
    a filename, hash or URL (silently, on the tablet), so such an entry raises ``ValueError``.
    """
    root = etree.Element(f"{{{XFORMS_MANIFEST_NS}}}manifest", nsmap={None: XFORMS_MANIFEST_NS})
    for f in files:
        if not f.name or not f.download_url:
            raise ValueError(f"manifest entry needs a file name and a download URL: {f!r}")
        media = etree.SubElement(root, f"{{{XFORMS_MANIFEST_NS}}}mediaFile")
        _child(media, XFORMS_MANIFEST_NS, "filename", f.name)
        _child(media, XFORMS_MANIFEST_NS, "hash", md5_hash_value(f.hash_md5))
        _child(media, XFORMS_MANIFEST_NS, "downloadUrl", f.download_url)
    return _document(root)


def md5_hash_value(md5_hex: str) -> str:
    """``md5:<hex>`` as formList and manifest carry it; Collect refuses a form without it."""
    value = md5_hex.lower()
    if not _MD5_HEX.fullmatch(value):
        raise ValueError(f"not an MD5 hex digest: {md5_hex!r}")
    return "md5:" + value


def url_component(value: str) -> str:
    """Percent-encode one path segment exactly like JavaScript's ``encodeURIComponent``.

    Central builds ``…/forms/<id>.xml`` and ``…/attachments/<name>`` this way.
    """
    return quote(value, safe="!'()*~")


def _child(parent: etree._Element, ns: str, tag: str, text: str) -> None:
    etree.SubElement(parent, f"{{{ns}}}{tag}").text = text


def _document(root: etree._Element) -> bytes:
    return etree.tostring(root, encoding="UTF-8", xml_declaration=True)


# --- ETags --------------------------------------------------------------------------------

_ETAG_TOKEN = re.compile(r'\s*(?:W/)?(?:"([^"]*)"|([^\s,]+))\s*(?:,|$)')


def etag(md5_hex: str) -> str:
    """A strong ETag for content addressed by its MD5, as Central sends for forms and media."""
    return f'"{md5_hex}"'


def if_none_match(header_value: str | None, etag: str) -> bool:
    """True when ``If-None-Match`` already names ``etag`` (answer 304).

    Compares weakly (RFC 9110 §13.1.2): a proxy that gzips may have turned our tag into
    ``W/"…"``. Accepts a list, ``*``, and the bare unquoted values some clients send.
    """
    if not header_value:
        return False
    ours = _opaque(etag)
    for match in _ETAG_TOKEN.finditer(header_value):
        quoted, bare = match.groups()
        if bare == "*" or (quoted if quoted is not None else bare) == ours:
            return True
    return False


def _opaque(tag: str) -> str:
    tag = tag.strip()
    if tag.startswith("W/"):
        tag = tag[2:]
    if len(tag) >= 2 and tag[0] == tag[-1] == '"':
        tag = tag[1:-1]
    return tag
