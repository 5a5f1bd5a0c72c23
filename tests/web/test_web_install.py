"""The installer's endpoints through the real app: the installer and its signature, the
one-liner with the portal's values, the signed plan and the secrets (Basic CUSTOMER:TOKEN).

Signatures are checked as the installer checks them, with ``openssl pkeyutl -verify -rawin``
on the exact bytes served."""

from __future__ import annotations

import base64
import datetime as dt
import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from websonic.accounts.service import get_customer
from websonic.accounts.tokens import create_token, revoke_token
from websonic.audit.models import AuditEvent
from websonic.builds import signing
from websonic.builds.models import Release
from websonic.installer import plan as plans
from websonic.installer.script import installer_text
from websonic.platform import Platform
from websonic.sites.service import add_site, get_site, set_secret
from websonic.web.app import create_app

from web.web_helpers import TestClient, World, make_settings, static_source

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PUBLIC_URL = "https://websonic.example"
DATABASE_URL = "postgresql://shop:pa ss'w$rd@db:5432/shop?x=1"
POSTGRES = "sha256:" + "51" * 32
CA_PEM = b"-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUtest\n-----END CERTIFICATE-----\n"
BOGUS = "wst_0123456789abcdef_" + "A" * 43


@dataclass
class Tokens:
    acme: str  # install
    globex: str  # install
    pull: str  # acme, pull only
    revoked: str
    expired: str
    public_id: str  # of acme's install token


def add_release(platform: Platform, ref: str, number: int, services: list[dict]) -> Release:
    """A release row as the pipeline records it (manifest, services, signed payload)."""
    with platform.transaction() as session:
        site = get_site(session, ref)
        image = "sha256:" + f"{number:02x}" * 32
        payload = signing.make_payload(
            ref, number, image, "sha256:" + "ef" * 32, {s["engine"]: s["digest"] for s in services}
        )
        release = Release(
            site_id=site.id, number=number, digest=image, config_digest="sha256:" + "cd" * 32,
            size=5 * 1024 * 1024, layers=[], base_digest=None, tool_versions={},
            source_ref=site.source, source_revision=None, source_epoch=0,
            signature=platform.signer.sign(payload), signed_payload=payload.decode(),
            signing_key_id=platform.signer.key_id, sbom_digest="sha256:" + "ef" * 32,
            services=services, manifest=site.manifest,
        )  # fmt: skip
        session.add(release)
        return release


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
        acme, globex = get_customer(session, "acme"), get_customer(session, "globex")
        year = dt.timedelta(days=365)
        made = create_token(session, acme, scope="install", expires_in=year, actor="test")
        revoked = create_token(session, acme, scope="install", expires_in=year, actor="test")
        expired = create_token(session, acme, scope="install", expires_in=year, actor="test")
        expired.token.expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
        session.flush()
        revoke_token(session, revoked.token.public_id, actor="test")
        result = Tokens(
            acme=made.secret,
            globex=create_token(
                session, globex, scope="install", expires_in=year, actor="test"
            ).secret,
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
        ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(tmp_path / "key.pem"), "-rawin",
         "-in", str(tmp_path / "data"), "-sigfile", str(tmp_path / "sig")],
        capture_output=True, text=True,
    )  # fmt: skip
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
        ["WS_PORTAL", "WS_SITE", "WS_TOKEN", "WS_SIGNING_KEY_B64", "WS_PORTAL_CA_B64"], ""
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


def test_the_one_liner_serves_the_installer_with_the_portals_values(
    client: TestClient, world: World, tokens: Tokens
) -> None:
    response = client.get("/install/acme/brochure", params={"token": tokens.acme})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/x-shellscript; charset=utf-8"
    assert response.headers["cache-control"] == "no-store"
    values = filled(response.text)
    assert values["WS_SITE"] == "acme/brochure"
    assert values["WS_PORTAL"] == "http://testserver"  # no WEBSONIC_PUBLIC_URL: this request's
    assert values["WS_TOKEN"] == tokens.acme
    assert base64.b64decode(values["WS_SIGNING_KEY_B64"]) == platform_pem(world)
    assert values["WS_PORTAL_CA_B64"] == ""
    assert response.text.rstrip().splitlines()[-1] in ('main "$@"', '{ main "$@"; }')


def test_the_one_liner_with_a_public_url_and_a_private_ca(
    configured: TestClient, world: World, tokens: Tokens
) -> None:
    response = configured.get("/install/acme/shop", params={"token": tokens.acme})
    assert response.status_code == 200, response.text
    values = filled(response.text)
    assert (values["WS_PORTAL"], values["WS_SITE"]) == (PUBLIC_URL, "acme/shop")
    assert base64.b64decode(values["WS_PORTAL_CA_B64"]) == CA_PEM
    assert base64.b64decode(values["WS_SIGNING_KEY_B64"]) == platform_pem(world)


@pytest.mark.parametrize("which", ["pull", "revoked", "expired", "bogus", "garbage", "none"])
def test_the_one_liner_refuses_a_token_that_is_not_an_active_install_token(
    client: TestClient, tokens: Tokens, which: str
) -> None:
    token = {
        "pull": tokens.pull, "revoked": tokens.revoked, "expired": tokens.expired,
        "bogus": BOGUS, "garbage": "'; rm -rf / #", "none": None,
    }[which]  # fmt: skip
    params = {"token": token} if token is not None else {}
    response = client.get("/install/acme/brochure", params=params)
    assert response.status_code == 401
    assert "install token is wrong, expired, revoked, or not an install token" in response.text
    assert "WS_PORTAL" not in response.text and 'main "$@"' not in response.text
    assert "text/x-shellscript" not in response.headers["content-type"]


def test_a_host_header_cannot_inject_shell_into_the_one_liner(
    client: TestClient, tokens: Tokens
) -> None:
    """Without WEBSONIC_PUBLIC_URL the portal's address is the request's: checked."""
    control = client.get(
        "/install/acme/brochure", params={"token": tokens.acme}, headers={"Host": "portal.example"}
    )
    assert filled(control.text)["WS_PORTAL"] == "http://portal.example"
    for host in ("x';reboot;'", "x$(reboot)", "a'b"):
        response = client.get(
            "/install/acme/brochure", params={"token": tokens.acme}, headers={"Host": host}
        )
        assert response.status_code == 422, (host, response.status_code)
        assert 'main "$@"' not in response.text


# --- another customer's sites answer like sites that do not exist ------------------------------


def answers(client: TestClient, token: str, path: str) -> list[tuple[int, str]]:
    """What the one-liner, the plan and the secrets endpoints answer for ``path`` (CUSTOMER/SITE),
    the token sent as the installer sends it (Basic CUSTOMER:TOKEN, the path's customer)."""
    customer = path.split("/")[0]
    return [
        (r.status_code, r.text)
        for r in (
            client.get(f"/install/{path}", params={"token": token}),
            client.get(f"/install/{path}/plan", headers=basic(customer, token)),
            client.get(f"/install/{path}/secrets", headers=basic(customer, token)),
        )
    ]


def test_another_customers_site_answers_like_a_site_that_does_not_exist(
    client: TestClient, world: World, tokens: Tokens
) -> None:
    theirs = answers(client, tokens.globex, "acme/extra")  # acme's, it exists
    with world.platform.transaction() as session:
        session.delete(get_site(session, "acme/extra"))
    gone = answers(client, tokens.globex, "acme/extra")  # no longer exists
    own = answers(client, tokens.acme, "acme/extra")  # its own customer's token
    assert [status for status, _ in theirs] == [404, 404, 404]
    assert theirs == gone == own
    assert "Unknown site acme/extra." in theirs[0][1]
    # and a customer that does not exist, or a name no site can have
    assert {s for s, _ in answers(client, tokens.globex, "nobody/site")} == {404}
    malformed = answers(client, tokens.acme, "acme/Not_A_Slug")
    assert malformed == answers(client, tokens.globex, "acme/Not_A_Slug")
    assert {s for s, _ in malformed} == {404}


def test_another_customers_site_gives_no_plan_nor_secrets(
    client: TestClient, tokens: Tokens
) -> None:
    for status, text in answers(client, tokens.globex, "acme/shop"):
        assert status == 404
        assert DATABASE_URL not in text and "signature=" not in text and "WS_" not in text


# --- the plan ----------------------------------------------------------------------------------


def test_the_plan_is_signed_over_everything_before_its_last_line(
    client: TestClient, world: World, tokens: Tokens, tmp_path: Path
) -> None:
    response = client.get("/install/acme/brochure/plan", headers=basic("acme", tokens.acme))
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


def test_the_plan_of_a_given_release(client: TestClient, tokens: Tokens) -> None:
    auth = basic("acme", tokens.acme)
    response = client.get("/install/acme/brochure/plan", params={"release": 1}, headers=auth)
    assert response.status_code == 200, response.text
    assert plans.parse(split_signed(response.content)[0])["release"] == ["1"]
    unknown = client.get("/install/acme/brochure/plan", params={"release": 9}, headers=auth)
    assert unknown.status_code == 404 and "acme/brochure has no release 9" in unknown.text
    bad = client.get("/install/acme/brochure/plan", params={"release": "x"}, headers=auth)
    assert bad.status_code == 422


def test_the_plan_uses_the_public_url_else_the_requests(
    client: TestClient, configured: TestClient, tokens: Tokens
) -> None:
    auth = basic("acme", tokens.acme)
    fallback = plans.parse(
        split_signed(client.get("/install/acme/brochure/plan", headers=auth).content)[0]
    )
    assert fallback["registry"] == ["testserver"] and fallback["registry_insecure"] == ["1"]
    assert fallback["image"] == ["testserver/acme/brochure@sha256:" + "02" * 32]
    public = plans.parse(
        split_signed(configured.get("/install/acme/brochure/plan", headers=auth).content)[0]
    )
    assert public["registry"] == ["websonic.example"] and public["registry_insecure"] == ["0"]
    assert public["image"] == ["websonic.example/acme/brochure@sha256:" + "02" * 32]


def test_a_database_sites_plan_carries_its_signed_image(
    configured: TestClient, world: World, tokens: Tokens, tmp_path: Path
) -> None:
    response = configured.get("/install/acme/shop/plan", headers=basic("acme", tokens.acme))
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


def test_a_host_header_cannot_make_a_plan_name_another_registry(
    client: TestClient, tokens: Tokens
) -> None:
    auth = basic("acme", tokens.acme)
    for host in ("x';reboot;'", "x$(reboot)", "a'b"):
        response = client.get("/install/acme/brochure/plan", headers={**auth, "Host": host})
        assert response.status_code == 422 and "signature=" not in response.text, host


# --- who may fetch a plan or secrets -----------------------------------------------------------


@pytest.mark.parametrize("endpoint", ["plan", "secrets"])
def test_plans_and_secrets_take_the_token_only_from_the_header(
    client: TestClient, tokens: Tokens, endpoint: str
) -> None:
    path = f"/install/acme/shop/{endpoint}"
    assert client.get(path, headers=basic("acme", tokens.acme)).status_code == 200
    refusals = {
        "query": client.get(path, params={"token": tokens.acme}),
        "no header": client.get(path),
        "another customer's name": client.get(path, headers=basic("globex", tokens.acme)),
        "no customer name": client.get(path, headers=basic("", tokens.acme)),
        "bearer": client.get(path, headers={"Authorization": f"Bearer {tokens.acme}"}),
        "not base64": client.get(path, headers={"Authorization": "Basic !!!"}),
        "not utf-8": client.get(
            path, headers={"Authorization": "Basic " + base64.b64encode(b"\xff:\xfe").decode()}
        ),
        "pull only": client.get(path, headers=basic("acme", tokens.pull)),
        "revoked": client.get(path, headers=basic("acme", tokens.revoked)),
        "expired": client.get(path, headers=basic("acme", tokens.expired)),
        "bogus": client.get(path, headers=basic("acme", BOGUS)),
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
    client: TestClient, world: World, tokens: Tokens
) -> None:
    response = client.get("/install/acme/shop/secrets", headers=basic("acme", tokens.acme))
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
    assert not [e for e in every_event if "pa ss" in e or tokens.acme in e]


def test_a_site_without_secrets_gives_an_empty_file(
    client: TestClient, world: World, tokens: Tokens
) -> None:
    response = client.get("/install/acme/brochure/secrets", headers=basic("acme", tokens.acme))
    assert response.status_code == 200 and response.text == ""
    [event] = secret_reads(world)
    assert event.detail == {"names": []}


def test_refused_secret_reads_are_not_recorded_as_reads(
    client: TestClient, world: World, tokens: Tokens
) -> None:
    client.get("/install/acme/shop/secrets", params={"token": tokens.acme})
    client.get("/install/acme/shop/secrets", headers=basic("acme", tokens.pull))
    client.get("/install/acme/shop/secrets", headers=basic("globex", tokens.globex))
    assert secret_reads(world) == []
