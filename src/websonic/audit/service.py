"""Recording and reading audit events."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from websonic.audit.models import AuditEvent


def record(
    session: Session,
    actor: str,
    action: str,
    *,
    customer_id: int | None = None,
    target: str = "",
    detail: dict[str, Any] | None = None,
    remote_addr: str | None = None,
) -> AuditEvent:
    """Add an event in the caller's transaction: the change and its record commit together."""
    event = AuditEvent(
        actor=actor,
        action=action,
        customer_id=customer_id,
        target=target,
        detail=detail or {},
        remote_addr=remote_addr,
    )
    session.add(event)
    return event


def recent(
    session: Session,
    *,
    customer_id: int | None = None,
    action: str | None = None,
    limit: int = 100,
) -> list[AuditEvent]:
    """The newest events, optionally of one customer and/or actions starting with ``action``."""
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if customer_id is not None:
        query = query.where(AuditEvent.customer_id == customer_id)
    if action:
        query = query.where(AuditEvent.action.startswith(action, autoescape=True))
    return list(session.scalars(query))
