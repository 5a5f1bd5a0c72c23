"""API tokens: a customer's (or the agency's) secret for the registry and the installer.

A token reads ``wst_<public id>_<secret>``. It is shown once, when made; the state database
keeps the public id and the SHA-256 of the secret (the secret has 256 bits of entropy, so a
fast hash is enough — unlike passwords, which use Argon2id). Tokens expire and can be revoked.

Each token has one purpose (its scope) and, for installs, one site:

- ``pull``: pull images from the registry (of one site, or of all its customer's sites);
- ``install``: what one customer's server needs to install and update ONE site (its plan, its
  secrets, its images), at most 90 days (the server's updater rotates it well before);
- ``install-code``: a one-time code good for 15 minutes, which the portal's one-liner carries
  in a header and the installer exchanges for an install token (it cannot pull nor install).

Rotation never leaves a server without a working token: the new token records the one it
``replaces``, and the old one is revoked only when the new one is first used.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from websonic.accounts.models import ApiToken, Customer
from websonic.audit.service import record
from websonic.core.db import utcnow
from websonic.core.errors import InvalidInput, NotFound, WebsonicError
from websonic.sites.models import Site

PREFIX = "wst"
PULL, INSTALL, CODE = "pull", "install", "install-code"
#: What `websonic token create` makes (codes have their own command).
SCOPES = (PULL, INSTALL)
#: What each scope allows: ``install`` is what a customer's server needs to install and update
#: its site by itself (its plan, its secrets, its images).
GRANTS = {
    PULL: frozenset({PULL}),
    INSTALL: frozenset({PULL, INSTALL}),
    CODE: frozenset({CODE}),
}
TOKEN = re.compile(r"^wst_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
DURATION = re.compile(r"^(\d+)([mhdw])$")
UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
MAX_LIFETIME = dt.timedelta(days=366)
INSTALL_LIFETIME = dt.timedelta(days=90)  # the longest, and the updater's (rotated at 14 days)
CODE_LIFETIME = dt.timedelta(minutes=15)


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
    site: Site | None = None,
    replaces: ApiToken | None = None,
) -> NewToken:
    """A pull token (of ``site``, else of every site of ``customer``) or an install token
    (of ``site``, which it needs). ``replaces``: the token this one rotates out."""
    if scope not in SCOPES:
        raise InvalidInput(f"Unknown scope {scope!r}: choose from {', '.join(SCOPES)}.")
    if site is not None and site.customer_id != customer.id:
        raise InvalidInput(f"{site.ref_name} is not a site of {customer.slug}.")
    if scope == INSTALL:
        _check_install(site, expires_in)
    return _make(
        session, customer, scope, expires_in, description, actor, site=site, replaces=replaces
    )


def _check_install(site: Site | None, expires_in: dt.timedelta) -> None:
    if site is None:
        raise InvalidInput(
            "An install token is for one site: name it as CUSTOMER/SITE.",
            hint="Or make a one-time install code: websonic token code CUSTOMER/SITE",
        )
    if expires_in > INSTALL_LIFETIME:
        raise InvalidInput(
            "An install token may live at most 90 days (the server's updater renews it)."
        )


def _make(
    session: Session,
    customer: Customer,
    scope: str,
    expires_in: dt.timedelta,
    description: str,
    actor: str,
    *,
    site: Site | None,
    replaces: ApiToken | None = None,
) -> NewToken:
    public_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
    expires_at = utcnow() + expires_in
    token = ApiToken(
        public_id=public_id,
        secret_hash=_digest(secret),
        customer_id=customer.id,
        site_id=site.id if site else None,
        replaces=replaces.public_id if replaces else None,
        scope=scope,
        description=description,
        expires_at=expires_at,
    )
    session.add(token)
    session.flush()
    detail = {"scope": scope, "expires_at": expires_at.isoformat()}
    if site is not None:
        detail["site"] = site.ref_name
    if replaces is not None:
        detail["replaces"] = replaces.public_id
    record(session, actor, "token.create", customer_id=customer.id, target=public_id, detail=detail)
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
        _revoke_successors(session, token, actor)
    return token


def _revoke_successors(session: Session, token: ApiToken, actor: str) -> None:
    """A token made to replace a revoked one (a rotation not yet confirmed) dies with it."""
    pending = [token.public_id]
    while pending:
        query = select(ApiToken).where(ApiToken.replaces == pending.pop())
        for successor in session.scalars(query.where(ApiToken.revoked_at.is_(None))):
            successor.revoked_at = utcnow()
            detail = {"replaces": token.public_id}
            target = successor.public_id
            record(
                session,
                actor,
                "token.revoke",
                customer_id=token.customer_id,
                target=target,
                detail=detail,
            )
            pending.append(successor.public_id)


def grants(token: ApiToken) -> frozenset[str]:
    """What the token may do (its scopes and what they imply)."""
    allowed: frozenset[str] = frozenset()
    for scope in token.scope.split():
        allowed |= GRANTS.get(scope, frozenset())
    return allowed


def is_active(token: ApiToken, now: dt.datetime | None = None) -> bool:
    now = now or utcnow()
    return token.revoked_at is None and (token.expires_at is None or token.expires_at > now)


def _matching(session: Session, presented: str) -> ApiToken | None:
    """The active token whose full string is ``presented`` (constant-time secret check)."""
    match = TOKEN.match(presented.strip())
    if not match:
        return None
    token = session.scalar(select(ApiToken).where(ApiToken.public_id == match.group(1)))
    if token is None or not hmac.compare_digest(token.secret_hash, _digest(match.group(2))):
        return None
    return token if is_active(token) else None


def authenticate_token(session: Session, presented: str) -> ApiToken | None:
    """The active token matching ``presented`` (the full string), or None; records its use.

    The first use of a rotated token is the proof that its holder has it: only then is the
    token it replaces revoked (and whatever that one replaced, if still active)."""
    token = _matching(session, presented)
    if token is None:
        return None
    token.last_used_at = utcnow()
    if token.replaces:
        _retire(session, token)
    return token


def _retire(session: Session, token: ApiToken) -> None:
    """Revoke the tokens ``token`` replaces, down its line, to the first one already revoked."""
    previous = token.replaces
    while previous:
        old = session.scalar(select(ApiToken).where(ApiToken.public_id == previous))
        if old is None or old.revoked_at is not None or old.customer_id != token.customer_id:
            return
        old.revoked_at = utcnow()
        detail = {"replaced_by": token.public_id}
        actor = f"token:{token.public_id}"
        record(
            session,
            actor,
            "token.revoke",
            customer_id=old.customer_id,
            target=previous,
            detail=detail,
        )
        previous = old.replaces


# --- install codes and the server's own install token ------------------------------------------


def create_install_code(session: Session, site: Site, *, actor: str) -> NewToken:
    """A one-time code (15 minutes) the one-liner carries; stored hashed like a token."""
    return _make(session, site.customer, CODE, CODE_LIFETIME, "install code", actor, site=site)


def install_code(session: Session, presented: str) -> ApiToken:
    """The unused, unexpired install code ``presented`` is, or TokenRefused."""
    code = _matching(session, presented)
    if code is None or code.scope != CODE or code.site_id is None:
        raise TokenRefused(
            "The install code is wrong, expired or already used.",
            hint="Ask the agency for a new one (good for one install, 15 minutes): "
            "websonic token code CUSTOMER/SITE",
        )
    return code


def redeem_install_code(
    session: Session, code: ApiToken, site: Site, *, dry_run: bool = False
) -> NewToken:
    """Use ``code`` (of ``site``) up, atomically: of two runs with one code, one gets a token;
    then make the server's install token for ``site``. A dry run's token, which the server
    never keeps, lives no longer than the code did."""
    used = session.execute(
        update(ApiToken)
        .where(ApiToken.id == code.id, ApiToken.site_id == site.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow(), last_used_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if getattr(used, "rowcount", 0) != 1:
        raise TokenRefused("The install code is wrong, expired or already used.")
    session.refresh(code)
    actor = f"token:{code.public_id}"
    record(session, actor, "token.code.use", customer_id=site.customer_id, target=code.public_id)
    description = f"server of {site.ref_name} (install code {code.public_id})"
    if dry_run:
        description = f"dry run on a server of {site.ref_name} (install code {code.public_id})"
    lifetime = CODE_LIFETIME if dry_run else INSTALL_LIFETIME
    return _make(session, site.customer, INSTALL, lifetime, description, actor, site=site)


def rotate_token(session: Session, current: ApiToken) -> NewToken:
    """A new token like ``current`` (same customer, site, scope, purpose) that replaces it;
    ``current`` stays valid until the new one is first used."""
    customer = session.get(Customer, current.customer_id)
    site = session.get(Site, current.site_id) if current.site_id else None
    if customer is None or site is None or current.scope != INSTALL:
        raise TokenRefused("Only a site's install token can be renewed this way.")
    actor = f"token:{current.public_id}"
    _revoke_successors(session, current, actor)  # a renewal whose answer was lost: never used
    description = current.description
    return _make(
        session,
        customer,
        INSTALL,
        INSTALL_LIFETIME,
        description,
        actor,
        site=site,
        replaces=current,
    )
