"""``dodoso blobs …``: the blob store's upkeep."""

from __future__ import annotations

import datetime as dt

import click

from server.services.gc import DEFAULT_GRACE, GcReport


@click.group("blobs")
def blobs_group() -> None:
    """The blob store (attachments, form media, exports)."""


@blobs_group.command("gc")
@click.option("--grace-minutes", type=click.FloatRange(min=0),
              default=DEFAULT_GRACE.total_seconds() / 60, show_default=True,
              help="Leave alone what is younger than this.")
@click.option("--dry-run", is_flag=True, help="Count what would be removed; remove nothing.")
def gc(grace_minutes: float, dry_run: bool) -> None:
    """Remove blobs nothing refers to and stored bytes no blob owns."""
    from server.cli import Context
    from server.services.gc import collect_garbage
    from server.storage import open_blob_store

    ctx = click.get_current_context().ensure_object(Context)
    with ctx.session() as db:
        report = collect_garbage(db, open_blob_store(ctx.settings),
                                 grace=dt.timedelta(minutes=grace_minutes), dry_run=dry_run)
    click.echo(describe(report))
    if report.errors:
        raise click.ClickException("; ".join(report.errors))


def describe(report: GcReport) -> str:
    verb = "Would remove" if report.dry_run else "Removed"
    uploads = "" if report.dry_run else (
        f", and {report.stale_uploads_removed} unfinished upload(s)")
    return (f"{verb} {report.rows_deleted} unreferenced blob(s) and {report.orphans_deleted} "
            f"stored file(s) without a blob ({report.bytes_freed:,} bytes){uploads}; "
            f"{report.skipped_in_use} in use meanwhile, left alone.")
