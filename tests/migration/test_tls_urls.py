"""TLS options of database URLs: whenever TLS is used it is verified, unless --tls-insecure."""

from __future__ import annotations

import pytest

from websonic.core.errors import InvalidInput
from websonic.migration.urls import parse_database_url, with_tls_insecure

PG = "postgresql://app:pw@db.example/shop"
MARIA = "mariadb://app:pw@db.example/shop"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", {"sslmode": "disable"}),  # no TLS asked: none (libpq would try it unverified)
        ("?sslmode=require", {"sslmode": "verify-full"}),
        (
            "?sslmode=verify-ca&sslrootcert=/ca.pem",
            {"sslmode": "verify-full", "sslrootcert": "/ca.pem"},
        ),
    ],
)
def test_finding9_postgresql_tls_is_verified_full(query: str, expected: dict[str, str]) -> None:
    assert parse_database_url(PG + query).options == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", {"ssl": "0"}),
        ("?ssl=1", {"ssl": "1", "ssl_verify": "1"}),
        ("?ssl_ca=/ca.pem", {"ssl_ca": "/ca.pem", "ssl": "1", "ssl_verify": "1"}),
        ("?ssl=1&ssl_verify=1", {"ssl": "1", "ssl_verify": "1"}),
    ],
)
def test_finding9_mariadb_tls_is_verified(query: str, expected: dict[str, str]) -> None:
    assert parse_database_url(MARIA + query).options == expected


def test_finding9_only_tls_insecure_skips_the_check_and_it_shows_in_the_url() -> None:
    for text in (PG + "?sslmode=prefer", MARIA + "?ssl=1&ssl_verify=0"):
        with pytest.raises(InvalidInput, match="--tls-insecure"):
            parse_database_url(text)
    url = parse_database_url(with_tls_insecure(PG + "?sslmode=verify-full&sslrootcert=/ca.pem"))
    assert url.tls_insecure and url.options == {"sslmode": "require"}
    assert url.masked().endswith("?sslmode=verify-full&sslrootcert=%2Fca.pem&tls_insecure=1")
    maria = parse_database_url(with_tls_insecure(MARIA + "?ssl=1"))
    assert maria.options == {"ssl": "1", "ssl_verify": "0"}
    assert parse_database_url(with_tls_insecure(PG)).options == {"sslmode": "disable"}
    with pytest.raises(InvalidInput, match="sslmode='verify'"):
        parse_database_url(PG + "?sslmode=verify")
