"""API tokens: a customer's (or the agency's) secret for the registry and the API.

A token reads ``wst_<public id>_<secret>``. It is shown once, when made; the state database
keeps the public id and the SHA-256 of the secret (the secret has 256 bits of entropy, so a
fast hash is enough — unlike passwords, which use Argon2id). Tokens expire and can be revoked.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from websonic.accounts.models import ApiToken, Customer
from websonic.audit.service import record
from websonic.core.db import utcnow
from websonic.core.errors import InvalidInput, NotFound, WebsonicError

PREFIX = "wst"
SCOPES = ("pull", "install")
#: What each scope allows: ``install`` is what a customer's server needs to install and update
#: a site by itself (its plan, its secrets, its images).
GRANTS = {"pull": frozenset({"pull"}), "install": frozenset({"pull", "install"})}
TOKEN = re.compile(r"^wst_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
DURATION = re.compile(r"^(\d+)([mhdw])$")
UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
MAX_LIFETIME = dt.timedelta(days=366)


class TokenRefused(WebsonicError):
    """A token that is wrong, expired, revoked, or lacks the scope asked for (HTTP 401)."""

    exit_code = 11


@dataclass(frozen=True)
class NewToken:
    """A token just made: ``secret`` is the only copy of the full token string."""

    token: ApiToken
    secret: str


def parse_duration(text: str) -> dt.timedelta:
    """'30d', '12h', '90m', '2w' -> timedelta (at most a year)."""
    match = DURATION.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise InvalidInput(f"Invalid duration {text!r}: use a number and m, h, d or w (e.g. 30d).")
    delta = dt.timedelta(**{UNITS[match.group(2)]: int(match.group(1))})
    if delta > MAX_LIFETIME:
        raise InvalidInput("A token may live at most 366 days; make a new one when it expires.")
    return delta


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def create_token(
    session: Session,
    customer: Customer,
    *,
    scope: str,
    expires_in: dt.timedelta,
    description: str = "",
    actor: str,
) -> NewToken:
    if scope not in SCOPES:
        raise InvalidInput(f"Unknown scope {scope!r}: choose from {', '.join(SCOPES)}.")
    public_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
    expires_at = utcnow() + expires_in
    token = ApiToken(
        public_id=public_id,
        secret_hash=_digest(secret),
        customer_id=customer.id,
        scope=scope,
        description=description,
        expires_at=expires_at,
    )
    session.add(token)
    session.flush()
    record(
        session,
        actor,
        "token.create",
        customer_id=customer.id,
        target=public_id,
        detail={"scope": scope, "expires_at": expires_at.isoformat()},
    )
    return NewToken(token, f"{PREFIX}_{public_id}_{secret}")


def list_tokens(session: Session, customer: Customer) -> list[ApiToken]:
    query = select(ApiToken).where(ApiToken.customer_id == customer.id).order_by(ApiToken.id)
    return list(session.scalars(query))


def revoke_token(session: Session, public_id: str, *, actor: str) -> ApiToken:
    token = session.scalar(select(ApiToken).where(ApiToken.public_id == public_id))
    if token is None:
        raise NotFound(
            f"Unknown token {public_id!r}.", hint="List them: websonic token list CUSTOMER"
        )
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        record(session, actor, "token.revoke", customer_id=token.customer_id, target=public_id)
    return token


def grants(token: ApiToken) -> frozenset[str]:
    """What the token may do (its scopes and what they imply)."""
    allowed: frozenset[str] = frozenset()
    for scope in token.scope.split():
        allowed |= GRANTS.get(scope, frozenset())
    return allowed


def is_active(token: ApiToken, now: dt.datetime | None = None) -> bool:
    now = now or utcnow()
    return token.revoked_at is None and (token.expires_at is None or token.expires_at > now)


def authenticate_token(session: Session, presented: str) -> ApiToken | None:
    """The active token matching ``presented`` (the full string), or None; records its use."""
    match = TOKEN.match(presented.strip())
    if not match:
        return None
    token = session.scalar(select(ApiToken).where(ApiToken.public_id == match.group(1)))
    if token is None or not hmac.compare_digest(token.secret_hash, _digest(match.group(2))):
        return None
    if not is_active(token):
        return None
    token.last_used_at = utcnow()
    return token
