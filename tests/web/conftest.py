"""Fixtures: a real state folder (SQLite) in tmp_path, seeded; the app over it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI

from websonic.platform import init_platform, open_platform
from websonic.web.app import create_app

from web.web_helpers import ADMIN, TestClient, World, login, make_settings, seed


@pytest.fixture(scope="session")
def seeded_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A state folder made by ``init_platform`` and seeded once; each test gets a copy."""
    base = tmp_path_factory.mktemp("seeded")
    settings = make_settings(base / "home")
    init_platform(settings)
    platform = open_platform(settings)
    try:
        seed(platform, base)
    finally:
        platform.close()
    return settings.home


@pytest.fixture
def world(seeded_home: Path, tmp_path: Path) -> Iterator[World]:
    home = tmp_path / "home"
    shutil.copytree(seeded_home, home)
    settings = make_settings(home)
    platform = open_platform(settings)
    yield World(settings, platform)
    platform.close()


@pytest.fixture
def app(world: World) -> FastAPI:
    return create_app(world.settings, platform=world.platform, start_workers=False)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, follow_redirects=False) as test_client:
        yield test_client


@pytest.fixture
def as_admin(client: TestClient) -> TestClient:
    assert login(client, *ADMIN).status_code == 303
    return client
