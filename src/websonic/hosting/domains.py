"""The domain names a site is deployed at: normalised, then checked against the one grammar.

A name given to a deploy (``websonic deploy --domain``, the API, ``websonic migrate``) is
stripped of surrounding spaces, lower-cased, stripped of one trailing dot (the DNS root), and
IDNA-encoded when it has letters beyond ASCII (IDNA 2008 with the UTS 46 mapping:
``Bücher.Example.`` -> ``xn--bcher-kva.example``), so that one site is never asked for under
two spellings and only ASCII reaches a server. The result must then be a host name by
``sites.grammar.domain``: labels of letters, digits and '-' (not at either end) of at most 63
characters, at most 253 in all, ending in a top-level domain of letters. No wildcard: the
server's Caddy gets certificates per name.
"""

from __future__ import annotations

from collections.abc import Iterable

import idna

from websonic.core.errors import InvalidInput
from websonic.sites import grammar

HINT = "Use a host name, e.g. --domain www.example.org (or an IDN such as bücher.example)."


def normalise_domain(value: str) -> str:
    """The canonical ASCII form of ``value``, or InvalidInput saying why it is not a domain."""
    name = value.strip().lower()
    if name.endswith("."):
        name = name[:-1]
    if not name.isascii():
        name = _idna(value, name)
    try:
        return grammar.domain(name)
    except grammar.GrammarError as exc:
        given = f" (given as {value!r})" if name != value else ""
        raise InvalidInput(f"{exc}{given}.", hint=HINT) from None


def normalise_domains(values: Iterable[str]) -> tuple[str, ...]:
    """Each name normalised, in the order given, each once."""
    return tuple(dict.fromkeys(normalise_domain(value) for value in values))


def _idna(value: str, name: str) -> str:
    try:
        return idna.encode(name, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError) as exc:
        raise InvalidInput(
            f"{value!r} is not a valid international domain name: {exc}.", hint=HINT
        ) from None
