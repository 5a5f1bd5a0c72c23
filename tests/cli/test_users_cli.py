"""`websonic user add|list|password|disable|enable` on a real state folder, each checked by
logging in to a real `websonic serve` with the password it printed (or refused)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from conftest import ADMIN_PASSWORD, Cli
from servers import serving
from web.web_helpers import login

OWNER_PASSWORD = "acme-owner-password-1"


@pytest.fixture
def portal(cli: Cli) -> Iterator[str]:
    cli.run("customer", "add", "acme", "--name", "Acme SA")
    cli.run("customer", "add", "globex")
    with serving(cli.env()) as url:
        yield url


def logs_in(url: str, username: str, password: str) -> httpx.Client | None:
    client = httpx.Client(base_url=url, follow_redirects=False)
    answer = login(client, username, password)
    if answer.status_code == 303:
        return client
    assert answer.status_code == 401, answer.text
    client.close()
    return None


def test_add_prints_a_generated_password_once_that_logs_in(cli: Cli, portal: str) -> None:
    proc = cli.run("user", "add", "bob", "--role", "viewer", "--customer", "acme")
    assert "User bob (viewer of acme) added." in proc.stdout
    password = proc.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"[A-Za-z0-9_-]{24}", password)
    assert "only time the password is shown" in proc.stderr
    client = logs_in(portal, "bob", password)
    assert client is not None
    page = client.get("/").text
    assert "Acme SA" in page and "globex" not in page  # a customer's viewer sees only theirs
    listed = cli.run("user", "list").stdout + cli.run("user", "list", "--json").stdout
    assert password not in listed and "argon2" not in listed


def test_add_with_a_password_from_stdin(cli: Cli, portal: str) -> None:
    made = cli.json(
        "user", "add", "alice", "--role", "owner", "--customer", "acme", "--password-stdin",
        input=OWNER_PASSWORD + "\n",
    )  # fmt: skip
    assert made == {
        "username": "alice", "role": "owner", "customer": "acme", "disabled": False,
        "created_at": made["created_at"],
    }  # fmt: skip
    assert logs_in(portal, "alice", OWNER_PASSWORD) is not None
    users = cli.json("user", "list", "--customer", "acme")["users"]
    assert [u["username"] for u in users] == ["alice"]
    everyone = cli.json("user", "list")["users"]
    assert {(u["username"], u["role"], u["customer"]) for u in everyone} == {
        ("admin", "admin", None), ("alice", "owner", "acme"),
    }  # fmt: skip


def test_password_ends_sessions_and_the_old_password(cli: Cli, portal: str) -> None:
    cli.run("user", "add", "dev", "--role", "developer", "--password-stdin",
            input="developer-password-1\n")  # fmt: skip
    client = logs_in(portal, "dev", "developer-password-1")
    assert client is not None and client.get("/").status_code == 200
    changed = cli.json("user", "password", "dev")
    assert changed["sessions_ended"] == 1
    assert client.get("/").status_code == 303  # back to the login page
    assert logs_in(portal, "dev", "developer-password-1") is None
    assert logs_in(portal, "dev", changed["password"]) is not None


def test_disable_ends_sessions_and_refuses_logins_until_enabled(cli: Cli, portal: str) -> None:
    client = logs_in(portal, "admin", ADMIN_PASSWORD)
    assert client is not None
    cli.run("user", "add", "admin2", "--role", "admin", "--password-stdin",
            input="second-admin-password\n")  # fmt: skip
    assert cli.json("user", "disable", "admin")["sessions_ended"] == 1
    assert client.get("/api/v1/me").status_code == 401
    assert logs_in(portal, "admin", ADMIN_PASSWORD) is None
    cli.run("user", "enable", "admin")
    assert logs_in(portal, "admin", ADMIN_PASSWORD) is not None
    events = cli.json("audit", "list")["events"]
    assert {"user.add", "user.disable", "user.enable"} <= {e["action"] for e in events}


@pytest.fixture(scope="module")
def one_home(tmp_path_factory: pytest.TempPathFactory) -> Cli:
    """One state folder for the refusals: none of them may change it."""
    cli = Cli(tmp_path_factory.mktemp("users") / "home")
    cli.run("init")
    cli.run("customer", "add", "acme")
    return cli


@pytest.mark.parametrize(
    ("args", "stdin", "code", "message"),
    [
        (["add", "bob", "--role", "boss", "--customer", "acme"], None, 2, "Unknown role 'boss'"),
        (["add", "bob", "--role", "viewer"], None, 2, "is for a customer's people"),
        (["add", "bob", "--role", "developer", "--customer", "acme"], None, 2, "agency staff"),
        (["add", "bob", "--role", "viewer", "--customer", "nope"], None, 3, "Unknown customer"),
        (["add", "b b", "--role", "admin"], None, 2, "Invalid username 'b b'"),
        (["add", "bob", "--role", "admin", "--password-stdin"], "short\n", 2, "at least 12"),
        (["add", "bob", "--role", "admin", "--password-stdin"], "", 2, "No password on standard"),
        (["add", "admin", "--role", "admin"], None, 4, "User 'admin' already exists"),
        (["password", "nobody"], None, 3, "Unknown user 'nobody'"),
        (["disable", "admin"], None, 2, "admin is the only enabled admin"),
        (["enable", "nobody"], None, 3, "Unknown user 'nobody'"),
    ],
)
def test_bad_input(
    one_home: Cli, args: list[str], stdin: str | None, code: int, message: str
) -> None:
    cli = one_home
    proc = cli.run("user", *args, check=False, input=stdin)
    assert proc.returncode == code, proc
    assert message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert [u["username"] for u in cli.json("user", "list")["users"]] == ["admin"]
