"""`websonic token create|list|revoke` on a real state folder, checked against the real
authentication used by the registry (accounts.tokens.authenticate_token)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import websonic.models  # noqa: F401 - every mapped class, for the relationships
from websonic.accounts.models import ApiToken
from websonic.accounts.tokens import authenticate_token
from websonic.audit.models import AuditEvent
from websonic.core.db import utcnow
from websonic.platform import Platform, open_platform
from websonic.settings import Settings

from conftest import Cli


@contextmanager
def opened(cli: Cli) -> Iterator[Platform]:
    platform = open_platform(Settings(home=cli.home))
    try:
        yield platform
    finally:
        platform.close()


def authenticates(cli: Cli, secret: str) -> bool:
    with opened(cli) as platform, platform.transaction() as session:
        return authenticate_token(session, secret) is not None


@pytest.fixture
def acme(cli: Cli) -> Cli:
    cli.run("customer", "add", "acme")
    return cli


def test_create_shows_the_secret_once_and_it_authenticates(acme: Cli) -> None:
    made = acme.json("token", "create", "acme", "--expires", "30d", "--description", "CI pulls")
    secret = made["token"]
    assert secret.startswith(f"wst_{made['id']}_")
    assert "cannot be displayed again" in made["note"]
    assert (made["scope"], made["status"], made["description"]) == ("pull", "active", "CI pulls")
    lifetime = dt.datetime.fromisoformat(made["expires_at"]) - utcnow()
    assert dt.timedelta(days=29, hours=23) < lifetime <= dt.timedelta(days=30)
    assert authenticates(acme, secret)
    assert not authenticates(acme, secret[:-1] + ("A" if secret[-1] != "A" else "B"))

    human = acme.run("token", "create", "acme")
    assert "cannot be displayed again" in human.stderr
    shown = [line for line in human.stdout.splitlines() if line.startswith("wst_")]
    assert len(shown) == 1 and authenticates(acme, shown[0])


def test_list_never_shows_secrets_nor_their_hashes(acme: Cli) -> None:
    secrets = [acme.json("token", "create", "acme")["token"] for _ in range(2)]
    assert authenticates(acme, secrets[0])  # records a use
    listed = acme.json("token", "list", "acme")["tokens"]
    assert [t["id"] for t in listed] == [s.split("_")[1] for s in secrets]
    assert listed[0]["last_used_at"] is not None and listed[1]["last_used_at"] is None
    with opened(acme) as platform, platform.sessions() as session:
        hashes = [t.secret_hash for t in session.query(ApiToken)]
    for output in (
        acme.run("token", "list", "acme", "--json").stdout,
        acme.run("token", "list", "acme").stdout,
    ):
        for secret in secrets:
            assert secret.split("_", 2)[2] not in output
        for digest in hashes:
            assert digest not in output
    assert set(listed[0]) == {
        "id",
        "customer",
        "site",
        "scope",
        "description",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
        "status",
    }


def test_the_secret_is_stored_nowhere_in_the_state_folder(acme: Cli) -> None:
    secret = acme.json("token", "create", "acme")["token"]
    assert authenticates(acme, secret)
    raw = secret.split("_", 2)[2].encode()
    state_files = sorted(acme.home.glob("state.db*"))
    assert state_files, "no state database files"
    for path in (p for p in acme.home.rglob("*") if p.is_file()):
        assert raw not in path.read_bytes(), f"the token's secret is in {path}"


def test_revoked_token_no_longer_authenticates(acme: Cli) -> None:
    made = acme.json("token", "create", "acme")
    assert authenticates(acme, made["token"])
    assert acme.json("token", "revoke", made["id"])["status"] == "revoked"
    assert not authenticates(acme, made["token"])
    again = acme.json("token", "revoke", made["id"])  # idempotent
    assert again["revoked_at"] is not None
    listed = acme.json("token", "list", "acme")["tokens"]
    assert listed[0]["status"] == "revoked"
    with opened(acme) as platform, platform.sessions() as session:
        actions = [e.action for e in session.query(AuditEvent).order_by(AuditEvent.id)]
    assert actions.count("token.create") == 1 and actions.count("token.revoke") == 1


def test_expired_token_is_refused(acme: Cli) -> None:
    made = acme.json("token", "create", "acme", "--expires", "1m")
    assert authenticates(acme, made["token"])
    with opened(acme) as platform, platform.transaction() as session:
        token = session.query(ApiToken).filter_by(public_id=made["id"]).one()
        token.expires_at = utcnow() - dt.timedelta(seconds=1)  # a minute has passed
    assert not authenticates(acme, made["token"])
    assert acme.json("token", "list", "acme")["tokens"][0]["status"] == "expired"


def test_bad_input_is_refused_and_makes_no_token(acme: Cli) -> None:
    assert "Unknown customer 'nobody'" in acme.fails("token", "create", "nobody", code=3)
    assert "Unknown customer 'nobody'" in acme.fails("token", "list", "nobody", code=3)
    for duration in ("0d", "abc", "10", "-1d", "1y"):
        err = acme.fails("token", "create", "acme", "--expires", duration, code=2)
        assert "Invalid duration" in err, (duration, err)
    assert "at most 366 days" in acme.fails("token", "create", "acme", "--expires", "400d", code=2)
    assert "Unknown scope 'push'" in acme.fails(
        "token", "create", "acme", "--scope", "push", code=2
    )
    err = acme.fails("token", "revoke", "0123456789abcdef", code=3)
    assert "Unknown token" in err and "websonic token list" in err
    assert acme.json("token", "list", "acme")["tokens"] == []


def test_finding4_install_tokens_and_codes_are_for_one_site_and_never_in_a_url(
    acme: Cli, tmp_path: Path
) -> None:
    source = tmp_path / "shop"
    source.mkdir()
    (source / "websonic.toml").write_text('[site]\nkind = "static"\n')
    acme.run("site", "add", "acme/shop", "--source", str(source))
    err = acme.fails("token", "create", "acme", "--scope", "install", code=2)
    assert "An install token is for one site" in err
    err = acme.fails("token", "create", "acme/shop", "--scope", "install", "--expires", "91d")
    assert "at most 90 days" in err
    made = acme.json("token", "create", "acme/shop", "--scope", "install")
    assert (made["site"], made["scope"]) == ("acme/shop", "install")

    public = "https://websonic.example"
    code = acme.json("token", "code", "acme/shop", WEBSONIC_PUBLIC_URL=public)
    assert (code["site"], code["scope"], code["status"]) == ("acme/shop", "install-code", "active")
    lifetime = dt.datetime.fromisoformat(code["expires_at"]) - utcnow()
    assert dt.timedelta(minutes=14) < lifetime <= dt.timedelta(minutes=15)
    assert code["one_liner"] == (
        f"curl -fsSL -H 'Authorization: Bearer {code['code']}' "
        f"'{public}/install/acme/shop' | sudo sh"
    )
    human = acme.run("token", "code", "acme/shop")  # no public URL: the code, and what to set
    assert "Set WEBSONIC_PUBLIC_URL" in human.stderr
    assert [line for line in human.stdout.splitlines() if line.startswith("wst_")]
    listed = acme.json("token", "list", "acme")["tokens"]
    assert [t["site"] for t in listed] == ["acme/shop"] * 3
