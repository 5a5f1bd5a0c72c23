"""Bearer tokens of the distribution token flow: short-lived HS256 JWTs.

The signing secret is ``keys/registry-token.key`` in the state folder (32 random bytes, mode
600, made on first use). Tokens live 5 minutes and are checked for signature (HS256 only, so
``alg: none`` and algorithm confusion are refused), issuer, audience (the service), expiry and
not-before; the registry also re-checks that the API token or user behind them is still good.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from websonic.core.secretbox import write_private
from websonic.registry.access import Principal

SERVICE = "websonic"
ISSUER = "websonic-registry"
ALGORITHM = "HS256"
LIFETIME = dt.timedelta(minutes=5)
KEY_NAME = "registry-token.key"
LEEWAY = 10


class InvalidToken(Exception):
    """A bearer token that is forged, expired, for another service or malformed."""


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_in: int
    issued_at: dt.datetime

    def body(self) -> dict[str, Any]:
        issued = self.issued_at.strftime("%Y-%m-%dT%H:%M:%SZ")
        return {
            "token": self.token,
            "access_token": self.token,
            "expires_in": self.expires_in,
            "issued_at": issued,
        }


@dataclass(frozen=True)
class Bearer:
    """A verified bearer token: who, and the access it grants."""

    principal: Principal
    access: list[dict[str, Any]]


def load_key(keys_dir: Path) -> bytes:
    """The signing secret, made on first use (complete before it appears under its name)."""
    path = keys_dir / KEY_NAME
    if not path.is_file():
        draft = keys_dir / f".{KEY_NAME}.{secrets.token_hex(8)}"
        write_private(draft, secrets.token_bytes(32))
        try:
            os.link(draft, path)
        except FileExistsError:
            pass  # another process made it first: use theirs
        finally:
            draft.unlink()
    key = path.read_bytes()
    if len(key) < 32:
        raise InvalidToken(f"{path} is too short to be a signing key.")
    return key


def issue(
    key: bytes, principal: Principal, access: list[dict[str, Any]], now: dt.datetime | None = None
) -> IssuedToken:
    now = (now or dt.datetime.now(dt.UTC)).replace(microsecond=0)
    claims = {
        **principal.claims(),
        "iss": ISSUER,
        "aud": SERVICE,
        "iat": now,
        "nbf": now,
        "exp": now + LIFETIME,
        "jti": secrets.token_hex(16),
        "access": access,
    }
    token = jwt.encode(claims, key, algorithm=ALGORITHM)
    return IssuedToken(token, int(LIFETIME.total_seconds()), now)


def verify(key: bytes, token: str) -> Bearer:
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=SERVICE,
            issuer=ISSUER,
            leeway=LEEWAY,
            options={"require": ["exp", "iat", "nbf", "iss", "aud", "sub"]},
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from exc
    access = claims.get("access")
    if not isinstance(access, list):
        raise InvalidToken("no access claim")
    return Bearer(Principal.from_claims(claims), [a for a in access if isinstance(a, dict)])
