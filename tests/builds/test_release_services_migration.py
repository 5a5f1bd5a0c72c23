"""Migration 0002: releases.services, on SQLite and PostgreSQL; existing releases get []."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, inspect, text

from websonic.core.db import make_engine
from websonic.state import alembic_config

NOW = dt.datetime(2026, 11, 25, tzinfo=dt.UTC)


def migrate(engine: Engine, revision: str, *, down: bool = False) -> None:
    config = alembic_config(str(engine.url.render_as_string(hide_password=False)))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, revision)


def add_old_release(engine: Engine) -> None:
    """A release as revision 0001 stored it."""
    with engine.begin() as db:
        db.execute(
            text("INSERT INTO customers (id, slug, name, created_at) VALUES (1, 'acme', 'A', :t)"),
            {"t": NOW},
        )
        db.execute(
            text(
                "INSERT INTO sites (id, customer_id, slug, source, kind, manifest, "
                "manifest_detected, created_at) VALUES (1, 1, 'shop', '/src', 'python', '{}', "
                "false, :t)"
            ),
            {"t": NOW},
        )
        db.execute(
            text(
                "INSERT INTO releases (site_id, number, digest, config_digest, size, layers, "
                "tool_versions, source_ref, source_epoch, signature, signed_payload, "
                "signing_key_id, sbom_digest, build_seconds, created_at) VALUES (1, 1, 'd', "
                "'c', 1, '[]', '{}', '/src', 0, 's', '{}', 'k', 'b', 0, :t)"
            ),
            {"t": NOW},
        )


def check_upgrade_and_downgrade(engine: Engine) -> None:
    migrate(engine, "0001")
    add_old_release(engine)
    migrate(engine, "head")
    with engine.connect() as db:
        (services,) = db.execute(text("SELECT services FROM releases")).one()
    assert (json.loads(services) if isinstance(services, str) else services) == []
    migrate(engine, "0001", down=True)
    assert "services" not in {c["name"] for c in inspect(engine).get_columns("releases")}
    with engine.connect() as db:
        assert db.execute(text("SELECT count(*) FROM releases")).scalar() == 1


def test_on_sqlite(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        check_upgrade_and_downgrade(engine)
    finally:
        engine.dispose()


@pytest.mark.databases
def test_on_postgresql(postgres_server_factory) -> None:  # type: ignore[no-untyped-def]
    server = postgres_server_factory()
    engine = make_engine(server.create_database("websonic_migration"))
    try:
        check_upgrade_and_downgrade(engine)
    finally:
        engine.dispose()
