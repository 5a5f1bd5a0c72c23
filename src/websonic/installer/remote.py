"""What a customer's server fetches to install a site by itself (the portal's one-liner).

``curl -fsSL https://PORTAL/install/acme/shop?token=… | sudo sh`` serves the installer with the
portal's values filled in; the installer then fetches, with the same install token, the site's
signed plan and its secrets. Every fetch is checked the same way: an active token whose scopes
include ``install``, of the site's own customer. Another customer's site answers like a site
that does not exist. Secret reads are audited (who, which site, from where).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from websonic.accounts.models import ApiToken, Customer
from websonic.accounts.tokens import TokenRefused, authenticate_token, grants
from websonic.audit.service import record
from websonic.builds.service import get_release
from websonic.builds.signing import public_pem
from websonic.core.errors import InvalidInput, NotFound
from websonic.hosting import spec
from websonic.installer import plan as plans
from websonic.installer.bundle import secrets_env
from websonic.installer.script import PortalValues, installer_text, portal_script
from websonic.platform import Platform
from websonic.sites.models import Site
from websonic.sites.service import get_site, secret_values

INSTALL = "install"
SIGNATURE_PREFIX = b"signature="


def install_token(session: Session, presented: str) -> ApiToken:
    """The active install token ``presented`` is, or TokenRefused."""
    token = authenticate_token(session, presented or "")
    if token is None or INSTALL not in grants(token) or token.customer_id is None:
        raise TokenRefused(
            "The install token is wrong, expired, revoked, or not an install token.",
            hint="Ask the agency for a token made with: websonic token create CUSTOMER "
            "--scope install",
        )
    return token


def site_for_token(session: Session, token: ApiToken, customer: str, site: str) -> Site:
    """The site, if it is the token's customer's. Another customer's site, a site that does
    not exist and a malformed name all get the very same answer: nothing tells them apart."""
    unknown = NotFound(f"Unknown site {customer}/{site}.")
    owner = session.get(Customer, token.customer_id)
    if owner is None or owner.slug != customer:
        raise unknown
    try:
        return get_site(session, f"{customer}/{site}")
    except (NotFound, InvalidInput):
        raise unknown from None


def signed_plan(
    platform: Platform, session: Session, site: Site, release: int | None, public_url: str
) -> bytes:
    """The plan of ``release`` (default: the newest), then one ``signature=`` line over it."""
    chosen = get_release(session, site, release)
    requirements = spec.site_requirements(session, site.ref_name)
    plan = plans.make_plan(site, chosen, requirements, public_url=public_url)
    rendered = plans.render(plan)
    return rendered + SIGNATURE_PREFIX + platform.signer.sign(rendered).encode("ascii") + b"\n"


def secrets_file(
    platform: Platform, session: Session, site: Site, token: ApiToken, remote_addr: str | None
) -> bytes:
    """The site's secret env values for its server (audited; never logged)."""
    body = secrets_env(secret_values(platform.secrets, site))
    record(
        session, f"token:{token.public_id}", "install.secrets.read",
        customer_id=site.customer_id, target=site.ref_name,
        detail={"names": sorted(s.name for s in site.secrets)}, remote_addr=remote_addr,
    )  # fmt: skip
    return body


def served_installer(platform: Platform, site: Site, token: str, public_url: str) -> str:
    return portal_script(
        PortalValues(
            portal=public_url,
            site=site.ref_name,
            token=token,
            signing_key_pem=public_pem(platform.signer.public),
            ca_pem=platform.settings.public_ca_pem(),
        )
    )


def installer_signature(platform: Platform) -> bytes:
    """The agency's signature of the shipped installer (the updater keeps a checked copy)."""
    return platform.signer.sign(installer_text().encode("utf-8")).encode("ascii") + b"\n"
