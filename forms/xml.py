"""The one way to parse untrusted XML (forms, submissions, anything uploaded).

No DTDs at all: a DOCTYPE is how entity expansion (billion laughs) and external entities
(XXE) get in, and no ODK document needs one. Depth is capped so that code walking the tree
can never hit Python's recursion limit.
"""

from __future__ import annotations

import threading
from typing import Literal

from lxml import etree

MAX_DEPTH = 128
_UTF8_BOM = b"\xef\xbb\xbf"

Reason = Literal["dtd", "syntax", "depth"]


class XmlRejected(ValueError):
    """The bytes are not XML we are willing to read. ``reason`` says which rule refused it."""

    def __init__(self, message: str, reason: Reason) -> None:
        super().__init__(message)
        self.reason = reason


_per_thread = threading.local()


def _parser() -> etree.XMLParser:
    # A parser must not be used by two threads at once, and making one per call costs a good
    # part of parsing a small document: each thread keeps its own.
    parser = getattr(_per_thread, "parser", None)
    if parser is None:
        parser = _per_thread.parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            dtd_validation=False,
            load_dtd=False,
            huge_tree=False,
        )
    return parser


_TOO_DEEP = etree.XPath("boolean(/*" + "/*" * MAX_DEPTH + ")")
"""Whether an element is nested deeper than ``MAX_DEPTH``: one walk in C, none in Python.
(lxml serialises the calls of one evaluator made from several threads.)"""


def parse_xml(data: bytes) -> etree._Element:
    """Parse ``data`` into its root element, or raise :class:`XmlRejected`."""
    if _prolog_has_doctype(data):
        raise XmlRejected("DTD not allowed", "dtd")
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        raise XmlRejected(f"XML could not be parsed: {exc}", "syntax") from None
    if root.getroottree().docinfo.doctype:
        # Reached only by encodings the byte scan cannot read (UTF-16 and friends).
        raise XmlRejected("DTD not allowed", "dtd")
    _check_depth(root)
    return root


def _prolog_has_doctype(data: bytes) -> bool:
    """Spot a DOCTYPE before libxml2 reads its entity declarations.

    Skips the XML declaration, processing instructions, comments and whitespace, in linear
    time; only ASCII-compatible encodings are recognised here.
    """
    i = len(_UTF8_BOM) if data.startswith(_UTF8_BOM) else 0
    n = len(data)
    while True:
        while i < n and data[i] in b" \t\r\n":
            i += 1
        if data.startswith(b"<?", i):
            end, close = data.find(b"?>", i + 2), 2
        elif data.startswith(b"<!--", i):
            end, close = data.find(b"-->", i + 4), 3
        else:
            return data.startswith(b"<!DOCTYPE", i)
        if end < 0:
            return False
        i = end + close


def _check_depth(root: etree._Element) -> None:
    try:
        too_deep = _TOO_DEEP(root)
    except etree.XPathEvalError:
        # libxml2's XPath holds at most ten million elements per step: walk in Python.
        too_deep = _walk_deeper_than_max(root)
    if too_deep:
        raise XmlRejected(f"XML nested deeper than {MAX_DEPTH} elements", "depth")


def _walk_deeper_than_max(root: etree._Element) -> bool:
    depth = 0
    for event, _ in etree.iterwalk(root, events=("start", "end")):
        depth += 1 if event == "start" else -1
        if depth > MAX_DEPTH:
            return True
    return False
