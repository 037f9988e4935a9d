"""From an uploaded file to a form dodoso can store: sniff, guard, compile, validate, parse.

One entry point for the API and the CLI (``dodoso forms check`` runs it offline).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lxml import etree

from forms import guards
from forms.issues import FormInvalid, FormIssue
from forms.sandbox import compile_isolated
from forms.validate import java_available, odk_validate
from forms.xform import XFormInfo, parse_xform
from forms.xml import parse_xml

XFORMS_NS = "http://www.w3.org/2002/xforms"
ITEMSETS_CSV = "itemsets.csv"  # the name Collect looks for behind select_one_external


@dataclass(frozen=True)
class Limits:
    upload: guards.UploadLimits = guards.DEFAULT_LIMITS
    timeout_s: float = 30.0
    memory_bytes: int = 1 << 30


@dataclass(frozen=True)
class PreparedForm:
    kind: str
    source: bytes
    xform: bytes
    info: XFormInfo
    warnings: list[FormIssue] = field(default_factory=list)
    generated_media: dict[str, bytes] = field(default_factory=dict)
    """Media the XLSForm itself supplies: ``itemsets.csv`` from an external_choices sheet."""

    @property
    def is_xlsform(self) -> bool:
        return self.kind != "xml"


def should_validate(mode: str, java: str) -> bool:
    """``auto`` runs ODK Validate where Java exists; ``on`` insists; ``off`` skips."""
    return mode == "on" or (mode == "auto" and java_available(java))


def prepare_form(data: bytes, *, filename: str | None = None, content_type: str | None = None,
                 form_id_fallback: str | None = None, validate: bool = False,
                 java: str = "java", limits: Limits = Limits()) -> PreparedForm:
    """Everything wrong with the upload raises FormInvalid with every issue found."""
    guards.check_size(data, limits.upload)
    kind = guards.sniff(data, filename, content_type)
    warnings: list[FormIssue] = list(guards.name_warnings(kind, filename, content_type))
    generated: dict[str, bytes] = {}
    if kind == "xml":
        xform = data
    else:
        if kind == "xlsx":  # refuse zip bombs here, before paying for a child process
            guards.check_xlsx_archive(data, limits.upload)
        result = compile_isolated(data, kind=kind, form_id_fallback=form_id_fallback,
                                  validate=False, timeout_s=limits.timeout_s,
                                  memory_bytes=limits.memory_bytes, limits=limits.upload)
        xform = result.xform
        warnings.extend(result.warnings)
        if result.itemsets:
            generated[ITEMSETS_CSV] = result.itemsets.encode("utf-8")
    info = parse_xform(xform)
    if not [q for q in info.schema.questions() if q.calculate is None]:
        raise FormInvalid([FormIssue(
            "error", "form.no_questions",
            "The form has no questions. Add at least one question on the survey sheet (a "
            "corrupted or empty workbook can look like a form with nothing in it).",
            sheet="survey")])
    if validate:
        found = odk_validate(xform, java=java)
        if any(i.level == "error" for i in found):
            raise FormInvalid(found + warnings)
        warnings.extend(found)
    return PreparedForm(kind=kind, source=data, xform=xform, info=info, warnings=warnings,
                        generated_media=generated)


def set_version(xform: bytes, version: str) -> bytes:
    """The XForm with its primary instance's ``version`` attribute set (publish ?version=)."""
    root = parse_xml(xform)
    instance = root.find(f".//{{{XFORMS_NS}}}model/{{{XFORMS_NS}}}instance")
    if instance is None or len(instance) == 0:
        raise FormInvalid([FormIssue("error", "xform.no_instance",
                                     "The XForm has no primary instance.")])
    instance[0].set("version", version)
    return etree.tostring(root, xml_declaration=True, encoding="utf-8")
