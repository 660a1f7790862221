"""A sink's declared limits, applied to column types: a value that does not fit the sink is a
cast error (so fallback and on_error apply), never rounded or cut by the database."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from router.errors import CastError
from router.limits import fit_type
from router.sink import Capabilities
from router.types import parse_type

POSTGRES = Capabilities()
REDSHIFT = Capabilities(max_identifier_bytes=127, merge_strategy="delete-insert", max_decimal_precision=38,
                        default_decimal=(38, 9), max_text_bytes=65535)


@pytest.mark.parametrize("type_name, capabilities, fitted", [
    ("numeric", POSTGRES, "numeric"),                  # Postgres: numbers of any size
    ("numeric", REDSHIFT, "numeric(38,9)"),            # a bare numeric becomes the sink's default decimal
    ("numeric[]", REDSHIFT, "numeric(38,9)[]"),        # ... in arrays too
    ("numeric(38,2)", REDSHIFT, "numeric(38,2)"),      # within the limit: unchanged
    ("numeric(12,2)", REDSHIFT, "numeric(12,2)"),
    ("varchar(20)", REDSHIFT, "varchar(20)"),          # character counts stay the route's contract
    ("bigint", REDSHIFT, "bigint"),
])
def test_fitted_type_names(type_name: str, capabilities: Capabilities, fitted: str) -> None:
    assert fit_type(parse_type(type_name), capabilities).name == fitted


def test_a_decimal_wider_than_the_sink_is_refused_at_load() -> None:
    with pytest.raises(ValueError, match=r"at most 38 digits \(numeric\(p,s\) with p <= 38\)"):
        fit_type(parse_type("numeric(50,2)"), REDSHIFT)


@pytest.mark.parametrize("type_name, value, stored", [
    ("numeric", Decimal("12345678901234567890123456789.123456789"), Decimal("12345678901234567890123456789.123456789")),
    ("numeric", Decimal("5"), Decimal("5.000000000")),              # exact: only zeros added
    ("text", "é" * 32767, "é" * 32767),                             # 65534 bytes
    ("varchar(20000)", "é" * 20000, "é" * 20000),                   # 40000 bytes
    ("jsonb", {"a": "x" * 65000}, {"a": "x" * 65000}),
    ("text[]", ["a", "b"], ["a", "b"]),
])
def test_values_that_fit_redshift(type_name: str, value: Any, stored: Any) -> None:
    assert fit_type(parse_type(type_name), REDSHIFT).cast(value) == stored


@pytest.mark.parametrize("type_name, value, message", [
    # one decimal place too many for DECIMAL(38,9): refused, never rounded
    ("numeric", Decimal("1.1234567891"), "more than 9 decimal places"),
    # 30 digits before the point: DECIMAL(38,9) holds 29
    ("numeric", Decimal("1" * 30), "more than 29 digits before the point"),
    # a 38-digit DynamoDB number fits DynamoDB, not DECIMAL(38,9)
    ("numeric", Decimal("9" * 38), "more than 29 digits before the point"),
    # 32768 characters, but 65536 bytes in UTF-8: over Redshift's VARCHAR(65535)
    ("text", "é" * 32768, "65536 bytes, at most 65535 allowed by the sink"),
    # within varchar(20000) characters, over 65535 bytes
    ("varchar(20000)", "😀" * 17000, "68000 bytes, at most 65535 allowed by the sink"),
    # SUPER is written through JSON_PARSE, which reads a VARCHAR
    ("jsonb", {"a": "x" * 65535}, "65543 bytes, at most 65535 allowed by the sink"),
    ("text[]", ["x" * 40000, "y" * 40000], "80007 bytes, at most 65535 allowed by the sink"),
])
def test_values_that_do_not_fit_redshift_are_cast_errors(type_name: str, value: Any, message: str) -> None:
    with pytest.raises(CastError, match=message):
        fit_type(parse_type(type_name), REDSHIFT).cast(value)


def test_postgres_keeps_its_own_limits() -> None:
    # GIVEN the default (Postgres) capabilities THEN types and their casts are left as they are
    text = parse_type("text")
    assert fit_type(text, POSTGRES) is text
    assert fit_type(parse_type("numeric"), POSTGRES).cast(Decimal("9" * 38)) == Decimal("9" * 38)

