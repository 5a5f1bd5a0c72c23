"""websonic db migrate|verify|runs|abandon"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import typer
from rich.live import Live
from rich.text import Text

from websonic.cli.context import JsonOption, get
from websonic.cli.output import console, emit_json, errors, table
from websonic.core.errors import InvalidInput, VerificationFailed
from websonic.core.units import human_size
from websonic.migration import runs, service
from websonic.migration.plan import MODES, MigrateOptions, Plan
from websonic.migration.report import MigrateReport, Progress, VerifyReport
from websonic.migration.urls import with_tls_insecure

app = typer.Typer(help="Move a database to another server, and check the copy.",
                  no_args_is_help=True)  # fmt: skip

FromOption = typer.Option(..., "--from", metavar="URL", help="Source database URL.")
ToOption = typer.Option(..., "--to", metavar="URL", help="Target database URL.")
TlsInsecureOption = typer.Option(
    False,
    "--tls-insecure",
    help="Use TLS without checking the servers' certificates (not recommended).",
)
TLS_WARNING = (
    "--tls-insecure: the database servers' TLS certificates are not checked; anyone "
    "on the network path could pose as a server and read the data."
)
STOPPED_EXIT = 130
PLAN_TABLES = 10  # tables a dry run lists (the largest)


@app.command("migrate")
def migrate(
    ctx: typer.Context,
    source: str = FromOption,
    target: str = ToOption,
    mode: str = typer.Option("offline", "--mode", help="offline (one snapshot) or online "
                             "(snapshot + change capture + a short cutover)."),
    jobs: int = typer.Option(2, "--jobs", min=1, max=64, help="Tables copied in parallel."),
    force: bool = typer.Option(False, "--force", help="Empty a target that is not empty."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Plan only: sizes, estimate, blockers."),
    verify: bool = typer.Option(True, "--verify/--no-verify", help="Verify after the copy."),
    on_switch: str = typer.Option(None, "--on-switch", metavar="COMMAND",
                                  help="online: run in the cutover window to point the "
                                  "application at the target."),
    tls_insecure: bool = TlsInsecureOption,
    as_json: bool = JsonOption,
) -> None:  # fmt: skip
    """Copy a database to another server (PostgreSQL, MariaDB/MySQL, SQLite), verified.

    Stop it with Ctrl-C and run the same command again to resume. Exits non-zero if anything
    does not match."""
    if mode not in MODES:
        raise InvalidInput(f"--mode must be offline or online, not {mode!r}.")
    options = MigrateOptions(mode=mode, jobs=jobs, force=force, dry_run=dry_run,  # type: ignore[arg-type]
                             verify=verify, on_switch=on_switch)  # fmt: skip
    cli = get(ctx)
    stop = threading.Event()
    source, target = insecure_tls(tls_insecure, source, target)
    with stoppable(stop), display(as_json) as show:
        report = service.migrate_database(
            cli.platform, source, target, options, progress=show, log=log_sink(as_json),
            actor=cli.actor, stop=stop,
        )  # fmt: skip
    if tls_insecure:
        report.notes.append(TLS_WARNING)
    _finish(report, as_json)


def insecure_tls(insecure: bool, *urls: str) -> tuple[str, ...]:
    """With --tls-insecure: the URLs marked so (and the warning shown); else as given."""
    if not insecure:
        return urls
    errors.print(f"[yellow]warning:[/] {TLS_WARNING}", highlight=False)
    return tuple(with_tls_insecure(url) for url in urls)


def _finish(report: MigrateReport, as_json: bool) -> None:
    if as_json:
        emit_json(report.to_json())
    else:
        print_report(report)
    if report.status == "stopped":
        sys.exit(STOPPED_EXIT)
    if report.status != "planned" and not report.ok:
        raise VerificationFailed(
            "The migration did not end with a matching target (see the report).",
            hint="Fix the cause and run the same command again: it resumes.",
        )


@app.command("verify")
def verify_(
    ctx: typer.Context,
    source: str = FromOption,
    target: str = ToOption,
    tls_insecure: bool = TlsInsecureOption,
    as_json: bool = JsonOption,
) -> None:
    """Compare two databases: exact row counts, chunked checksums and every object.
    Exits 10 if anything differs."""
    cli = get(ctx)
    source, target = insecure_tls(tls_insecure, source, target)
    with display(as_json) as show:
        report = service.verify_databases(cli.platform, source, target, progress=show)
    if as_json:
        emit_json(report.to_json())
    else:
        print_verify(report)
    if not report.ok:
        raise VerificationFailed("The databases differ (see the report above).")


@app.command("runs")
def runs_(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """Migration runs, newest first (URLs masked)."""
    with get(ctx).platform.sessions() as session:
        rows = [run_data(r) for r in runs.list_runs(session)]
    if as_json:
        emit_json({"runs": rows})
        return
    columns = ["id", "mode", "status", "source", "target", "created_at", "finished_at"]
    table("Migration runs", columns, [[r[c] for c in columns] for r in rows])


@app.command("abandon")
def abandon(
    ctx: typer.Context,
    run_id: int = typer.Argument(..., metavar="RUN"),
    source: str = FromOption,
    target: str = ToOption,
    tls_insecure: bool = TlsInsecureOption,
) -> None:
    """Give up an unfinished run: remove what it left on both servers (slots, replication)."""
    cli = get(ctx)
    source, target = insecure_tls(tls_insecure, source, target)
    service.abandon_run(cli.platform, run_id, source, target, actor=cli.actor)
    console.print(f"Run {run_id} abandoned; what it had set up is removed.")


def run_data(run: Any) -> dict[str, Any]:
    return {
        "id": run.id,
        "mode": run.mode,
        "status": run.status.value,
        "source": run.source,
        "target": run.target,
        "created_at": run.created_at,
        "finished_at": run.finished_at,
        "report": run.report,
    }


# --- display ----------------------------------------------------------------------------------


@contextmanager
def stoppable(stop: threading.Event) -> Iterator[None]:
    """The first Ctrl-C asks the run to stop at a safe point; a second one interrupts."""

    def handler(_signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        errors.print("Stopping at the next safe point… (Ctrl-C again to interrupt)")

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextmanager
def display(quiet: bool) -> Iterator[Any]:
    """A live line: phase, tables, rows, bytes, rate, lag (nothing with --json)."""
    started = time.monotonic()
    with Live(Text(""), console=errors, transient=False, refresh_per_second=4) as live:
        if quiet:
            live.stop()

        def show(update: Progress) -> None:
            if not quiet:
                live.update(Text(progress_line(update, time.monotonic() - started)))

        yield show


def log_sink(quiet: bool) -> Any:
    return (lambda _line: None) if quiet else (lambda line: errors.print(line, markup=False))


def progress_line(update: Progress, seconds: float) -> str:
    parts = [f"{update.phase:9}"]
    if update.tables_total:
        parts.append(f"tables {update.tables_done}/{update.tables_total}")
    if update.rows:
        parts.append(f"{update.rows:,} rows")
    if update.bytes:
        total = f" / {human_size(update.bytes_total)}" if update.bytes_total else ""
        rate = human_size(int(update.bytes / seconds)) if seconds > 0 else "-"
        parts.append(f"{human_size(update.bytes)}{total} ({rate}/s)")
    if update.lag_bytes is not None:
        parts.append(f"lag {human_size(update.lag_bytes)}")
    if update.message:
        parts.append(update.message)
    return " · ".join(parts)


def print_plan(plan: Plan) -> None:
    console.print(f"{plan.engine} {plan.source_version} -> {plan.target_version}, "
                  f"{plan.mode} mode, {len(plan.tables)} tables, {plan.total_rows:,} rows, "
                  f"{human_size(plan.total_bytes)}, estimated {plan.estimated_seconds:.0f} s",
                  highlight=False)  # fmt: skip
    largest = sorted(plan.tables, key=lambda t: -t.bytes)[:PLAN_TABLES]
    if largest:
        table("Largest tables" if len(plan.tables) > PLAN_TABLES else "Tables",
              ["table", "rows (est.)", "size", "primary key", "chunks"],
              [(t.name, f"{t.rows:,}", human_size(t.bytes), ", ".join(t.primary_key) or "-",
                str(t.chunks)) for t in largest])  # fmt: skip
    if plan.objects:
        counts = ", ".join(f"{count} {kind}" for kind, count in plan.objects.items() if count)
        console.print(f"Objects: {counts or 'none besides tables'}", highlight=False)
    for blocker in plan.blockers:
        level = "[bold red]blocker[/]" if blocker.fatal else "[yellow]warning[/]"
        console.print(f"{level}: {blocker.message}", highlight=False)
        if blocker.hint:
            console.print(f"  {blocker.hint}", highlight=False, markup=False)


def print_report(report: MigrateReport) -> None:
    if report.plan is not None and report.status == "planned":
        print_plan(report.plan)
        for note in report.notes:
            console.print(f"note: {note}", highlight=False, markup=False)
        console.print("Dry run: nothing was changed.")
        return
    rows = [(t.name, f"{t.rows:,}", human_size(t.bytes), f"{t.seconds:.1f} s")
            for t in report.tables]  # fmt: skip
    table(f"Run {report.run} ({report.mode}): {report.status}", ["table", "rows", "size", "time"],
          rows)  # fmt: skip
    phases = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in report.phases.items())
    console.print(f"{report.rows:,} rows, {human_size(report.bytes)} in {report.seconds:.1f} s"
                  f" ({phases})", highlight=False)  # fmt: skip
    if report.write_downtime_seconds is not None:
        console.print(f"Write downtime: {report.write_downtime_seconds:.3f} s", highlight=False)
    for note in report.notes:
        console.print(f"note: {note}", highlight=False, markup=False)
    if report.verify is not None:
        print_verify(report.verify)
    for error in report.errors:
        errors.print(f"[bold red]error:[/] {error}", highlight=False)


def print_verify(report: VerifyReport) -> None:
    bad = [t for t in report.tables if not t.ok]
    rows = [(t.name, f"{t.source_rows:,}", f"{t.target_rows:,}", str(t.chunks),
             ", ".join(t.mismatched[:5]) or ("ok" if t.ok else "row counts differ"))
            for t in (bad or report.tables)]  # fmt: skip
    table("Verification" + (" (tables that differ)" if bad else ""),
          ["table", "source rows", "target rows", "chunks", "mismatches"], rows)  # fmt: skip
    for difference in report.differences:
        console.print(f"[bold red]differs[/] {difference.kind} {difference.name}: source "
                      f"{difference.source or '(missing)'} / target "
                      f"{difference.target or '(missing)'}", highlight=False)  # fmt: skip
    verdict = "[green]the target matches the source[/]" if report.ok else "[bold red]MISMATCH[/]"
    console.print(f"{verdict} ({len(report.tables)} tables checked in {report.seconds:.1f} s)")
