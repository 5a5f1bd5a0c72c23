"""The distribution token flow and direct Basic auth: who gets in, and with what access."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import stat

import jwt
from fastapi.testclient import TestClient

from registry.conftest import basic
from websonic.accounts.tokens import create_install_code, create_token, revoke_token
from websonic.registry import tokens
from websonic.registry.access import Principal
from websonic.sites.service import get_site

BROCHURE = "/v2/acme/brochure"
SCOPE = "repository:acme/brochure:pull"


def claims_of(response) -> dict:
    return jwt.decode(response.json()["token"], options={"verify_signature": False})


def token_request(client: TestClient, headers: dict, *scopes: str, service: str = "websonic"):
    params = [("service", service), *(("scope", scope) for scope in scopes)]
    return client.get("/v2/token", params=params, headers=headers)


def test_challenge_names_realm_service_and_scope(client: TestClient) -> None:
    """Token auth spec: 401 with `WWW-Authenticate: Bearer realm,service,scope`."""
    response = client.get(f"{BROCHURE}/manifests/1")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == (
        'Bearer realm="http://testserver/v2/token",service="websonic",'
        'scope="repository:acme/brochure:pull"'
    )
    assert response.json()["errors"][0]["code"] == "UNAUTHORIZED"


def test_token_endpoint_issues_a_short_lived_scoped_jwt(client: TestClient, world, acme) -> None:
    """Token auth spec: token, access_token, expires_in 300, issued_at; access = pull only."""
    response = token_request(client, acme, SCOPE)
    assert response.status_code == 200
    body = response.json()
    assert body["token"] == body["access_token"] and body["expires_in"] == 300
    assert dt.datetime.fromisoformat(body["issued_at"].replace("Z", "+00:00"))
    claims = claims_of(response)
    assert claims["access"] == [
        {"type": "repository", "name": "acme/brochure", "actions": ["pull"]}
    ]
    assert claims["exp"] - claims["iat"] == 300 and claims["aud"] == "websonic"
    assert jwt.get_unverified_header(body["token"])["alg"] == "HS256"
    key = world.settings.keys_dir / tokens.KEY_NAME
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    pulled = client.get(
        f"{BROCHURE}/manifests/1", headers={"Authorization": f"Bearer {body['token']}"}
    )
    assert pulled.status_code == 200
    assert client.get("/token", params={"scope": SCOPE}, headers=acme).status_code == 200


def test_grants_only_pull_on_the_callers_repositories(client: TestClient, acme) -> None:
    """Token auth spec: the access claim is the requested scope cut down to what is allowed."""
    response = token_request(
        client,
        acme,
        "repository:acme/brochure:pull,push,delete",
        "repository:globex/shop:pull",
        "repository:acme/nothing:pull",
        "repository:ACME/bad:pull",
        "registry:catalog:*",
        "repository:acme/blog:push",
    )
    assert claims_of(response)["access"] == [
        {"type": "repository", "name": "acme/brochure", "actions": ["pull"]},
        {"type": "repository", "name": "acme/nothing", "actions": ["pull"]},
        {"type": "registry", "name": "catalog", "actions": ["*"]},
    ]


def log_in(client: TestClient, username: str, password: str) -> None:
    page = client.get("/login")
    csrf = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    form = {"username": username, "password": password, "csrf_token": csrf, "next": "/"}
    assert client.post("/login", data=form).status_code == 303


def test_agency_users_and_portal_sessions(client: TestClient, people) -> None:
    """Token endpoint with a logged-in portal session: agency staff get every repository."""
    log_in(client, *people["developer"])
    response = token_request(client, {}, "repository:globex/shop:pull", SCOPE)
    assert response.status_code == 200
    assert [a["name"] for a in claims_of(response)["access"]] == ["globex/shop", "acme/brochure"]
    assert claims_of(response)["sub"] == "user:dev"
    token = response.json()["token"]
    shop = client.get("/v2/globex/shop/tags/list", headers={"Authorization": f"Bearer {token}"})
    assert shop.status_code == 200


def test_customer_portal_user_gets_only_their_own(client: TestClient, people) -> None:
    """Token endpoint with a customer's portal session: their customer's repositories only."""
    log_in(client, *people["acme_owner"])
    response = token_request(client, {}, "repository:globex/shop:pull", SCOPE)
    assert [a["name"] for a in claims_of(response)["access"]] == ["acme/brochure"]


def test_token_endpoint_refuses_bad_credentials(client: TestClient, world, basic_auth) -> None:
    """Token endpoint: wrong password, wrong user, revoked or expired token -> 401."""
    acme_token = world.tokens["acme"]
    wrong = [
        basic_auth("acme", acme_token[:-1] + ("A" if acme_token[-1] != "A" else "B")),
        basic_auth("globex", acme_token),
        basic_auth("acme", "not-a-token"),
        basic_auth("acme", world.tokens["revoked"]),
        basic_auth("acme", world.tokens["expired"]),
        {"Authorization": "Basic !!!notbase64"},
        {"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()},
        {},
    ]
    for headers in wrong:
        response = token_request(client, headers, SCOPE)
        assert response.status_code == 401, headers
        assert response.headers["www-authenticate"] == 'Basic realm="websonic"'
        assert "token" not in response.json()
    assert token_request(client, basic_auth("acme", acme_token), service="other").status_code == 400


def test_registry_accepts_basic_directly(client: TestClient, world, basic_auth) -> None:
    """Basic on registry requests (skopeo --src-creds): good token in; bad, revoked, expired out."""
    assert client.get("/v2/", headers=basic_auth("acme", world.tokens["acme"])).status_code == 200
    for name in ("revoked", "expired"):
        refused = client.get(
            f"{BROCHURE}/manifests/1", headers=basic_auth("acme", world.tokens[name])
        )
        assert refused.status_code == 401 and "Bearer realm=" in refused.headers["www-authenticate"]
    wrong_user = client.get("/v2/", headers=basic_auth("globex", world.tokens["acme"]))
    assert wrong_user.status_code == 401


def test_forged_expired_and_misdirected_bearer_tokens(client: TestClient, world) -> None:
    """Bearer tokens: bad signature, alg none, expired, other audience, garbage -> 401."""
    key = tokens.load_key(world.settings.keys_dir)
    access = [{"type": "repository", "name": "acme/brochure", "actions": ["pull"]}]
    principal = Principal("token:" + world.tokens["acme"].split("_")[1], "acme")
    good = tokens.issue(key, principal, access).token
    now = dt.datetime.now(dt.UTC)
    later = now + dt.timedelta(minutes=5)
    base = {**principal.claims(), "iss": tokens.ISSUER, "aud": "websonic", "iat": now, "nbf": now}
    forged = [
        tokens.issue(b"x" * 32, principal, access).token,
        jwt.encode({**base, "exp": later, "access": access}, None, algorithm="none"),
        tokens.issue(key, principal, access, now=now - dt.timedelta(minutes=10)).token,
        jwt.encode(
            {**base, "aud": "other", "exp": later, "access": access},
            key,
            algorithm="HS256",
        ),
        jwt.encode({**base, "exp": later}, key, algorithm="HS256"),
        good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB"),
        "not.a.jwt",
        "x" * 60_000,
    ]
    assert (
        client.get(
            f"{BROCHURE}/manifests/1", headers={"Authorization": f"Bearer {good}"}
        ).status_code
        == 200
    )
    for token in forged:
        response = client.get(
            f"{BROCHURE}/manifests/1", headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 401, token[:40]
        assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_revoking_the_api_token_ends_its_bearer_tokens(
    client: TestClient, world, acme, bearer
) -> None:
    """A bearer token is refused as soon as the API token behind it is revoked."""
    headers = bearer(acme, SCOPE)
    assert client.get(f"{BROCHURE}/tags/list", headers=headers).status_code == 200
    with world.platform.transaction() as session:
        revoke_token(session, world.tokens["acme"].split("_")[1], actor="test")
    assert client.get(f"{BROCHURE}/tags/list", headers=headers).status_code == 401
    assert client.get("/v2/token", params={"scope": SCOPE}, headers=acme).status_code == 401


def test_a_token_without_the_scope_is_challenged_again(client: TestClient, acme, bearer) -> None:
    """Token auth spec: a token lacking the repository's scope -> 401 insufficient_scope."""
    headers = bearer(acme, SCOPE)
    response = client.get("/v2/acme/blog/tags/list", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == (
        'Bearer realm="http://testserver/v2/token",service="websonic",'
        'scope="repository:acme/blog:pull",error="insufficient_scope"'
    )


def test_signing_key_is_made_once(world) -> None:
    """The HS256 secret: 32 random bytes, mode 600, the same on every load."""
    first = tokens.load_key(world.settings.keys_dir)
    assert len(first) == 32 and tokens.load_key(world.settings.keys_dir) == first
    assert (
        json.dumps(sorted(p.name for p in world.settings.keys_dir.iterdir())).count("registry") == 1
    )


# --- issue 8: the realm is WebSonic's public address; tokens of one site pull that site only ---


EVIL = {"Host": "evil.example", "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "http"}


def test_finding5_a_forged_host_does_not_move_the_realm(world) -> None:
    """Yesterday the realm was the request's base URL: a forged Host sent podman's Basic
    credentials to the forger. Now it is WEBSONIC_PUBLIC_URL (or the listening socket)."""
    from websonic.web.app import create_app

    settings = world.settings.model_copy(update={"public_url": "https://websonic.example/"})
    app = create_app(settings, platform=world.platform, start_workers=False)
    with TestClient(app) as configured:
        for path in ("/v2/", f"{BROCHURE}/manifests/1", "/v2/_catalog"):
            header = configured.get(path, headers=EVIL).headers["www-authenticate"]
            assert header.startswith('Bearer realm="https://websonic.example/v2/token",'), header


def test_finding5_without_a_public_url_the_realm_is_the_sockets_not_the_hosts(
    client: TestClient,
) -> None:
    header = client.get(f"{BROCHURE}/manifests/1", headers=EVIL).headers["www-authenticate"]
    assert header.startswith('Bearer realm="http://testserver/v2/token",') and "evil" not in header


def test_finding4_a_pull_token_of_one_site_pulls_that_site_only(
    client: TestClient, world, bearer
) -> None:
    with world.platform.transaction() as session:
        site = get_site(session, "acme/brochure")
        made = create_token(
            session,
            site.customer,
            scope="pull",
            expires_in=dt.timedelta(days=1),
            actor="test",
            site=site,
        )
    credentials = basic("acme", made.secret)
    assert client.get(f"{BROCHURE}/tags/list", headers=credentials).status_code == 200
    assert client.get("/v2/acme/blog/tags/list", headers=credentials).status_code == 404
    issued = token_request(client, credentials, SCOPE, "repository:acme/blog:pull")
    assert [a["name"] for a in claims_of(issued)["access"]] == ["acme/brochure"]
    assert claims_of(issued)["site"] == "acme/brochure"
    catalog = client.get("/v2/_catalog", headers=credentials).json()
    assert catalog == {"repositories": ["acme/brochure"]}
    blog = client.get("/v2/acme/blog/tags/list", headers=bearer(credentials, SCOPE))
    assert blog.status_code == 404  # as if it did not exist


def test_an_install_code_pulls_nothing(client: TestClient, world) -> None:
    with world.platform.transaction() as session:
        code = create_install_code(session, get_site(session, "acme/brochure"), actor="test")
    response = client.get(f"{BROCHURE}/tags/list", headers=basic("acme", code.secret))
    assert response.status_code == 403
