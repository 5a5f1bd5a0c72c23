from __future__ import annotations

import pytest

from websonic.core.errors import InvalidInput
from websonic.core.naming import check_slug, parse_site_ref


@pytest.mark.parametrize("slug", ["acme", "a", "shop-2", "x" * 63])
def test_valid_slugs(slug: str) -> None:
    assert check_slug(slug) == slug


@pytest.mark.parametrize(
    "slug", ["", "Acme", "-acme", "acme-", "ac me", "a/b", "../x", "x" * 64, "acmé", "a_b"]
)
def test_invalid_slugs(slug: str) -> None:
    with pytest.raises(InvalidInput, match="Invalid"):
        check_slug(slug)


def test_site_refs() -> None:
    assert str(parse_site_ref("acme/shop")) == "acme/shop"
    ref = parse_site_ref("acme/shop:3", allow_release=True)
    assert (ref.customer, ref.site, ref.release) == ("acme", "shop", 3)
    for bad in ("acme", "acme/", "/shop", "acme/shop:0", "acme/shop:x", "acme/Shop"):
        with pytest.raises(InvalidInput):
            parse_site_ref(bad, allow_release=True)
    with pytest.raises(InvalidInput):
        parse_site_ref("acme/shop:1")
