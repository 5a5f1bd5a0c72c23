"""websonic files sync"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from websonic.cli.context import JsonOption, get
from websonic.cli.output import console, emit_json, errors
from websonic.core.units import human_size
from websonic.migration.files import (
    SITE_GID,
    SITE_UID,
    ProgressSink,
    SyncOptions,
    SyncProgress,
    SyncReport,
    sync,
)

app = typer.Typer(
    help="Files (a site's uploads) to or from a customer's server.", no_args_is_help=True
)

SHOWN_CHANGES = 200


@app.command("sync")
def sync_(
    ctx: typer.Context,
    source: str = typer.Argument(
        ..., metavar="SOURCE", help="A folder here, or CUSTOMER/HOST:/path on a registered host."
    ),
    dest: str = typer.Argument(
        ..., metavar="DEST", help="The folder to make hold the same files (created if missing)."
    ),
    delete: bool = typer.Option(
        False,
        "--delete",
        help="Also remove files DEST has and SOURCE "
        "has not (after the transfer). Nothing is removed without it.",
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="List what would change; change nothing."
    ),
    quick: bool = typer.Option(
        False,
        "--quick",
        help="Compare by size and modification time "
        "instead of contents (a fast bulk pass; the final pass should "
        "compare contents).",
    ),
    owner_uid: int = typer.Option(
        SITE_UID, "--owner-uid", min=0, help="Owner given to the files received."
    ),
    owner_gid: int = typer.Option(
        SITE_GID, "--owner-gid", min=0, help="Group given to the files received."
    ),
    bwlimit: int = typer.Option(
        None, "--bwlimit", metavar="KIB", min=1, help="Limit the transfer rate (KiB per second)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Copy the contents of the folder SOURCE into the folder DEST with rsync, one side here,
    the other here or on a registered host (its pinned host key checked). Files are compared
    by contents, keep their modes, and belong to the site's user on arrival; an interrupted
    transfer resumes when the same command is run again."""
    options = SyncOptions(
        delete=delete,
        dry_run=dry_run,
        checksum=not quick,
        owner_uid=owner_uid,
        owner_gid=owner_gid,
        bwlimit_kib=bwlimit,
    )
    with _display(as_json) as show:
        report = sync(get(ctx).platform, source, dest, options, show)
    if as_json:
        emit_json(report.to_json())
    else:
        print_report(report)


@contextmanager
def _display(quiet: bool) -> Iterator[ProgressSink]:
    """A Rich bar from rsync's first update: percent, bytes, rate, files checked, elapsed
    (nothing with --json)."""
    bar = Progress(
        TextColumn("[bold]sync"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TextColumn("{task.fields[size]}"),
        TextColumn("{task.fields[rate]}"),
        TextColumn("{task.fields[files]}"),
        TimeElapsedColumn(),
        TextColumn("{task.fields[current]}"),
        console=errors,
        disable=quiet,
        transient=False,
    )
    tasks: list[TaskID] = []

    def show(update: SyncProgress) -> None:
        if not tasks:
            bar.start()
            tasks.append(bar.add_task("sync", total=100, size="", rate="", files="", current=""))
        files = f"{update.files_checked}/{update.files} files" if update.files else ""
        size, rate = human_size(update.bytes), f"{human_size(int(update.rate))}/s"
        bar.update(tasks[0], completed=update.percent, size=size, rate=rate, files=files,
                   current=update.current[-50:])  # fmt: skip

    try:
        yield show
    finally:
        if tasks:
            bar.stop()


def print_report(report: SyncReport) -> None:
    for change in report.changes[:SHOWN_CHANGES]:
        console.print(f"{change.action:11} {change.path}", highlight=False, markup=False)
    if report.changes_total > SHOWN_CHANGES:
        console.print(
            f"… and {report.changes_total - SHOWN_CHANGES:,} more (--json lists up to 10,000).",
            highlight=False,
        )
    verb = "would be" if report.dry_run else "were"
    console.print(
        f"{report.source} -> {report.dest}: {report.files_transferred:,} files {verb} "
        f"transferred ({human_size(report.bytes_transferred)} of "
        f"{human_size(report.bytes_total)}), {report.files_created:,} created, "
        f"{report.files_deleted:,} deleted; {human_size(report.bytes_literal)} sent as is, "
        f"{human_size(report.bytes_matched)} already there; {report.seconds:.1f} s",
        highlight=False,
        markup=False,
    )
    if report.dry_run:
        console.print("Dry run: nothing was changed.")
    for warning in report.warnings:
        errors.print(f"[yellow]warning:[/] {warning}", highlight=False)
