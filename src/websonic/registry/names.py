"""Parsing registry paths: repository names, tags and digests (pure, no I/O).

Names follow the distribution spec's grammar; WebSonic's repositories are ``<customer>/<site>``
(two slugs). A name the grammar refuses is ``NAME_INVALID``; a grammatical name that cannot be a
WebSonic repository is simply unknown. Digests must be ``sha256:<64 lowercase hex>``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from websonic.core.naming import SLUG
from websonic.registry.errors import (
    DIGEST_INVALID,
    MANIFEST_UNKNOWN,
    NAME_INVALID,
    UNSUPPORTED,
    RegistryError,
    name_unknown,
)

COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
NAME = re.compile(rf"^{COMPONENT}(?:/{COMPONENT})*$")
MAX_NAME = 255
TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
DIGEST_GRAMMAR = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[A-Za-z0-9=_-]+$")
KNOWN_ALGORITHMS = {"sha256": 64, "sha512": 128}
SUPPORTED_ALGORITHMS = frozenset({"sha256"})


class Endpoint(Enum):
    MANIFEST = "manifests"
    BLOB = "blobs"
    TAGS = "tags"


@dataclass(frozen=True)
class Route:
    """What a ``/v2/<name>/<endpoint>/<reference>`` path asks for."""

    endpoint: Endpoint
    name: str
    reference: str = ""


def parse_route(path: str) -> Route:
    """Split the part of the path after ``/v2/``; unknown shapes are an unsupported operation.

    Of the ways to split at ``/manifests/`` (or ``/blobs/``), the one leaving a grammatical
    name and a reference without ``/`` wins; else one with a grammatical name (so a reference
    holding ``/`` or ``..`` is refused as a reference); else the name is invalid.
    """
    name, sep, tail = path.rpartition("/tags/")
    if sep and tail == "list":
        return Route(Endpoint.TAGS, check_name(name))
    for endpoint in (Endpoint.MANIFEST, Endpoint.BLOB):
        marker = f"/{endpoint.value}/"
        splits = [
            (path[:at], path[at + len(marker) :])
            for at in range(len(path))
            if path.startswith(marker, at) and at + len(marker) < len(path)
        ]
        if not splits:
            continue
        valid = [(name, ref) for name, ref in splits if NAME.match(name)]
        best = [(name, ref) for name, ref in valid if "/" not in ref] or valid
        if not best:
            check_name(splits[-1][0])
        return Route(endpoint, check_name(best[-1][0]), best[-1][1])
    raise RegistryError(404, UNSUPPORTED, {"path": path[:200]}, "unknown registry endpoint")


def check_name(name: str) -> str:
    if len(name) > MAX_NAME or not NAME.match(name):
        raise RegistryError(400, NAME_INVALID, {"name": name[:MAX_NAME]})
    return name


def split_repository(name: str) -> tuple[str, str]:
    """``acme/brochure`` -> ("acme", "brochure"); any other shape is an unknown repository."""
    customer, slash, site = name.partition("/")
    if not slash or not SLUG.match(customer) or not SLUG.match(site):
        raise name_unknown(name)
    return customer, site


def check_digest(digest: str) -> str:
    """A digest this registry can serve; else DIGEST_INVALID (malformed) or UNSUPPORTED."""
    algorithm, _, encoded = digest.partition(":")
    if not DIGEST_GRAMMAR.match(digest):
        raise RegistryError(400, DIGEST_INVALID, {"digest": digest[:200]}, "malformed digest")
    length = KNOWN_ALGORITHMS.get(algorithm)
    if length is not None and not re.fullmatch(f"[0-9a-f]{{{length}}}", encoded):
        raise RegistryError(400, DIGEST_INVALID, {"digest": digest[:200]}, "malformed digest")
    if algorithm not in SUPPORTED_ALGORITHMS:
        raise RegistryError(
            400, UNSUPPORTED, {"digest": digest[:200]}, f"digest algorithm {algorithm} unsupported"
        )
    return digest


def is_digest(reference: str) -> bool:
    return ":" in reference


def check_reference(reference: str) -> str:
    """A manifest reference: a digest (checked) or a tag (a malformed tag cannot exist)."""
    if is_digest(reference):
        return check_digest(reference)
    if not TAG.match(reference):
        raise RegistryError(404, MANIFEST_UNKNOWN, {"reference": reference[:128]})
    return reference
