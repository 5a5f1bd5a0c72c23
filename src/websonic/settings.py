"""Typed settings, read once from the environment (prefix ``WEBSONIC_``).

Every setting is documented in ``docs/settings.md``; a test keeps the two in step.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from websonic.core.errors import InvalidInput


def default_home() -> Path:
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "websonic"


class Settings(BaseSettings):
    """WebSonic's settings. Environment variables are ``WEBSONIC_<FIELD>`` in capitals."""

    model_config = SettingsConfigDict(env_prefix="WEBSONIC_", extra="ignore")

    home: Path = Field(default_factory=default_home, description="State folder.")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the state database; default: SQLite in the state folder.",
    )
    queue_url: str | None = Field(
        default=None,
        description="redis://… for workers shared by several machines; default: SQLite queue "
        "in the state folder, worked by threads inside `websonic serve`.",
    )
    environment: Literal["production", "development"] = Field(
        default="production", description="`development` allows insecure cookies over HTTP."
    )
    workers: int = Field(default=2, ge=1, le=64, description="In-process job worker threads.")
    session_ttl_minutes: int = Field(
        default=480, ge=1, description="Portal session lifetime (idle sessions expire)."
    )
    session_absolute_hours: int = Field(
        default=12,
        ge=1,
        description="A portal session ends this long after login, however much it is used.",
    )
    debian_mirror: str = Field(
        default="http://deb.debian.org/debian",
        description="Debian mirror that base images are built from.",
    )
    debian_suite: str = Field(default="bookworm", description="Debian suite of base images.")
    containers_conf: Path | None = Field(
        default=None,
        description="containers.conf given to podman/buildah/skopeo; default: the one shipped "
        "with WebSonic (runc, cgroupfs, no ulimits).",
    )
    base_max_age_hours: float = Field(
        default=24.0,
        ge=0,
        description="`websonic base build` reuses a cached Debian root filesystem younger than "
        "this; older ones are made again from the mirror (security updates).",
    )
    base_cache_dir: Path | None = Field(
        default=None,
        description="Cache of base root filesystems; default: cache/base in the state folder.",
    )
    build_ca_bundle: Path | None = Field(
        default=Path("/etc/ssl/certs/ca-certificates.crt"),
        description="CA bundle lent (read-only, never stored in an image) to the RUN steps of "
        "builds, for dependency installs behind a TLS-intercepting proxy.",
    )
    build_timeout_seconds: int = Field(default=3600, ge=10, description="Limit for one build.")
    public_url: str | None = Field(
        default=None,
        description="The address customer servers reach this WebSonic at (portal, registry, "
        "installer), e.g. https://websonic.agency.example. Needed to deploy sites.",
    )
    public_ca_file: Path | None = Field(
        default=None,
        description="PEM file of a private CA that signed the certificate of `public_url`; "
        "customer servers are told to trust it for WebSonic's address only.",
    )
    admin_password: SecretStr | None = Field(
        default=None,
        description="Password of the first admin made by `websonic init` (else one is generated "
        "and written to a file readable only by its owner).",
    )

    @field_validator("home")
    @classmethod
    def _absolute_home(cls, value: Path) -> Path:
        return value.expanduser().absolute()

    def require_public_url(self) -> str:
        """``public_url``, or an error saying how to set it."""
        if not self.public_url:
            raise InvalidInput(
                "WebSonic does not know the address customer servers reach it at.",
                hint="Set WEBSONIC_PUBLIC_URL, e.g. https://websonic.agency.example "
                "(the address of `websonic serve` or of its TLS reverse proxy).",
            )
        return self.public_url.rstrip("/")

    def public_ca_pem(self) -> bytes:
        """The private CA's certificate(s), or b"" when the public URL has a public certificate."""
        if self.public_ca_file is None:
            return b""
        try:
            pem = self.public_ca_file.read_bytes()
        except OSError as exc:
            raise InvalidInput(
                f"WEBSONIC_PUBLIC_CA_FILE {self.public_ca_file} cannot be read: {exc.strerror}."
            ) from None
        if b"-----BEGIN CERTIFICATE-----" not in pem:
            raise InvalidInput(f"{self.public_ca_file} holds no PEM certificate.")
        return pem

    @property
    def state_url(self) -> str:
        """The state database's SQLAlchemy URL (``postgresql://`` means psycopg 3)."""
        url = self.database_url or f"sqlite:///{self.home / 'state.db'}"
        for prefix in ("postgresql://", "postgres://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url.removeprefix(prefix)
        return url

    @property
    def jobs_path(self) -> Path:
        return self.home / "jobs.db"

    @property
    def keys_dir(self) -> Path:
        return self.home / "keys"

    @property
    def oci_dir(self) -> Path:
        """The OCI image layout holding every release (content-addressed)."""
        return self.home / "oci"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def work_dir(self) -> Path:
        return self.home / "work"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    @property
    def effective_base_cache_dir(self) -> Path:
        return self.base_cache_dir or self.cache_dir / "base"

    @cached_property
    def effective_containers_conf(self) -> Path:
        if self.containers_conf:
            return self.containers_conf
        return Path(__file__).parent / "data" / "containers.conf"


def load_settings(**overrides: object) -> Settings:
    """Read the settings once; callers pass the object on."""
    return Settings(**overrides)  # type: ignore[arg-type]
