"""Domain names given to a deploy: normalised (case, trailing dot, IDNA), then checked as host
names, by examples and by hypothesis; and a deploy job carries the normalised names."""

from __future__ import annotations

import re
import string

import idna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from websonic.accounts.service import add_customer
from websonic.core.errors import InvalidInput
from websonic.hosting.domains import normalise_domain, normalise_domains
from websonic.hosting.models import Host
from websonic.installer.deploy import DeployRequest, submit_deploy
from websonic.platform import Platform
from websonic.sites.service import add_site

from conftest import EXAMPLES

LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")


def is_host_name(name: str) -> bool:
    labels = name.split(".")
    return (
        len(name) <= 253
        and len(labels) >= 2
        and all(LABEL.fullmatch(label) for label in labels)
        and not labels[-1].isdigit()
    )


@pytest.mark.parametrize(
    ("given_name", "expected"),
    [
        ("WWW.Example.ORG.", "www.example.org"),
        ("  shop.example.com ", "shop.example.com"),
        ("Bücher.Example.", "xn--bcher-kva.example"),
        ("straße.de", "xn--strae-oqa.de"),  # IDNA 2008: ß is kept, not folded to ss
        ("\uff33\uff28\uff2f\uff30.example", "shop.example"),  # full-width letters mapped (UTS 46)
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("пример.рф", "xn--e1afmkfd.xn--p1ai"),  # an internationalised top-level domain
        ("a" * 63 + ".example", "a" * 63 + ".example"),
    ],
)
def test_finding9_domains_are_normalised_before_they_are_checked(
    given_name: str, expected: str
) -> None:
    assert normalise_domain(given_name) == expected


@pytest.mark.parametrize(
    "bad",
    [
        "",
        ".",
        "example",  # one label: not a public host name
        "a..example.org",
        "example.org..",  # one trailing dot only
        "*.example.org",  # no wildcard
        "-shop.example.org",
        "shop-.example.org",
        "a" * 64 + ".example",  # label over 63
        ".".join(["a" * 63] * 4) + ".org",  # over 253 in all
        "shop example.org",
        "shop.example.org/path",
        "shop.example.org:443",
        "1.2.3.4",
        "\u200b.example",  # an invisible character is not a label
        "shop.example.org\n--domain evil",
    ],
)
def test_finding9_bad_domains_are_refused_with_a_message(bad: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        normalise_domain(bad)
    assert refused.value.message and refused.value.hint


def test_the_same_name_in_two_spellings_is_kept_once() -> None:
    names = ["Shop.Example.org.", "shop.example.org", "bücher.example", "XN--BCHER-KVA.example"]
    assert normalise_domains(names) == ("shop.example.org", "xn--bcher-kva.example")


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=300))
def test_any_text_is_refused_or_becomes_a_host_name_that_stays_put(text: str) -> None:
    try:
        name = normalise_domain(text)
    except InvalidInput:
        return
    assert name.isascii() and is_host_name(name), name
    assert normalise_domain(name) == name  # idempotent


ASCII_LABEL = st.from_regex(LABEL, fullmatch=True).filter(lambda label: len(label) <= 63)
ALPHA_TLD = st.text(string.ascii_lowercase, min_size=2, max_size=10)


@settings(max_examples=200, deadline=None)
@given(st.lists(ASCII_LABEL, min_size=1, max_size=4), ALPHA_TLD, st.booleans())
def test_host_names_in_any_case_with_a_root_dot_are_accepted(
    labels: list[str], tld: str, root_dot: bool
) -> None:
    name = ".".join([*labels, tld])
    if len(name) > 253:
        return
    spelled = name.upper() + ("." if root_dot else "")
    assert normalise_domain(spelled) == name


UNICODE_LABEL = st.text(
    st.characters(whitelist_categories=("Ll", "Lu", "Lo", "Nd")), min_size=1, max_size=20
)


@settings(max_examples=200, deadline=None)
@given(UNICODE_LABEL)
def test_international_names_are_idna_encoded(label: str) -> None:
    try:
        name = normalise_domain(f"{label}.example")
    except InvalidInput:
        return  # not a valid IDNA 2008 label (e.g. mixed scripts, a disallowed letter)
    assert name.isascii() and is_host_name(name)
    assert idna.decode(name) == idna.decode(idna.encode(f"{label}.example", uts46=True))


def test_finding9_a_deploy_job_carries_the_normalised_domains(platform: Platform) -> None:
    with platform.transaction() as session:
        acme = add_customer(session, "acme", "ACME", actor="test")
        add_site(
            session, platform.runner, "acme/shop", str(EXAMPLES / "static-brochure"), actor="t"
        )
        session.add(Host(customer_id=acme.id, name="web", ssh_user="root", address="192.0.2.1"))
        session.flush()
        request = DeployRequest(
            "acme/shop", "acme/web", domains=("Shop.Example.org.", "bücher.example")
        )
        job = submit_deploy(session, request, actor="test")
        assert job.params["domains"] == ["shop.example.org", "xn--bcher-kva.example"]
        with pytest.raises(InvalidInput, match="not a domain name"):
            submit_deploy(
                session, DeployRequest("acme/shop", "acme/web", domains=("*.x.org",)), actor="t"
            )
