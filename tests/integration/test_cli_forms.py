"""``dodoso forms check``: a designer checks an XLSForm or XForm offline, driven through
click's CliRunner. Nothing here touches a database or a server."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from forms.validate import java_available
from server.cli import main
from tests.forms_corpus import FORMS_DIR
from tests.support.xlsx import md_to_xlsx

BROKEN_DIR = FORMS_DIR / "broken"
ERROR_LINE = re.compile(r"^  ERROR (?:(?P<where>[a-z]+ row \d+(?:, [\w:]+)?): )?.+ "
                        r"\[(?P<code>[a-z_.]+)\]$")
needs_java = pytest.mark.skipif(not java_available("java"), reason="ODK Validate needs Java")


def check(*args: str | Path) -> Result:
    return CliRunner().invoke(main, ["forms", "check", *map(str, args)])


def as_file(source: Path, tmp_path: Path, suffix: str) -> Path:
    """The corpus form ``source`` as the designer would hand it over: .xlsx or .md."""
    target = tmp_path / f"{source.stem}{suffix}"
    text = source.read_text(encoding="utf-8")
    if suffix == ".xlsx":
        target.write_bytes(md_to_xlsx(text))
    else:
        target.write_text(text, encoding="utf-8")
    return target


def error_lines(result: Result) -> list[tuple[str | None, str]]:
    """(where, code) of each ERROR line on stderr; where is None for unlocated errors."""
    lines = [line for line in result.stderr.splitlines() if line.startswith("  ERROR")]
    matches = [ERROR_LINE.match(line) for line in lines]
    assert all(matches), lines
    return [(m["where"], m["code"]) for m in matches if m]


@pytest.mark.parametrize("suffix", [".xlsx", ".md"])
def test_check__a_good_form_prints_its_id_version_and_question_count(tmp_path, suffix):
    path = as_file(FORMS_DIR / "border_monitoring.md", tmp_path, suffix)
    result = check("--no-validate", path)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"border_monitoring{suffix}: OK"
    assert "  form id:   border_monitoring" in lines
    assert "  version:   (none)" in lines
    assert "  title:     Border Crossing Monitoring" in lines
    assert "  fields:    12 in 0 repeat(s)" in lines
    # Warnings do not fail the check; they go to stderr, located.
    assert "  2 warning(s):" in result.stderr
    assert [line.split(":")[0] for line in result.stderr.splitlines()
            if line.startswith("  WARNING")] == ["  WARNING survey row 9, parameters",
                                                 "  WARNING survey row 13, parameters"]


@pytest.mark.parametrize("suffix", [".xlsx", ".md"])
def test_check__reports_version_repeats_languages_media_and_encryption(tmp_path, suffix):
    household = check("--no-validate",
                      as_file(FORMS_DIR / "household_migration.md", tmp_path, suffix))
    assert household.exit_code == 0, household.output
    assert "  version:   2024061201" in household.stdout
    assert re.search(r"^  fields:    \d+ in 3 repeat\(s\)$", household.stdout, re.MULTILINE)
    assert "  languages: English (en), Kiswahili (sw)" in household.stdout
    assert ("  media:     coast.png, consent_sw.mp3, regions_map.png, western.png"
            in household.stdout)
    fees = check("--no-validate", as_file(FORMS_DIR / "agency_fees.md", tmp_path, suffix))
    assert fees.exit_code == 0, fees.output
    assert "  media:     agencies.csv, fees.csv" in fees.stdout
    assert "encrypted" not in fees.stdout
    encrypted = check("--no-validate",
                      as_file(FORMS_DIR / "exit_interview_encrypted.md", tmp_path, suffix))
    assert encrypted.exit_code == 0, encrypted.output
    assert "  form id:   exit_interview" in encrypted.stdout
    assert "  encrypted: yes" in encrypted.stdout


BROKEN = {  # file -> its ERROR lines, in order: (where, code)
    "duplicate_names": [("survey row 4, name", "xlsform.duplicate_name"),
                        ("survey row 6, name", "xlsform.duplicate_name")],
    "unknown_types": [("survey row 3, type", "xlsform.unknown_type"),
                      ("survey row 5, type", "xlsform.unknown_type")],
    "bad_references": [("survey row 3, label", "xlsform.unknown_reference"),
                       ("survey row 4, relevant", "xlsform.unknown_reference")],
    "duplicate_choices": [("choices row 4, name", "xlsform.duplicate_choice")],
    "everything_wrong": [("survey row 3, name", "xlsform.duplicate_name"),
                         ("survey row 4, type", "xlsform.unknown_type"),
                         ("survey row 5, relevant", "xlsform.unknown_reference"),
                         ("survey row 6, type", "xlsform.missing_choice_list"),
                         ("survey row 7, type", "xlsform.unclosed_group"),
                         ("choices row 3, name", "xlsform.duplicate_choice")],
}


@pytest.mark.parametrize("suffix", [".xlsx", ".md"])
@pytest.mark.parametrize("name", sorted(BROKEN))
def test_check__a_broken_form_exits_1_with_one_located_line_per_error(tmp_path, name, suffix):
    result = check("--no-validate", as_file(BROKEN_DIR / f"{name}.md", tmp_path, suffix))
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    assert result.stderr.splitlines()[0] == f"{name}{suffix}: {len(BROKEN[name])} error(s)"
    assert error_lines(result) == BROKEN[name]


def test_check__no_validate_skips_odk_validate(tmp_path):
    path = as_file(BROKEN_DIR / "constraint_syntax.md", tmp_path, ".xlsx")
    result = check("--no-validate", path)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "constraint_syntax.xlsx: OK"


@needs_java
@pytest.mark.parametrize("name", ["constraint_syntax", "unknown_function"])
def test_check__validate_runs_odk_validate(tmp_path, name):
    result = check("--validate", as_file(BROKEN_DIR / f"{name}.md", tmp_path, ".xlsx"))
    assert result.exit_code == 1, result.output
    assert error_lines(result) == [(None, "odk_validate.error")]


@needs_java
def test_check__a_good_form_passes_odk_validate(tmp_path):
    result = check("--validate", as_file(FORMS_DIR / "agency_fees.md", tmp_path, ".xlsx"))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "agency_fees.xlsx: OK (checked by ODK Validate)"


def test_check__validate_without_java_is_an_error_not_a_silent_pass(tmp_path):
    result = check("--validate", "--java", str(tmp_path / "no-such-java"),
                   as_file(FORMS_DIR / "agency_fees.md", tmp_path, ".xlsx"))
    assert result.exit_code == 1, result.output
    assert [code for _, code in error_lines(result)] == ["odk_validate.unavailable"]


def test_check__an_xform_file(tmp_path):
    path = tmp_path / "screening.xml"
    shutil.copy(FORMS_DIR / "handwritten.xml", path)
    result = check("--no-validate", path)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "screening.xml: OK"
    assert "  form id:   returnee_health" in lines
    assert "  version:   7" in lines
    assert "  fields:    5 in 1 repeat(s)" in lines


def test_check__a_truncated_xform_exits_1(tmp_path):
    path = tmp_path / "truncated.xml"
    path.write_bytes((FORMS_DIR / "handwritten.xml").read_bytes()[:600])
    result = check("--no-validate", path)
    assert result.exit_code == 1, result.output
    assert [code for _, code in error_lines(result)] == ["xform.unparseable"]


def test_check__a_missing_file_is_a_usage_error(tmp_path):
    result = check(tmp_path / "nowhere.xlsx")
    assert result.exit_code == 2
    assert "does not exist" in result.stderr
