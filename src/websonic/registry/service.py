"""The registry's services: manifests, blobs, tags and catalog of the releases, per caller.

Every function checks that the caller may pull the repository first (see ``callers``), then
looks the release up in the state database and the bytes up in the OCI layout. A blob is served
only if a release of *that* repository names it; its bytes are checked against its digest
before they are served (``integrity``). A pull is audited once per caller, manifest and UTC day
(``registry.pull.manifest``, on the first manifest GET, not HEAD): the blobs that follow and
the same pull repeated add no row, so the append-only log does not grow by a row per GET.
Each refused manifest or blob whose bytes no longer match is an audit event every time.

A release's database service image (``Release.services``) belongs to the site's repository
too, by digest only: its manifest under ``/v2/<customer>/<site>/manifests/<digest>``, its
config and layers as that repository's blobs. No tag names it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from websonic.accounts.models import Customer
from websonic.accounts.sessions import find_session
from websonic.audit.models import AuditEvent
from websonic.audit.service import record
from websonic.builds.models import Release
from websonic.builds.oci import OciLayout
from websonic.builds.services import service_blobs
from websonic.core.db import utcnow
from websonic.core.errors import NotFound, VerificationFailed
from websonic.registry import callers, manifests, tokens
from websonic.registry.access import grant, user_principal
from websonic.registry.callers import Caller, require_login, require_pull
from websonic.registry.errors import BLOB_UNKNOWN, MANIFEST_UNKNOWN, IntegrityError, RegistryError
from websonic.registry.errors import name_unknown as unknown_repository
from websonic.registry.integrity import IntegrityCache
from websonic.registry.manifests import Manifest
from websonic.registry.names import check_digest, check_reference, is_digest, split_repository
from websonic.sites.models import Site

Transaction = Callable[[], AbstractContextManager[Session]]
LATEST = "latest"
PULL = "registry.pull.manifest"


@dataclass(frozen=True)
class Page:
    items: list[str]
    next_last: str | None  # the ``last`` of the next page, if there is one


@dataclass(frozen=True)
class Repository:
    name: str
    customer_id: int
    releases: list[Release]  # oldest first; never empty


@dataclass
class OpenBlob:
    """A verified blob, open for reading; the caller closes ``handle``."""

    digest: str
    size: int
    handle: BinaryIO


class Registry:
    def __init__(
        self, transaction: Transaction, layout: OciLayout, cache: IntegrityCache, token_key: bytes
    ) -> None:
        self.transaction = transaction
        self.layout = layout
        self.cache = cache
        self.token_key = token_key
        self._docker: dict[str, Manifest | None] = {}

    # Callers and the token flow ---------------------------------------------------------------

    def basic_caller(self, username: str, password: str, remote_addr: str | None) -> Caller:
        with self.transaction() as session:
            return callers.from_basic(session, username, password, remote_addr)

    def bearer_caller(self, token: str, remote_addr: str | None) -> Caller:
        return callers.from_bearer(self.token_key, token, remote_addr)

    def session_caller(self, cookie_value: str, remote_addr: str | None) -> Caller:
        """A logged-in portal user (the token endpoint only)."""
        with self.transaction() as session:
            portal = find_session(session, cookie_value)
            principal = user_principal(portal.user) if portal else None
        return Caller(principal, None, remote_addr)

    def ping(self, caller: Caller) -> None:
        with self.transaction() as session:
            require_login(session, caller)

    def issue_token(self, caller: Caller, scopes: list[str]) -> tokens.IssuedToken:
        """A bearer token granting pull on the asked repositories the caller may pull."""
        with self.transaction() as session:
            principal = require_login(session, caller)
        return tokens.issue(self.token_key, principal, grant(principal, scopes))

    # Manifests --------------------------------------------------------------------------------

    def manifest(
        self, caller: Caller, name: str, reference: str, accept: Iterable[str], *, download: bool
    ) -> Manifest:
        check_reference(reference)
        with self.transaction() as session:
            require_pull(session, caller, name)
            repository = find_repository(session, name)
        try:
            answer = self._resolve(repository, reference, list(accept))
        except IntegrityError as exc:
            with self.transaction() as session:
                self._record_integrity(session, caller, repository, exc.digest)
            raise
        if download:
            with self.transaction() as session:
                self._record_pull(session, caller, repository, answer.digest)
        return answer

    def _resolve(self, repository: Repository, reference: str, accept: list[str]) -> Manifest:
        if is_digest(reference):
            return self._by_digest(repository, reference)
        for release in _tagged(repository.releases, reference):
            oci = self._oci(release.digest)
            docker = self._to_docker(oci)
            return docker if docker and manifests.wants_docker(accept) else oci
        raise _manifest_unknown(repository, reference)

    def _by_digest(self, repository: Repository, digest: str) -> Manifest:
        """A manifest of the repository (a release's or a service image's), as stored (OCI)
        or in its Docker form."""
        stored = manifest_digests(repository.releases)
        if digest in stored:
            return self._oci(digest)
        for candidate in stored:
            docker = self._to_docker(self._oci(candidate))
            if docker and docker.digest == digest:
                return docker
        raise _manifest_unknown(repository, digest)

    def _oci(self, digest: str) -> Manifest:
        try:
            content = self.layout.read_blob(digest)
        except (NotFound, VerificationFailed) as exc:
            raise IntegrityError(digest) from exc
        return Manifest(content, manifests.OCI_MANIFEST, digest)

    def _to_docker(self, oci: Manifest) -> Manifest | None:
        if oci.digest not in self._docker:  # content-addressed: the conversion never changes
            self._docker[oci.digest] = manifests.to_docker(oci)
        return self._docker[oci.digest]

    # Blobs ------------------------------------------------------------------------------------

    def blob(self, caller: Caller, name: str, digest: str) -> OpenBlob:
        check_digest(digest)
        with self.transaction() as session:
            require_pull(session, caller, name)
            repository = find_repository(session, name)
            if digest not in blob_digests(repository.releases):
                raise RegistryError(404, BLOB_UNKNOWN, {"digest": digest})
        try:
            opened = self._open_verified(digest)
        except IntegrityError:
            with self.transaction() as session:
                self._record_integrity(session, caller, repository, digest)
            raise
        return opened

    def _open_verified(self, digest: str) -> OpenBlob:
        path = self.layout.blob_path(digest)
        try:
            handle = open(path, "rb")  # noqa: SIM115 - handed to the response, which closes it
        except OSError as exc:
            raise IntegrityError(digest) from exc
        try:
            if not self.cache.matches(handle, str(path), digest):
                raise IntegrityError(digest)
            size = handle.seek(0, 2)
            handle.seek(0)
        except BaseException:
            handle.close()
            raise
        return OpenBlob(digest, size, handle)

    # Listing ----------------------------------------------------------------------------------

    def tags(self, caller: Caller, name: str, n: int | None, last: str | None) -> Page:
        with self.transaction() as session:
            require_pull(session, caller, name)
            repository = find_repository(session, name)
        numbers = [str(release.number) for release in repository.releases]
        return paginate(sorted([*numbers, LATEST]), n, last)

    def catalog(self, caller: Caller, n: int | None, last: str | None) -> Page:
        with self.transaction() as session:
            principal = require_login(session, caller)
            query = (
                select(Customer.slug, Site.slug)
                .join(Site, Site.customer_id == Customer.id)
                .where(select(Release.id).where(Release.site_id == Site.id).exists())
            )
            names = [f"{customer}/{site}" for customer, site in session.execute(query)]
        visible = sorted(name for name in names if principal.may_pull(name))
        return paginate(visible, n, last)

    # Audit ------------------------------------------------------------------------------------

    def _record_pull(
        self, session: Session, caller: Caller, repository: Repository, digest: str
    ) -> None:
        """A manifest pull, unless this caller pulled this manifest already today (UTC)."""
        target = f"{repository.name}@{digest}"
        today = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
        seen = session.scalar(
            select(AuditEvent.id)
            .where(
                AuditEvent.at >= today,
                AuditEvent.action == PULL,
                AuditEvent.actor == caller.actor,
                AuditEvent.target == target,
            )
            .limit(1)
        )
        if seen is not None:
            return
        record(
            session,
            caller.actor,
            PULL,
            customer_id=repository.customer_id,
            target=target,
            detail={"repository": repository.name, "digest": digest},
            remote_addr=caller.remote_addr,
        )

    def _record_integrity(
        self, session: Session, caller: Caller, repository: Repository, digest: str
    ) -> None:
        record(
            session,
            caller.actor,
            "registry.integrity_failure",
            customer_id=repository.customer_id,
            target=f"{repository.name}@{digest}",
            detail={"repository": repository.name, "digest": digest, "refused": True},
            remote_addr=caller.remote_addr,
        )


def find_repository(session: Session, name: str) -> Repository:
    """The repository ``<customer>/<site>`` with its releases; one without releases is unknown."""
    customer_slug, site_slug = split_repository(name)
    site = session.scalar(
        select(Site).join(Customer).where(Customer.slug == customer_slug, Site.slug == site_slug)
    )
    releases = list(site.releases) if site else []
    if site is None or not releases:
        raise unknown_repository(name)
    return Repository(name, site.customer_id, releases)


def _tagged(releases: list[Release], tag: str) -> list[Release]:
    """The release a tag names: a number, or ``latest``."""
    if tag == LATEST:
        return releases[-1:]
    return [release for release in releases if str(release.number) == tag]


def _manifest_unknown(repository: Repository, reference: str) -> RegistryError:
    return RegistryError(404, MANIFEST_UNKNOWN, {"name": repository.name, "reference": reference})


def manifest_digests(releases: list[Release]) -> list[str]:
    """Every manifest of these releases, oldest first: each release's, then its services'."""
    digests: list[str] = []
    for release in releases:
        for digest in (release.digest, *(str(s["digest"]) for s in release.services)):
            if digest not in digests:
                digests.append(digest)
    return digests


def blob_digests(releases: list[Release]) -> set[str]:
    """Every blob that belongs to these releases: manifest, config, layers, SBOM, and the
    manifests, configs and layers of their service images."""
    digests: set[str] = set()
    for release in releases:
        digests.update((release.digest, release.config_digest, release.sbom_digest))
        digests.update(str(layer["digest"]) for layer in release.layers)
        digests.update(service_blobs(release.services))
    return digests


def paginate(items: list[str], n: int | None, last: str | None) -> Page:
    """Items after ``last``, at most ``n`` of them (lexical order, as the spec says)."""
    if last is not None:
        items = [item for item in items if item > last]
    if n is None or n >= len(items):
        return Page(items, None)
    page = items[:n]
    return Page(page, page[-1] if page else None)


def open_registry(transaction: Transaction, oci_dir: Path, keys_dir: Path) -> Registry:
    """The registry over a state folder's image store (its token key made on first use)."""
    return Registry(transaction, OciLayout(oci_dir), IntegrityCache(), tokens.load_key(keys_dir))
