"""websonic host add|list|show|trust|check"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from websonic.cli.context import CliContext, JsonOption, get
from websonic.cli.output import console, emit_json, errors, table
from websonic.core.errors import InvalidInput
from websonic.hosting import hosts, preflight, spec
from websonic.hosting.models import Host

app = typer.Typer(help="Customer servers reached over SSH.", no_args_is_help=True)

STATUS_STYLE = {"pass": "[green]pass[/]", "warn": "[yellow]warn[/]", "fail": "[bold red]FAIL[/]"}


def host_data(host: Host) -> dict[str, Any]:
    return {
        "host": f"{host.customer.slug}/{host.name}",
        "ssh": f"{host.ssh_user}@{host.address}:{host.port}",
        "key_path": host.key_path,
        "host_key": host.host_key,
        "facts": host.facts,
        "created_at": host.created_at,
    }


def ssh_dir(cli: CliContext) -> Path:
    """Where WebSonic writes the known_hosts files made from pinned keys."""
    return cli.settings.home / "ssh"


@app.command("add")
def add(
    ctx: typer.Context,
    ref: str = typer.Argument(..., metavar="CUSTOMER/NAME"),
    ssh: str = typer.Option(..., "--ssh", metavar="USER@HOST[:PORT]", help="How to log in."),
    key: Path = typer.Option(None, "--key", help="Private key file (default: ssh's own)."),
    fingerprint: str = typer.Option(
        None,
        "--fingerprint",
        metavar="SHA256:…",
        help="The host key's fingerprint read on the server itself: anything else is refused.",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Add a server: its host key is pinned (checked against --fingerprint when given, else
    trusted on first contact) and the login proven."""
    cli = get(ctx)
    with cli.platform.transaction() as session:
        host = hosts.add_host(
            session,
            cli.platform.runner,
            ssh_dir(cli),
            ref,
            ssh,
            key_path=key,
            actor=cli.actor,
            expected=fingerprint,
        )
        data = host_data(host)
        data["fingerprint"] = hosts.fingerprint(cli.platform.runner, host.host_key or "")
    if as_json:
        emit_json(data)
        return
    console.print(f"Host [bold]{data['host']}[/] added ({data['ssh']}).", highlight=False)
    console.print(f"Pinned host key: {data['fingerprint']}", highlight=False)


@app.command("list")
def list_(
    ctx: typer.Context,
    customer: str = typer.Argument(..., metavar="CUSTOMER"),
    as_json: bool = JsonOption,
) -> None:
    """List a customer's servers."""
    with get(ctx).platform.sessions() as session:
        rows = [host_data(h) for h in hosts.list_hosts(session, customer)]
    if as_json:
        emit_json({"hosts": rows})
        return
    table("Hosts", ["host", "ssh", "key", "added"], [
        (r["host"], r["ssh"], r["key_path"], r["created_at"]) for r in rows
    ])  # fmt: skip


@app.command("show")
def show(
    ctx: typer.Context,
    ref: str = typer.Argument(..., metavar="CUSTOMER/NAME"),
    as_json: bool = JsonOption,
) -> None:
    """Show a server, its pinned host key and its last preflight facts."""
    cli = get(ctx)
    with cli.platform.sessions() as session:
        data = host_data(hosts.get_host(session, ref))
    data["fingerprint"] = hosts.fingerprint(cli.platform.runner, data["host_key"] or "")
    if as_json:
        emit_json(data)
        return
    for key, value in data.items():
        console.print(f"[bold]{key}[/]: {value}", highlight=False)


@app.command("trust")
def trust(
    ctx: typer.Context,
    ref: str = typer.Argument(..., metavar="CUSTOMER/NAME"),
    fingerprint: str = typer.Option(
        None,
        "--fingerprint",
        metavar="SHA256:…",
        help="The new key's fingerprint, read on the server itself (else asked to confirm).",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Re-pin a server's host key: the old and the new fingerprint are shown first, and the new
    one must be confirmed (--fingerprint, or a yes at the prompt)."""
    cli = get(ctx)
    with cli.platform.sessions() as session:
        old, new = hosts.key_change(session, cli.platform.runner, ref)
    errors.print(
        f"{ref}: pinned host key {old}\n{ref}: the server now shows {new}",
        highlight=False,
        markup=False,
    )
    expected = fingerprint or _confirmed(ref, new)
    with cli.platform.transaction() as session:
        host, old = hosts.trust_host(
            session, cli.platform.runner, ssh_dir(cli), ref, expected=expected, actor=cli.actor
        )
        data = host_data(host)
        data["old_fingerprint"] = old
        data["fingerprint"] = hosts.fingerprint(cli.platform.runner, host.host_key or "")
    if as_json:
        emit_json(data)
        return
    console.print(
        f"Host key of {data['host']} replaced: {old} -> {data['fingerprint']}", highlight=False
    )


def _confirmed(ref: str, new: str) -> str:
    """The fingerprint shown, once the user said yes (at a terminal); refused otherwise."""
    if not sys.stdin.isatty():
        raise InvalidInput(
            f"Not replacing the pinned host key of {ref} without a confirmation.",
            hint=f"Check the new fingerprint on the server itself (ssh-keygen -lf "
            f"/etc/ssh/ssh_host_ed25519_key.pub), then: websonic host trust {ref} "
            f"--fingerprint {new.split()[0]}",
        )
    if not typer.confirm("Does the server itself show this new fingerprint? Replace the key?"):
        raise InvalidInput(f"The pinned host key of {ref} was kept.")
    return new


@app.command("check")
def check(
    ctx: typer.Context,
    ref: str = typer.Argument(..., metavar="CUSTOMER/NAME"),
    site: str = typer.Option(..., "--site", metavar="CUSTOMER/SITE", help="The site to host."),
    as_json: bool = JsonOption,
) -> None:
    """Preflight: does the server meet the site's requirements? Exits 1 if a check fails."""
    cli = get(ctx)
    with cli.platform.transaction() as session:
        host = hosts.get_host(session, ref)
        requirements = spec.site_requirements(session, site)
        report = preflight.check_host(
            session, cli.platform.runner, ssh_dir(cli), host, requirements
        )
    if as_json:
        emit_json(report.to_record())
    else:
        _print_report(report)
    if not report.ok:
        sys.exit(1)  # typer.Exit's code is lost under main()'s standalone_mode=False


def _print_report(report: preflight.Report) -> None:
    """The checks; the last column is a failure's hint or what the installer will do."""
    table(
        f"Preflight of {report.host} for {report.site}",
        ["check", "status", "expected", "found", "hint or note"],
        [
            (c.name, STATUS_STYLE[c.status], c.expected, c.found, c.hint or c.note)
            for c in report.checks
        ],
    )
    verdict = "[green]ready[/]" if report.ok else "[bold red]not ready[/]"
    console.print(f"{report.host}: {verdict} for {report.site}.")
