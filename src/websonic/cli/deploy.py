"""websonic deploy, rollback, deployment list"""

from __future__ import annotations

from typing import Any

import typer

from websonic.cli.context import JsonOption, get
from websonic.cli.output import console, emit_json, table
from websonic.cli.progress import run_with_progress
from websonic.hosting.models import Deployment
from websonic.installer import deploy as deploys

deployment_app = typer.Typer(help="Deployments of sites to customer servers.", no_args_is_help=True)

HostOption = typer.Option(..., "--host", metavar="CUSTOMER/NAME", help="The customer's server.")
DryRunOption = typer.Option(
    False, "--dry-run", help="Check everything on the server and say what would change."
)


def register(app: typer.Typer) -> None:
    app.command("deploy")(deploy)
    app.command("rollback")(rollback)
    app.add_typer(deployment_app, name="deployment")


def deploy(
    ctx: typer.Context,
    site: str = typer.Argument(..., metavar="CUSTOMER/SITE"),
    host: str = HostOption,
    release: int = typer.Option(None, "--release", min=1, help="Release number (default: newest)."),
    domain: list[str] = typer.Option(
        None,
        "--domain",
        help="Serve the site at this name (repeatable; default: the server's "
        "address, with a certificate of Caddy's internal CA).",
    ),
    tls: str = typer.Option("internal", "--tls", help="internal (Caddy's CA) or acme."),
    email: str = typer.Option("", "--email", help="Contact address for ACME certificates."),
    database: str = typer.Option(
        "container",
        "--database",
        help="container: run the site's database on the server from the release's database "
        "image; external: the site's secrets point at a database server.",
    ),
    auto_update: bool = typer.Option(
        None,
        "--auto-update/--no-auto-update",
        help="Install (or remove) the server's updater timer, which applies new releases.",
    ),
    health_timeout: int = typer.Option(120, "--health-timeout", help="Seconds to become healthy."),
    drain: int = typer.Option(3, "--drain-seconds", help="Seconds the old release keeps serving."),
    dry_run: bool = DryRunOption,
    as_json: bool = JsonOption,
) -> None:
    """Install or update a site on a server: zero downtime, rolled back if unhealthy."""
    request = deploys.DeployRequest(
        site=site,
        host=host,
        release=release,
        domains=tuple(domain or ()),
        tls=tls,
        acme_email=email,
        database_mode=database,
        auto_update=auto_update,
        dry_run=dry_run,
        health_timeout=health_timeout,
        drain_seconds=drain,
    )
    _run(ctx, request, as_json)


def rollback(
    ctx: typer.Context,
    site: str = typer.Argument(..., metavar="CUSTOMER/SITE"),
    host: str = HostOption,
    dry_run: bool = DryRunOption,
    as_json: bool = JsonOption,
) -> None:
    """Return a server to the release that served before the current one."""
    _run(ctx, deploys.DeployRequest(site=site, host=host, rollback=True, dry_run=dry_run), as_json)


def _run(ctx: typer.Context, request: deploys.DeployRequest, as_json: bool) -> None:
    cli = get(ctx)
    with cli.platform.transaction() as session:
        job_id = deploys.submit_deploy(session, request, actor=cli.actor).id
    what = "rollback" if request.rollback else "deploy"
    job = run_with_progress(cli.platform, job_id, quiet=as_json, what=f"{what} {request.site}")
    result = {"job": job_id, "site": request.site, "host": request.host, **job.result}
    if as_json:
        emit_json(result)
        return
    console.print(_summary(result), highlight=False)


def _summary(result: dict[str, Any]) -> str:
    where = f"{result['site']} on {result['host']}"
    status = result.get("status")
    if status == "dry-run":
        return f"Dry run of release {result['release']} for {where}: the checks passed."
    if status == "unchanged":
        return f"Release {result['release']} already serves {where}: nothing changed."
    return (
        f"Release {result['release']} serves {where} (slot {result.get('slot')}, "
        f"{result.get('seconds')} s; previous release: {result.get('previous_release') or '-'})."
    )


@deployment_app.command("list")
def list_(
    ctx: typer.Context,
    site: str = typer.Argument(..., metavar="CUSTOMER/SITE"),
    host: str = typer.Option(None, "--host", metavar="CUSTOMER/NAME", help="Only this server."),
    as_json: bool = JsonOption,
) -> None:
    """Deployments of a site, oldest first: release, outcome, duration."""
    with get(ctx).platform.transaction() as session:
        rows = [deployment_data(d) for d in deploys.list_deployments(session, site, host)]
    if as_json:
        emit_json({"deployments": rows})
        return
    columns = ["id", "action", "host", "release", "previous", "status", "seconds", "started_at"]
    table(f"Deployments of {site}", columns, [[r[c] for c in columns] for r in rows])


def deployment_data(deployment: Deployment) -> dict[str, Any]:
    host = deployment.host
    previous = deployment.previous_release
    return {
        "id": deployment.id,
        "action": deployment.action,
        "host": f"{host.customer.slug}/{host.name}",
        "release": deployment.release.number,
        "previous": previous.number if previous else None,
        "status": deployment.status.value,
        "seconds": deployment.seconds,
        "started_at": deployment.started_at,
        "finished_at": deployment.finished_at,
        "job": deployment.job_id,
        "detail": deployment.detail,
    }
