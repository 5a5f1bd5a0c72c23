"""The audit log records every change and cannot be rewritten."""

from __future__ import annotations

import sqlite3

import pytest

from conftest import EXAMPLES, Cli


def test_changes_are_audited_and_the_log_is_append_only(cli: Cli) -> None:
    cli.run("customer", "add", "acme")
    cli.run("site", "add", "acme/b", "--source", str(EXAMPLES / "static-brochure"))
    with sqlite3.connect(cli.home / "state.db") as db:
        rows = db.execute("SELECT actor, action, target FROM audit_events ORDER BY id").fetchall()
        assert [r[1] for r in rows] == ["user.add", "platform.init", "customer.add", "site.add"]
        assert rows[-1][0].startswith("cli:") and rows[-1][2] == "acme/b"
        for statement in ("DELETE FROM audit_events", "UPDATE audit_events SET actor = 'x'"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                db.execute(statement)
