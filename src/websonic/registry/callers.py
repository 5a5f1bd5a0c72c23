"""The caller of one registry request, and the check that it may pull a repository."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from websonic.registry import tokens
from websonic.registry.access import Decision, Principal, basic_principal, decide, granted
from websonic.registry.access import still_allowed as principal_still_allowed
from websonic.registry.errors import DENIED, RegistryError, name_unknown, unauthorized


class Challenge(RegistryError):
    """401 UNAUTHORIZED; the web face adds ``WWW-Authenticate`` naming ``scope`` (if any)."""

    def __init__(self, scope: str | None = None, message: str = "", *, error: str = "") -> None:
        super().__init__(401, unauthorized().code, message=message)
        self.scope = scope
        self.error = error  # RFC 6750: "invalid_token", "insufficient_scope"


@dataclass(frozen=True)
class Caller:
    """``access`` is None for callers whose credentials came with the request (Basic)."""

    principal: Principal | None
    access: list[dict[str, Any]] | None = None
    remote_addr: str | None = None
    checked: bool = field(default=True)  # bearer callers are re-checked against the database

    @property
    def actor(self) -> str:
        return self.principal.actor if self.principal else "anonymous"


def anonymous(remote_addr: str | None) -> Caller:
    return Caller(None, None, remote_addr)


def from_basic(session: Session, username: str, password: str, remote_addr: str | None) -> Caller:
    principal = basic_principal(session, username, password)
    if principal is None:
        raise Challenge(message="wrong user name or token")
    return Caller(principal, None, remote_addr)


def from_bearer(key: bytes, token: str, remote_addr: str | None) -> Caller:
    try:
        bearer = tokens.verify(key, token)
    except tokens.InvalidToken as exc:
        raise Challenge(message="invalid bearer token", error="invalid_token") from exc
    return Caller(bearer.principal, bearer.access, remote_addr, checked=False)


def still_allowed(session: Session, caller: Caller) -> None:
    """A bearer token outlives nothing: a revoked API token or disabled user is refused."""
    if (
        caller.principal
        and not caller.checked
        and not principal_still_allowed(session, caller.principal)
    ):
        raise Challenge(message="credentials revoked or expired", error="invalid_token")


def require_pull(session: Session, caller: Caller, name: str) -> Principal:
    """The caller's principal if it may pull ``name``; the answers never depend on whether
    ``name`` exists."""
    scope = f"repository:{name}:pull"
    if caller.principal is None:
        raise Challenge(scope)
    still_allowed(session, caller)
    scoped = caller.access is None or granted(caller.access, name)
    decision = decide(caller.principal, name, scoped=scoped)
    if decision is Decision.CHALLENGE:
        raise Challenge(scope, error="insufficient_scope")
    if decision is Decision.DENY:
        raise RegistryError(403, DENIED, {"name": name})
    if decision is Decision.HIDE:
        raise name_unknown(name)
    return caller.principal


def require_login(session: Session, caller: Caller) -> Principal:
    """Any good credentials (the catalog and ``/v2/``)."""
    if caller.principal is None:
        raise Challenge()
    still_allowed(session, caller)
    return caller.principal
