"""websonic migrate: a registered site's database and files to the customer's server."""

from __future__ import annotations

import sys
import threading

import typer

from websonic.cli.context import JsonOption, get
from websonic.cli.db import (
    STOPPED_EXIT,
    TlsInsecureOption,
    display,
    insecure_tls,
    log_sink,
    print_report,
    stoppable,
)
from websonic.cli.output import console, emit_json, table
from websonic.core.errors import InvalidInput, MigrationFailed
from websonic.core.units import human_size
from websonic.migration.plan import MODES
from websonic.migration.site import SiteMigration, SiteMigrationReport, hand_over, migrate_site


def migrate(
    ctx: typer.Context,
    site: str = typer.Argument(..., metavar="CUSTOMER/SITE"),
    to: str = typer.Option(..., "--to", metavar="CUSTOMER/HOST", help="The customer's server."),
    from_db: str = typer.Option(
        None, "--from-db", metavar="URL",
        help="The site's live database (online: an address the server can reach too).",
    ),
    files: list[str] = typer.Option(
        None, "--files", metavar="VOLUME=PATH",
        help="A volume's live folder, here or CUSTOMER/HOST:/path (repeatable).",
    ),
    mode: str = typer.Option("offline", "--mode", help="offline or online."),
    jobs: int = typer.Option(2, "--jobs", min=1, max=64, help="Tables copied in parallel."),
    force: bool = typer.Option(
        False, "--force", help="Replace the data of a site that already ran on that server."
    ),
    domain: list[str] = typer.Option(None, "--domain", help="The site's domain on the server."),
    on_switch: str = typer.Option(
        None, "--on-switch", metavar="COMMAND",
        help="online: run in the cutover window to send the traffic to the server (DNS…).",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Check the server; change nothing."),
    tls_insecure: bool = TlsInsecureOption,
    as_json: bool = JsonOption,
) -> None:  # fmt: skip
    """Move a live site to the customer's server: deploy, files, database, switch."""
    if mode not in MODES:
        raise InvalidInput(f"--mode must be offline or online, not {mode!r}.")
    if from_db:
        (from_db,) = insecure_tls(tls_insecure, from_db)
    request = SiteMigration(
        site=site, host=to, source_db=from_db, files=tuple(_volumes(files or [])),
        mode=mode, jobs=jobs, force=force, dry_run=dry_run, on_switch=on_switch,  # type: ignore[arg-type]
        domains=tuple(domain or ()),
    )  # fmt: skip
    cli = get(ctx)
    stop = threading.Event()
    with stoppable(stop), display(as_json) as show:
        report = migrate_site(cli.platform, request, progress=show, log=log_sink(as_json),
                              actor=cli.actor, stop=stop)  # fmt: skip
    if as_json:
        emit_json(report.to_json())
    else:
        print_site_report(report)
    if report.status == "stopped":
        sys.exit(STOPPED_EXIT)
    if not report.ok:
        raise MigrationFailed(
            f"The migration of {site} to {to} did not finish ({report.status}).",
            hint="Fix the cause and run the same command again: it resumes.",
        )


def _volumes(values: list[str]) -> list[tuple[str, str]]:
    pairs = []
    for value in values:
        volume, eq, path = value.partition("=")
        if not eq or not volume or not path:
            raise InvalidInput(f"--files {value!r}: use VOLUME=PATH, e.g. uploads=/srv/uploads")
        pairs.append((volume, path))
    return pairs


def print_site_report(report: SiteMigrationReport) -> None:
    deployed = report.deployment
    console.print(f"{report.site} on {report.host}: release {deployed.get('release')} "
                  f"({deployed.get('status')}).", highlight=False)  # fmt: skip
    rows = [
        (f"{sync['volume']} ({label})", str(sync["files_transferred"]),
         human_size(sync["bytes_transferred"]), f"{sync['seconds']:.1f} s")
        for label, passes in (("bulk", report.files_bulk), ("final", report.files_final))
        for sync in passes
    ]  # fmt: skip
    if rows:
        table("Files", ["volume", "files sent", "size", "time"], rows)
    if report.database is not None:
        print_report(report.database)
    for note in report.notes:
        console.print(note, highlight=False)
    console.print(f"{report.status} in {report.seconds:.1f} s.")


def handover(
    ctx: typer.Context,
    site: str = typer.Argument(..., metavar="CUSTOMER/SITE"),
    to: str = typer.Option(..., "--to", metavar="CUSTOMER/HOST"),
) -> None:
    """(Run by `websonic migrate` in the cutover window.) The site's database user gets every
    object of its database on the server."""
    hand_over(get(ctx).platform, site, to)
