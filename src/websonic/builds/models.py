"""Base images and releases (a built, signed image of a site)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from websonic.core.db import Base, utcnow


class BaseImage(Base):
    """A base image made from Debian packages; the newest of each kind is used for builds."""

    __tablename__ = "base_images"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    suite: Mapped[str] = mapped_column(String(40))
    image: Mapped[str] = mapped_column(
        String(200)
    )  # local image name, e.g. localhost/websonic/base-static:1
    digest: Mapped[str] = mapped_column(String(80))  # image (config) digest in containers-storage
    packages: Mapped[list[Any]]  # [name, version] pairs from dpkg
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Release(Base):
    """One build of a site: an image in the OCI layout, signed, with its SBOM."""

    __tablename__ = "releases"
    __table_args__ = (UniqueConstraint("site_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    number: Mapped[int]
    digest: Mapped[str] = mapped_column(String(80))  # manifest digest in the OCI layout
    config_digest: Mapped[str] = mapped_column(String(80))
    size: Mapped[int] = mapped_column(BigInteger)  # manifest + config + layers, compressed
    layers: Mapped[list[Any]]  # [{"digest", "size", "diff_id"}]
    base_digest: Mapped[str | None] = mapped_column(String(80))
    tool_versions: Mapped[dict[str, Any]]
    source_ref: Mapped[str] = mapped_column(String(2000))
    source_revision: Mapped[str | None] = mapped_column(String(80))  # git commit
    source_epoch: Mapped[int] = mapped_column(BigInteger)
    signature: Mapped[str] = mapped_column(Text)  # base64 Ed25519 signature of the payload
    signed_payload: Mapped[str] = mapped_column(Text)  # the exact bytes that were signed
    signing_key_id: Mapped[str] = mapped_column(String(80))
    sbom_digest: Mapped[str] = mapped_column(String(80))  # blob in the OCI layout
    #: The database service images the release runs with (none for sqlite/none sites), each
    #: {"engine", "version", "digest", "config_digest", "size", "layers": [{"digest", "size",
    #: "diff_id"}]}; "digest" is the manifest digest in the OCI layout (and the registry).
    services: Mapped[list[Any]] = mapped_column(default=list, server_default=text("'[]'"))
    #: The site's websonic.toml as built (what the installer runs: port, health, volumes, env
    #: names, database); None for releases made before it was recorded (then: the site's).
    manifest: Mapped[dict[str, Any] | None]
    build_log: Mapped[str | None] = mapped_column(String(500))  # path under the state folder
    build_seconds: Mapped[float] = mapped_column(default=0.0)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    site = relationship("Site", back_populates="releases")
