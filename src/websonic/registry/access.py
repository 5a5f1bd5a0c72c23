"""Who may pull what: principals, the distribution token scopes, and the access decision.

A principal is an API token (a customer's: its customer's repositories, or its one site's when
the token is bound to a site, as install tokens are) or a user (agency admins and developers:
every repository; a customer's people: their customer's). Whether a
principal may pull ``<customer>/<site>`` depends on the name only, never on whether the
repository exists, so that answers cannot reveal another customer's repositories.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from enum import Enum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from websonic.accounts.models import ApiToken, Customer, User
from websonic.accounts.tokens import authenticate_token, grants, is_active
from websonic.registry.names import MAX_NAME, NAME
from websonic.sites.models import Site

PULL = "pull"
CATALOG = {"type": "registry", "name": "catalog", "actions": ["*"]}


@dataclass(frozen=True)
class Principal:
    """The caller of the registry. ``actor`` is what the audit log records."""

    actor: str
    customer: str | None  # slug of the customer whose repositories it may pull
    agency: bool = False
    can_pull: bool = True
    site: str | None = None  # CUSTOMER/SITE: that repository only (a token bound to a site)

    def may_pull(self, name: str) -> bool:
        if not self.can_pull:
            return False
        if self.site is not None:
            return name == self.site
        return self.agency or name.split("/", 1)[0] == self.customer

    def claims(self) -> dict[str, Any]:
        return {
            "sub": self.actor,
            "customer": self.customer,
            "agency": self.agency,
            "site": self.site,
        }

    @classmethod
    def from_claims(cls, claims: dict[str, Any]) -> Principal:
        site = claims.get("site")
        return cls(
            str(claims["sub"]),
            claims.get("customer"),
            bool(claims.get("agency")),
            site=str(site) if site else None,
        )


def token_principal(session: Session, token: ApiToken) -> Principal:
    can_pull = PULL in grants(token)
    if token.customer_id is not None:
        customer = session.get(Customer, token.customer_id)
        slug = customer.slug if customer else None
        site = session.get(Site, token.site_id) if token.site_id is not None else None
        ref = f"{slug}/{site.slug}" if site else None
        can_pull = can_pull and (token.site_id is None or ref is not None)  # never wider
        return Principal(f"token:{token.public_id}", slug, can_pull=can_pull, site=ref)
    user = session.get(User, token.user_id) if token.user_id else None
    agency = bool(user and user.role.is_agency)
    slug = user.customer.slug if user and user.customer else None
    return Principal(f"token:{token.public_id}", slug, agency, can_pull)


def user_principal(user: User) -> Principal:
    slug = user.customer.slug if user.customer else None
    return Principal(f"user:{user.username}", slug, user.role.is_agency)


def basic_principal(session: Session, username: str, password: str) -> Principal | None:
    """HTTP Basic: username = the token's customer slug (or user name), password = ``wst_…``."""
    token = authenticate_token(session, password)
    if token is None:
        return None
    expected = _token_owner(session, token)
    if expected is None or not hmac.compare_digest(expected.encode(), username.encode()):
        return None
    return token_principal(session, token)


def _token_owner(session: Session, token: ApiToken) -> str | None:
    if token.customer_id is not None:
        customer = session.get(Customer, token.customer_id)
        return customer.slug if customer else None
    user = session.get(User, token.user_id) if token.user_id else None
    return user.username if user and not user.disabled else None


def still_allowed(session: Session, principal: Principal) -> bool:
    """Is the token (not revoked, not expired) or the user (not disabled) still good?"""
    kind, _, ident = principal.actor.partition(":")
    if kind == "token":
        token = session.scalar(select(ApiToken).where(ApiToken.public_id == ident))
        return token is not None and is_active(token)
    if kind == "user":
        user = session.scalar(select(User).where(User.username == ident))
        return user is not None and not user.disabled
    return False


# Scopes of the token flow --------------------------------------------------------------------


def parse_scopes(values: list[str]) -> list[tuple[str, str, list[str]]]:
    """``repository:acme/brochure:pull,push`` (several, space- or repeat-separated)."""
    scopes = []
    for value in values:
        for item in value.split():
            kind, _, rest = item.partition(":")
            name, _, actions = rest.rpartition(":")
            if kind and name:
                scopes.append((kind, name, [a for a in actions.split(",") if a]))
    return scopes


def grant(principal: Principal, scope_values: list[str]) -> list[dict[str, Any]]:
    """The access claim: of what was asked, pull on the principal's repositories, and the
    (filtered) catalog. Nothing else is ever granted; refusals are silent, per the spec."""
    access: list[dict[str, Any]] = []
    for kind, name, actions in parse_scopes(scope_values):
        if kind == "registry" and name == "catalog":
            entry = CATALOG
        elif kind == "repository" and PULL in actions and _valid(name) and principal.may_pull(name):
            entry = {"type": "repository", "name": name, "actions": [PULL]}
        else:
            continue
        if entry not in access:
            access.append(entry)
    return access


def _valid(name: str) -> bool:
    return len(name) <= MAX_NAME and bool(NAME.match(name))


def granted(access: list[dict[str, Any]], name: str) -> bool:
    return any(
        entry.get("type") == "repository"
        and entry.get("name") == name
        and PULL in entry.get("actions", [])
        for entry in access
    )


# The decision for one repository request -----------------------------------------------------


class Decision(Enum):
    ALLOW = "allow"
    CHALLENGE = "challenge"  # 401 + WWW-Authenticate for this repository's pull scope
    DENY = "deny"  # 403 DENIED: good credentials that cannot pull at all
    HIDE = "hide"  # 404 NAME_UNKNOWN, exactly like a repository that does not exist


def decide(principal: Principal | None, name: str, *, scoped: bool) -> Decision:
    """``scoped``: the credentials carry this repository (always true for Basic)."""
    if principal is None:
        return Decision.CHALLENGE
    if not principal.can_pull:
        return Decision.DENY
    if not principal.may_pull(name):
        return Decision.HIDE
    return Decision.ALLOW if scoped else Decision.CHALLENGE
