"""The installer's own check of a plan's values (``check_plan_values``, run by ``read_plan``),
and the podman arguments it builds from them, run locally through ``call`` (fast tier).

A plan is signed and WebSonic holds every value to the grammar when it reads the manifest and
when it makes the plan (``sites.grammar``): these tests forge plans past both, as a bug or a
stolen key would, and show that the script still refuses them before any use."""

from __future__ import annotations

import re
import shlex
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from websonic.hosting.requirements import Requirements
from websonic.installer import plan as plans
from websonic.installer.script import installer_text
from websonic.sites import grammar

from installer.test_script import call

DIGEST = "sha256:" + "ab" * 32
DB_DIGEST = "sha256:" + "51" * 32


def a_plan(**changes: object) -> plans.InstallPlan:
    """A plan as WebSonic makes it: two volumes, env, secrets, domains, a database."""
    plan = plans.InstallPlan(
        site="acme/shop",
        release=3,
        issued_at=1_750_000_000,
        registry=plans.Registry("websonic.example:8443", insecure=False),
        digest=DIGEST,
        payload=b"{}",
        signature="c2ln",
        kind="python",
        port=8080,
        health="/healthz?full=1",
        requirements=Requirements(site="acme/shop", site_memory_mib=384, site_pids=700),
        volumes=(("uploads", "/srv/site/uploads"), ("cache", "/var/cache/shop")),
        env=(("GREETING", "Bonjour $HOME `x` 'q' ; & | ü"), ("MODE", "a=b")),
        secrets=("API_KEY", "SMTP_PASSWORD"),
        domains=("shop.example", "www.shop.example"),
        database=plans.Database(
            engine="postgresql",
            mode="container",
            image=f"websonic.example:8443/acme/shop@{DB_DIGEST}",
            digest=DB_DIGEST,
            name="shop",
            user="shop",
            port=5432,
        ),
    )
    return replace(plan, **changes)  # type: ignore[arg-type]


def read_plan(folder: Path, text: bytes, *then: str) -> subprocess.CompletedProcess[str]:
    """``read_plan`` (which ends with ``check_plan_values``) on ``text``, then ``then``."""
    (folder / "plan").write_bytes(text)
    setup = f"WORK={folder}; NAME=acme-shop; SITE=acme/shop; DRY_RUN=0; read_plan"
    return call("dash", folder, setup, *(f"&& {command}" for command in then))


def forge(text: bytes, key: str, *values: str) -> bytes:
    """The plan with every ``key=`` line replaced by ``key=value`` lines (added if none)."""
    lines = text.decode().splitlines()
    kept = [line for line in lines if not line.startswith(f"{key}=")]
    at = next((i for i, line in enumerate(lines) if line.startswith(f"{key}=")), len(kept))
    forged = [*kept[:at], *(f"{key}={value}" for value in values), *kept[at:]]
    return ("\n".join(forged) + "\n").encode()


def test_a_plan_websonic_makes_passes_the_installers_check(tmp_path: Path) -> None:
    plan = a_plan()
    plans.check_values(plan)
    shown = 'printf "%s|" "$P_KIND" "$P_HEALTH" "$P_LIMIT_MEMORY" "$P_DB_LIMIT_PIDS" "$P_DOMAINS"'
    proc = read_plan(tmp_path, plans.render(plan), shown)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout == "python|/healthz?full=1|384|512|shop.example www.shop.example|"


#: (key, forged value(s)): each must be refused by the script alone.
FORGED = [
    ("volume", ["data:/data uploads/link:/host"]),  # an extra -v in the unit's ExecStart
    ("volume", ["data:/data ../..:/host"]),  # every site's data
    ("volume", ["data:/data/../.."]),
    ("volume", ["data:/data:rw"]),
    ("volume", ["data:/data,z"]),
    ("volume", ["data:/"]),
    ("volume", ["data:relative"]),
    ("volume", ["data:/data//x"]),
    ("volume", ["data:/data/"]),
    ("volume", ["data:/proc/self"]),
    ("volume", ["data:/run/secrets"]),
    ("volume", ["data:/etc"]),
    ("volume", ["data:/srv/site"]),
    ("volume", ["data:/$(touch /tmp/websonic-pwned)"]),
    ("volume", ["data:/%h"]),
    ("volume", ["../x:/data"]),
    ("volume", ["Data:/data"]),
    ("volume", ["/data"]),
    ("volume", ["a:/data", "b:/data/link"]),  # a mount over a mount: a planted symlink
    ("volume", ["a:/data", "a:/other"]),
    ("volume", ["data:/" + "a" * 120 + "/" + "b" * 120 + "/" + "c" * 20]),
    ("health", ["/h z"]),
    ("health", ["/$(touch /tmp/websonic-pwned)"]),
    ("health", ["/h`id`"]),
    ("health", ["/h[1-2]"]),
    ("health", ["healthz"]),
    ("health", ["/h\x1b[2J"]),
    ("port", ["80"]),
    ("port", ["8080 "]),
    ("port", ["99999"]),
    ("port", ["0x50"]),
    ("domain", ["shop.example;rm"]),
    ("domain", ["*"]),
    ("domain", ["Shop.example"]),
    ("domain", ["a" * 64 + ".example"]),
    ("env", ["A B=x"]),
    ("env", ["A*=x"]),
    ("env", ["NOEQUALS"]),
    ("env", ["A=\x1b[2J"]),
    ("env", ["A=x\ty"]),
    ("secret", ["*"]),
    ("secret", ["A;B"]),
    ("data_dir", ["/var/lib/web sonic"]),
    ("data_dir", ["var/lib"]),
    ("data_dir", ["/var/lib/../../etc"]),
    ("registry", ["evil.example/x"]),
    ("image", [f"evil.example/acme/shop@{DIGEST}"]),
    ("digest", ["sha256:../x"]),
    ("kind", ["ruby"]),
    ("kind", [""]),
    ("tls", ["none"]),
    ("acme_email", ["a}b@x.example"]),
    ("registry_insecure", ["yes"]),
    ("require_os", ["debian:12 *"]),
    ("require_arch", ["x86_64 /*"]),
    ("require_cpus", ["1;id"]),
    ("limit_memory_mib", ["lots"]),
    ("limit_memory_mib", ["1"]),
    ("limit_pids", ["0"]),
    ("limit_pids", []),
    ("database_name", ["shop;drop"]),
    ("database_user", ["x y"]),
    ("database_image", [f"evil.example/acme/shop@{DB_DIGEST}"]),
    ("database_digest", ["sha256:1"]),
    ("database_port", ["5432x"]),
    ("database_limit_pids", ["-1"]),
    ("database_mode", ["host"]),
    ("payload", ["e30= $(id)"]),
]


@pytest.mark.parametrize(
    ("key", "values"), FORGED, ids=[f"{k}={'|'.join(v)[:40]!r}" for k, v in FORGED]
)
def test_finding1_a_plan_forged_past_python_is_refused_by_the_installer(
    key: str, values: list[str], tmp_path: Path
) -> None:
    marker = Path("/tmp/websonic-pwned")  # what a forged $(touch) would make
    marker.unlink(missing_ok=True)
    proc = read_plan(tmp_path, forge(plans.render(a_plan()), key, *values), "echo ACCEPTED")
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "ACCEPTED" not in proc.stdout and "websonic: error: the plan" in proc.stdout
    assert not marker.exists()


def exec_start(folder: Path, plan: plans.InstallPlan, unit: str) -> list[str]:
    """The ``podman run`` arguments of a unit the script writes for ``plan``."""
    proc = read_plan(folder, plans.render(plan), "site_paths", "DB_ADDRESS=10.89.0.254", unit)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = next(x for x in proc.stdout.splitlines() if x.startswith("ExecStart="))
    argv = shlex.split(line.removeprefix("ExecStart="))
    assert argv[:2] == ["/usr/bin/podman", "run"]
    return argv


def options(argv: list[str], name: str) -> list[str]:
    """Every value of ``--name VALUE`` and ``--name=VALUE`` in ``argv``."""
    found = [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == name]
    return found + [arg.split("=", 1)[1] for arg in argv if arg.startswith(f"{name}=")]


def test_finding1_each_volume_is_one_mount_of_its_own_folder(tmp_path: Path) -> None:
    argv = exec_start(tmp_path, a_plan(), "slot_unit blue")
    data = "/var/lib/websonic/sites/acme-shop/volumes"
    assert options(argv, "-v") == [
        f"{data}/uploads:/srv/site/uploads",
        f"{data}/cache:/var/cache/shop",
    ]
    assert argv[-1] == "${IMAGE}" and argv.count("${IMAGE}") == 1


def test_finding2_every_container_is_confined(tmp_path: Path) -> None:
    """No capabilities, no new privileges, limits from the plan, a network of its own, the
    site as the images' non-root user; the database adds back only what its entrypoint needs."""
    site = exec_start(tmp_path, a_plan(), "slot_unit green")
    assert options(site, "--cap-drop") == ["all"] and options(site, "--cap-add") == []
    assert options(site, "--security-opt") == ["no-new-privileges"]
    assert options(site, "--user") == ["10001:10001"]
    assert options(site, "--memory") == ["384m"] and options(site, "--pids-limit") == ["700"]
    assert options(site, "--network") == ["websonic-acme-shop"]
    assert options(site, "--add-host") == ["db:10.89.0.254"]
    assert options(site, "-p") == ["127.0.0.1:${PORT}:8080"]
    db = exec_start(tmp_path, a_plan(), "unit_file acme-shop-db x \"$(db_run_args)\" ''")
    assert options(db, "--cap-drop") == ["all"]
    assert options(db, "--cap-add") == ["CHOWN,DAC_OVERRIDE,FOWNER,SETGID,SETUID"]
    assert options(db, "--security-opt") == ["no-new-privileges"]
    assert options(db, "--memory") == ["512m"] and options(db, "--pids-limit") == ["512"]
    assert options(db, "--network") == ["websonic-acme-shop"]
    mariadb = a_plan(
        database=replace(a_plan().database, engine="mariadb", port=3306),
    )
    db = exec_start(tmp_path, mariadb, "unit_file acme-shop-db x \"$(db_run_args)\" ''")
    assert options(db, "--cap-add") == ["CHOWN,DAC_OVERRIDE,FOWNER,SETGID,SETUID,KILL"]


def test_finding2_a_site_without_a_database_has_its_own_network_too(tmp_path: Path) -> None:
    plan = a_plan(database=plans.Database(), secrets=())
    site = exec_start(tmp_path, plan, "slot_unit blue")
    assert options(site, "--network") == ["websonic-acme-shop"]
    assert options(site, "--add-host") == [] and "database.env" not in " ".join(site)
    assert options(site, "--cap-drop") == ["all"] and options(site, "--user") == ["10001:10001"]


# --- the grammar is one text, in Python and in the script ---------------------------------------

SAME_PATTERNS = {
    "RE_VOLUME_NAME": grammar.VOLUME_NAME,
    "RE_PATH": grammar.PATH,
    "RE_ENV_NAME": grammar.ENV_NAME,
    "RE_HEALTH": grammar.HEALTH,
    "RE_DOMAIN": grammar.DOMAIN,
    "RE_IDENTIFIER": grammar.IDENTIFIER,
    "RE_DIGEST": grammar.DIGEST,
    "RE_HOST_PORT": grammar.HOST_PORT,
    "RE_EMAIL": grammar.EMAIL,
    "RE_SITE": plans.SITE_REF.pattern,
    "SYSTEM_FOLDERS": " ".join(grammar.SYSTEM_FOLDERS),
    "SITE_CODE": grammar.SITE_CODE,
}


def test_the_installer_carries_the_grammars_own_patterns() -> None:
    text = installer_text()
    for name, pattern in SAME_PATTERNS.items():
        found = re.search(rf"^{name}='?([^'\n]*)'?$", text, re.MULTILINE)
        assert found is not None and found.group(1) == pattern, name
    assert 'plan_number port "$P_PORT" 1024 65535' in text
    assert (grammar.PORT_MIN, grammar.PORT_MAX, grammar.PATH_MAX) == (1024, 65535, 255)
