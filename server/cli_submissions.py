"""``dodoso submissions …``: upkeep of stored submissions."""

from __future__ import annotations

import datetime as dt

import click

from server.services.purge import PURGE_AFTER, PurgeReport


@click.group("submissions")
def submissions_group() -> None:
    """Stored submissions."""


@submissions_group.command("purge")
@click.option("--days", type=click.FloatRange(min=0), default=PURGE_AFTER.days,
              show_default=True, help="Purge what was deleted more than this long ago.")
@click.option("--dry-run", is_flag=True, help="Count what would be purged; purge nothing.")
def purge(days: float, dry_run: bool) -> None:
    """Purge soft-deleted submissions for good (the worker does it daily, after 30 days)."""
    from server.cli import Context
    from server.services.purge import purge_deleted

    ctx = click.get_current_context().ensure_object(Context)
    with ctx.session() as db:
        report = purge_deleted(db, older_than=dt.timedelta(days=days), dry_run=dry_run)
    click.echo(describe(report))


def describe(report: PurgeReport) -> str:
    verb = "Would purge" if report.dry_run else "Purged"
    forms = ", ".join(f"{form}: {n}" for form, n in sorted(report.by_form.items()))
    return (f"{verb} {report.purged} submission(s) deleted before "
            f"{report.cutoff:%Y-%m-%d %H:%M} UTC" + (f" ({forms})" if forms else "") + ".")
