"""Migration 0005 (issue 8, finding 4): install tokens name their site. The updaters' tokens
`websonic deploy` made are bound to their site, so that servers keep updating; every other
install token stays customer-wide, which the installer endpoints refuse."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import create_engine, text

from websonic.state import alembic_config

NOW = "2026-12-01 00:00:00"


def test_upgrading_binds_the_updaters_tokens_to_their_site_only(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    engine = create_engine(url)
    config = alembic_config(url)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0004")
        for statement in (
            f"INSERT INTO customers (id, slug, name, created_at) VALUES (1, 'acme', 'A', '{NOW}')",
            *(
                "INSERT INTO sites (id, customer_id, slug, source, kind, manifest,"
                f" manifest_detected, created_at) VALUES ({n}, 1, '{slug}', '/x', 'static', '{{}}',"
                f" 0, '{NOW}')"
                for n, slug in ((1, "shop"), (2, "sho"), (3, "shop-2"))
            ),
            *(
                "INSERT INTO api_tokens (public_id, secret_hash, customer_id, scope, description,"
                f" created_at) VALUES ('{public_id}', 'h', 1, '{scope}', '{description}', '{NOW}')"
                for public_id, scope, description in (
                    ("updater", "install", "updater of acme/shop on acme/web1"),
                    ("updater2", "install", "updater of acme/shop-2 on acme/web1"),
                    ("manual", "install", "the prod server"),
                    ("pull", "pull", "updater of acme/shop on acme/web1"),
                )
            ),
        ):
            connection.execute(text(statement))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0005")
        rows = connection.execute(text("SELECT public_id, site_id, replaces FROM api_tokens"))
        bound = {public_id: (site_id, replaces) for public_id, site_id, replaces in rows}
    engine.dispose()
    assert bound == {
        "updater": (1, None),
        "updater2": (3, None),
        "manual": (None, None),
        "pull": (None, None),
    }
