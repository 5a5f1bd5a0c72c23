"""The site manifest, `websonic.toml`: parsed, validated, or detected when missing.

Example::

    [site]
    kind = "python"            # static | php | python | node | containerfile
    health = "/healthz"        # path answered with 2xx when the site is healthy
    port = 8080                # port the site listens on inside its container
    command = ["gunicorn", "--bind", "0.0.0.0:8080", "wsgi:application"]

    [services]
    database = "postgresql"    # postgresql | mariadb | sqlite | none

    [[volumes]]
    name = "uploads"
    path = "/srv/site/uploads"

    [env]
    APP_ENV = "production"
    SECRET_KEY = { secret = true }   # value set with `websonic site secret set`, kept encrypted
"""

from __future__ import annotations

import tomllib
from itertools import combinations
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from websonic.core.errors import InvalidInput
from websonic.sites import grammar

MANIFEST_NAME = "websonic.toml"
KINDS = ("static", "php", "python", "node", "containerfile")
DATABASES = ("postgresql", "mariadb", "sqlite", "none")

Kind = Literal["static", "php", "python", "node", "containerfile"]
Database = Literal["postgresql", "mariadb", "sqlite", "none"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SiteSection(Strict):
    kind: Kind
    health: str = "/healthz"
    port: int = 8080
    root: str = "."  # static and php: the folder served, relative to the source
    command: list[str] | None = None  # python and node: the start command
    containerfile: str = "Containerfile"  # containerfile kind: relative path

    @field_validator("health")
    @classmethod
    def _health_is_path(cls, value: str) -> str:
        return grammar.health_path(value)

    @field_validator("port")
    @classmethod
    def _port(cls, value: int) -> int:
        return grammar.port(value)

    @field_validator("root", "containerfile")
    @classmethod
    def _relative_inside(cls, value: str) -> str:
        if Path(value).is_absolute() or ".." in Path(value).parts:
            raise ValueError("must be a relative path inside the site's source")
        return value


class Services(Strict):
    database: Database = "none"


class BuildSection(Strict):
    network: bool = False  # RUN steps reach the network (pip, npm, composer); in the SBOM


class Volume(Strict):
    name: str
    path: str

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return grammar.volume_name(value)

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        return grammar.volume_path(value)


class SecretRef(Strict):
    secret: Literal[True]


EnvValue = str | SecretRef


class Manifest(Strict):
    site: SiteSection
    services: Services = Services()
    build: BuildSection = BuildSection()
    volumes: list[Volume] = []
    env: dict[str, EnvValue] = {}

    @field_validator("env")
    @classmethod
    def _env(cls, value: dict[str, EnvValue]) -> dict[str, EnvValue]:
        for name, given in value.items():
            grammar.env_name(name)
            if isinstance(given, str):
                grammar.env_value(name, given)
        return value

    @model_validator(mode="after")
    def _distinct_volumes(self) -> Manifest:
        names = [v.name for v in self.volumes]
        if len(names) != len(set(names)):
            raise ValueError("volumes: each volume needs a distinct name")
        for first, second in combinations(self.volumes, 2):
            if grammar.nested(first.path, second.path):
                raise ValueError(
                    f"volumes: {first.name} ({first.path}) and {second.name} ({second.path}) "
                    "overlap: each volume needs a folder of its own, not inside another"
                )
        return self

    @property
    def kind(self) -> str:
        return self.site.kind

    @property
    def secret_names(self) -> list[str]:
        return sorted(k for k, v in self.env.items() if isinstance(v, SecretRef))

    @property
    def plain_env(self) -> dict[str, str]:
        return {k: v for k, v in self.env.items() if isinstance(v, str)}

    def to_record(self) -> dict[str, Any]:
        """What the state database keeps: the manifest as JSON (secret values never in it)."""
        return self.model_dump(mode="json")


def parse_manifest(text: str, *, origin: str = MANIFEST_NAME) -> Manifest:
    """Parse and validate manifest text; errors name the key and say why."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"{origin} is not valid TOML: {exc}") from exc
    return validate_manifest(data, origin=origin)


def validate_manifest(data: Any, *, origin: str = MANIFEST_NAME) -> Manifest:
    """A manifest from its parsed (or recorded) data; errors name the key and say why."""
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(f"{origin} is invalid:\n{_describe(exc)}") from exc


def _describe(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        key = ".".join(str(p) for p in error["loc"] if not str(p).startswith("function-after"))
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key (check its spelling; see docs/site-manifest.md)"
        lines.append(f"  {key or '(top level)'}: {message}")
    return "\n".join(lines)


def load_manifest(source_dir: Path) -> tuple[Manifest, bool]:
    """The site's manifest and whether it was detected (no `websonic.toml` in the source)."""
    path = source_dir / MANIFEST_NAME
    if path.is_file():
        return parse_manifest(path.read_text(encoding="utf-8")), False
    return Manifest(site=SiteSection(kind=detect_kind(source_dir))), True


def detect_kind(source_dir: Path) -> Kind:
    """Guess a site's kind from the files at the top of its source."""
    names = {p.name for p in source_dir.iterdir()}
    if names & {"Containerfile", "Dockerfile"}:
        return "containerfile"
    if "composer.json" in names or any(n.endswith(".php") for n in names):
        return "php"
    if names & {"requirements.txt", "pyproject.toml", "wsgi.py", "asgi.py", "manage.py"}:
        return "python"
    if "package.json" in names:
        return "node"
    if "index.html" in names or "index.htm" in names:
        return "static"
    raise InvalidInput(
        f"Cannot tell what kind of site {source_dir} is, and it has no {MANIFEST_NAME}.",
        hint=f"Add a {MANIFEST_NAME} with [site] kind = one of {', '.join(KINDS)}.",
    )
