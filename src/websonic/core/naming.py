"""Slugs and references ("acme", "acme/brochure", "acme/brochure:3")."""

from __future__ import annotations

import re
from dataclasses import dataclass

from websonic.core.errors import InvalidInput

SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def check_slug(value: str, what: str = "slug") -> str:
    if not SLUG.match(value):
        raise InvalidInput(
            f"Invalid {what} {value!r}.",
            hint="Use 1 to 63 lowercase letters, digits and '-', starting and ending with a "
            "letter or digit (e.g. 'acme' or 'shop-2').",
        )
    return value


@dataclass(frozen=True)
class SiteRef:
    customer: str
    site: str
    release: int | None = None

    def __str__(self) -> str:
        text = f"{self.customer}/{self.site}"
        return f"{text}:{self.release}" if self.release is not None else text

    @property
    def repository(self) -> str:
        return f"{self.customer}/{self.site}"


def parse_site_ref(value: str, *, allow_release: bool = False) -> SiteRef:
    """Parse CUSTOMER/SITE (or CUSTOMER/SITE:RELEASE when allowed)."""
    text, release = value, None
    if allow_release and ":" in value:
        text, _, number = value.rpartition(":")
        if not number.isdigit() or int(number) < 1:
            raise InvalidInput(f"Invalid release {number!r} in {value!r}: use a number like :3.")
        release = int(number)
    customer, slash, site = text.partition("/")
    if not slash:
        form = "CUSTOMER/SITE[:RELEASE]" if allow_release else "CUSTOMER/SITE"
        raise InvalidInput(f"Expected {form}, got {value!r} (e.g. acme/brochure).")
    return SiteRef(check_slug(customer, "customer slug"), check_slug(site, "site slug"), release)
