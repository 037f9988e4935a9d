"""The test corpus of real-world-shaped forms in tests/data/forms, compiled the way users'
XLSForms are: markdown tables through pyxform's ``convert`` (no file I/O in pyxform)."""

from __future__ import annotations

from pathlib import Path

from pyxform.xls2xform import convert

FORMS_DIR = Path(__file__).parent / "data" / "forms"
MD_FORMS = sorted(p.stem for p in FORMS_DIR.glob("*.md"))
XML_FORMS = sorted(p.stem for p in FORMS_DIR.glob("*.xml"))


def md_to_xform(md: str) -> bytes:
    return convert(md, file_type=".md").xform.encode()


def compile_md(name: str) -> bytes:
    """The XForm for ``tests/data/forms/<name>.md``."""
    return md_to_xform((FORMS_DIR / f"{name}.md").read_text(encoding="utf-8"))


def corpus_xform(name: str) -> bytes:
    """Any corpus form as an XForm: compiled from markdown, or read as hand-written XML."""
    xml = FORMS_DIR / f"{name}.xml"
    return xml.read_bytes() if xml.exists() else compile_md(name)
