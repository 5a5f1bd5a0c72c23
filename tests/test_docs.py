"""The docs are tested: generated references are current, the README has the two commands."""

from __future__ import annotations

from websonic.cli.main import app
from websonic.cli.reference import render_reference, render_settings
from websonic.state import HEAD, alembic_config
from websonic.web.policy import render_routes

from conftest import ROOT


def test_cli_reference_is_current() -> None:
    assert (ROOT / "docs" / "cli.md").read_text() == render_reference(app), (
        "docs/cli.md is stale: python -m websonic.cli.reference cli > docs/cli.md"
    )


def test_settings_reference_is_current() -> None:
    assert (ROOT / "docs" / "settings.md").read_text() == render_settings(), (
        "docs/settings.md is stale: python -m websonic.cli.reference settings > docs/settings.md"
    )


def test_readme_has_the_two_commands_and_ci_runs_the_second() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "./scripts/run" in readme and "./scripts/test" in readme
    assert "./scripts/test" in (ROOT / ".ci" / "run").read_text()


def test_state_head_matches_the_newest_migration() -> None:
    from alembic.script import ScriptDirectory

    assert ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head() == HEAD


def test_routes_reference_is_current() -> None:
    assert (ROOT / "docs" / "routes.md").read_text() == render_routes(), (
        "docs/routes.md is stale: python -m websonic.web.policy > docs/routes.md"
    )
