"""websonic audit list"""

from __future__ import annotations

from typing import Any

import typer

from websonic.accounts.service import get_customer
from websonic.audit import service
from websonic.audit.models import AuditEvent
from websonic.cli.context import JsonOption, get
from websonic.cli.output import emit_json, table

app = typer.Typer(help="The append-only audit log.", no_args_is_help=True)


def event_data(event: AuditEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "at": event.at,
        "actor": event.actor,
        "action": event.action,
        "target": event.target,
        "detail": event.detail,
        "remote_addr": event.remote_addr,
    }


@app.command("list")
def list_(
    ctx: typer.Context,
    customer: str = typer.Option(None, "--customer", help="Only this customer's events."),
    action: str = typer.Option(
        None, "--action", help="Only actions starting with this (e.g. deploy.)."
    ),
    limit: int = typer.Option(100, "--limit", min=1, max=10000, help="Newest N events."),
    as_json: bool = JsonOption,
) -> None:
    """Recent events, newest first: who did what, to what, from where."""
    with get(ctx).platform.sessions() as session:
        customer_id = get_customer(session, customer).id if customer else None
        events = service.recent(session, customer_id=customer_id, action=action, limit=limit)
        rows = [event_data(e) for e in events]
    if as_json:
        emit_json({"events": rows})
        return
    columns = ["id", "at", "actor", "action", "target", "remote_addr"]
    table("Audit log", columns, [[r[c] for c in columns] for r in rows])
