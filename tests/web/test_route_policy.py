"""The route table (websonic.web.policy.ROUTES) is the app's, enforced, and no route shows one
customer anything of another.

The sweep drives every route of the table as every caller (anonymous, the agency's admin and
developer, the owner, editor and viewer of customer A, A's pull, install and bearer tokens and
A's one-time install code) at A's thing, at B's thing and at missing things, over a real
initialised state folder with a real, signed release of each customer. It collects every
problem before failing, so that one run lists every leak.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import hashlib
import io
import json
import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from websonic.accounts.models import Role
from websonic.accounts.service import add_customer, add_user
from websonic.accounts.tokens import create_install_code, create_token
from websonic.builds import exports, signing
from websonic.builds import service as builds
from websonic.builds.models import Release
from websonic.builds.oci import OciLayout
from websonic.platform import Platform, init_platform, open_platform
from websonic.settings import Settings
from websonic.sites.models import Site
from websonic.sites.service import add_site
from websonic.web import policy
from websonic.web.app import create_app

from web.web_helpers import ADMIN, TestClient, login, make_settings, static_source

PUBLIC_URL = "https://websonic.example"
A, B = "acme", "globex"
A_SITE, B_SITE = "brochure", "shopfront"
B_NAME = "Globex Industries"
MISSING_JOB = "987654"
PEOPLE = {
    "developer": ("dev", "developer-password-1", Role.DEVELOPER),
    "owner": ("olivia", "acme-owner-password", Role.OWNER),
    "editor": ("eddie", "acme-editor-password", Role.EDITOR),
    "viewer": ("vera", "acme-viewer-password", Role.VIEWER),
}
VOLATILE = {"date", "content-length", "set-cookie", "etag"}
WRITES = {"POST", "PUT", "PATCH", "DELETE"}


# The world: two customers, each with a site, a signed release, a job --------------------------


@dataclass
class Thing:
    """What of one customer the sweep asks for: path values and what to look for in answers."""

    customer: str
    site: str
    job_id: str
    digests: list[str] = field(default_factory=list)  # manifest, config, layer, SBOM

    def values(self) -> dict[str, str]:
        return {"customer": self.customer, "site": self.site, "job_id": self.job_id}


@dataclass
class World:
    platform: Platform
    things: dict[str, Thing]  # "own" (A's), "other" (B's)
    tokens: dict[str, str]  # "pull", "install", "code": A's

    @property
    def settings(self) -> Settings:
        return self.platform.settings


@dataclass(frozen=True)
class Image:
    manifest: str
    config: str
    layer: dict[str, Any]  # digest, size, diff_id
    sbom: str

    @property
    def digests(self) -> list[str]:
        return [self.manifest, self.config, self.layer["digest"], self.sbom]


def tar_of(files: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()


def write_image(layout: OciLayout, seed: int) -> Image:
    """A small, real OCI image (one layer) in the state folder's image store."""
    layer_tar = tar_of({f"srv/site/{seed}.txt": f"site {seed}\n".encode() * 100})
    layer = gzip.compress(layer_tar, mtime=0)
    diff_id = "sha256:" + hashlib.sha256(layer_tar).hexdigest()
    row = {"digest": layout.write_blob(layer), "size": len(layer), "diff_id": diff_id}
    config = json.dumps({"os": "linux", "rootfs": {"type": "layers", "diff_ids": [diff_id]}})
    config_digest = layout.write_blob(config.encode())
    oci = "application/vnd.oci.image"
    manifest = {
        "schemaVersion": 2,
        "mediaType": f"{oci}.manifest.v1+json",
        "config": {
            "mediaType": f"{oci}.config.v1+json",
            "digest": config_digest,
            "size": len(config),
        },
        "layers": [
            {"mediaType": f"{oci}.layer.v1.tar+gzip", "digest": row["digest"], "size": len(layer)}
        ],
    }
    digest = layout.write_blob(json.dumps(manifest).encode())
    sbom = layout.write_blob(json.dumps({"bomFormat": "CycloneDX", "seed": seed}).encode())
    return Image(digest, config_digest, row, sbom)


def write_release(platform: Platform, site: Site, seed: int) -> list[str]:
    """Release 1 of ``site``: a real image, signed by the platform, its archive made (as the
    first download makes it, without skopeo); returns its digests."""
    image = write_image(OciLayout(platform.settings.oci_dir), seed)
    payload = signing.make_payload(site.ref_name, 1, image.manifest, image.sbom)
    release = Release(
        site_id=site.id,
        number=1,
        digest=image.manifest,
        config_digest=image.config,
        size=image.layer["size"],
        layers=[image.layer],
        base_digest=None,
        tool_versions={},
        source_ref=site.source,
        source_revision=None,
        source_epoch=0,
        signature=platform.signer.sign(payload),
        signed_payload=payload.decode(),
        signing_key_id=platform.signer.key_id,
        sbom_digest=image.sbom,
    )
    with platform.transaction() as session:
        session.add(release)
        session.flush()
        write_archive(platform, release)
    return image.digests


def write_archive(platform: Platform, release: Release) -> None:
    path = exports.archive_path(platform.settings, release)
    path.parent.mkdir(parents=True)
    index = json.dumps({"manifests": [{"digest": release.digest}]}).encode()
    path.write_bytes(tar_of({"index.json": index}))
    record = {
        "reference": exports.reference_of(release),
        "digest": release.digest,
        "size": path.stat().st_size,
        "sha256": exports.sha256_hex(path),
    }
    path.with_name(path.name + ".json").write_text(json.dumps(record))


def seed(platform: Platform, sources: Path) -> World:
    with platform.transaction() as session:
        acme = add_customer(session, A, "Acme Anvils", actor="test")
        add_customer(session, B, B_NAME, actor="test")
        for username, password, role in PEOPLE.values():
            customer = None if role.is_agency else acme
            add_user(session, username, password, role, customer=customer, actor="test")
        sites = {
            ref: add_site(
                session, platform.runner, ref, str(static_source(sources / ref)), actor="test"
            )
            for ref in (f"{A}/{A_SITE}", f"{B}/{B_SITE}")
        }
        session.flush()
        jobs = {
            ref: builds.request_build(session, site, ref=None, requested_by="test")
            for ref, site in sites.items()
        }
        session.flush()
        year, month = dt.timedelta(days=365), dt.timedelta(days=30)
        own_site = sites[f"{A}/{A_SITE}"]
        tokens = {
            "pull": create_token(session, acme, scope="pull", expires_in=year, actor="t").secret,
            "install": create_token(
                session, acme, scope="install", expires_in=month, actor="t", site=own_site
            ).secret,
            "code": create_install_code(session, own_site, actor="t").secret,
        }
        job_ids = {ref: str(job.id) for ref, job in jobs.items()}
    things = {}
    for name, (customer, site) in {"own": (A, A_SITE), "other": (B, B_SITE)}.items():
        with platform.transaction() as session:
            found = session.get(Site, sites[f"{customer}/{site}"].id)
            assert found is not None
            digests = write_release(platform, found, seed=len(things))
        things[name] = Thing(customer, site, job_ids[f"{customer}/{site}"], digests)
    return World(platform, things, tokens)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("policy")
    settings = make_settings(base / "home", public_url=PUBLIC_URL)
    init_platform(settings)
    platform = open_platform(settings)
    try:
        yield seed(platform, base / "sources")
    finally:
        platform.close()


@pytest.fixture(scope="module")
def app(world: World) -> FastAPI:
    return create_app(world.settings, platform=world.platform, start_workers=False)


# (1) The table is the app's --------------------------------------------------------------------


def test_every_route_of_the_app_is_in_the_table_and_every_entry_is_a_route(app: FastAPI) -> None:
    assert policy.unlisted_routes(app) == [], "routes without a rule in policy.ROUTES"
    assert policy.stale_entries(app) == [], "policy.ROUTES entries that are no route"


def test_the_app_does_not_start_with_a_route_outside_the_table(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = dict(policy.ROUTES)
    del table[("GET", "/api/v1/customers")]
    monkeypatch.setattr(policy, "ROUTES", table)
    with pytest.raises(policy.RouteNotInPolicy, match="GET /api/v1/customers"):
        create_app(world.settings, platform=world.platform, start_workers=False)


def test_a_route_added_after_the_app_was_made_cannot_be_reached(world: World) -> None:
    """Deny by default: the gate answers for a route it has no rule for, and the app refuses
    to start serving with it."""
    app = create_app(world.settings, platform=world.platform, start_workers=False)
    called = []
    app.add_api_route("/sneaky", lambda: called.append(1) or {"secret": B_NAME})
    client = TestClient(app, follow_redirects=False)
    response = client.get("/sneaky")  # not started: no lifespan
    assert response.status_code == 404 and called == [] and B_NAME not in response.text
    with pytest.raises(policy.RouteNotInPolicy, match="GET /sneaky"), client:
        pass


def test_the_gate_answers_before_the_route_another_customers_build_like_a_missing_one(
    app: FastAPI, world: World
) -> None:
    """A customer's owner asking to build: 404 for B's site as for a missing one, 403 for
    their own (the role check comes after the tenant check)."""
    with TestClient(app, follow_redirects=False) as client:
        assert login(client, *PEOPLE["owner"][:2]).status_code == 303
        csrf = {"X-CSRF-Token": client.get("/api/v1/me").json()["csrf_token"]}
        post = lambda ref: client.post(f"/api/v1/sites/{ref}/builds", headers=csrf)  # noqa: E731
        assert post(f"{A}/{A_SITE}").status_code == 403
        other, missing = post(f"{B}/{B_SITE}"), post(f"{B}/nosuchsite")
        assert other.status_code == missing.status_code == 404
        assert other.json() == missing.json()
        assert "Only agency staff" in post(f"{A}/{A_SITE}").json()["detail"]


def test_the_gate_checks_the_tenant_even_when_a_route_forgets_to(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A careless route that shows any site it is asked for: its rule alone keeps B's site
    from A's people, worded as for a missing site."""
    careless = ("GET", "/careless/{customer}/{site}")
    table = {**policy.ROUTES, careless: policy.Rule(policy.Who.USER, policy.Tenant.SITE, "x")}
    monkeypatch.setattr(policy, "ROUTES", table)
    app = create_app(world.settings, platform=world.platform, start_workers=False)
    app.add_api_route(careless[1], lambda customer, site: {"shown": f"{customer}/{site}"})
    policy.install(app)
    with TestClient(app, follow_redirects=False) as client:
        assert login(client, *PEOPLE["viewer"][:2]).status_code == 303
        assert client.get(f"/careless/{A}/{A_SITE}").status_code == 200
        other, missing = (client.get(f"/careless/{B}/{site}") for site in (B_SITE, "nosuchsite"))
        assert other.status_code == missing.status_code == 404
        assert other.text == missing.text and B_SITE not in other.text


def test_the_routes_reference_names_every_route() -> None:
    text = policy.render_routes()
    for method, path in policy.ROUTES:
        assert f"| {method} | `{path}` |" in text


# (2) The sweep -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Caller:
    name: str
    role: Role | None = None  # a portal session of this role
    token: str | None = None  # A's "pull", "install" (Basic), "bearer", "code" (install code)

    @property
    def agency(self) -> bool:
        return self.role is not None and self.role.is_agency


CALLERS = [
    Caller("anonymous"),
    Caller("admin", Role.ADMIN),
    *(Caller(name, role) for name, (_, _, role) in PEOPLE.items()),
    Caller("A's pull token", token="pull"),
    Caller("A's install token", token="install"),
    Caller("A's bearer token", token="bearer"),
    Caller("A's install code", token="code"),
]
TARGETS = ("own", "other", "missing site", "missing customer", "missing job")
MISSING = TARGETS[2:]


@dataclass(frozen=True)
class Call:
    method: str
    url: str
    target: str  # "none" or one of TARGETS
    names: tuple[tuple[str, str], ...]  # (value asked for, placeholder)


def target_thing(world: World, target: str) -> Thing:
    own, other = world.things["own"], world.things["other"]
    if target == "own":
        return own
    if target == "missing site":
        return Thing(B, "nosuchsite", MISSING_JOB, other.digests)
    if target in ("missing customer", "missing job"):
        return Thing("nobody", B_SITE, MISSING_JOB, other.digests)
    return other


def targets_of(template: str) -> list[str]:
    """What a route can name: a job; a customer; a site (or repository) of a customer.
    A's own thing comes last: asking for it may use a one-time code up."""
    if "{job_id}" in template:
        return ["other", "missing job", "own"]
    if "{site}" in template or "{path}" in template:
        return ["other", "missing site", "missing customer", "own"]
    return ["other", "missing customer", "own"]


def registry_paths(thing: Thing) -> list[str]:
    name = f"{thing.customer}/{thing.site}"
    manifest, config, layer, _ = thing.digests
    return [
        f"{name}/manifests/1",
        f"{name}/manifests/{manifest}",
        f"{name}/blobs/{layer}",
        f"{name}/blobs/{config}",
        f"{name}/tags/list",
    ]


QUERIES = {  # routes whose target is in the query
    "/v2/token": "service=websonic&scope=repository:{customer}/{site}:pull",
    "/token": "service=websonic&scope=repository:{customer}/{site}:pull",
}


def calls_of(world: World, method: str, path: str) -> list[Call]:
    """The concrete requests for one entry of the table: one per target it can name."""
    method = "GET" if method == policy.ANY_METHOD else method
    if path == "/static/{path}":
        return [Call(method, "/static/portal.css", "none", ())]
    query = QUERIES.get(path, "")
    if "{" not in path + query:
        return [Call(method, path, "none", ())]
    calls = []
    for target in targets_of(path + query):
        thing = target_thing(world, target)
        values = {**thing.values(), "number": "1"}
        names = [(values[k], k.upper()) for k in values if f"{{{k}}}" in path + query]
        if path == "/v2/{path}":  # pushes are refused whatever they name: one name is enough
            names += registry_names(thing)
            urls = [f"/v2/{p}" for p in registry_paths(thing)][: 1 if method in WRITES else None]
        else:
            urls = [path.format(**values)]
        suffix = "?" + query.format(**values) if query else ""
        calls += [Call(method, url + suffix, target, tuple(names)) for url in urls]
    return calls


def registry_names(thing: Thing) -> list[tuple[str, str]]:
    digests = [(digest, f"DIGEST{i}") for i, digest in enumerate(thing.digests)]
    return [(thing.customer, "CUSTOMER"), (thing.site, "SITE"), *digests]


def normalised(call: Call, response: httpx.Response) -> tuple[int, str, dict[str, str]]:
    """The answer with what the request itself named replaced by placeholders."""

    def scrub(text: str) -> str:
        for value, placeholder in call.names:
            text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(value)}(?![A-Za-z0-9])", placeholder, text)
        return text

    headers = {k: scrub(v) for k, v in response.headers.items() if k not in VOLATILE}
    return response.status_code, scrub(readable(response)), headers


def readable(response: httpx.Response) -> str:
    """The body as text; a registry token's claims decoded (what it grants is what matters)."""
    if response.request.method == "HEAD":
        return ""
    text = response.text
    if response.headers.get("content-type", "").startswith("application/json"):
        body = response.json()
        if isinstance(body, dict) and isinstance(body.get("token"), str):
            claims = body["token"].split(".")[1]
            decoded = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
            return json.dumps({"access": decoded.get("access")}, sort_keys=True)
    return text


def leaks(world: World, answer: tuple[int, str, dict[str, str]]) -> list[str]:
    """B's things in an answer (after the names the request asked for were replaced)."""
    other = world.things["other"]
    markers = [B, B_NAME, B_SITE, *other.digests]
    text = answer[1] + json.dumps(answer[2])
    return [marker for marker in markers if marker.lower() in text.lower()]


class Sweep:
    """Drives the calls as one caller; every problem is collected, none stops the sweep."""

    def __init__(self, world: World, client: TestClient, caller: Caller) -> None:
        self.world, self.client, self.caller = world, client, caller
        self.headers: dict[str, str] = {}
        self.csrf = ""
        self.problems: list[str] = []
        self.reached: set[tuple[str, str]] = set()

    def start(self) -> None:
        caller, tokens = self.caller, self.world.tokens
        if caller.role is not None:
            username, password = self.credentials(caller.role)
            assert login(self.client, username, password).status_code == 303
            self.csrf = self.client.get("/api/v1/me").json()["csrf_token"]
            self.headers = {"X-CSRF-Token": self.csrf}
        elif caller.token in ("pull", "install"):
            self.headers = basic(A, tokens[caller.token])
        elif caller.token == "bearer":
            self.headers = self.bearer()
        elif caller.token == "code":
            self.headers = {"Authorization": f"Bearer {tokens['code']}"}

    def credentials(self, role: Role) -> tuple[str, str]:
        if role is Role.ADMIN:
            return ADMIN
        username, password, _ = next(p for p in PEOPLE.values() if p[2] is role)
        return username, password

    def bearer(self) -> dict[str, str]:
        """A's token through the token endpoint, asking for every name the sweep uses."""
        names = {f"{t.customer}/{t.site}" for t in map(self.thing, TARGETS)}
        params = [("service", "websonic")] + [("scope", f"repository:{n}:pull") for n in names]
        response = self.client.get(
            "/v2/token", params=params, headers=basic(A, self.world.tokens["pull"])
        )
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['token']}"}

    def thing(self, target: str) -> Thing:
        return target_thing(self.world, target)

    def send(self, call: Call) -> httpx.Response:
        data = {"csrf_token": self.csrf} if call.method == "POST" and self.csrf else None
        if call.url.startswith("/api/"):
            data = None
        return self.client.request(call.method, call.url, headers=self.headers, data=data)

    def drive(self, key: policy.RouteKey) -> None:
        rule = policy.ROUTES[key]
        answers: dict[str, list[tuple[int, str, dict[str, str]]]] = {}
        for call in calls_of(self.world, *key):
            response = self.send(call)
            answer = normalised(call, response)
            answers.setdefault(call.target, []).append(answer)
            self.check(key, rule, call, answer)
        self.compare(key, answers)

    def problem(self, key: policy.RouteKey, text: str) -> None:
        self.problems.append(f"{self.caller.name}: {key[0]} {key[1]}: {text}")

    def check(
        self, key: policy.RouteKey, rule: policy.Rule, call: Call, answer: tuple[int, str, Any]
    ) -> None:
        status = answer[0]
        where = f"{call.method} {call.url} -> {status}"
        if status >= 500:
            self.problem(key, f"server error: {where}")
        if not self.caller.agency:
            found = leaks(self.world, answer)
            if found:
                self.problem(key, f"shows B's {found}: {where}")
        if 200 <= status < 300 and call.target in ("own", "none"):
            self.reached.add(key)
        roles = rule.who.roles
        if roles is None or call.target not in ("own", "other", "none"):
            return
        if call.target == "other" and not self.caller.agency:
            return
        expected = self.expected(roles, call.url)
        if expected == "allowed" and status in (401, 403, 404):
            self.problem(key, f"refused although the table allows it: {where}")
        elif expected != "allowed" and status not in expected:
            self.problem(key, f"expected {expected}: {where}")

    def expected(self, roles: frozenset[Role], url: str) -> str | tuple[int, ...]:
        if self.caller.role is None:
            return (401,) if url.startswith("/api/") else (303,)
        return "allowed" if self.caller.role in roles else (403,)

    def compare(self, key: policy.RouteKey, answers: dict[str, list[Any]]) -> None:
        """For a caller of A: B's thing answers exactly as a missing thing."""
        if self.caller.agency or "other" not in answers:
            return
        for target in MISSING:
            if target in answers and answers[target] != answers["other"]:
                pairs = zip(answers["other"], answers[target], strict=True)
                first = difference(*next((o, m) for o, m in pairs if o != m))
                self.problem(key, f"B's thing answers unlike a {target}: {first}")


def difference(other: tuple[int, str, dict[str, str]], missing: tuple[int, str, Any]) -> str:
    """The first difference of two answers, short."""
    if other[0] != missing[0]:
        return f"status {other[0]} instead of {missing[0]}"
    for name in sorted(set(other[2]) | set(missing[2])):
        if other[2].get(name) != missing[2].get(name):
            return f"header {name}: {other[2].get(name)!r} instead of {missing[2].get(name)!r}"
    at = next(i for i, (o, m) in enumerate(zip(other[1] + "$", missing[1] + "^")) if o != m)
    start = max(at - 40, 0)
    return f"body {other[1][start : at + 40]!r} instead of {missing[1][start : at + 40]!r}"


def basic(username: str, password: str) -> dict[str, str]:
    raw = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def ordered_routes() -> list[policy.RouteKey]:
    """The table's routes, logging out last (it ends the caller's session)."""
    return sorted(policy.ROUTES, key=lambda key: key == ("POST", "/logout"))


def test_every_route_as_every_caller_shows_nothing_of_another_customer(
    app: FastAPI, world: World
) -> None:
    problems: list[str] = []
    reached: set[policy.RouteKey] = set()
    for caller in CALLERS:
        with TestClient(app, follow_redirects=False) as client:
            sweep = Sweep(world, client, caller)
            sweep.start()
            for key in ordered_routes():
                sweep.drive(key)
        problems += sweep.problems
        reached |= sweep.reached
    never = [key for key in policy.ROUTES if key not in reached and key[0] not in WRITES]
    problems += [f"no caller reached {method} {path} (2xx)" for method, path in never]
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems)
