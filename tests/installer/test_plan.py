"""The install plan from real model objects: a state folder with sites registered from
examples/ and release rows as the build pipeline leaves them (manifest, services, a real
signed payload), without building anything."""

from __future__ import annotations

import base64
import shutil
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy.orm import Session

import websonic.models  # noqa: F401 - every table's class, for relationships
from websonic.accounts.service import add_customer
from websonic.builds import signing
from websonic.builds.models import Release
from websonic.builds.service import get_release
from websonic.core.errors import InvalidInput
from websonic.hosting import spec
from websonic.installer import plan as plans
from websonic.platform import Platform, init_platform, open_platform
from websonic.settings import Settings
from websonic.sites.manifest import Manifest
from websonic.sites.models import Site
from websonic.sites.service import add_site, get_site

from conftest import EXAMPLES

PUBLIC_URL = "https://websonic.example"
NOW = 1_750_000_000.0
POSTGRES = "sha256:" + "51" * 32
MARIADB = "sha256:" + "3d" * 32
#: Sites of the state folder: ref -> example (a slug with '-' shows the database naming).
SITES = {
    "acme/brochure": "static-brochure",
    "acme/big-shop": "python-shop",
    "acme/guestbook": "php-guestbook",
    "acme/2shop": "python-shop",
    "acme/pg-shop": "python-shop",
}


def digest(n: int) -> str:
    return f"sha256:{n:064x}"


def service(engine: str, manifest_digest: str) -> dict[str, Any]:
    """A release's service image record, as ``store_service_image`` leaves it."""
    return {
        "engine": engine,
        "version": "15" if engine == "postgresql" else "10.11",
        "digest": manifest_digest,
        "config_digest": digest(99),
        "size": 123_456,
        "layers": [{"digest": digest(98), "size": 123_000, "diff_id": digest(97)}],
    }


def add_release(
    platform: Platform, session: Session, ref: str, number: int, services: list[dict[str, Any]]
) -> Release:
    """A release row as the pipeline records it: the manifest it was built from, its service
    images, and a payload signed with the state folder's key that names them."""
    site = get_site(session, ref)
    payload = signing.make_payload(
        ref,
        number,
        digest(number),
        digest(1000 + number),
        {s["engine"]: s["digest"] for s in services},
    )
    release = Release(
        site_id=site.id,
        number=number,
        digest=digest(number),
        config_digest=digest(500 + number),
        size=40 * 1024 * 1024,
        layers=[],
        base_digest=None,
        tool_versions={},
        source_ref=site.source,
        source_revision=None,
        source_epoch=0,
        signature=platform.signer.sign(payload),
        signed_payload=payload.decode("utf-8"),
        signing_key_id=platform.signer.key_id,
        sbom_digest=digest(1000 + number),
        services=services,
        manifest=Manifest.model_validate(site.manifest).to_record(),
    )
    session.add(release)
    session.flush()
    return release


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    base = tmp_path_factory.mktemp("plans")
    settings = Settings(
        home=base / "home", environment="development", admin_password="admin-password-x"
    )
    init_platform(settings)
    opened = open_platform(settings)
    with opened.transaction() as session:
        add_customer(session, "acme", "ACME", actor="test")
        for ref, example in SITES.items():
            source = base / "sources" / ref
            shutil.copytree(EXAMPLES / example, source)
            add_site(session, opened.runner, ref, str(source), actor="test")
        add_release(opened, session, "acme/brochure", 1, [])
        add_release(opened, session, "acme/big-shop", 1, [service("postgresql", POSTGRES)])
        add_release(opened, session, "acme/big-shop", 2, [])  # built before the base existed
        add_release(opened, session, "acme/big-shop", 3, [service("mariadb", MARIADB)])
        add_release(opened, session, "acme/guestbook", 1, [service("mariadb", MARIADB)])
        add_release(opened, session, "acme/2shop", 1, [service("postgresql", POSTGRES)])
        add_release(opened, session, "acme/pg-shop", 1, [service("postgresql", POSTGRES)])
    yield opened
    opened.close()


@pytest.fixture
def session(platform: Platform) -> Iterator[Session]:
    """A session never committed: a test may change the objects it reads."""
    with platform.sessions() as opened:
        yield opened
        opened.rollback()


def site_release(session: Session, ref: str, number: int | None = None) -> tuple[Site, Release]:
    site = get_site(session, ref)
    return site, get_release(session, site, number)


def plan_of(
    session: Session, ref: str, number: int | None = None, **options: Any
) -> plans.InstallPlan:
    site, release = site_release(session, ref, number)
    requirements = spec.requirements_for(site, release)
    options = {"public_url": PUBLIC_URL, "now": NOW, **options}
    return plans.make_plan(site, release, requirements, **options)


def set_env(release: Release, **env: object) -> None:
    """Change the env of the manifest the release records (as a rebuild with it would)."""
    manifest = dict(release.manifest or {})
    manifest["env"] = {**manifest.get("env", {}), **env}
    release.manifest = manifest


def refusal(session: Session, ref: str, **options: Any) -> InvalidInput:
    with pytest.raises(InvalidInput) as refused:
        plan_of(session, ref, **options)
    return refused.value


# --- what a plan holds -------------------------------------------------------------------


def test_a_static_sites_plan(session: Session) -> None:
    site, release = site_release(session, "acme/brochure")
    plan = plan_of(session, "acme/brochure")
    assert plan.site == "acme/brochure" and plan.name == "acme-brochure"
    assert plan.release == 1 and plan.issued_at == int(NOW)
    assert plan.registry == plans.Registry("websonic.example", insecure=False)
    assert plan.digest == release.digest
    assert plan.image == f"websonic.example/acme/brochure@{release.digest}"
    assert plan.payload == release.signed_payload.encode() and plan.signature == release.signature
    assert (plan.kind, plan.port, plan.health) == ("static", 8080, "/healthz")
    assert plan.volumes == plan.env == plan.secrets == plan.domains == ()
    assert plan.database == plans.Database(engine="none", mode="none")
    assert plan.tls == "internal" and plan.acme_email == ""
    assert plan.data_dir == spec.DATA_PATH == plans.DATA_DIR
    assert plan.requirements == spec.requirements_for(site, release)


def test_a_database_sites_plan(session: Session) -> None:
    plan = plan_of(session, "acme/big-shop", 1, domains=["shop.example", "www.shop.example"])
    assert plan.kind == "python"
    assert plan.volumes == (("uploads", "/srv/site/uploads"),)
    assert plan.env == (("SHOP_NAME", "Atelier Lumière"), ("UPLOAD_DIR", "/srv/site/uploads"))
    assert plan.secrets == ("DATABASE_URL",)
    assert plan.domains == ("shop.example", "www.shop.example")
    assert plan.database == plans.Database(
        engine="postgresql",
        mode="container",
        image=f"websonic.example/acme/big-shop@{POSTGRES}",
        digest=POSTGRES,
        version="15",
        name="big_shop",
        user="big_shop",
        port=5432,
    )
    assert plan.requirements.cpus == 2  # a database server beside the site


def test_the_release_records_the_manifest_the_plan_uses(session: Session) -> None:
    """The site's websonic.toml may have changed since the build: the release's wins."""
    site, release = site_release(session, "acme/brochure")
    site.manifest = {**site.manifest, "site": {**site.manifest["site"], "port": 9999}}
    assert plan_of(session, "acme/brochure").port == 8080
    release.manifest = None  # a release made before manifests were recorded: the site's
    assert plan_of(session, "acme/brochure").port == 9999


def test_render_and_parse_round_trip(session: Session) -> None:
    plan = plan_of(session, "acme/big-shop", 1, domains=["shop.example", "www.shop.example"])
    text = plans.render(plan)
    assert text.endswith(b"\n") and b"\r" not in text
    values = plans.parse(text)
    single = {key: value[0] for key, value in values.items() if len(value) == 1}
    assert single["format"] == plans.FORMAT == "websonic-plan/1"
    assert (single["site"], single["name"], single["release"]) == (
        "acme/big-shop",
        "acme-big-shop",
        "1",
    )
    assert single["issued_at"] == str(int(NOW))
    assert (single["registry"], single["registry_insecure"]) == ("websonic.example", "0")
    assert single["image"] == plan.image and single["digest"] == plan.digest
    assert base64.b64decode(single["payload"]) == plan.payload
    assert single["signature"] == plan.signature
    assert (single["kind"], single["port"], single["health"]) == ("python", "8080", "/healthz")
    assert single["data_dir"] == plan.data_dir and single["tls"] == "internal"
    assert single["acme_email"] == ""
    assert single["require_os"] == "debian:12 ubuntu:22.04"
    assert single["require_arch"] == "x86_64"
    r = plan.requirements
    assert [single[f"require_{k}"] for k in ("cpus", "memory_mib", "disk_mib", "inodes")] == [
        str(r.cpus),
        str(r.memory_mib),
        str(r.disk_mib),
        str(r.inodes),
    ]
    assert values["volume"] == ["uploads:/srv/site/uploads"]
    assert values["env"] == ["SHOP_NAME=Atelier Lumière", "UPLOAD_DIR=/srv/site/uploads"]
    assert values["secret"] == ["DATABASE_URL"]
    assert values["domain"] == ["shop.example", "www.shop.example"]
    db = plan.database
    assert single["database"] == "postgresql" and single["database_mode"] == "container"
    assert [single[f"database_{k}"] for k in ("image", "digest", "name", "user", "port")] == [
        db.image,
        db.digest,
        db.name,
        db.user,
        str(db.port),
    ]
    assert single["database_version"] == db.version == "15"  # the engine's, from the release
    # every line is one key=value, in this order, and nothing else
    keys = [line.split("=", 1)[0] for line in text.decode().splitlines()]
    assert keys[:3] == ["format", "site", "name"] and keys[-1] == "database_limit_pids"
    assert set(keys) == set(values) and len(keys) == sum(len(v) for v in values.values())


def test_a_plan_without_a_database_names_no_image(session: Session) -> None:
    values = plans.parse(plans.render(plan_of(session, "acme/brochure")))
    assert values["database"] == ["none"] and values["database_mode"] == ["none"]
    assert not [key for key in values if key.startswith("database_") and key != "database_mode"]
    assert "env" not in values and "secret" not in values and "volume" not in values


def test_the_plan_is_byte_identical_for_the_same_inputs(session: Session) -> None:
    first = plans.render(plan_of(session, "acme/guestbook", domains=["a.example"]))
    again = plans.render(plan_of(session, "acme/guestbook", domains=["a.example"]))
    assert first == again
    # the env's order in websonic.toml does not matter: the plan sorts it
    _, release = site_release(session, "acme/guestbook")
    assert release.manifest is not None
    release.manifest = {**release.manifest, "env": dict(reversed(release.manifest["env"].items()))}
    assert plans.render(plan_of(session, "acme/guestbook", domains=["a.example"])) == first
    # only the time it was made changes with the time
    later = plans.render(plan_of(session, "acme/guestbook", domains=["a.example"], now=NOW + 60))
    changed = set(first.splitlines()) ^ set(later.splitlines())
    assert changed == {f"issued_at={int(NOW)}".encode(), f"issued_at={int(NOW) + 60}".encode()}


def test_the_plan_carries_the_releases_signature_over_its_digests(
    platform: Platform, session: Session
) -> None:
    plan = plan_of(session, "acme/big-shop", 1)
    signing.verify(platform.signer.public, plan.payload, plan.signature)
    claims = signing.read_payload(plan.payload)
    assert claims["reference"] == "acme/big-shop:1" and claims["manifest_digest"] == plan.digest
    assert claims["services"] == {"postgresql": plan.database.digest}


# --- the registry ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "address", "insecure"),
    [
        ("https://websonic.example", "websonic.example", False),
        ("https://websonic.example/", "websonic.example", False),
        ("https://websonic.example:8443", "websonic.example:8443", False),
        ("http://10.0.0.5:8000", "10.0.0.5:8000", True),
        ("http://testserver", "testserver", True),
        ("HTTPS://WebSonic.Example", "WebSonic.Example", False),
        ("https://[fd00::1]:8443", "[fd00::1]:8443", False),
    ],
)
def test_the_registry_is_the_public_urls_host(url: str, address: str, insecure: bool) -> None:
    assert plans.Registry.from_public_url(url) == plans.Registry(address, insecure)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://websonic.example",
        "websonic.example",
        "https://",
        "https:///path",
        "https://:8443",
        "https://user@websonic.example",
        "https://user:password@websonic.example",
        "https://websonic.example:port",
        "https://websonic.example:99999",
        "https://web sonic.example",
        "http://evil';touch /tmp/x;'",
        'https://a"b.example',
        "https://a$(id).example",
        "",
    ],
)
def test_the_registry_refuses_what_is_not_an_http_url_of_a_host(url: str) -> None:
    with pytest.raises(InvalidInput, match="WEBSONIC_PUBLIC_URL"):
        plans.Registry.from_public_url(url)


def test_an_http_public_url_makes_an_insecure_registry(session: Session) -> None:
    plan = plan_of(session, "acme/brochure", public_url="http://10.0.0.5:8000")
    values = plans.parse(plans.render(plan))
    assert values["registry"] == ["10.0.0.5:8000"] and values["registry_insecure"] == ["1"]
    assert values["image"] == [f"10.0.0.5:8000/acme/brochure@{plan.digest}"]


def test_a_bad_public_url_makes_no_plan(session: Session) -> None:
    assert "WEBSONIC_PUBLIC_URL" in refusal(session, "acme/brochure", public_url="ftp://x").message


# --- the database ----------------------------------------------------------------------------


def test_plain_env_names_the_database(session: Session) -> None:
    """php-guestbook's DB_NAME/DB_USER win over the slug."""
    db = plan_of(session, "acme/guestbook").database
    assert (db.engine, db.name, db.user, db.port) == ("mariadb", "guestbook", "guestbook", 3306)
    assert db.image == f"websonic.example/acme/guestbook@{MARIADB}"


def test_pg_variables_come_first(session: Session) -> None:
    _, release = site_release(session, "acme/big-shop", 1)
    set_env(release, DB_NAME="second", PGDATABASE="shopdata", DB_USER="u2", PGUSER="shopuser")
    db = plan_of(session, "acme/big-shop", 1).database
    assert (db.name, db.user) == ("shopdata", "shopuser")


def test_an_empty_or_secret_variable_does_not_name_the_database(session: Session) -> None:
    _, release = site_release(session, "acme/big-shop", 1)
    set_env(release, PGDATABASE="", DB_NAME="named", PGUSER={"secret": True})
    db = plan_of(session, "acme/big-shop", 1).database
    assert (db.name, db.user) == ("named", "big_shop")


@pytest.mark.parametrize(
    "value",
    ["shop-db", "1shop", "shop;drop", "sh op", "x" * 64, "shop\n", "ma\u00efs", "'shop'"],
)
def test_an_invalid_database_identifier_is_refused(session: Session, value: str) -> None:
    _, release = site_release(session, "acme/big-shop", 1)
    set_env(release, DB_NAME=value)
    refused = refusal(session, "acme/big-shop", number=1)
    assert "DB_NAME" in refused.message
    assert "identifier" in refused.message or "control character" in refused.message


@pytest.mark.parametrize(
    ("ref", "env"),
    [
        ("acme/big-shop", {"PGDATABASE": "postgres"}),
        ("acme/big-shop", {"PGDATABASE": "Template1"}),
        ("acme/big-shop", {"PGUSER": "pg_monitor"}),
        ("acme/big-shop", {"PGUSER": "public"}),
        ("acme/guestbook", {"DB_NAME": "mysql"}),
        ("acme/guestbook", {"DB_NAME": "information_schema"}),
        ("acme/guestbook", {"DB_USER": "root"}),
    ],
)
def test_a_name_the_database_engine_keeps_for_itself_is_refused(
    session: Session, ref: str, env: dict[str, str]
) -> None:
    """The database image refuses these at its first start, on the server: refuse them here."""
    _, release = site_release(session, ref, 1)
    set_env(release, **env)
    refused = refusal(session, ref, number=1)
    assert "identifier" in refused.message or "keeps" in refused.message
    assert next(iter(env)) in refused.message


@pytest.mark.parametrize(("ref", "what"), [("acme/2shop", "2shop"), ("acme/pg-shop", "pg_shop")])
def test_a_slug_that_makes_no_valid_database_name_is_refused_with_a_hint(
    session: Session, ref: str, what: str
) -> None:
    refused = refusal(session, ref)
    assert what in refused.message
    assert refused.hint is not None and "PGDATABASE" in refused.hint and "PGUSER" in refused.hint
    # naming it in the env is the way out
    _, release = site_release(session, ref)
    set_env(release, PGDATABASE="shop", PGUSER="shop")
    assert (plan_of(session, ref).database.name, plan_of(session, ref).database.user) == (
        "shop",
        "shop",
    )


@pytest.mark.parametrize("number", [2, 3])
def test_a_release_without_its_database_image_is_refused(session: Session, number: int) -> None:
    """Release 2 carries no service image, release 3 only a MariaDB one."""
    refused = refusal(session, "acme/big-shop", number=number)
    assert f"Release {number} of acme/big-shop carries no postgresql image" in refused.message
    assert refused.hint is not None and "websonic base build postgresql" in refused.hint
    assert "--database external" in refused.hint


def test_an_external_database_needs_no_image(session: Session) -> None:
    plan = plan_of(session, "acme/big-shop", 2, database_mode="external")
    assert plan.database == plans.Database(engine="postgresql", mode="external")
    values = plans.parse(plans.render(plan))
    assert values["database"] == ["postgresql"] and values["database_mode"] == ["external"]
    assert "database_image" not in values and "database_digest" not in values


def test_sqlite_sites_run_no_database_container(session: Session) -> None:
    _, release = site_release(session, "acme/brochure")
    assert release.manifest is not None
    release.manifest = {**release.manifest, "services": {"database": "sqlite"}}
    assert plan_of(session, "acme/brochure").database == plans.Database(engine="sqlite")


# --- values the installer's line format cannot carry ---------------------------------------


@pytest.mark.parametrize("value", ["two\nlines", "carriage\rreturn", "nul\0byte", "trailing\n"])
def test_an_env_value_with_a_line_break_is_refused(session: Session, value: str) -> None:
    _, release = site_release(session, "acme/brochure")
    set_env(release, GREETING=value)
    refused = refusal(session, "acme/brochure")
    assert "GREETING" in refused.message and "line break" in refused.message


def test_a_volume_path_with_a_line_break_is_refused(session: Session) -> None:
    """A recorded manifest is held to the grammar again: the plan would carry a forged line."""
    _, release = site_release(session, "acme/big-shop", 1)
    assert release.manifest is not None
    forged = "/srv/site/uploads\ndomain=evil.example"
    release.manifest = {**release.manifest, "volumes": [{"name": "uploads", "path": forged}]}
    refused = refusal(session, "acme/big-shop", number=1)
    assert "volumes.0.path" in refused.message and "acme/big-shop" in refused.message


def test_a_domain_with_a_line_break_is_refused(session: Session) -> None:
    refused = refusal(session, "acme/brochure", domains=["shop.example\nenv=X=1"])
    assert "line break" in refused.message


def test_every_value_of_a_plan_is_one_line(session: Session) -> None:
    """No plan field can hold a line break: the installer's reader has no quoting rules."""
    plan = plan_of(session, "acme/big-shop", 1)
    forged = [
        replace(plan, site="acme/x\nrelease=9"),
        replace(plan, health="/h\nport=1"),
        replace(plan, acme_email="a@b.example\n"),
        replace(plan, database=replace(plan.database, name="shop\rx")),
    ]
    for changed in forged:
        with pytest.raises(InvalidInput, match="line break"):
            plans.check_values(changed)


# --- the options -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tls", "email", "mode"),
    [
        ("internal", "", "container"),
        ("acme", "ops@acme.example", "external"),
        ("acme", "", "container"),
    ],
)
def test_options_the_installer_knows_pass(tls: str, email: str, mode: str) -> None:
    plans.check_options(tls, email, mode)


@pytest.mark.parametrize(
    ("tls", "email", "mode", "message"),
    [
        ("none", "", "container", "--tls must be one of internal, acme"),
        ("ACME", "", "container", "--tls"),
        ("", "", "container", "--tls"),
        ("acme", "not-an-email", "container", "is not an e-mail address"),
        ("acme", "ops@localhost", "container", "is not an e-mail address"),
        ("acme", "ops @acme.example", "container", "is not an e-mail address"),
        ("acme", "ops@acme.example\n", "container", "is not an e-mail address"),
        ("acme", "ops@acme.example\ntls=internal", "container", "is not an e-mail address"),
        ("internal", "", "sqlite", "--database must be one of container, external"),
        ("internal", "", "", "--database"),
    ],
)
def test_options_the_installer_does_not_know_are_refused(
    tls: str, email: str, mode: str, message: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        plans.check_options(tls, email, mode)
    assert message in refused.value.message


def test_make_plan_checks_its_options(session: Session) -> None:
    assert "--tls" in refusal(session, "acme/brochure", tls="self-signed").message
    assert "e-mail" in refusal(session, "acme/brochure", tls="acme", acme_email="x").message
    assert "--database" in refusal(session, "acme/brochure", database_mode="sqlite").message
    plan = plan_of(session, "acme/brochure", tls="acme", acme_email="ops@acme.example")
    values = plans.parse(plans.render(plan))
    assert values["tls"] == ["acme"] and values["acme_email"] == ["ops@acme.example"]


def test_parse_keeps_repeated_keys_and_values_with_equals_signs() -> None:
    text = b"env=A=1\nenv=B==2\nsite=acme/x\nno equals sign\n\nempty=\n"
    assert plans.parse(text) == {"env": ["A=1", "B==2"], "site": ["acme/x"], "empty": [""]}


def test_the_fixture_made_what_the_tests_use(platform: Platform) -> None:
    """The examples this module relies on say what the tests above expect of them."""
    with platform.sessions() as session:
        manifests = {ref: Manifest.model_validate(get_site(session, ref).manifest) for ref in SITES}
    assert manifests["acme/big-shop"].services.database == "postgresql"
    assert "PGDATABASE" not in manifests["acme/big-shop"].plain_env
    assert manifests["acme/guestbook"].plain_env["DB_NAME"] == "guestbook"


# --- finding 1: the plan holds every value to the grammar, whatever made it ---------------------


def forged_plans(plan: plans.InstallPlan) -> dict[str, plans.InstallPlan]:
    """Plans made past the manifest's checks (a recorded manifest edited, a bug): one bad value
    each, keyed by what the refusal must name."""
    db = plan.database
    return {
        "volume uploads": replace(plan, volumes=(("uploads", "/data uploads/link:/host"),)),
        "volume uploads ": replace(plan, volumes=(("uploads", "/data ../..:/host"),)),
        "volume uploads  ": replace(plan, volumes=(("uploads", "/srv/site/../../etc"),)),
        "volume uploads   ": replace(plan, volumes=(("uploads", "/proc/self"),)),
        "volume name": replace(plan, volumes=(("../up", "/data"),)),
        "overlap": replace(plan, volumes=(("a", "/data"), ("b", "/data/link"))),
        "health": replace(plan, health="/h $(touch /tmp/x)"),
        "health ": replace(plan, health="/h`id`"),
        "port": replace(plan, port=80),
        "env name": replace(plan, env=(("A*", "x"),)),
        "env A": replace(plan, env=(("A", "escape \x1b[2J"),)),
        "secret": replace(plan, secrets=("A B",)),
        "domain": replace(plan, domains=("shop.example;rm",)),
        "domain ": replace(plan, domains=("*.example",)),
        "data_dir": replace(plan, data_dir="/var/lib/web sonic"),
        "acme_email": replace(plan, acme_email="a}b@x.example"),
        "database_name": replace(plan, database=replace(db, name="shop;drop")),
        "database_user": replace(plan, database=replace(db, user="x y")),
        "database_image": replace(plan, database=replace(db, image="evil.example/x@" + db.digest)),
        "digest": replace(plan, digest="sha256:../../x"),
        "kind": replace(plan, kind="ruby"),
        "site_pids": replace(plan, requirements=replace(plan.requirements, site_pids=0)),
    }


def test_finding1_the_plan_refuses_values_outside_the_grammar(session: Session) -> None:
    plan = plan_of(session, "acme/big-shop", 1, domains=["shop.example"])
    plans.check_values(plan)  # the real one passes
    for key, forged in forged_plans(plan).items():
        with pytest.raises(InvalidInput) as refused:
            plans.check_values(forged)
        assert key.strip() in refused.value.message, (key, refused.value.message)


def test_the_plan_carries_the_containers_limits_from_the_hosting_spec(session: Session) -> None:
    values = plans.parse(plans.render(plan_of(session, "acme/big-shop", 1)))
    assert values["limit_memory_mib"] == [str(spec.KIND_MEMORY_MIB["python"])]
    assert values["limit_pids"] == ["1024"]
    assert values["database_limit_memory_mib"] == [str(spec.DATABASE_MEMORY_MIB["postgresql"])]
    assert values["database_limit_pids"] == ["512"]
    static = plans.parse(plans.render(plan_of(session, "acme/brochure")))
    assert static["limit_memory_mib"] == [str(spec.KIND_MEMORY_MIB["static"])]
    assert "database_limit_memory_mib" not in static


def test_parse_refuses_what_is_not_utf8_and_splits_at_newlines_only() -> None:
    with pytest.raises(InvalidInput, match="UTF-8"):
        plans.parse(b"site=\xff\n")
    assert plans.parse("env=A=x\x0by\x85\n".encode()) == {"env": ["A=x\x0by\x85"]}
