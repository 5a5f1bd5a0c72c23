"""The state database on PostgreSQL instead of the embedded SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import EXAMPLES, Cli

pytestmark = pytest.mark.databases


def test_websonic_runs_on_a_postgresql_state_database(
    postgres_server_factory, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    server = postgres_server_factory()
    url = server.create_database("websonic_state")
    cli = Cli(tmp_path / "home")
    env = {"WEBSONIC_DATABASE_URL": url}
    cli.run("init", **env)
    cli.run("customer", "add", "acme", **env)
    cli.run("site", "add", "acme/brochure", "--source", str(EXAMPLES / "static-brochure"), **env)
    assert cli.json("site", "list", **env)["sites"][0]["site"] == "acme/brochure"
    assert not (cli.home / "state.db").exists()
    assert server.password not in cli.run("customer", "list", **env).stdout
    tables = {
        row[0]
        for row in server.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'", "websonic_state"
        )
    }
    assert {"customers", "sites", "releases", "jobs", "audit_events", "alembic_version"} <= tables
    actions = [
        r[0]
        for r in server.execute("SELECT action FROM audit_events ORDER BY id", "websonic_state")
    ]
    assert actions[-2:] == ["customer.add", "site.add"]
    with pytest.raises(Exception, match="append-only"):
        server.execute("DELETE FROM audit_events", "websonic_state")
    with pytest.raises(Exception, match="append-only"):
        server.execute("UPDATE audit_events SET actor = 'x'", "websonic_state")
