"""Registering sites, reading their manifest, and keeping their secret values."""

from __future__ import annotations

import tempfile
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from websonic.accounts.models import Customer
from websonic.accounts.service import get_customer
from websonic.audit.service import record
from websonic.core.errors import AlreadyExists, InvalidInput, NotFound
from websonic.core.naming import SiteRef, check_slug, parse_site_ref
from websonic.core.runner import Runner
from websonic.core.secretbox import SecretBox
from websonic.sites import source as sources
from websonic.sites.manifest import Manifest, load_manifest, validate_manifest
from websonic.sites.models import Site, SiteSecret


def add_site(
    session: Session,
    runner: Runner,
    ref: str,
    source_text: str,
    *,
    actor: str,
    epoch: int | None = None,
    box: SecretBox | None = None,
) -> Site:
    """Register CUSTOMER/SITE from a folder or git URL#REF; the manifest is read and checked.

    A password in a git URL is kept sealed with ``box`` (required then) and never shown."""
    site_ref = parse_site_ref(ref)
    customer = get_customer(session, site_ref.customer)
    if _find(session, customer, site_ref.site):
        raise AlreadyExists(f"Site {site_ref} already exists.")
    spec = sources.parse_source(source_text)
    if spec.password is not None and box is None:
        raise InvalidInput("A git URL with a password needs the secrets box to keep it.")
    if epoch is not None and (spec.is_git or epoch < 0):
        raise InvalidInput("--epoch is only for folder sources (git sources use commit time).")
    manifest, detected = read_manifest(spec, runner)
    site = Site(
        customer=customer,
        slug=check_slug(site_ref.site, "site slug"),
        source=spec.stored(box) if box is not None else spec.location,
        ref=spec.ref,
        epoch=None
        if spec.is_git
        else (epoch if epoch is not None else sources.DEFAULT_FOLDER_EPOCH),
        kind=manifest.kind,
        manifest=manifest.to_record(),
        manifest_detected=detected,
    )
    session.add(site)
    session.flush()
    record(
        session,
        actor,
        "site.add",
        customer_id=customer.id,
        target=str(site_ref),
        detail={"source": str(spec), "kind": manifest.kind, "detected": detected},
    )
    return site


def read_manifest(spec: sources.SourceSpec, runner: Runner) -> tuple[Manifest, bool]:
    """The manifest of the source as it is now (a git source is fetched to a temporary folder)."""
    if not spec.is_git:
        sources.refuse_links_outside(Path(spec.location))
        return load_manifest(Path(spec.location))
    with tempfile.TemporaryDirectory(prefix="websonic-source-") as tmp:
        snap = sources.snapshot(spec, Path(tmp) / "src", runner, folder_epoch=0)
        return load_manifest(snap.path)


def source_spec(site: Site, box: SecretBox) -> sources.SourceSpec:
    return sources.from_stored(site.source, site.ref, box)


def get_site(session: Session, ref: str | SiteRef) -> Site:
    site_ref = parse_site_ref(ref) if isinstance(ref, str) else ref
    customer = get_customer(session, site_ref.customer)
    site = _find(session, customer, site_ref.site)
    if site is None:
        raise NotFound(
            f"Unknown site {site_ref.repository!r}.",
            hint=f"List the sites with: websonic site list {customer.slug}",
        )
    return site


def _find(session: Session, customer: Customer, slug: str) -> Site | None:
    return session.scalar(select(Site).where(Site.customer_id == customer.id, Site.slug == slug))


def list_sites(session: Session, customer_slug: str | None = None) -> list[Site]:
    query = select(Site).join(Customer).order_by(Customer.slug, Site.slug)
    if customer_slug is not None:
        query = query.where(Site.customer_id == get_customer(session, customer_slug).id)
    return list(session.scalars(query))


def set_secret(
    session: Session, box: SecretBox, site: Site, name: str, value: str, *, actor: str
) -> None:
    """Store a secret env value, encrypted; only names declared secret in the manifest."""
    manifest = validate_manifest(site.manifest, origin=f"the recorded manifest of {site.ref_name}")
    if name not in manifest.secret_names:
        declared = ", ".join(manifest.secret_names) or "none"
        raise InvalidInput(
            f"{name!r} is not a secret of {site.ref_name} (declared: {declared}).",
            hint=f"Declare it in websonic.toml: [env] {name} = {{ secret = true }}",
        )
    existing = next((s for s in site.secrets if s.name == name), None)
    if existing is None:
        site.secrets.append(SiteSecret(name=name, ciphertext=box.seal(value)))
    else:
        existing.ciphertext = box.seal(value)
    record(
        session,
        actor,
        "site.secret.set",
        customer_id=site.customer_id,
        target=site.ref_name,
        detail={"name": name},
    )


def secret_values(box: SecretBox, site: Site) -> dict[str, str]:
    """Decrypted secret values, for the installer only; never log them."""
    return {s.name: box.open(s.ciphertext) for s in site.secrets}
