"""The database service images, built and run for real: first start, restarts, secrets, health.

The images are built from the machine's cached root filesystems (WEBSONIC_TEST_CACHE/base), so
only the first run on a machine pays for mmdebstrap; the images stay in local storage. Every
container, volume and podman secret a test makes is removed afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from websonic.builds.base import BuiltBase, build_base, spec_for
from websonic.builds.oci import OciLayout
from websonic.builds.services import ENGINES, store_service_image
from websonic.core.runner import Command, Runner
from websonic.settings import load_settings

pytestmark = [pytest.mark.containers, pytest.mark.databases]

CACHE = Path(os.environ.get("WEBSONIC_TEST_CACHE", "/var/cache/websonic-test")) / "base"
MAX_AGE = 30 * 24 * 3600.0
#: Every quoting hazard of SQL and shell, and not ASCII.
PASSWORD = 'it\'s a \\ "quoted" $(pass) `word`; DROP ☕ -- x'
ROW = "Crème brûlée 🍮 — ça marche"


@pytest.fixture(scope="module")
def runner() -> Runner:
    for tool in ("podman", "buildah", "mmdebstrap", "skopeo"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    settings = load_settings()
    return Runner(base_env={"CONTAINERS_CONF": str(settings.effective_containers_conf)})


@pytest.fixture(scope="module")
def service_image(runner: Runner) -> Callable[[str], BuiltBase]:
    """Build (or reuse from the cache) the service image of an engine, once per module."""
    built: dict[str, BuiltBase] = {}

    def get(kind: str) -> BuiltBase:
        if kind not in built:
            spec = spec_for(kind, load_settings())
            built[kind] = build_base(spec, runner=runner, cache_dir=CACHE, max_age_seconds=MAX_AGE)
        return built[kind]

    return get


@pytest.fixture
def cleanup(runner: Runner) -> Iterator[list[Command]]:
    """Commands run at teardown, last first (containers before volumes and secrets)."""
    todo: list[Command] = []
    yield todo
    for command in reversed(todo):
        runner.run(command, check=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Database:
    """A service image's container on a volume, its port published on 127.0.0.1."""

    def __init__(self, runner: Runner, image: BuiltBase, volume: str, cleanup: list[Command]):
        self.runner, self.image, self.volume = runner, image, volume
        self.engine = ENGINES[image.kind]
        self.name = f"websonic-test-db-{uuid.uuid4().hex[:10]}"
        self.port = free_port()
        self.env: dict[str, str] = {}
        cleanup.append(Command.of("podman", "rm", "-f", "-t", "0", self.name))

    def start(self, *options: str, **env: str) -> Database:
        self.env = {"DB_NAME": "site", "DB_USER": "site", **env}
        publish = f"127.0.0.1:{self.port}:{self.engine.port}"
        argv = ["podman", "run", "-d", "--name", self.name, "-p", publish,
                "-v", f"{self.volume}:/var/lib/websonic-db", *options]  # fmt: skip
        for key, value in env.items():
            argv += ["-e", f"{key}={value}"]
        self.runner.run(Command.of(*argv, self.image.digest))
        return self

    def wait_healthy(self, timeout: float = 120) -> None:
        """Poll ``websonic-db health`` as the installer does (podman exec)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            health = self.podman("exec", self.name, "websonic-db", "health", check=False)
            if health.ok:
                return
            if self.inspect()["State"]["Status"] != "running":
                raise AssertionError(f"{self.name} stopped:\n{self.logs()}")
            time.sleep(0.5)
        raise AssertionError(f"{self.name} never became healthy:\n{self.logs()}")

    def podman(self, *args: str, check: bool = True) -> Any:
        return self.runner.run(Command.of("podman", *args), check=check)

    def inspect(self) -> dict[str, Any]:
        return json.loads(self.podman("container", "inspect", self.name).stdout)[0]

    def logs(self) -> str:
        result = self.podman("logs", self.name, check=False)
        return result.stdout + result.stderr

    def connect(self, password: str = PASSWORD) -> Any:
        user, database = self.env["DB_USER"], self.env["DB_NAME"]
        if self.engine.name == "postgresql":
            import psycopg

            return psycopg.connect(
                host="127.0.0.1", port=self.port, user=user, password=password,
                dbname=database, connect_timeout=10,
            )  # fmt: skip
        import pymysql

        return pymysql.connect(
            host="127.0.0.1", port=self.port, user=user, password=password.encode(),
            database=database, charset="utf8mb4", connect_timeout=10,
        )  # fmt: skip

    def query(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        with self.connect() as conn:
            cursor = conn.cursor()
            cursor.execute(sql, params or None)
            rows = list(cursor.fetchall()) if cursor.description else []
            conn.commit()
            return rows


def password_option(kind: str, tmp_path: Path, runner: Runner, cleanup: list[Command]) -> list[str]:
    """PostgreSQL gets the password as a podman secret, MariaDB as a read-only file."""
    path = tmp_path / "db-password"
    path.write_text(PASSWORD + "\n", encoding="utf-8")  # a trailing line break is not part of it
    path.chmod(0o600)
    if kind == "postgresql":
        secret = f"websonic-test-db-{uuid.uuid4().hex[:10]}"
        runner.run(Command.of("podman", "secret", "create", secret, str(path)))
        cleanup.append(Command.of("podman", "secret", "rm", secret))
        return ["--secret", f"{secret},target=db-password"]
    return ["-v", f"{path}:/run/secrets/db-password:ro"]


def new_volume(runner: Runner, cleanup: list[Command]) -> str:
    name = f"websonic-test-db-{uuid.uuid4().hex[:10]}"
    runner.run(Command.of("podman", "volume", "create", name))
    cleanup.append(Command.of("podman", "volume", "rm", "-f", name))
    return name


# --------------------------------------------------------------------------- the image


@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
def test_image_contract(kind: str, runner: Runner, service_image) -> None:
    """Entrypoint, command, port, volume, stop signal, the engine's user, no leftovers."""
    image = service_image(kind)
    engine = ENGINES[kind]
    assert image.image == f"localhost/websonic/base-{kind}:bookworm"
    info = json.loads(runner.run(Command.of("podman", "image", "inspect", image.digest)).stdout)
    config = info[0]["Config"]
    assert config["Entrypoint"] == ["/usr/local/bin/websonic-db"]
    assert config["Cmd"] == ["serve"]
    assert list(config["ExposedPorts"]) == [f"{engine.port}/tcp"]
    assert list(config["Volumes"]) == ["/var/lib/websonic-db"]
    assert config["StopSignal"] == engine.stop_signal
    assert config.get("User", "") == ""  # root, only until the data folder is the engine's
    version = {"postgresql": "15", "mariadb": "10.11"}[kind]
    assert config["Labels"]["io.websonic.service.version"] == version
    check = (
        f"id {engine.user}; stat -c '%u:%g %a' /var/lib/websonic-db; "
        "find /etc/ssl/private /etc/postgresql /var/lib/mysql /var/lib/postgresql "
        "/etc/ssl/certs/ssl-cert-snakeoil.pem -type f 2>/dev/null | wc -l"
    )
    out = runner.run(
        Command.of("podman", "run", "--rm", "--network", "none", "--entrypoint", "sh",
                   image.digest, "-c", check)
    ).stdout.splitlines()  # fmt: skip
    assert out[0].startswith(f"uid=999({engine.user}) gid=999({engine.user})")
    assert out[1] == "999:999 700"
    assert out[2] == "0"  # no snake-oil key, no default cluster or system tables


def test_rebuilt_without_cache_from_the_same_rootfs_gives_the_same_image(
    runner: Runner, service_image
) -> None:
    first = service_image("mariadb")
    again = build_base(
        spec_for("mariadb", load_settings()),
        runner=runner, cache_dir=CACHE, max_age_seconds=MAX_AGE, no_cache=True,
    )  # fmt: skip
    assert again.rootfs_cached and again.digest == first.digest


def test_the_same_image_is_stored_once_with_the_same_digest(
    runner: Runner, service_image, tmp_path: Path
) -> None:
    """Copying a service image into two release stores gives one manifest digest; copying it
    again into the same store reuses it."""
    image = service_image("postgresql")
    one, two = OciLayout(tmp_path / "one"), OciLayout(tmp_path / "two")
    first = store_service_image(runner, one, "postgresql", image.digest, image.packages)
    index = (one.root / "index.json").read_bytes()
    assert store_service_image(runner, one, "postgresql", image.digest, image.packages) == first
    assert (one.root / "index.json").read_bytes() == index
    assert store_service_image(runner, two, "postgresql", image.digest, image.packages) == first
    assert first["engine"] == "postgresql" and first["version"] == "15"
    assert first["config_digest"] == image.digest
    assert first["size"] > 50_000_000 and len(first["layers"]) == 1
    assert one.image_info(first["digest"]).layers[0].digest == first["layers"][0]["digest"]


# --------------------------------------------------------------------------- running


@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
def test_first_start_then_restarts_keep_the_data_and_never_show_the_password(
    kind: str, runner: Runner, service_image, tmp_path: Path, cleanup: list[Command]
) -> None:
    volume = new_volume(runner, cleanup)
    options = password_option(kind, tmp_path, runner, cleanup)
    env = {"DB_NAME": "shop", "DB_USER": "shop_owner"} if kind == "postgresql" else {}
    if kind == "mariadb":
        env["DB_SERVER_ID"] = "5"
    db = Database(runner, service_image(kind), volume, cleanup).start(*options, **env)
    db.wait_healthy()

    db.query("CREATE TABLE notes (body VARCHAR(200))")
    db.query("INSERT INTO notes (body) VALUES (%s)", ROW)
    assert db.query("SELECT body FROM notes") == [(ROW,)]
    check_engine_settings(db)
    with pytest.raises(Exception, match=r"(?i)password authentication failed|access denied"):
        db.connect("not the password").close()
    assert_password_hidden(db)

    # podman stop sends the image's stop signal to the server itself (PID 1): a quick, clean stop
    started = time.monotonic()
    db.podman("stop", "-t", "30", db.name)
    assert time.monotonic() - started < 15, "the server ignored the stop signal"
    assert db.inspect()["State"]["ExitCode"] == 0
    assert ("database system is shut down" if kind == "postgresql" else "Shutdown complete") in (
        db.logs()
    )
    db.podman("start", db.name)
    db.wait_healthy()
    assert db.query("SELECT body FROM notes") == [(ROW,)]

    # A new container on the same volume, without any password file: no new initialisation,
    # the password is unchanged.
    db.podman("rm", "-f", "-t", "0", db.name)
    again = Database(runner, db.image, volume, cleanup).start(**env)
    again.wait_healthy()
    assert again.query("SELECT body FROM notes") == [(ROW,)]
    assert "first start" not in again.logs()


def check_engine_settings(db: Database) -> None:
    if db.engine.name == "postgresql":
        row = db.query(
            "SELECT current_setting('server_encoding'), current_setting('wal_level'), "
            "pg_get_userbyid(datdba), current_setting('password_encryption') "
            "FROM pg_database WHERE datname = current_database()"
        )
        assert row == [("UTF8", "logical", "shop_owner", "scram-sha-256")]
        stored = "SELECT left(rolpassword, 14) FROM pg_authid WHERE rolname = 'shop_owner'"
        scram = db.podman("exec", "-u", "postgres", db.name, "psql", "-Atc", stored)
        assert scram.stdout.strip() == "SCRAM-SHA-256$"
        return
    row = db.query(
        "SELECT @@character_set_server, @@collation_server, @@character_set_database, "
        "@@collation_database, @@log_bin, @@binlog_format, @@server_id"
    )
    assert row == [("utf8mb4", "utf8mb4_unicode_ci", "utf8mb4", "utf8mb4_unicode_ci", 1, "ROW", 5)]
    with pytest.raises(Exception, match=r"(?i)access denied"):
        db.query("CREATE DATABASE another_one")


def assert_password_hidden(db: Database) -> None:
    """Not in the logs, the container's configuration or any process's arguments."""
    assert PASSWORD not in db.logs()
    assert PASSWORD not in json.dumps(db.inspect(), ensure_ascii=False)
    processes = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True)
    assert PASSWORD not in processes.stdout
    inside = db.podman("top", db.name, "user", "pid", "args").stdout
    assert PASSWORD not in inside
    assert inside.splitlines()[1].split()[:2] == [db.engine.user, "1"]  # the server is PID 1


@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
def test_first_start_without_a_password_fails_clearly(
    kind: str, runner: Runner, service_image, tmp_path: Path
) -> None:
    image = service_image(kind)
    empty = tmp_path / "empty"
    empty.write_text("")
    cases = [
        ([], "no password file at /run/secrets/db-password"),
        (["-v", f"{empty}:/run/secrets/db-password:ro"], "is empty"),
        (["-e", "DB_NAME=shop; DROP"], "DB_NAME must be 1 to 63 letters"),
        (["-e", "DB_USER=" + "u" * 64], "DB_USER must be 1 to 63 letters"),
    ]
    for options, message in cases:
        run = runner.run(
            Command.of("podman", "run", "--rm", "--network", "none", *options, image.digest),
            check=False,
        )
        assert run.returncode != 0, options
        assert message in run.stderr, (options, run.stderr)
        assert "websonic-db: error:" in run.stderr


def test_an_interrupted_first_start_is_made_again_and_foreign_files_are_refused(
    runner: Runner, service_image, tmp_path: Path, cleanup: list[Command]
) -> None:
    image = service_image("postgresql")
    volume = new_volume(runner, cleanup)

    def sh(script: str) -> None:
        runner.run(Command.of("podman", "run", "--rm", "--network", "none", "-v",
                              f"{volume}:/var/lib/websonic-db", "--entrypoint", "sh",
                              image.digest, "-c", script))  # fmt: skip

    sh("mkdir -p /var/lib/websonic-db/data/x")  # someone else's files: never touched
    refused = runner.run(
        Command.of("podman", "run", "--rm", "--network", "none", "-v",
                   f"{volume}:/var/lib/websonic-db", image.digest), check=False,
    )  # fmt: skip
    assert refused.returncode != 0 and "holds files but no PostgreSQL data directory" in (
        refused.stderr
    )
    sh("rm -rf /var/lib/websonic-db/data && mkdir -p /var/lib/websonic-db/data.init/base "
       "&& touch /var/lib/websonic-db/data.init/PG_VERSION")  # fmt: skip
    options = password_option("postgresql", tmp_path, runner, cleanup)
    db = Database(runner, image, volume, cleanup).start(*options)
    db.wait_healthy()
    assert db.query("SELECT current_user") == [("site",)]
    listing = db.podman("exec", db.name, "ls", "/var/lib/websonic-db").stdout.split()
    assert listing == ["data"]
