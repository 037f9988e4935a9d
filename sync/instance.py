"""Read an ODK Collect submission: its identity, its edit link, and the files it refers to.

The instance is the XML javarosa serialises from the form's primary instance (or, for an
encrypted form, the envelope the ODK encryption spec describes). Elements are matched by
local name, as in ``forms.xform``: ``orx:meta/orx:instanceID`` is ``meta/instanceID``.
Extraction follows ODK Central's ``Submission.fromXml`` and ``submission-attachments.js``.

instanceID rule (also applied to deprecatedID): the text, with outer XML whitespace
(space, tab, CR, LF) stripped, must be 1–255 characters with no whitespace, no control,
format (bidi overrides, zero-width), private-use or unassigned characters, no ``/`` or
``\\`` (a ``/`` would make export keys like ``uuid:x/roster[1]`` ambiguous), and not be
``.`` or ``..``. ``uuid:…`` IDs and other printable IDs (``bad-id:``, ``%2F``) pass. A
missing or blank instanceID is ``None``: the caller decides (a server UUID, as Central does),
except for an encrypted submission, which cannot be decrypted without it.
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Iterator
from dataclasses import dataclass

from lxml import etree

from forms.schema import Field, FormSchema
from forms.xml import XmlRejected, parse_xml

JR_NS = "http://openrosa.org/javarosa"
JR_TEMPLATE = f"{{{JR_NS}}}template"
MAX_ID_LENGTH = 255
MAX_FILE_NAME_BYTES = 255
_XML_WHITESPACE = " \t\r\n"
_CONTAINER_TYPES = frozenset({"structure", "repeat"})


class InstanceInvalid(ValueError):
    """The submission cannot be accepted; ``code`` is stable, the message is for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Instance:
    root: etree._Element
    root_name: str
    form_id: str
    version: str
    """The root's ``version`` attribute, ``""`` when absent (Central's convention)."""
    instance_id: str | None
    deprecated_id: str | None
    instance_name: str | None
    encrypted: bool = False
    encrypted_xml_file: str | None = None
    """The ``encryptedXmlFile`` name (usually ``submission.xml.enc``)."""
    encrypted_media: tuple[str, ...] = ()
    """The ``media/file`` names of an encrypted envelope, in document order."""
    base64_encrypted_key: str | None = None
    signature: str | None = None
    """``base64EncryptedElementSignature``."""


def parse_instance(xml: bytes) -> Instance:
    """Parse submission bytes, or raise :class:`InstanceInvalid`."""
    try:
        root = parse_xml(xml)
    except XmlRejected as exc:
        raise InstanceInvalid(_REJECTED_CODES[_reason(exc)], str(exc)) from None

    form_id = _attr(root, "id")
    if not form_id:
        raise InstanceInvalid("instance.no_form_id", "The form ID xml attribute is missing.")

    meta = _child(root, "meta")
    instance_id = _checked_id(
        _text(_child(meta, "instanceID")) or _text(_child(root, "instanceID"))
        or _attr(root, "instanceID"),
        "instanceID")
    deprecated_id = _checked_id(_text(_child(meta, "deprecatedID")), "deprecatedID")
    instance_name = _text(_child(meta, "instanceName")) or None

    identity = Instance(root, local_name(root), form_id, _attr(root, "version"),
                        instance_id, deprecated_id, instance_name)
    key = _text(_child(root, "base64EncryptedKey"))
    if _attr(root, "encrypted").lower() != "yes" and not key:
        return identity

    if instance_id is None:
        raise InstanceInvalid("instance.encrypted_without_id",
                              "An encrypted submission needs an instanceID to be decrypted.")
    xml_file = _text(_child(root, "encryptedXmlFile"))
    if not key or not xml_file:
        raise InstanceInvalid(
            "instance.encrypted_malformed",
            "An encrypted submission needs base64EncryptedKey and encryptedXmlFile.")
    files = element_children(_child(root, "media"), "file")
    media = tuple(name for name in map(_text, files) if name)
    return dataclasses.replace(
        identity,
        encrypted=True,
        encrypted_xml_file=xml_file,
        encrypted_media=media,
        base64_encrypted_key=key,
        signature=_text(_child(root, "base64EncryptedElementSignature")) or None,
    )


_REJECTED_CODES = {
    "dtd": "instance.dtd", "depth": "instance.too_deep", "syntax": "instance.unparseable"}


def _reason(exc: XmlRejected) -> str:
    # libxml2 stops at 256 levels before our own 128-level check sees the tree.
    return "depth" if "Excessive depth" in str(exc) else exc.reason


def is_valid_instance_id(value: str) -> bool:
    """The instanceID rule in the module docstring (``value`` already stripped)."""
    if not 0 < len(value) <= MAX_ID_LENGTH or value in (".", "..") or "/" in value \
            or "\\" in value:
        return False
    # No character of Unicode category Z* (whitespace and separators) or C* (controls,
    # format such as U+202E, surrogates, private use, unassigned): exactly what
    # str.isprintable() refuses, except the ASCII space.
    return value.isprintable() and " " not in value


def is_storable_file_name(name: str) -> bool:
    """Whether an attachment name can ever be stored: no ``/``, ``\\``, NUL, ``.``/``..``,
    at most 255 UTF-8 bytes. Names are otherwise opaque and matched exactly."""
    return (bool(name) and name not in (".", "..")
            and "/" not in name and "\\" not in name and "\x00" not in name
            and len(name.encode("utf-8", "surrogatepass")) <= MAX_FILE_NAME_BYTES)


def referenced_files(instance: Instance, schema: FormSchema | None) -> list[str]:
    """The attachment names the submission refers to, first occurrence order, no repeats.

    Plaintext: the values of the schema's binary fields at any depth, every repeat instance
    included (``jr:template`` copies excluded); without a schema nothing is known to be a
    file. Encrypted: the ``media/file`` names, then the ``encryptedXmlFile``. Values are
    stripped (as Central does) and matched as opaque strings; names that could never be
    stored (:func:`is_storable_file_name`) are left out.
    """
    if instance.encrypted:
        names = [*instance.encrypted_media, instance.encrypted_xml_file or ""]
    elif schema is None:
        names = []
    else:
        names = list(_binary_values(instance.root, layout_of(schema)))
    seen: set[str] = set()
    result: list[str] = []
    for name in names:
        if name and name not in seen and is_storable_file_name(name):
            seen.add(name)
            result.append(name)
    return result


def _binary_values(root: etree._Element, layout: Layout) -> Iterator[str]:
    """In document order; only groups and repeats with a file field inside are entered."""
    if not layout.files:
        return
    templates = has_templates(root)
    stack = [(root.iterchildren(etree.Element), layout.slots.get("", {}))]
    while stack:
        children, slots = stack[-1]
        for el in children:
            name = el.tag
            if name[0] == "{":
                name = local_name(el)
            slot = slots.get(name)
            if slot is None or not slot.files or (
                    templates and el.get(JR_TEMPLATE) is not None):
                continue
            if slot.container:
                # Enter it; this loop resumes where it stopped once the child is done.
                stack.append((el.iterchildren(etree.Element), layout.slots.get(slot.path, {})))
                break
            yield _text(el)
        else:
            stack.pop()


@dataclass(frozen=True)
class Slot:
    """What a schema says about one element of an instance."""

    path: str
    field: Field
    container: bool
    """A group or repeat (:func:`is_container`): it holds elements, not a value."""
    repeat: bool
    """A repeat instance: a row of its own."""
    files: bool
    """A binary field, or a container with a binary field at any depth."""


@dataclass(frozen=True)
class Layout:
    """A schema indexed for walking instances, so that an element is placed with one
    dictionary look-up. Derived from the schema alone, so built once per schema."""

    slots: dict[str, dict[str, Slot]]
    """Parent's path (``""`` for the root) → element's local name → slot. The same as
    ``schema.field(f"{parent}/{name}")``."""
    leaves: dict[str | None, tuple[str, ...]]
    """Table (``None`` for the submission, else the repeat's path) → paths of its leaf
    fields, in form order: the values of one row."""
    files: bool
    """Whether an instance can hold a file field at all."""

    @classmethod
    def of(cls, schema: FormSchema) -> Layout:
        by_path = {f.path: f for f in schema.fields}
        with_files = {parent for f in by_path.values() if f.binary and not is_container(f)
                      for parent in _ancestors(f.path)}
        slots: dict[str, dict[str, Slot]] = {}
        leaves: dict[str | None, list[str]] = {}
        for path, f in by_path.items():
            parent, slash, name = path.rpartition("/")
            if slash:
                container = is_container(f)
                slots.setdefault(parent, {})[name] = Slot(
                    path, f, container, f.kind == "repeat" or f.type == "repeat",
                    path in with_files if container else f.binary)
        for f in schema.fields:
            if not is_container(f):
                leaves.setdefault(f.repeat, []).append(f.path)
        return cls(slots, {table: tuple(paths) for table, paths in leaves.items()},
                   any(slot.files for slot in slots.get("", {}).values()))


def _ancestors(path: str) -> Iterator[str]:
    """``/a/b/c`` → ``/a/b``, ``/a``."""
    while (path := path.rpartition("/")[0]):
        yield path


_LAYOUTS: dict[int, Layout] = {}


def layout_of(schema: FormSchema) -> Layout:
    """The schema's :class:`Layout`, built on first use and kept as long as the schema
    object lives (ingestion keeps the schemas of recent form versions)."""
    layout = _LAYOUTS.get(id(schema))
    if layout is None:
        layout = _LAYOUTS[id(schema)] = Layout.of(schema)
        weakref.finalize(schema, _LAYOUTS.pop, id(schema), None)
    return layout


def is_container(field: Field) -> bool:
    """Groups and repeats (``/meta`` included) hold elements; everything else holds a value."""
    return field.type in _CONTAINER_TYPES or field.kind in ("group", "repeat")


def _checked_id(value: str, what: str) -> str | None:
    if not value:
        return None
    if not is_valid_instance_id(value):
        raise InstanceInvalid(
            "instance.bad_instance_id",
            f"The {what} must be 1-{MAX_ID_LENGTH} printable characters without whitespace, "
            "control characters or slashes.")
    return value


_ANY_TEMPLATE = etree.XPath("boolean(descendant::*/@jr:template)", namespaces={"jr": JR_NS})


def has_templates(el: etree._Element) -> bool:
    """Whether any element below ``el`` may have ``jr:template``: one scan in C, which costs
    less than asking every element (they almost never have one). ``True`` when the tree is
    too big for libxml2's XPath (over ten million elements), so every element is asked."""
    try:
        return _ANY_TEMPLATE(el)
    except etree.XPathEvalError:
        return True


def local_name(el: etree._Element) -> str:
    tag = el.tag  # "{namespace}name" or "name" (a string op: no QName object per element)
    return tag[tag.index("}") + 1:] if tag[0] == "{" else tag


def element_children(
    el: etree._Element | None, name: str | None = None
) -> list[etree._Element]:
    """Element children (no comments or processing instructions), by local name if given."""
    if el is None:
        return []
    return list(el.iterchildren(etree.Element if name is None else f"{{*}}{name}"))


def _child(el: etree._Element | None, name: str) -> etree._Element | None:
    """The first child element with this local name (found in C, no list)."""
    return None if el is None else next(el.iterchildren(f"{{*}}{name}"), None)


def own_text(el: etree._Element) -> str:
    """The element's own text, as sent: its text and the tails of its children (so a comment
    inside a value does not cut it short), without the text of child elements."""
    if not len(el):
        return el.text or ""
    return (el.text or "") + "".join(c.tail or "" for c in el)


def _attr(el: etree._Element, name: str) -> str:
    return (el.get(name) or "").strip(_XML_WHITESPACE)


def _text(el: etree._Element | None) -> str:
    return own_text(el).strip(_XML_WHITESPACE) if el is not None else ""
