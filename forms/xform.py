"""Read what the server needs out of an ODK XForm: identity, field schema, media, entities.

Works on pyxform's output and on hand-written XForms alike, so elements are matched by local
name (``orx:meta`` is ``meta``) and body references may be relative to their group, as the
ODK XForms spec allows. Expressions are never evaluated: the few XPath facts we need (which
CSV columns a form reads) come from a small tokenizer.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from lxml import etree

from forms.issues import FormInvalid, FormIssue
from forms.schema import DEFAULT_LANGUAGE, Choice, ChoiceList, Field, FieldKind, FormSchema
from forms.xml import XmlRejected, parse_xml

JR_NS = "http://openrosa.org/javarosa"

MediaKind = Literal["image", "audio", "video", "file", "file-csv"]
MediaUsage = Literal["label_media", "itemset", "pulldata", "external_instance", "search", "default"]

_JR_MEDIA = re.compile(r"^jr://(images|audio|video|file|file-csv)/([^/]+)$")
_MEDIA_KINDS: dict[str, MediaKind] = {
    "images": "image", "audio": "audio", "video": "video", "file": "file", "file-csv": "file-csv",
}
_LABEL_MEDIA_FORMS = frozenset({"image", "big-image", "audio", "video"})
_ITEXT_CALL = re.compile(r"""^\s*jr:itext\(\s*(?:'([^']*)'|"([^"]*)"|([\w.\-]+))\s*\)\s*$""")
_INSTANCE_CALL = re.compile(r"""^\s*instance\(\s*['"]([^'"]+)['"]\s*\)(.*)$""", re.S)
_SEARCH_APPEARANCE = re.compile(r"""^\s*(?:\w*\s+)?search\s*\(\s*(["'])(.+?)\1""")
_SIMPLE_NAME = re.compile(r"^[A-Za-z_][\w.\-]*$")
_PLAIN_REF = re.compile(r"^[\w.:/\-]+$")

_BIND_TYPES = {
    "string": "string", "int": "int", "integer": "int", "long": "int", "short": "int",
    "decimal": "decimal", "double": "decimal", "float": "decimal",
    "date": "date", "time": "time", "dateTime": "dateTime",
    "geopoint": "geopoint", "geotrace": "geotrace", "geoshape": "geoshape",
    "binary": "binary", "barcode": "barcode", "boolean": "boolean",
    "select1": "select1", "select": "select", "rank": "rank",
}
_SELECT_CONTROLS = {"select1": "select1", "select": "select", "rank": "rank"}
_CONTROLS = frozenset({
    "input", "select1", "select", "rank", "upload", "trigger", "textarea", "secret", "range",
    "group", "repeat",
})


class XFormInvalid(FormInvalid):
    """The XForm cannot be read at all (not XML, no primary instance, no form id)."""


@dataclass(frozen=True)
class MediaRef:
    """A file the form expects to be attached, and what it is for.

    One file used two ways (a CSV behind both a select and ``pulldata``) gives two refs.
    """

    name: str
    kind: MediaKind
    usage: MediaUsage
    instance_id: str | None = None


@dataclass(frozen=True)
class EntityDeclaration:
    """One ``<entity>`` in the instance (ODK entities spec) and the fields saved to it."""

    dataset: str
    actions: tuple[str, ...]
    """``create`` and/or ``update``, as declared (their conditions are evaluated per submission)."""
    properties: tuple[tuple[str, str], ...]
    """(field path, property name) pairs, in bind order."""
    path: str = "/meta/entity"

    def to_json(self) -> dict[str, object]:
        return {"dataset": self.dataset, "actions": list(self.actions), "path": self.path,
                "properties": [{"path": p, "property": name} for p, name in self.properties]}


@dataclass(frozen=True)
class XFormInfo:
    form_id: str
    version: str | None
    title: str | None
    instance_name: str
    encryption_key: str | None
    """The base64 RSA public key submissions are encrypted with (``None``: not encrypted)."""
    submission_action: str | None
    submission_method: str | None
    schema: FormSchema
    media: tuple[MediaRef, ...]
    entities: tuple[EntityDeclaration, ...]
    csv_columns: dict[str, set[str]]
    """CSV attachment name → the columns the form reads from it (selects, lookups, pulldata)."""


def parse_xform(xml: bytes) -> XFormInfo:
    """Read an XForm, or raise :class:`XFormInvalid` if it has no usable primary instance."""
    try:
        root = parse_xml(xml)
    except XmlRejected as exc:
        code = "xform.dtd" if exc.reason == "dtd" else "xform.unparseable"
        raise XFormInvalid([_error(code, str(exc))]) from None

    model = _child(_child(root, "head"), "model")
    instances = list(_children(model, "instance"))
    primary = next(_children(instances[0]), None) if instances else None
    if model is None or primary is None:
        raise XFormInvalid([_error(
            "xform.no_instance", "The XForm has no <model> with a primary <instance>.")])
    form_id = (primary.get("id") or "").strip()
    if not form_id:
        raise XFormInvalid([_error(
            "xform.no_id", "The primary instance root has no id attribute (the form ID).")])
    return _Reader(root, model, instances, primary).read(form_id)


def _error(code: str, message: str) -> FormIssue:
    return FormIssue(level="error", code=code, message=message)


@dataclass
class _Control:
    """What the body says about one instance node."""

    kind: str
    labels: dict[str, str]
    appearance: str | None = None
    choice_list: str | None = None
    choice_filter: bool = False


class _Reader:
    """One pass over one XForm. Holds the lookups the steps share; used once, then dropped."""

    def __init__(self, root: etree._Element, model: etree._Element,
                 instances: list[etree._Element], primary: etree._Element) -> None:
        self.root = root
        self.model = model
        self.primary = primary
        self.root_name = _local(primary)
        self.secondary = {i.get("id"): i for i in instances[1:] if i.get("id")}
        self.itext, self.languages, self.default_language = self._read_itext()
        self.binds = self._read_binds()
        self.controls: dict[str, _Control] = {}
        self.repeats: set[str] = set()
        self.groups: set[str] = set()
        self.choice_lists: dict[str, ChoiceList] = {}
        self.body_media: list[MediaRef] = []
        self.csv_columns: dict[str, set[str]] = {}
        self.instance_usage: dict[str, list[MediaUsage]] = {}

    def read(self, form_id: str) -> XFormInfo:
        self._read_body()
        fields, entities, defaults = self._read_fields()
        self._read_expressions()
        submission = _child(self.model, "submission")
        version = _attrs(self.primary).get("version", "").strip()
        title = _text(_child(_child(self.root, "head"), "title"))
        return XFormInfo(
            form_id=form_id,
            version=version or None,
            title=title or None,
            instance_name=self.root_name,
            encryption_key=_attr(submission, "base64RsaPublicKey"),
            submission_action=_attr(submission, "action"),
            submission_method=_attr(submission, "method"),
            schema=FormSchema(
                fields=tuple(fields),
                choice_lists=self.choice_lists,
                languages=self.languages,
                default_language=self.default_language,
            ),
            media=self._media(defaults),
            entities=self._entities(entities),
            csv_columns=self.csv_columns,
        )

    # -- model --------------------------------------------------------------------------

    def _read_itext(self) -> tuple[dict[str, dict[str, str]], tuple[str, ...], str | None]:
        """Language → text id → the plain text (media forms are not labels)."""
        itext: dict[str, dict[str, str]] = {}
        default = None
        for translation in self.model.iterfind("{*}itext/{*}translation"):
            lang = translation.get("lang") or DEFAULT_LANGUAGE
            if default is None and (translation.get("default") or "").strip() in ("true()", "true"):
                default = lang
            texts = itext.setdefault(lang, {})
            for text in _children(translation, "text"):
                by_form = {v.get("form"): v for v in reversed(list(_children(text, "value")))}
                plain = by_form.get(None, by_form.get("long"))
                if text.get("id") and plain is not None:
                    texts[text.get("id")] = _render(plain)
        languages = tuple(itext)
        return itext, languages, default or (languages[0] if languages else None)

    def _read_binds(self) -> dict[str, dict[str, str]]:
        """Field path (or ``/meta/entity/@id``) → bind attributes by local name."""
        binds: dict[str, dict[str, str]] = {}
        for bind in _children(self.model, "bind"):
            path = self._field_path(bind.get("nodeset") or bind.get("ref") or "")
            if path is not None:
                merged = binds.setdefault(path, {})
                for key, value in _attrs(bind).items():
                    merged.setdefault(key, value)
        return binds

    def _field_path(self, ref: str, context: str = "") -> str | None:
        """``/data/orx:meta/orx:instanceID`` → ``/meta/instanceID``; ``None`` if not a plain path.

        Relative refs are resolved against ``context`` (a field path; ``""`` is the root).
        """
        ref = ref.strip()
        if not ref or any(c in ref for c in "[(*|"):
            return None
        if ref.startswith("/"):
            steps = [s.split(":")[-1] for s in ref[1:].split("/")]
            if not steps or steps[0] != self.root_name:
                return None
            steps = steps[1:]
        else:
            steps = [s for s in context.split("/") if s]
            for step in ref.split("/"):
                if step == "..":
                    if not steps:
                        return None
                    steps.pop()
                elif step not in (".", ""):
                    steps.append(step.split(":")[-1])
        return "/" + "/".join(steps) if steps else None

    # -- body ---------------------------------------------------------------------------

    def _read_body(self) -> None:
        body = _child(self.root, "body")
        if body is None:
            return
        stack: list[tuple[etree._Element, str]] = [(c, "") for c in reversed(list(_children(body)))]
        while stack:
            el, context = stack.pop()
            kind = _local(el)
            if kind not in _CONTROLS:
                continue
            path = self._field_path(el.get("nodeset" if kind == "repeat" else "ref") or "", context)
            if kind in ("group", "repeat"):
                if path is not None:
                    (self.repeats if kind == "repeat" else self.groups).add(path)
                    # pyxform labels the <group> that wraps a <repeat> of the same path.
                    label = _child(el, "label")
                    if label is not None or path not in self.controls:
                        self.controls[path] = _Control(
                            kind, self._labels(label), el.get("appearance"))
                stack.extend((c, path or context) for c in reversed(list(_children(el))))
            elif path is not None:
                self._read_control(el, kind, path)

    def _read_control(self, el: etree._Element, kind: str, path: str) -> None:
        control = _Control(kind, self._labels(_child(el, "label")), el.get("appearance"))
        if kind in _SELECT_CONTROLS:
            itemset = _child(el, "itemset")
            if itemset is not None:
                control.choice_list, control.choice_filter = self._read_itemset(itemset)
            else:
                control.choice_list = path
                self.choice_lists.setdefault(path, ChoiceList(path, tuple(
                    Choice(_text(_child(item, "value")), self._labels(_child(item, "label")))
                    for item in _children(el, "item")), "inline"))
            match = _SEARCH_APPEARANCE.match(control.appearance or "")
            if match:
                name = match.group(2).removesuffix(".csv") + ".csv"
                self.body_media.append(MediaRef(name, "file-csv", "search"))
        if kind == "input" and el.get("query"):
            self.body_media.append(MediaRef("itemsets.csv", "file-csv", "itemset"))
        self.controls[path] = control

    def _read_itemset(self, itemset: etree._Element) -> tuple[str | None, bool]:
        nodeset = itemset.get("nodeset") or ""
        tokens = _tokenize(nodeset)
        filtered = ("op", "[") in tokens
        value_ref = (_attr(_child(itemset, "value"), "ref") or "").strip()
        label_ref = (_attr(_child(itemset, "label"), "ref") or "").strip()
        match = _INSTANCE_CALL.match(nodeset)
        if match is None:
            # Choices from a repeat answered earlier in the same submission.
            name = self._field_path(nodeset.split("[")[0])
            if name is not None:
                self.choice_lists.setdefault(name, ChoiceList(name, (), "repeat"))
            return name, filtered
        instance_id = match.group(1)
        instance = self.secondary.get(instance_id)
        if instance is None:
            return None, filtered
        self.instance_usage.setdefault(instance_id, []).append("itemset")
        src = _media_name(instance.get("src") or "")
        if src is not None:
            self.choice_lists.setdefault(instance_id, ChoiceList(instance_id, (), "file"))
            if src[1].lower().endswith(".csv"):
                refs = {r for r in (value_ref, label_ref) if _SIMPLE_NAME.match(r)}
                columns = self.csv_columns.setdefault(src[1], set())
                columns |= refs
                for ref_id, used in _instance_columns(tokens):
                    if ref_id == instance_id:
                        columns |= used
        elif instance_id not in self.choice_lists:
            self.choice_lists[instance_id] = ChoiceList(instance_id, tuple(
                self._item_choice(item, value_ref, label_ref)
                for item in _items(instance, match.group(2))), "instance")
        return instance_id, filtered

    def _item_choice(self, item: etree._Element, value_ref: str, label_ref: str) -> Choice:
        itext = _ITEXT_CALL.match(label_ref)
        if itext:
            # jr:itext(itextId) names the child holding the text id; jr:itext('x') is the id.
            key = itext.group(3)
            labels = self._itext_labels(
                _text(_child(item, key)) if key else itext.group(1) or itext.group(2))
        else:
            label = _text(_child(item, label_ref)) if _SIMPLE_NAME.match(label_ref) else ""
            labels = {DEFAULT_LANGUAGE: label} if label else {}
        value = _text(_child(item, value_ref)) if _SIMPLE_NAME.match(value_ref) else ""
        return Choice(value, labels)

    def _labels(self, label: etree._Element | None) -> dict[str, str]:
        if label is None:
            return {}
        match = _ITEXT_CALL.match(label.get("ref") or "")
        if match and (match.group(1) or match.group(2)):
            labels = self._itext_labels(match.group(1) or match.group(2))
            if labels:
                return labels
        text = _render(label)
        return {DEFAULT_LANGUAGE: text} if text else {}

    def _itext_labels(self, text_id: str) -> dict[str, str]:
        return {lang: texts[text_id] for lang, texts in self.itext.items() if text_id in texts}

    # -- instance -----------------------------------------------------------------------

    def _read_fields(self) -> tuple[list[Field], list[tuple[str, etree._Element]], list[str]]:
        """Fields in document order, one per path: later repeat instances and ``jr:template``
        copies add nothing. Also returns the ``<entity>`` elements and default texts."""
        fields: list[Field] = []
        entities: list[tuple[str, etree._Element]] = []
        defaults: list[str] = []
        seen: set[str] = set()
        stack = [(c, "", None) for c in reversed(list(_children(self.primary)))]
        while stack:
            el, parent, repeat = stack.pop()
            name = _local(el)
            path = f"{parent}/{name}"
            if path in seen:
                continue
            seen.add(path)
            children = list(_children(el))
            bind = self.binds.get(path, {})
            control = self.controls.get(path)
            is_entity = name == "entity" and parent.endswith("/meta")
            if path in self.repeats or el.get(f"{{{JR_NS}}}template") is not None:
                type_ = "repeat"
            elif children or path in self.groups or is_entity:
                type_ = "structure"
            else:
                type_ = _BIND_TYPES.get(bind.get("type", "string").split(":")[-1], "string")
                if control is not None and control.kind in _SELECT_CONTROLS:
                    type_ = _SELECT_CONTROLS[control.kind]
                if el.text and el.text.strip():
                    defaults.append(el.text.strip())
            if is_entity:
                entities.append((path, el))
            fields.append(Field(
                path=path,
                name=name,
                type=type_,
                kind=_kind(path, type_, bind),
                repeat=repeat,
                group=parent or None,
                order=len(fields),
                binary=type_ == "binary" or path == "/meta/audit",
                choice_list=control.choice_list if control else None,
                choice_filter=control.choice_filter if control else False,
                labels=control.labels if control else {},
                appearance=control.appearance if control else None,
                required=bind.get("required", "false()").strip() not in ("false()", "false", ""),
                relevant=_stripped(bind.get("relevant")),
                calculate=_stripped(bind.get("calculate")),
            ))
            inner = path if type_ == "repeat" else repeat
            stack.extend((c, path, inner) for c in reversed(children))
        return fields, entities, defaults

    def _entities(
        self, entities: list[tuple[str, etree._Element]]
    ) -> tuple[EntityDeclaration, ...]:
        """Each saved field belongs to the entity declared in its nearest container (the
        root, or a repeat with its own ``meta/entity``)."""
        containers = {path: path.removesuffix("/meta/entity") for path, _ in entities}

        def owner(field_path: str) -> str | None:
            candidates = [p for p, c in containers.items() if field_path.startswith(f"{c}/")]
            return max(candidates, key=len, default=None)

        saved = [(path, bind["saveto"]) for path, bind in self.binds.items() if "saveto" in bind]
        return tuple(
            EntityDeclaration(
                dataset=el.get("dataset") or "",
                actions=tuple(a for a in ("create", "update") if el.get(a) is not None),
                properties=tuple((f, prop) for f, prop in saved if owner(f) == path),
                path=path,
            )
            for path, el in entities
        )

    # -- expressions --------------------------------------------------------------------

    def _read_expressions(self) -> None:
        """Find the CSV lookups in binds and setvalues: ``pulldata()`` and ``instance()``."""
        # Skip pyxform's entity plumbing (@baseVersion reads the dataset's __version …).
        expressions = [v for path, bind in self.binds.items() if "/@" not in path
                       for v in bind.values()]
        setvalues = [*_children(self.model, "setvalue"), *_body_iter(self.root, "setvalue")]
        expressions += [el.get("value") or "" for el in setvalues]
        for expression in expressions:
            if "pulldata" not in expression and "instance" not in expression:
                continue
            tokens = _tokenize(expression)
            for instance_id, args in _pulldata_calls(tokens):
                self.instance_usage.setdefault(instance_id, []).append("pulldata")
                columns = self.csv_columns.setdefault(self._csv_name(instance_id), set())
                columns.update(a for a in args if a)
            for instance_id, columns in _instance_columns(tokens):
                instance = self.secondary.get(instance_id)
                src = _media_name(instance.get("src") or "") if instance is not None else None
                if src is not None and src[1].lower().endswith(".csv"):
                    self.csv_columns.setdefault(src[1], set()).update(columns)

    def _csv_name(self, instance_id: str) -> str:
        instance = self.secondary.get(instance_id)
        src = _media_name(instance.get("src") or "") if instance is not None else None
        return src[1] if src is not None else f"{instance_id}.csv"

    # -- media --------------------------------------------------------------------------

    def _media(self, defaults: list[str]) -> tuple[MediaRef, ...]:
        refs: list[MediaRef] = []
        for instance_id, instance in self.secondary.items():
            src = _media_name(instance.get("src") or "")
            if src is not None:
                usages = self.instance_usage.get(instance_id) or ["external_instance"]
                refs += [MediaRef(src[1], src[0], u, instance_id) for u in usages]
        declared = {r.instance_id for r in refs}
        for instance_id, usages in self.instance_usage.items():
            if instance_id not in declared and "pulldata" in usages:
                refs.append(MediaRef(f"{instance_id}.csv", "file-csv", "pulldata"))
        for value in self.model.iterfind("{*}itext/{*}translation/{*}text/{*}value[@form]"):
            found = _media_name(_text(value))
            if value.get("form") in _LABEL_MEDIA_FORMS and found is not None:
                refs.append(MediaRef(found[1], found[0], "label_media"))
        for text in defaults:
            found = _media_name(text)
            if found is not None:
                refs.append(MediaRef(found[1], found[0], "default"))
        refs += self.body_media
        return tuple(dict.fromkeys(refs))


def _kind(path: str, type_: str, bind: dict[str, str]) -> FieldKind:
    """Metadata is the ``meta`` group (instanceID, audit, entity …) and preloaded values
    (start, end, deviceid …): recorded by the device, never asked."""
    if "meta" in path.split("/") or "preload" in bind:
        return "meta"
    if type_ == "repeat":
        return "repeat"
    return "group" if type_ == "structure" else "question"


def _render(el: etree._Element) -> str:
    """The text of a label, with ``<output value="/data/x"/>`` shown as ``${x}``, the way
    the form's author wrote it (other expressions are shown whole)."""
    parts = [el.text or ""]
    for child in el:
        if isinstance(child.tag, str) and _local(child) == "output":
            value = (child.get("value") or "").strip()
            name = value.rsplit("/", 1)[-1].split(":")[-1]
            plain = _PLAIN_REF.match(value) and name not in (".", "..")
            parts.append("${" + (name if plain else value) + "}")
        parts.append(child.tail or "")
    return "".join(parts).strip()


def _items(instance: etree._Element, rest: str) -> list[etree._Element]:
    """The elements a secondary-instance path (``/root/item[...]``) names, ignoring filters."""
    steps = [s for s in re.sub(r"\[[^\]]*\]", "", rest).split("/") if s.strip()]
    level = [instance]
    for step in steps:
        level = [c for el in level for c in _children(el, step.strip().split(":")[-1])]
    return level


def _media_name(uri: str) -> tuple[MediaKind, str] | None:
    match = _JR_MEDIA.match(uri.strip())
    return (_MEDIA_KINDS[match.group(1)], match.group(2)) if match else None


# -- XPath tokens: enough to find CSV lookups without evaluating anything ----------------

_TOKEN = re.compile(r"""
    \s*(?:
      (?P<str>"[^"]*"|'[^']*')
    | (?P<num>\d+(?:\.\d*)?|\.\d+)
    | (?P<name>[^\W\d][\w.\-]*(?::[^\W\d][\w.\-]*)?)
    | (?P<op>//|\.\.|!=|<=|>=|::|[/.@\[\](),|=<>+\-*$])
    | (?P<other>\S)
    )""", re.X)
_OPERATOR_NAMES = frozenset({"and", "or", "div", "mod"})
Token = tuple[str, str]


def _tokenize(expression: str) -> list[Token]:
    tokens = []
    for match in _TOKEN.finditer(expression):
        kind = match.lastgroup
        if kind is not None:
            tokens.append((kind, match.group(kind)))
    return tokens


def _is_call(tokens: list[Token], i: int, name: str) -> bool:
    return tokens[i] == ("name", name) and i + 1 < len(tokens) and tokens[i + 1] == ("op", "(")


def _call_args(tokens: list[Token], open_at: int) -> tuple[list[list[Token]], int]:
    """Split the arguments of the call whose ``(`` is at ``open_at``; also return the index
    just past its ``)``."""
    args: list[list[Token]] = [[]]
    depth = 0
    for i in range(open_at + 1, len(tokens)):
        token = tokens[i]
        if token in (("op", "("), ("op", "[")):
            depth += 1
        elif token in (("op", ")"), ("op", "]")):
            if depth == 0:
                return args, i + 1
            depth -= 1
        elif token == ("op", ",") and depth == 0:
            args.append([])
            continue
        args[-1].append(token)
    return args, len(tokens)


def _literal(arg: list[Token]) -> str | None:
    return arg[0][1][1:-1] if len(arg) == 1 and arg[0][0] == "str" else None


def _pulldata_calls(tokens: list[Token]) -> Iterator[tuple[str, list[str | None]]]:
    """``pulldata('fees', 'fee', 'country', …)`` → ``('fees', ['fee', 'country'])``."""
    for i in range(len(tokens)):
        if _is_call(tokens, i, "pulldata"):
            args, _ = _call_args(tokens, i + 1)
            instance_id = _literal(args[0])
            if instance_id:
                yield instance_id, [_literal(a) for a in args[1:3]]


def _instance_columns(tokens: list[Token]) -> Iterator[tuple[str, set[str]]]:
    """``instance('x')/root/item[col = …]/other`` → ``('x', {'col', 'other'})``."""
    for i in range(len(tokens)):
        if not _is_call(tokens, i, "instance"):
            continue
        args, j = _call_args(tokens, i + 1)
        instance_id = _literal(args[0])
        if not instance_id:
            continue
        steps: list[str] = []
        columns: set[str] = set()
        while j < len(tokens):
            if tokens[j] == ("op", "/") and j + 1 < len(tokens) and tokens[j + 1][0] == "name":
                steps.append(tokens[j + 1][1])
                j += 2
            elif tokens[j] == ("op", "["):
                predicate, j = _call_args(tokens, j)
                if len(steps) == 2:
                    columns |= _predicate_names([t for arg in predicate for t in arg])
            else:
                break
        columns.update(steps[2:3])
        yield instance_id, columns


def _predicate_names(tokens: list[Token]) -> set[str]:
    """Names a predicate reads from the item it filters: ``[state = /data/state]`` → state."""
    names = set()
    depth = 0
    previous: Token | None = None
    for i, token in enumerate(tokens):
        if token in (("op", "("), ("op", "[")):
            depth += 1
        elif token in (("op", ")"), ("op", "]")):
            depth -= 1
        elif (token[0] == "name" and depth == 0 and token[1] not in _OPERATOR_NAMES
              and not _is_call(tokens, i, token[1])
              and previous not in (("op", "/"), ("op", "//"), ("op", "@"), ("op", "$"),
                                   ("op", "::"))):
            names.add(token[1])
        previous = token
    return names


# -- element helpers -----------------------------------------------------------------------

def _local(el: etree._Element) -> str:
    return etree.QName(el).localname


def _children(el: etree._Element | None, name: str | None = None) -> Iterator[etree._Element]:
    if el is None:
        return
    for child in el.iterchildren(etree.Element):
        if name is None or _local(child) == name:
            yield child


def _body_iter(root: etree._Element, name: str) -> Iterator[etree._Element]:
    body = _child(root, "body")
    return body.iter(f"{{*}}{name}") if body is not None else iter(())


def _child(el: etree._Element | None, name: str) -> etree._Element | None:
    return next(_children(el, name), None)


def _attrs(el: etree._Element) -> dict[str, str]:
    return {etree.QName(k).localname: v for k, v in el.attrib.items()}


def _attr(el: etree._Element | None, name: str) -> str | None:
    return el.get(name) if el is not None else None


def _stripped(value: str | None) -> str | None:
    return value.strip() if value is not None else None


def _text(el: etree._Element | None) -> str:
    return (el.text or "").strip() if el is not None else ""
