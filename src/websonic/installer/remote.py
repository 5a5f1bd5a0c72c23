"""What a customer's server fetches to install a site by itself (the portal's one-liner).

``curl -fsSL -H 'Authorization: Bearer CODE' https://PORTAL/install/acme/shop | sudo sh``:
CODE is a one-time install code (15 minutes) of that one site, in a header so that no access
log or proxy records it. The portal serves the installer with its values filled in; the
installer exchanges the code for the server's own install token (of that site only), with
which it fetches the signed plan, the secrets and the images, and which its updater renews.
Every fetch is checked the same way: an active token of the right purpose, bound to the very
site asked for. Another customer's site, or another site of the same customer, answers like a
site that does not exist. Secret reads are audited (who, which site, from where).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from websonic.accounts import tokens
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

INSTALL = tokens.INSTALL
SIGNATURE_PREFIX = b"signature="


def install_token(session: Session, presented: str) -> ApiToken:
    """The active install token ``presented`` is (bound to a site), or TokenRefused."""
    token = authenticate_token(session, presented or "")
    if token is None or INSTALL not in grants(token) or token.customer_id is None:
        raise TokenRefused(
            "The install token is wrong, expired, revoked, or not an install token.",
            hint="Ask the agency for a one-time install code: websonic token code CUSTOMER/SITE",
        )
    if token.site_id is None:
        raise TokenRefused(
            "This install token is for a whole customer: install tokens are now for one site.",
            hint="Ask the agency for a one-time install code: websonic token code CUSTOMER/SITE",
        )
    return token


def site_for_token(session: Session, token: ApiToken, customer: str, site: str) -> Site:
    """The site, if it is the one the token (or code) is bound to. Another customer's site,
    another site, a site that does not exist and a malformed name all get the very same
    answer: nothing tells them apart."""
    unknown = NotFound(f"Unknown site {customer}/{site}.")
    owner = session.get(Customer, token.customer_id)
    if owner is None or owner.slug != customer:
        raise unknown
    try:
        found = get_site(session, f"{customer}/{site}")
    except (NotFound, InvalidInput):
        raise unknown from None
    if found.id != token.site_id:
        raise unknown
    return found


def site_for_code(session: Session, presented: str, customer: str, site: str) -> Site:
    """The site of a one-time install code (checked, not used up)."""
    return site_for_token(session, tokens.install_code(session, presented), customer, site)


def exchange_code(
    session: Session, presented: str, customer: str, site: str, *, dry_run: bool = False
) -> str:
    """The one-liner's code, used up, for the server's install token of its site (for a dry
    run, a token that expires with the code: the server does not keep it)."""
    code = tokens.install_code(session, presented)
    found = site_for_token(session, code, customer, site)
    return tokens.redeem_install_code(session, code, found, dry_run=dry_run).secret


def renew_token(session: Session, presented: str, customer: str, site: str) -> str:
    """A new install token replacing ``presented`` (revoked when the new one is first used)."""
    current = install_token(session, presented)
    site_for_token(session, current, customer, site)
    return tokens.rotate_token(session, current).secret


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


def served_installer(platform: Platform, site: Site, code: str, public_url: str) -> str:
    """The installer with the portal's values; ``code`` is the one-time code it was fetched
    with (the body is not logged; the code is good for one exchange, 15 minutes)."""
    return portal_script(
        PortalValues(
            portal=public_url,
            site=site.ref_name,
            code=code,
            signing_key_pem=public_pem(platform.signer.public),
            ca_pem=platform.settings.public_ca_pem(),
        )
    )


def installer_signature(platform: Platform) -> bytes:
    """The agency's signature of the shipped installer (the updater keeps a checked copy)."""
    return platform.signer.sign(installer_text().encode("utf-8")).encode("ascii") + b"\n"
