"""The command line on a real state folder: the happy path and every bad input."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

from conftest import EXAMPLES, Cli


def test_init_makes_private_state_and_is_idempotent(cli: Cli) -> None:
    keys = cli.home / "keys"
    for name in ("signing.key", "secrets.key"):
        assert stat.S_IMODE((keys / name).stat().st_mode) == 0o600
    assert stat.S_IMODE(cli.home.stat().st_mode) == 0o700
    again = cli.json("init")
    assert again["created"] is False and again["admin"] is None


def test_init_without_password_writes_it_to_a_private_file(tmp_path: Path) -> None:
    command = Cli(tmp_path / "home")
    result = command.json("init", WEBSONIC_ADMIN_PASSWORD="")
    password_file = Path(result["admin_password_file"])
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    assert password_file.read_text().strip() not in command.run("init").stdout


def test_customer_and_site_lifecycle(cli: Cli) -> None:
    assert cli.json("customer", "add", "acme", "--name", "Acme SA")["name"] == "Acme SA"
    site = cli.json("site", "add", "acme/brochure", "--source", str(EXAMPLES / "static-brochure"))
    assert site["kind"] == "static" and site["manifest_detected"] is False
    listed = cli.json("site", "list", "acme")["sites"]
    assert [s["site"] for s in listed] == ["acme/brochure"]
    assert cli.json("customer", "list")["customers"][0]["sites"] == 1


def test_commands_need_an_initialised_state_folder(tmp_path: Path) -> None:
    err = Cli(tmp_path / "empty").fails("customer", "list", code=5)
    assert "websonic init" in err


def test_bad_input_is_refused_with_a_clear_message(cli: Cli, tmp_path: Path) -> None:
    cli.run("customer", "add", "acme")
    assert "already exists" in cli.fails("customer", "add", "acme", code=4)
    assert "Invalid customer slug" in cli.fails("customer", "add", "Acme_SA", code=2)
    assert "Invalid customer slug" in cli.fails("customer", "add", "../etc", code=2)
    assert "Unknown customer 'nobody'" in cli.fails(
        "site", "add", "nobody/x", "--source", str(tmp_path), code=3
    )
    assert "Expected CUSTOMER/SITE" in cli.fails("site", "add", "acme", "--source", ".", code=2)
    assert "Invalid site slug" in cli.fails("site", "add", "acme/Bad!", "--source", ".", code=2)
    assert "does not exist" in cli.fails(
        "site", "add", "acme/x", "--source", str(tmp_path / "missing"), code=8
    )
    assert "Unknown site 'acme/none'" in cli.fails("release", "list", "acme/none", code=3)
    assert "Unknown site" in cli.fails("build", "acme/none", code=3)
    assert "Unknown kind" in cli.fails("base", "build", "cobol", code=2)


def test_duplicate_site_and_invalid_manifest(cli: Cli, tmp_path: Path) -> None:
    cli.run("customer", "add", "acme")
    cli.run("site", "add", "acme/one", "--source", str(EXAMPLES / "static-brochure"))
    assert "already exists" in cli.fails(
        "site", "add", "acme/one", "--source", str(EXAMPLES / "static-brochure"), code=4
    )
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "websonic.toml").write_text(
        '[site]\nkind = "static"\nhelth = "/x"\n[services]\ndatabase = "oracle"\n'
    )
    err = cli.fails("site", "add", "acme/broken", "--source", str(broken), code=2)
    assert "site.helth: unknown key" in err and "services.database" in err
    assert cli.json("site", "list")["sites"][0]["site"] == "acme/one"  # nothing half-registered


def test_git_sources(cli: Cli, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    (repo / "index.html").write_text("hello")
    for args in (["add", "."], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "1"]):
        subprocess.run(["git", "-C", str(repo), *args], check=True)
    cli.run("customer", "add", "acme")
    site = cli.json("site", "add", "acme/git", "--source", f"file://{repo}#main")
    assert site["ref"] == "main" and site["kind"] == "static" and site["manifest_detected"]
    assert "no branch or tag 'nope'" in cli.fails(
        "site", "add", "acme/g2", "--source", f"file://{repo}#nope", code=8
    )
    assert "Cannot reach" in cli.fails(
        "site", "add", "acme/g3", "--source", f"file://{tmp_path}/absent.git#main", code=8
    )


def test_secret_values_are_stored_encrypted_and_never_shown(cli: Cli, tmp_path: Path) -> None:
    source = tmp_path / "site"
    source.mkdir()
    (source / "index.html").write_text("x")
    (source / "websonic.toml").write_text(
        '[site]\nkind = "static"\n[env]\nAPI_KEY = { secret = true }\n'
    )
    cli.run("customer", "add", "acme")
    cli.run("site", "add", "acme/s", "--source", str(source))
    cli.run("site", "secret", "set", "acme/s", "API_KEY", input="sup3r-s3cret-value\n")
    shown = cli.json("site", "show", "acme/s")
    assert shown["secrets_set"] == ["API_KEY"]
    assert "sup3r-s3cret-value" not in str(shown)
    for path in cli.home.glob("state.db*"):  # the database and its write-ahead log
        assert b"sup3r-s3cret-value" not in path.read_bytes()
    assert "not a secret" in cli.fails("site", "secret", "set", "acme/s", "OTHER", input="v\n")


def test_usage_errors_are_messages_not_tracebacks(cli: Cli) -> None:
    assert "Missing option '-o'" in cli.fails("image", "export", "acme/x", code=2)
    assert "Missing option '--source'" in cli.fails("site", "add", "acme/x", code=2)
    assert "No such command 'nope'" in cli.fails("nope", code=2)
