"""The composition root: settings, state database, tool runner, keys — opened once, passed on.

The CLI, the web app and the job workers each open one :class:`Platform` and call domain
services with what it holds.
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from websonic import state
from websonic.accounts.models import Role, User
from websonic.accounts.passwords import generate_password
from websonic.accounts.service import add_user
from websonic.audit.service import record
from websonic.builds import signing
from websonic.core.db import make_engine, make_sessionmaker, transaction
from websonic.core.errors import NotInitialised
from websonic.core.runner import Runner
from websonic.core.secretbox import SecretBox, write_private
from websonic.settings import Settings

SECRETS_KEY = "secrets.key"
ADMIN_PASSWORD_FILE = "initial-admin-password"  # noqa: S105 - a file name


@dataclass
class Platform:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    runner: Runner
    secrets: SecretBox
    signer: signing.Signer

    def transaction(self) -> AbstractContextManager[Session]:
        """A session committed on success, rolled back on error."""
        return transaction(self.sessions)

    def close(self) -> None:
        self.engine.dispose()


def container_runner(settings: Settings) -> Runner:
    return Runner(base_env={"CONTAINERS_CONF": str(settings.effective_containers_conf)})


def open_platform(settings: Settings) -> Platform:
    """Open an initialised state folder; the schema is upgraded if WebSonic was updated."""
    keys = settings.keys_dir
    if not (keys / SECRETS_KEY).is_file():
        raise NotInitialised(
            f"{settings.home} is not a WebSonic state folder.",
            hint="Run `websonic init` first (or set WEBSONIC_HOME).",
        )
    engine = make_engine(settings.state_url)
    state.upgrade(engine)
    platform = Platform(
        settings=settings,
        engine=engine,
        sessions=make_sessionmaker(engine),
        runner=container_runner(settings),
        secrets=SecretBox.load(keys / SECRETS_KEY),
        signer=signing.load_signer(keys),
    )
    from websonic.jobs.service import reap_interrupted

    with platform.transaction() as session:
        reap_interrupted(session)
    return platform


@dataclass(frozen=True)
class InitResult:
    home: Path
    created: bool
    admin_username: str | None
    admin_password_file: Path | None
    signing_key_id: str


def init_platform(settings: Settings, *, admin_username: str = "admin") -> InitResult:
    """Make the state folder, keys, database and first admin; re-running changes nothing."""
    home = settings.home
    for folder in (
        home,
        settings.keys_dir,
        settings.logs_dir,
        settings.work_dir,
        settings.cache_dir,
        settings.oci_dir,
    ):
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(home, 0o700)
    created = not (settings.keys_dir / SECRETS_KEY).exists()
    if not (settings.keys_dir / signing.PRIVATE_NAME).exists():
        signing.create_key(settings.keys_dir)
    if created:
        SecretBox.create(settings.keys_dir / SECRETS_KEY)
    platform = open_platform(settings)
    try:
        username, password_file = _first_admin(platform, admin_username)
        return InitResult(home, created, username, password_file, platform.signer.key_id)
    finally:
        platform.close()


def _first_admin(platform: Platform, username: str) -> tuple[str | None, Path | None]:
    with platform.transaction() as session:
        if session.query(User).filter(User.role == Role.ADMIN).first():
            return None, None
        given = platform.settings.admin_password
        password = given.get_secret_value() if given else generate_password()
        add_user(session, username, password, Role.ADMIN, customer=None, actor="cli:init")
        record(session, "cli:init", "platform.init", detail={"signing_key": platform.signer.key_id})
    if given:
        return username, None
    path = platform.settings.keys_dir / ADMIN_PASSWORD_FILE
    path.unlink(missing_ok=True)
    write_private(path, (password + "\n").encode())
    return username, path
