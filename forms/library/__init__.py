"""dodoso's form library: ready-to-field XLSForms for the Tanzania labour-migration programme.

Each form lives in its own directory as readable sources (one Markdown table per sheet) next
to the workbook built from them (``python -m forms.library.build``); the CSV files the forms
read (``select_one_from_file``) are in ``media/``. ``docs/form-library.md`` is the guide for
survey designers. This module only lists the forms and reads the committed files: it needs
neither pycountry nor babel.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

LIBRARY_DIR = Path(__file__).resolve().parent
MEDIA_DIR = LIBRARY_DIR / "media"
SHARED_DIR = LIBRARY_DIR / "shared"
DATA_DIR = LIBRARY_DIR / "data"


@dataclass(frozen=True)
class LibraryForm:
    form_id: str
    title: str
    description: str
    media: tuple[str, ...] = ()
    """Files in ``media/`` the form reads; they are attached when the form is installed."""
    entity_lists: tuple[str, ...] = ()
    """Entity lists the form reads as ``<name>.csv`` (a follow-up form): the server that
    holds the list supplies that file, so it is not shipped."""
    registers: str | None = None
    """The entity list this form creates entities in, if any."""

    @property
    def directory(self) -> Path:
        return LIBRARY_DIR / self.form_id

    @property
    def xlsx_path(self) -> Path:
        return self.directory / f"{self.form_id}.xlsx"

    @property
    def version(self) -> str:
        """The version string on the form's settings sheet."""
        from forms.library.build import read_table

        settings = read_table(self.directory / "settings.md")
        return settings.column("version")[0]

    def xlsx(self) -> bytes:
        return self.xlsx_path.read_bytes()

    def media_files(self) -> dict[str, bytes]:
        return {name: (MEDIA_DIR / name).read_bytes() for name in self.media}


FORMS: tuple[LibraryForm, ...] = (
    LibraryForm(
        form_id="hh_migration_remittances",
        title="Labour-migration household survey",
        description=(
            "Migration Profile evidence: household roster with the ILO migration-status "
            "module (20th ICLS) and labour-force screener, members living abroad, "
            "remittances received (SDG 10.c.1) and recruitment costs (SDG 10.7.1)."),
        media=("countries.csv", "tz_councils.csv"),
    ),
    LibraryForm(
        form_id="diaspora_skills_profile",
        title="Diaspora skills registry (MIDA)",
        description=(
            "Profile of a diaspora professional: field, ISCO-08 occupation group, ISCED "
            "level, experience, sector, availability for short assignments in Tanzania and "
            "preferred regions. Registers each consenting professional in the "
            "diaspora_experts entity list."),
        media=("countries.csv",),
        registers="diaspora_experts",
    ),
    LibraryForm(
        form_id="mida_assignment_monitoring",
        title="MIDA assignment monitoring",
        description=(
            "Follow-up of a diaspora placement (reads and updates the diaspora_experts "
            "entity list): host institution, dates, activities, skills transferred, "
            "satisfaction of host and expert, issues."),
        entity_lists=("diaspora_experts",),
    ),
    LibraryForm(
        form_id="returnee_rss",
        title="Returnee reintegration monitoring",
        description=(
            "Reintegration of returned migrants over the economic, social and psychosocial "
            "dimensions (indicators of the IOM Reintegration Sustainability Survey), by "
            "pseudonymous case ID and round. Scoring weights are data "
            "(data/rss_indicators.csv), to be supplied from the published source."),
        media=("countries.csv", "tz_councils.csv"),
    ),
    LibraryForm(
        form_id="remittance_corridor_intercept",
        title="Remittance flows intercept survey (Uganda–Tanzania)",
        description=(
            "Short intercept interview at money-transfer and mobile-money agents and border "
            "points of the Uganda–Tanzania corridor: sender or receiver, channel, amount, "
            "fee and exchange (SDG 10.c.1 cost), frequency and use."),
        media=("countries.csv", "ug_districts.csv", "tz_councils.csv"),
    ),
)

_BY_ID = {f.form_id: f for f in FORMS}


def get(form_id: str) -> LibraryForm | None:
    return _BY_ID.get(form_id)
