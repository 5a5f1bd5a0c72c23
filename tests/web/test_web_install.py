"""The installer's endpoints through the real app: the installer and its signature, the
one-liner with the portal's values, the signed plan and the secrets (Basic CUSTOMER:TOKEN).

Signatures are checked as the installer checks them, with ``openssl pkeyutl -verify -rawin``
on the exact bytes served."""

from __future__ import annotations

import base64
import datetime as dt
import json
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import jwt
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from websonic.accounts.models import ApiToken
from websonic.accounts.service import get_customer
from websonic.accounts.tokens import NewToken, create_install_code, create_token, revoke_token
from websonic.audit.models import AuditEvent
from websonic.builds import signing
from websonic.builds.models import Release
from websonic.core.errors import InvalidInput
from websonic.installer import plan as plans
from websonic.installer.script import installer_text
from websonic.platform import Platform
from websonic.sites.service import add_site, get_site, set_secret
from websonic.web.app import create_app

from conftest import Cli
from servers import free_port, wait_until
from web.web_helpers import ADMIN, TestClient, World, login, make_settings, static_source

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PUBLIC_URL = "https://websonic.example"
DATABASE_URL = "postgresql://shop:pa ss'w$rd@db:5432/shop?x=1"
POSTGRES = "sha256:" + "51" * 32
CA_PEM = b"-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUtest\n-----END CERTIFICATE-----\n"
BOGUS = "wst_0123456789abcdef_" + "A" * 43


@dataclass
class Tokens:
    shop: str  # install, acme/shop
    brochure: str  # install, acme/brochure
    globex: str  # install, globex/shop
    wide: str  # install, for all of acme (as made before tokens named their site)
    pull: str  # acme, pull only
    revoked: str  # install, acme/brochure
    expired: str  # install, acme/brochure
    public_id: str  # of shop


def add_release(platform: Platform, ref: str, number: int, services: list[dict]) -> Release:
    """A release row as the pipeline records it (manifest, services, signed payload)."""
    with platform.transaction() as session:
        site = get_site(session, ref)
        image = "sha256:" + f"{number:02x}" * 32
        payload = signing.make_payload(
            ref, number, image, "sha256:" + "ef" * 32, {s["engine"]: s["digest"] for s in services}
        )
        release = Release(
            site_id=site.id,
            number=number,
            digest=image,
            config_digest="sha256:" + "cd" * 32,
            size=5 * 1024 * 1024,
            layers=[],
            base_digest=None,
            tool_versions={},
            source_ref=site.source,
            source_revision=None,
            source_epoch=0,
            signature=platform.signer.sign(payload),
            signed_payload=payload.decode(),
            signing_key_id=platform.signer.key_id,
            sbom_digest="sha256:" + "ef" * 32,
            services=services,
            manifest=site.manifest,
        )
        session.add(release)
        return release


def install_token(session: Session, ref: str) -> NewToken:
    site = get_site(session, ref)
    days = dt.timedelta(days=30)
    return create_token(
        session, site.customer, scope="install", expires_in=days, actor="test", site=site
    )


def install_code(world: World, ref: str) -> str:
    """A one-time install code of ``ref``, as `websonic token code` makes it."""
    with world.platform.transaction() as session:
        return create_install_code(session, get_site(session, ref), actor="test").secret


@pytest.fixture
def tokens(world: World, tmp_path: Path) -> Tokens:
    """The seeded world, plus: acme/shop (python-shop, a secret, a PostgreSQL image),
    acme/extra (no release), brochure's release 2, and tokens of every kind."""
    platform = world.platform
    with platform.transaction() as session:
        source = tmp_path / "sources" / "shop"
        shutil.copytree(EXAMPLES / "python-shop", source)
        shop = add_site(session, platform.runner, "acme/shop", str(source), actor="test")
        set_secret(session, platform.secrets, shop, "DATABASE_URL", DATABASE_URL, actor="test")
        extra = static_source(tmp_path / "sources" / "extra")
        add_site(session, platform.runner, "acme/extra", str(extra), actor="test")
        acme = get_customer(session, "acme")
        made = install_token(session, "acme/shop")
        revoked = install_token(session, "acme/brochure")
        expired = install_token(session, "acme/brochure")
        expired.token.expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
        wide = install_token(session, "acme/brochure")
        wide.token.site_id = None
        session.flush()
        revoke_token(session, revoked.token.public_id, actor="test")
        year = dt.timedelta(days=365)
        result = Tokens(
            shop=made.secret,
            brochure=install_token(session, "acme/brochure").secret,
            globex=install_token(session, "globex/shop").secret,
            wide=wide.secret,
            pull=create_token(session, acme, scope="pull", expires_in=year, actor="test").secret,
            revoked=revoked.secret,
            expired=expired.secret,
            public_id=made.token.public_id,
        )
    add_release(platform, "acme/brochure", 2, [])
    service = {"engine": "postgresql", "version": "15", "digest": POSTGRES, "layers": []}
    add_release(platform, "acme/shop", 1, [service])
    return result


@pytest.fixture
def configured(world: World, tokens: Tokens, tmp_path: Path) -> Iterator[TestClient]:
    """The app of a WebSonic that knows its public address (and its private CA)."""
    ca = tmp_path / "ca.pem"
    ca.write_bytes(CA_PEM)
    settings = make_settings(world.settings.home, public_url=PUBLIC_URL, public_ca_file=ca)
    with TestClient(create_app(settings, start_workers=False), follow_redirects=False) as client:
        yield client


def basic(customer: str, token: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{customer}:{token}".encode()).decode()}


def openssl_verifies(tmp_path: Path, pem: bytes, data: bytes, signature_b64: str | bytes) -> bool:
    """What the installer's verify_signature does, on these bytes."""
    (tmp_path / "key.pem").write_bytes(pem)
    (tmp_path / "data").write_bytes(data)
    (tmp_path / "sig").write_bytes(base64.b64decode(signature_b64))
    proc = subprocess.run(
        [
            "openssl",
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            str(tmp_path / "key.pem"),
            "-rawin",
            "-in",
            str(tmp_path / "data"),
            "-sigfile",
            str(tmp_path / "sig"),
        ],
        capture_output=True,
        text=True,
    )
    return proc.returncode == 0


def platform_pem(world: World) -> bytes:
    pem = signing.public_pem(world.platform.signer.public)
    assert pem == (world.settings.keys_dir / signing.PUBLIC_NAME).read_bytes()
    return pem


def split_signed(body: bytes) -> tuple[bytes, str]:
    """The plan and its signature, as the installer splits them (sed '$d' and the last line)."""
    assert body.endswith(b"\n")
    plan, _, last = body[:-1].rpartition(b"\n")
    assert last.startswith(b"signature=")
    return plan + b"\n", last.removeprefix(b"signature=").decode()


def filled(script: str) -> dict[str, str]:
    values = {}
    for line in script.splitlines():
        if line.startswith("WS_") and "='" in line:
            name, _, value = line.partition("=")
            values[name] = value.strip("'")
    return values


# --- the installer and its signature -----------------------------------------------------------


def test_the_installer_is_served_as_shipped(client: TestClient) -> None:
    response = client.get("/install.sh")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/x-shellscript; charset=utf-8"
    assert response.content == installer_text().encode()
    assert filled(response.text) == dict.fromkeys(
        ["WS_PORTAL", "WS_SITE", "WS_CODE", "WS_SIGNING_KEY_B64", "WS_PORTAL_CA_B64"], ""
    )


def test_the_installers_signature_verifies_with_openssl(
    client: TestClient, world: World, tmp_path: Path
) -> None:
    served = client.get("/install.sh").content
    signature = client.get("/install.sh.sig")
    assert signature.status_code == 200 and signature.text.endswith("\n")
    pem = platform_pem(world)
    assert openssl_verifies(tmp_path, pem, served, signature.text.strip())
    assert not openssl_verifies(
        tmp_path, pem, served.replace(b"umask 022", b"umask 000"), signature.text
    )


# --- the one-liner -----------------------------------------------------------------------------


def bearer(code: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {code}"}


def test_the_one_liner_serves_the_installer_with_the_portals_values(
    configured: TestClient, world: World
) -> None:
    code = install_code(world, "acme/shop")
    response = configured.get("/install/acme/shop", headers=bearer(code))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/x-shellscript; charset=utf-8"
    assert response.headers["cache-control"] == "no-store"
    values = filled(response.text)
    assert (values["WS_PORTAL"], values["WS_SITE"]) == (PUBLIC_URL, "acme/shop")
    assert values["WS_CODE"] == code
    assert base64.b64decode(values["WS_PORTAL_CA_B64"]) == CA_PEM
    assert base64.b64decode(values["WS_SIGNING_KEY_B64"]) == platform_pem(world)
    assert response.text.rstrip().splitlines()[-1] in (
        'main "$@"',
        '{ main "$@"; }',
        'main "$@"; }',
    )


def test_finding4_no_secret_in_the_one_liners_url(
    configured: TestClient, world: World, tokens: Tokens
) -> None:
    """The one-liner carries a one-time code in a header; a token or code in the URL is
    refused (yesterday's one-liner, ?token=…, served the installer)."""
    code = install_code(world, "acme/brochure")
    for params in ({"token": tokens.brochure}, {"code": code}):
        refused = configured.get("/install/acme/brochure", params=params)
        assert refused.status_code == 401 and "never accepted in a URL" in refused.text
        assert "WS_PORTAL" not in refused.text
    with_both = configured.get(
        "/install/acme/brochure", params={"token": tokens.brochure}, headers=bearer(code)
    )
    assert with_both.status_code == 401
    assert configured.get("/install/acme/brochure", headers=bearer(code)).status_code == 200


def test_finding4_an_install_code_is_used_once_for_a_token_of_its_site_only(
    configured: TestClient, world: World
) -> None:
    code = install_code(world, "acme/shop")
    assert configured.get("/install/acme/shop", headers=bearer(code)).status_code == 200
    assert configured.get("/install/acme/shop", headers=bearer(code)).status_code == 200  # kept
    exchanged = configured.post("/install/acme/shop/token", headers=bearer(code))
    assert exchanged.status_code == 200, exchanged.text
    assert exchanged.headers["cache-control"] == "no-store"
    token = exchanged.text.strip()
    assert token.startswith("wst_") and token != code
    for again in (
        configured.post("/install/acme/shop/token", headers=bearer(code)),
        configured.get("/install/acme/shop", headers=bearer(code)),
    ):
        assert again.status_code == 401 and "already used" in again.text
    # the code itself is good for nothing else; the token for its own site only
    assert configured.get("/install/acme/shop/plan", headers=basic("acme", code)).status_code == 401
    assert (
        configured.get("/install/acme/shop/plan", headers=basic("acme", token)).status_code == 200
    )
    for other in ("acme/brochure", "acme/extra"):
        response = configured.get(f"/install/{other}/plan", headers=basic("acme", token))
        assert response.status_code == 404 and f"Unknown site {other}." in response.text
    registry = configured.get(
        "/v2/token",
        params={
            "service": "websonic",
            "scope": ["repository:acme/shop:pull", "repository:acme/brochure:pull"],
        },
        headers=basic("acme", token),
    )
    claims = jwt.decode(registry.json()["token"], options={"verify_signature": False})
    assert [a["name"] for a in claims["access"]] == ["acme/shop"]
    with world.platform.sessions() as session:
        made = session.scalar(select(ApiToken).where(ApiToken.public_id == token.split("_")[1]))
        assert made is not None and made.scope == "install"
        assert made.expires_at is not None
        lifetime = made.expires_at - made.created_at
        assert dt.timedelta(days=89) < lifetime <= dt.timedelta(days=90)  # not a year


def test_finding4_a_dry_runs_token_expires_with_its_code(
    configured: TestClient, world: World
) -> None:
    """A dry run never saves the token it gets: one living 90 days would be a loose secret."""
    code = install_code(world, "acme/shop")
    exchanged = configured.post("/install/acme/shop/token?dry_run=1", headers=bearer(code))
    assert exchanged.status_code == 200, exchanged.text
    token = exchanged.text.strip()
    with world.platform.sessions() as session:
        made = session.scalar(select(ApiToken).where(ApiToken.public_id == token.split("_")[1]))
        assert made is not None and made.expires_at is not None
        assert made.expires_at - made.created_at <= dt.timedelta(minutes=15)
        assert "dry run" in (made.description or "")
    assert configured.post("/install/acme/shop/token", headers=bearer(code)).status_code == 401


def test_finding4_an_install_code_expires_after_15_minutes(
    configured: TestClient, world: World
) -> None:
    code = install_code(world, "acme/shop")
    with world.platform.transaction() as session:
        row = session.scalar(select(ApiToken).where(ApiToken.public_id == code.split("_")[1]))
        assert row is not None and row.expires_at is not None
        lifetime = row.expires_at - row.created_at
        assert dt.timedelta(minutes=14) < lifetime <= dt.timedelta(minutes=15)
        assert code.removeprefix("wst_")[17:] not in row.secret_hash  # stored hashed
        row.expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    assert configured.post("/install/acme/shop/token", headers=bearer(code)).status_code == 401


def test_finding4_tokens_are_bound_to_one_site(
    configured: TestClient, world: World, tokens: Tokens
) -> None:
    """An install token made for a whole customer (yesterday's kind) installs nothing; a
    site's token nothing of another site, not even of its own customer."""
    wide = configured.get("/install/acme/brochure/plan", headers=basic("acme", tokens.wide))
    assert wide.status_code == 401 and "for one site" in wide.text
    own = configured.get("/install/acme/brochure/plan", headers=basic("acme", tokens.brochure))
    assert own.status_code == 200
    shop = configured.get("/install/acme/shop/secrets", headers=basic("acme", tokens.brochure))
    assert shop.status_code == 404 and DATABASE_URL not in shop.text
    with world.platform.transaction() as session, pytest.raises(InvalidInput, match="one site"):
        create_token(
            session,
            get_customer(session, "acme"),
            scope="install",
            expires_in=dt.timedelta(days=1),
            actor="test",
        )


def test_finding4_a_renewed_token_revokes_the_old_one_only_once_used(
    configured: TestClient, world: World, tokens: Tokens
) -> None:
    old = basic("acme", tokens.shop)
    renewed = configured.post("/install/acme/shop/token", headers=old)
    assert renewed.status_code == 200, renewed.text
    new = renewed.text.strip()
    # not yet used: the server may never have got it, so the old one still works
    assert configured.get("/install/acme/shop/plan", headers=old).status_code == 200
    lost = configured.post("/install/acme/shop/token", headers=old).text.strip()  # answer lost
    assert configured.get("/install/acme/shop/plan", headers=basic("acme", new)).status_code == 401
    newest = basic("acme", lost)
    assert configured.get("/install/acme/shop/plan", headers=newest).status_code == 200
    assert configured.get("/install/acme/shop/plan", headers=old).status_code == 401  # now revoked
    assert configured.get("/install/acme/shop/plan", headers=newest).status_code == 200
    refused = configured.post("/install/acme/shop/token", headers=basic("acme", tokens.pull))
    assert refused.status_code == 401


def test_revoking_a_token_revokes_its_unconfirmed_renewal(
    configured: TestClient, world: World, tokens: Tokens
) -> None:
    new = configured.post("/install/acme/shop/token", headers=basic("acme", tokens.shop))
    with world.platform.transaction() as session:
        revoke_token(session, tokens.public_id, actor="test")
    plan = configured.get("/install/acme/shop/plan", headers=basic("acme", new.text.strip()))
    assert plan.status_code == 401


@pytest.mark.parametrize("which", ["token", "pull", "revoked", "bogus", "garbage", "none"])
def test_the_one_liner_refuses_anything_but_an_install_code(
    configured: TestClient, tokens: Tokens, which: str
) -> None:
    presented = {
        "token": tokens.brochure, "pull": tokens.pull, "revoked": tokens.revoked,
        "bogus": BOGUS, "garbage": "'; rm -rf / #", "none": None,
    }[which]  # fmt: skip
    headers = bearer(presented) if presented is not None else {}
    response = configured.get("/install/acme/brochure", headers=headers)
    assert response.status_code == 401
    assert "install code is wrong, expired or already used" in response.text
    assert "WS_PORTAL" not in response.text and 'main "$@"' not in response.text
    assert "text/x-shellscript" not in response.headers["content-type"]


def test_finding5_without_a_public_url_the_installer_endpoints_refuse(
    client: TestClient, world: World, tokens: Tokens
) -> None:
    """No address taken from the request: without WEBSONIC_PUBLIC_URL, no one-liner nor plan."""
    code = install_code(world, "acme/brochure")
    for response in (
        client.get("/install/acme/brochure", headers=bearer(code)),
        client.get("/install/acme/brochure/plan", headers=basic("acme", tokens.brochure)),
    ):
        assert response.status_code == 422 and "WEBSONIC_PUBLIC_URL" in response.text
        assert 'main "$@"' not in response.text and "signature=" not in response.text


def test_finding5_a_forged_host_changes_neither_the_realm_nor_the_installers_urls(
    configured: TestClient, client: TestClient, world: World, tokens: Tokens
) -> None:
    evil = {"Host": "evil.example", "X-Forwarded-Host": "evil.example"}
    code = install_code(world, "acme/brochure")
    script = configured.get("/install/acme/brochure", headers={**bearer(code), **evil})
    assert filled(script.text)["WS_PORTAL"] == PUBLIC_URL
    auth = basic("acme", tokens.brochure)
    plan = configured.get("/install/acme/brochure/plan", headers={**auth, **evil})
    values = plans.parse(split_signed(plan.content)[0])
    assert values["registry"] == ["websonic.example"] and values["registry_insecure"] == ["0"]
    challenge = configured.get("/v2/acme/brochure/manifests/2", headers=evil)
    assert 'realm="https://websonic.example/v2/token"' in challenge.headers["www-authenticate"]
    # without a public URL, the realm is the address the connection reached, not the Host
    fallback = client.get("/v2/", headers=evil).headers["www-authenticate"]
    assert 'realm="http://testserver/v2/token"' in fallback and "evil" not in fallback


def test_a_host_header_cannot_inject_shell_into_the_one_liner(
    configured: TestClient, world: World
) -> None:
    code = install_code(world, "acme/brochure")
    for host in ("x';reboot;'", "x$(reboot)", "a'b"):
        response = configured.get("/install/acme/brochure", headers={**bearer(code), "Host": host})
        assert response.status_code == 200, (host, response.status_code)
        assert filled(response.text)["WS_PORTAL"] == PUBLIC_URL


# --- another customer's sites answer like sites that do not exist ------------------------------


def answers(
    client: TestClient, world: World, code_of: str, token: str, path: str
) -> list[tuple[int, str]]:
    """What the one-liner (a code of ``code_of``), the exchange, the plan and the secrets
    endpoints answer for ``path`` (CUSTOMER/SITE), the token sent as the installer sends it."""
    customer = path.split("/")[0]
    code = install_code(world, code_of)
    return [
        (r.status_code, r.text)
        for r in (
            client.get(f"/install/{path}", headers=bearer(code)),
            client.post(f"/install/{path}/token", headers=bearer(code)),
            client.get(f"/install/{path}/plan", headers=basic(customer, token)),
            client.get(f"/install/{path}/secrets", headers=basic(customer, token)),
        )
    ]


def test_another_customers_site_answers_like_a_site_that_does_not_exist(
    configured: TestClient, world: World, tokens: Tokens
) -> None:
    theirs = answers(configured, world, "globex/shop", tokens.globex, "acme/extra")  # exists
    other = answers(configured, world, "acme/brochure", tokens.brochure, "acme/extra")  # own
    with world.platform.transaction() as session:
        session.delete(get_site(session, "acme/extra"))
    gone = answers(configured, world, "globex/shop", tokens.globex, "acme/extra")
    assert [status for status, _ in theirs] == [404, 404, 404, 404]
    assert theirs == gone == other
    assert "Unknown site acme/extra." in theirs[0][1]
    nobody = answers(configured, world, "globex/shop", tokens.globex, "nobody/site")
    assert {s for s, _ in nobody} == {404}
    malformed = answers(configured, world, "acme/brochure", tokens.brochure, "acme/Not_A_Slug")
    assert {s for s, _ in malformed} == {404}


def test_another_customers_site_gives_no_plan_nor_secrets(
    configured: TestClient, world: World, tokens: Tokens
) -> None:
    for status, text in answers(configured, world, "globex/shop", tokens.globex, "acme/shop"):
        assert status == 404
        assert DATABASE_URL not in text and "signature=" not in text and "WS_" not in text


# --- the plan ----------------------------------------------------------------------------------


def test_the_plan_is_signed_over_everything_before_its_last_line(
    configured: TestClient, world: World, tokens: Tokens, tmp_path: Path
) -> None:
    response = configured.get("/install/acme/brochure/plan", headers=basic("acme", tokens.brochure))
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    plan, signature = split_signed(response.content)
    pem = platform_pem(world)
    assert openssl_verifies(tmp_path, pem, plan, signature)
    assert not openssl_verifies(tmp_path, pem, plan.replace(b"port=8080", b"port=8081"), signature)
    values = plans.parse(plan)
    assert values["site"] == ["acme/brochure"] and values["release"] == ["2"]  # the newest
    assert values["format"] == [plans.FORMAT]
    assert values["digest"] == ["sha256:" + "02" * 32]


def test_the_plan_of_a_given_release(configured: TestClient, tokens: Tokens) -> None:
    auth = basic("acme", tokens.brochure)
    response = configured.get("/install/acme/brochure/plan", params={"release": 1}, headers=auth)
    assert response.status_code == 200, response.text
    assert plans.parse(split_signed(response.content)[0])["release"] == ["1"]
    unknown = configured.get("/install/acme/brochure/plan", params={"release": 9}, headers=auth)
    assert unknown.status_code == 404 and "acme/brochure has no release 9" in unknown.text
    bad = configured.get("/install/acme/brochure/plan", params={"release": "x"}, headers=auth)
    assert bad.status_code == 422


def test_a_database_sites_plan_carries_its_signed_image(
    configured: TestClient, world: World, tokens: Tokens, tmp_path: Path
) -> None:
    response = configured.get("/install/acme/shop/plan", headers=basic("acme", tokens.shop))
    assert response.status_code == 200, response.text
    plan, signature = split_signed(response.content)
    pem = platform_pem(world)
    assert openssl_verifies(tmp_path, pem, plan, signature)
    values = plans.parse(plan)
    assert values["database"] == ["postgresql"] and values["database_mode"] == ["container"]
    assert values["database_image"] == [f"websonic.example/acme/shop@{POSTGRES}"]
    assert values["database_name"] == ["shop"] and values["secret"] == ["DATABASE_URL"]
    assert DATABASE_URL not in response.text  # secrets are never in a plan
    # the release signature it carries verifies too, and names both images (as the installer
    # checks with grep)
    payload = base64.b64decode(values["payload"][0])
    assert openssl_verifies(tmp_path, pem, payload, values["signature"][0])
    assert f'"docker-manifest-digest":"{values["digest"][0]}"'.encode() in payload
    assert f'"postgresql":"{POSTGRES}"'.encode() in payload


# --- who may fetch a plan or secrets -----------------------------------------------------------


@pytest.mark.parametrize("endpoint", ["plan", "secrets"])
def test_plans_and_secrets_take_the_token_only_from_the_header(
    configured: TestClient, tokens: Tokens, endpoint: str
) -> None:
    path = f"/install/acme/shop/{endpoint}"
    assert configured.get(path, headers=basic("acme", tokens.shop)).status_code == 200
    refusals = {
        "query": configured.get(path, params={"token": tokens.shop}),
        "no header": configured.get(path),
        "another customer's name": configured.get(path, headers=basic("globex", tokens.shop)),
        "no customer name": configured.get(path, headers=basic("", tokens.shop)),
        "bearer": configured.get(path, headers={"Authorization": f"Bearer {tokens.shop}"}),
        "not base64": configured.get(path, headers={"Authorization": "Basic !!!"}),
        "not utf-8": configured.get(
            path, headers={"Authorization": "Basic " + base64.b64encode(b"\xff:\xfe").decode()}
        ),
        "pull only": configured.get(path, headers=basic("acme", tokens.pull)),
        "revoked": configured.get(path, headers=basic("acme", tokens.revoked)),
        "expired": configured.get(path, headers=basic("acme", tokens.expired)),
        "bogus": configured.get(path, headers=basic("acme", BOGUS)),
    }
    for why, response in refusals.items():
        assert response.status_code == 401, (why, response.status_code)
        assert DATABASE_URL not in response.text and "signature=" not in response.text, why


# --- the secrets -------------------------------------------------------------------------------


def secret_reads(world: World) -> list[AuditEvent]:
    with world.platform.sessions() as session:
        query = select(AuditEvent).where(AuditEvent.action == "install.secrets.read")
        return list(session.scalars(query))


def test_the_secrets_are_name_value_lines_and_their_read_is_audited(
    configured: TestClient, world: World, tokens: Tokens
) -> None:
    response = configured.get("/install/acme/shop/secrets", headers=basic("acme", tokens.shop))
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.text == f"DATABASE_URL={DATABASE_URL}\n"
    [event] = secret_reads(world)
    assert event.actor == f"token:{tokens.public_id}"
    assert event.target == "acme/shop" and event.remote_addr == "testclient"
    assert event.detail == {"names": ["DATABASE_URL"]}
    with world.platform.sessions() as session:
        acme = get_customer(session, "acme")
        assert event.customer_id == acme.id
        every_event = [
            json.dumps([e.actor, e.action, e.target, e.detail, e.remote_addr])
            for e in session.scalars(select(AuditEvent))
        ]
    assert not [e for e in every_event if "pa ss" in e or tokens.shop in e]


def test_a_site_without_secrets_gives_an_empty_file(
    configured: TestClient, world: World, tokens: Tokens
) -> None:
    response = configured.get(
        "/install/acme/brochure/secrets", headers=basic("acme", tokens.brochure)
    )
    assert response.status_code == 200 and response.text == ""
    [event] = secret_reads(world)
    assert event.detail == {"names": []}


def test_refused_secret_reads_are_not_recorded_as_reads(
    configured: TestClient, world: World, tokens: Tokens
) -> None:
    configured.get("/install/acme/shop/secrets", params={"token": tokens.shop})
    configured.get("/install/acme/shop/secrets", headers=basic("acme", tokens.pull))
    configured.get("/install/acme/shop/secrets", headers=basic("globex", tokens.globex))
    assert secret_reads(world) == []


# --- the access log of a real `websonic serve` -------------------------------------------------


def test_finding4_the_access_log_of_websonic_serve_holds_no_secret(
    cli: Cli, tmp_path: Path
) -> None:
    """The one-liner flow against a real `websonic serve` (uvicorn, its access log on): the
    log names every request, and no code or token, even one a client put in a URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cli.run("customer", "add", "acme")
    cli.run("site", "add", "acme/brochure", "--source", str(static_source(tmp_path / "src")))
    env = cli.env(WEBSONIC_PUBLIC_URL=url)
    made = json.loads(
        subprocess.run(
            [sys.executable, "-m", "websonic.cli.main", "token", "code", "acme/brochure", "--json"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    code, one_liner = made["code"], made["one_liner"]
    assert one_liner == (
        f"curl -fsSL -H 'Authorization: Bearer {code}' '{url}/install/acme/brochure' | sudo sh"
    )
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        argv = [sys.executable, "-m", "websonic.cli.main", "serve", "--port", str(port)]
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: server_answers(url), 60, "websonic serve did not start", proc)
            secrets = one_liner_flow(url, one_liner.removesuffix(" | sudo sh"), code)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    text = log.read_text()
    assert "POST /install/acme/brochure/token" in text and "/install/acme/brochure/secrets" in text
    assert "GET /install/acme/brochure?token=*** HTTP/1.1" in text  # the client's mistake, masked
    for secret in secrets:
        assert secret.removeprefix("wst_")[17:] not in text  # the part after the public id


def server_answers(url: str) -> bool:
    try:
        httpx.get(url + "/install.sh", timeout=2)
    except httpx.HTTPError:
        return False
    return True


def one_liner_flow(url: str, curl: str, code: str) -> list[str]:
    """What the one-liner and the installer send (curl itself for the one-liner); the secrets
    that went by."""
    served = subprocess.run(curl, shell=True, capture_output=True, text=True, check=True).stdout
    assert filled(served)["WS_CODE"] == code
    site = f"{url}/install/acme/brochure"
    token = httpx.post(f"{site}/token", headers=bearer(code)).text.strip()
    assert httpx.get(f"{site}/secrets", headers=basic("acme", token)).status_code == 200
    renewed = httpx.post(f"{site}/token", headers=basic("acme", token)).text.strip()
    assert httpx.get(f"{site}/secrets", headers=basic("acme", renewed)).status_code == 200
    assert httpx.get(site, params={"token": renewed}).status_code == 401
    return [code, token, renewed]


def test_finding4_the_download_page_shows_a_one_liner_without_a_secret_in_its_url(
    configured: TestClient,
) -> None:
    assert login(configured, *ADMIN).status_code == 303
    text = configured.get("/sites/acme/brochure/downloads", headers={"Host": "evil.example"}).text
    url = f"{PUBLIC_URL}/install/acme/brochure"
    one_liner = f"curl -fsSL -H 'Authorization: Bearer CODE' '{url}' | sudo sh"
    assert one_liner in text, text
    assert one_liner + " -s -- --dry-run" in text and one_liner + " -s -- --release 2" in text
    assert "websonic token code acme/brochure" in text
    assert "?token=" not in text and "evil.example" not in text
    assert "podman pull --creds acme:&lt;TOKEN&gt; websonic.example/acme/brochure:2" in text
