"""Casts into target column types, and DynamoDB AttributeValues into exact Python values.

One parametrized table per type: ``(type, value, expected)`` where ``expected`` is the
exact stored value (compared by ``repr``, so ``Decimal('1.00')`` is not ``Decimal('1')``
and ``1`` is not ``Decimal('1')``) or ``Fails(reason)``: a ``CastError`` whose message
contains ``reason``. Nothing is ever silently truncated or rounded.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from router import attrs
from router.errors import CastError, RecordError
from router.types import EXPECTED, parse_type

D = Decimal
UTC = dt.UTC
UUID_TEXT = "12345678-1234-5678-1234-567812345678"
DIGITS_38 = "12345678901234567890123456789012345678"


@dataclass(frozen=True)
class Fails:
    reason: str


def show(value: Any) -> str:
    """A short test id: the type name, the value's repr, or the failure."""
    if isinstance(value, Fails):
        return "fails"
    text = value if isinstance(value, str) and not value.startswith(("{", "[")) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_cast(type_name: str, value: Any, expected: Any) -> None:
    """GIVEN a column type WHEN a value is cast THEN it is stored exactly as expected, or refused."""
    column_type = parse_type(type_name)
    if isinstance(expected, Fails):
        with pytest.raises(CastError) as caught:
            column_type.cast(value)
        assert expected.reason in str(caught.value)
    else:
        assert repr(column_type.cast(value)) == repr(expected)


TEXT = [
    # a string is stored as it is
    ("text", "Akua", "Akua"),
    # non-ASCII text is fine
    ("text", "Zoë 北京", "Zoë 北京"),
    # a number keeps its exact digits, trailing zero included
    ("text", D("1.50"), "1.50"),
    # booleans as PostgreSQL spells them
    ("text", True, "true"),
    # binary as base64
    ("text", b"\x01\x02", "AQI="),
    # a map as compact JSON with exact numbers
    ("text", {"a": D("1.10")}, '{"a":1.10}'),
    # PostgreSQL text cannot hold NUL
    ("text", "a\x00b", Fails("'a\\x00b' does not fit text: PostgreSQL cannot store NUL (0x00) characters")),
    # an unpaired surrogate is not valid UTF-8
    ("text", "\ud800", Fails("does not fit text: not valid UTF-8 (unpaired surrogate)")),
]

VARCHAR = [
    # exactly n characters fits
    ("varchar(3)", "abc", "abc"),
    # n counts characters, not bytes
    ("varchar(3)", "ééé", "ééé"),
    # one character too many is an error, never a truncation
    ("varchar(3)", "abcd", Fails("'abcd' does not fit varchar(3): 4 characters, at most 3 allowed")),
    # the reference article's 'NA' case: 25 characters into varchar(20)
    ("varchar(20)", "x" * 25, Fails("does not fit varchar(20): 25 characters, at most 20 allowed")),
    # a number's text must fit too
    ("varchar(3)", D("1234"), Fails("Decimal('1234') does not fit varchar(3): 4 characters, at most 3 allowed")),
    # a number whose text fits
    ("varchar(3)", D("123"), "123"),
    # NUL inside a varchar
    ("varchar(5)", "a\x00b", Fails("PostgreSQL cannot store NUL (0x00) characters")),
    # a lone low surrogate
    ("varchar(5)", "\udfff", Fails("not valid UTF-8 (unpaired surrogate)")),
]

INTEGERS = [
    # an N value that is whole becomes an int
    ("integer", D("42"), 42),
    # trailing zeros after the point are still whole
    ("integer", D("1.0"), 1),
    # exponent notation that is whole
    ("integer", D("1E+2"), 100),
    # a numeric string
    ("integer", " 7 ", 7),
    # a fraction is an error, never rounded
    ("integer", D("1.5"), Fails("Decimal('1.5') does not fit integer: not a whole number")),
    # a fractional string too
    ("integer", "4.2", Fails("'4.2' does not fit integer: not a whole number")),
    # text that is not a number
    ("integer", "x", Fails("'x' does not fit integer: not a number")),
    # a boolean is not a number
    ("integer", True, Fails("True does not fit integer: a boolean is not a number")),
    # not finite
    ("integer", D("NaN"), Fails("does not fit integer: not a finite number")),
    # bounds of integer
    ("integer", 2**31 - 1, 2**31 - 1),
    ("integer", -(2**31), -(2**31)),
    ("integer", 2**31, Fails("2147483648 does not fit integer: out of range")),
    # bounds of smallint
    ("smallint", D("32767"), 32767),
    ("smallint", D("32768"), Fails("does not fit smallint: out of range")),
    ("smallint", D("-32769"), Fails("does not fit smallint: out of range")),
    # bounds of bigint
    ("bigint", D("9223372036854775807"), 9223372036854775807),
    ("bigint", D("-9223372036854775808"), -9223372036854775808),
    ("bigint", D("9223372036854775808"), Fails("does not fit bigint: out of range")),
]

NUMERIC = [
    # unconstrained numeric keeps every digit DynamoDB can send (38)
    ("numeric", D(DIGITS_38), D(DIGITS_38)),
    # and DynamoDB's smallest magnitude
    ("numeric", D("1E-130"), D("1E-130")),
    # exactly p digits with s after the point
    ("numeric(5,2)", D("123.45"), D("123.45")),
    # fewer decimals are padded to the scale, the value is unchanged
    ("numeric(5,2)", D("1"), D("1.00")),
    # extra zero decimals change nothing
    ("numeric(5,2)", D("123.450"), D("123.45")),
    # negative at the edge
    ("numeric(5,2)", D("-999.99"), D("-999.99")),
    # a third decimal would be rounded: refused
    ("numeric(5,2)", D("123.456"), Fails("does not fit numeric(5,2): more than 2 decimal places")),
    # 99.995 would round up to 100.00: refused, not rounded
    ("numeric(5,2)", D("99.995"), Fails("does not fit numeric(5,2): more than 2 decimal places")),
    # too many digits before the point
    ("numeric(5,2)", D("1234.5"), Fails("does not fit numeric(5,2): more than 3 digits before the point")),
    ("numeric(5,2)", D("1E+3"), Fails("does not fit numeric(5,2): more than 3 digits before the point")),
    # numeric(p) means scale 0
    ("numeric(3)", D("999"), D("999")),
    ("numeric(3)", D("1.5"), Fails("does not fit numeric(3,0): more than 0 decimal places")),
    # numeric(2,2) holds only fractions
    ("numeric(2,2)", D("0.99"), D("0.99")),
    ("numeric(2,2)", D("1"), Fails("does not fit numeric(2,2): more than 0 digits before the point")),
    # a 38-digit DynamoDB number fits numeric(38,0) exactly
    ("numeric(38,0)", D(DIGITS_38), D(DIGITS_38)),
    # and 36 + 2 digits fit numeric(38,2)
    ("numeric(38,2)", D("123456789012345678901234567890123456.78"), D("123456789012345678901234567890123456.78")),
    # a string number is exact too
    ("numeric(12,2)", "19.99", D("19.99")),
    # not a number
    ("numeric(12,2)", "abc", Fails("'abc' does not fit numeric(12,2): not a number")),
]

FLOATS = [
    # real and double precision are approximate by definition
    ("real", D("1.5"), 1.5),
    ("double precision", D("0.1"), 0.1),
    ("double precision", D("1E+308"), 1e308),
    # beyond the largest real
    ("real", D("3.5E+38"), Fails("does not fit real: out of range")),
    # beyond the largest double
    ("double precision", D("1E+309"), Fails("does not fit double precision: out of range")),
    # a number too small for real is not zero: PostgreSQL refuses it as out of range, so must the cast
    ("real", D("1E-50"), Fails("does not fit real: out of range")),
    # a string number too small for double precision: never silently 0.0
    ("double precision", "1e-400", Fails("does not fit double precision: out of range")),
    # not numbers
    ("double precision", "abc", Fails("does not fit double precision: not a number")),
    ("real", True, Fails("does not fit real: a boolean is not a number")),
]

BOOLEAN = [
    # a BOOL value
    ("boolean", True, True),
    ("boolean", False, False),
    # PostgreSQL's spellings, any case
    ("boolean", "t", True),
    ("boolean", "TRUE", True),
    ("boolean", "yes", True),
    ("boolean", "y", True),
    ("boolean", "on", True),
    ("boolean", "1", True),
    ("boolean", "F", False),
    ("boolean", "false", False),
    ("boolean", "no", False),
    ("boolean", "off", False),
    ("boolean", "0", False),
    # N 1 and 0
    ("boolean", D("1"), True),
    ("boolean", D("0"), False),
    # any other number
    ("boolean", D("2"), Fails("Decimal('2') does not fit boolean")),
    # any other word
    ("boolean", "maybe", Fails("'maybe' does not fit boolean")),
    ("boolean", "", Fails("'' does not fit boolean")),
]

TIMES = [
    # an ISO date
    ("date", "2024-03-01", dt.date(2024, 3, 1)),
    # the date of an ISO timestamp
    ("date", "2024-03-01T12:34:56", dt.date(2024, 3, 1)),
    # epoch seconds
    ("date", D("1700000000"), dt.date(2023, 11, 14)),
    # epoch milliseconds
    ("date", D("1700000000123"), dt.date(2023, 11, 14)),
    # not a date
    ("date", "2024-13-01", Fails("'2024-13-01' does not fit date: expected an ISO-8601 time or epoch")),
    # a naive ISO timestamp
    ("timestamp", "2024-03-01T12:34:56", dt.datetime(2024, 3, 1, 12, 34, 56)),
    # with a space instead of T
    ("timestamp", "2024-03-01 12:34:56", dt.datetime(2024, 3, 1, 12, 34, 56)),
    # an offset is converted to UTC for a timestamp without time zone
    ("timestamp", "2024-03-01T12:34:56.789+02:00", dt.datetime(2024, 3, 1, 10, 34, 56, 789000)),
    # epoch seconds with a fraction
    ("timestamp", D("1700000000.5"), dt.datetime(2023, 11, 14, 22, 13, 20, 500000)),
    # epoch milliseconds
    ("timestamp", D("1700000000123"), dt.datetime(2023, 11, 14, 22, 13, 20, 123000)),
    # before 1970
    ("timestamp", D("-1"), dt.datetime(1969, 12, 31, 23, 59, 59)),
    # Z means UTC
    ("timestamptz", "2024-03-01T12:34:56Z", dt.datetime(2024, 3, 1, 12, 34, 56, tzinfo=UTC)),
    # an offset is kept
    ("timestamptz", "2024-03-01T12:34:56+02:00",
     dt.datetime(2024, 3, 1, 12, 34, 56, tzinfo=dt.timezone(dt.timedelta(hours=2)))),
    # no offset: UTC is assumed
    ("timestamptz", "2024-03-01T12:34:56", dt.datetime(2024, 3, 1, 12, 34, 56, tzinfo=UTC)),
    # epoch seconds
    ("timestamptz", D("1700000000"), dt.datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
    # epoch milliseconds
    ("timestamptz", D("1700000000123"), dt.datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC)),
    # the largest number read as seconds, the smallest read as milliseconds, and between them (seconds or
    # milliseconds?) a cast error that asks for the column's epoch unit (issue 12)
    ("timestamptz", D("9999999999"), dt.datetime(2286, 11, 20, 17, 46, 39, tzinfo=UTC)),
    ("timestamptz", D("100000000000"), dt.datetime(1973, 3, 3, 9, 46, 40, tzinfo=UTC)),
    ("timestamptz", D("99999999999"), Fails("ambiguous epoch number (seconds or milliseconds?): set epoch: s, ms "
                                            "or us on the column")),
    # words are not times
    ("timestamptz", "yesterday", Fails("'yesterday' does not fit timestamptz: expected an ISO-8601 time or epoch")),
    # an epoch number as text is not ISO-8601
    ("timestamptz", "1700000000", Fails("does not fit timestamptz: expected an ISO-8601 time or epoch")),
    # too far from 1970
    ("timestamptz", D("1E+20"), Fails("does not fit timestamptz: out of range")),
    # a boolean is not a time
    ("timestamp", True, Fails("True does not fit timestamp: expected an ISO-8601 time or epoch")),
]

UUIDS = [
    # canonical text
    ("uuid", UUID_TEXT, uuid.UUID(UUID_TEXT)),
    # without hyphens, in braces, with spaces around
    ("uuid", UUID_TEXT.replace("-", ""), uuid.UUID(UUID_TEXT)),
    ("uuid", "{" + UUID_TEXT + "}", uuid.UUID(UUID_TEXT)),
    ("uuid", f"  {UUID_TEXT}  ", uuid.UUID(UUID_TEXT)),
    # 16 bytes of a B value
    ("uuid", b"\x00" * 15 + b"\x01", uuid.UUID(int=1)),
    # one hex digit short
    ("uuid", UUID_TEXT[:-1], Fails("does not fit uuid")),
    # not a uuid at all
    ("uuid", "not-a-uuid", Fails("'not-a-uuid' does not fit uuid")),
    ("uuid", D("1"), Fails("Decimal('1') does not fit uuid")),
    # 15 bytes
    ("uuid", b"\x00" * 15, Fails("does not fit uuid")),
]

JSONS = [
    # numbers stay exact Decimals, trailing zeros kept
    ("jsonb", {"price": D("1.10"), "n": [D(DIGITS_38)]}, {"price": D("1.10"), "n": [D(DIGITS_38)]}),
    ("json", {"price": D("1.10")}, {"price": D("1.10")}),
    # a scalar is a JSON document too
    ("jsonb", D("1"), D("1")),
    # jsonb refuses NUL in values and in keys
    ("jsonb", {"a": "b\x00"}, Fails("does not fit jsonb: PostgreSQL cannot store NUL (0x00) characters")),
    ("jsonb", {"a\x00": 1}, Fails("does not fit jsonb: PostgreSQL cannot store NUL (0x00) characters")),
    # json keeps the text as written, where NUL is the escape \u0000: PostgreSQL accepts it
    ("json", {"a": "b\x00"}, {"a": "b\x00"}),
    # an unpaired surrogate, deep inside, for both
    ("jsonb", {"a": {"b": ["\udc00"]}}, Fails("does not fit jsonb: not valid UTF-8 (unpaired surrogate)")),
    ("json", {"a": "\ud800"}, Fails("does not fit json: not valid UTF-8 (unpaired surrogate)")),
]

BYTEA = [
    # a B value
    ("bytea", b"\x00\x01", b"\x00\x01"),
    ("bytea", bytearray(b"x"), b"x"),
    # text is not binary, even if it looks like base64
    ("bytea", "AAE=", Fails("'AAE=' does not fit bytea: expected a binary (B) value")),
    ("bytea", D("1"), Fails("does not fit bytea: expected a binary (B) value")),
]

ARRAYS = [
    # an L of strings
    ("text[]", ["a", "b"], ["a", "b"]),
    # an SS arrives as a sorted list (see attrs below); a Python set is accepted too
    ("text[]", {"a"}, ["a"]),
    # an NS into integer[]
    ("integer[]", [D("1"), D("2")], [1, 2]),
    # NULL elements stay NULL
    ("integer[]", [D("1"), None], [1, None]),
    # each element is cast with the element type
    ("numeric(4,2)[]", [D("1.5")], [D("1.50")]),
    ("uuid[]", [UUID_TEXT], [uuid.UUID(UUID_TEXT)]),
    ("date[]", ["2024-01-01"], [dt.date(2024, 1, 1)]),
    ("boolean[]", ["yes", "off"], [True, False]),
    ("bytea[]", [b"x"], [b"x"]),
    # one element that does not fit fails the whole value
    ("varchar(2)[]", ["ab", "abc"], Fails("'abc' does not fit varchar(2): 3 characters, at most 2 allowed")),
    ("integer[]", [D("1.5")], Fails("does not fit integer: not a whole number")),
    ("text[]", ["a\x00"], Fails("PostgreSQL cannot store NUL (0x00) characters")),
    # nested lists are not elements of a scalar array
    ("integer[]", [[D("1")]], Fails("[Decimal('1')] does not fit integer: not a number")),
    # a scalar or a map is not an array
    ("text[]", "a", Fails("'a' does not fit text[]: expected a list or a set")),
    ("text[]", {"a": 1}, Fails("does not fit text[]: expected a list or a set")),
]


@pytest.mark.parametrize("type_name, value, expected", TEXT, ids=show)
def test_text(type_name: str, value: Any, expected: Any) -> None:
    check_cast(type_name, value, expected)


@pytest.mark.parametrize("type_name, value, expected", VARCHAR, ids=show)
def test_varchar(type_name: str, value: Any, expected: Any) -> None:
    check_cast(type_name, value, expected)


@pytest.mark.parametrize("type_name, value, expected", INTEGERS, ids=show)
def test_integers(type_name: str, value: Any, expected: Any) -> None:
    check_cast(type_name, value, expected)


@pytest.mark.parametrize("type_name, value, expected", NUMERIC, ids=show)
def test_numeric(type_name: str, value: Any, expected: Any) -> None:
    check_cast(type_name, value, expected)


@pytest.mark.parametrize("type_name, value, expected", FLOATS, ids=show)
def test_real_and_double(type_name: str, value: Any, expected: Any) -> None:
    check_cast(type_name, value, expected)


@pytest.mark.parametrize("type_name, value, expected", BOOLEAN, ids=show)
def test_boolean(type_name: str, value: Any, expected: Any) -> None:
    check_cast(type_name, value, expected)


@pytest.mark.parametrize("type_name, value, expected", TIMES, ids=show)
def test_dates_and_timestamps(type_name: str, value: Any, expected: Any) -> None:
    check_cast(type_name, value, expected)


@pytest.mark.parametrize("type_name, value, expected", UUIDS, ids=show)
def test_uuid(type_name: str, value: Any, expected: Any) -> None:
    check_cast(type_name, value, expected)


@pytest.mark.parametrize("type_name, value, expected", JSONS, ids=show)
def test_json_and_jsonb(type_name: str, value: Any, expected: Any) -> None:
    check_cast(type_name, value, expected)


@pytest.mark.parametrize("type_name, value, expected", BYTEA, ids=show)
def test_bytea(type_name: str, value: Any, expected: Any) -> None:
    check_cast(type_name, value, expected)


@pytest.mark.parametrize("type_name, value, expected", ARRAYS, ids=show)
def test_arrays_and_sets(type_name: str, value: Any, expected: Any) -> None:
    check_cast(type_name, value, expected)


TYPE_NAMES = [
    # canonical names are kept
    ("varchar(20)", "varchar(20)"),
    ("numeric(12,2)", "numeric(12,2)"),
    ("double precision", "double precision"),
    # aliases become the canonical name that is emitted as SQL
    ("int", "integer"),
    ("int8", "bigint"),
    ("float8", "double precision"),
    ("bool", "boolean"),
    ("decimal(10,2)", "numeric(10,2)"),
    ("character varying(5)", "varchar(5)"),
    ("timestamp with time zone", "timestamptz"),
    # case and spaces do not matter
    ("VARCHAR( 20 )", "varchar(20)"),
    ("numeric(12, 2)", "numeric(12,2)"),
    # numeric(p) is numeric(p,0)
    ("numeric(3)", "numeric(3,0)"),
    # arrays of scalars
    ("text[]", "text[]"),
    ("varchar(3)[]", "varchar(3)[]"),
    ("int[]", "integer[]"),
]


@pytest.mark.parametrize("text, canonical", TYPE_NAMES)
def test_type_names_are_canonical(text: str, canonical: str) -> None:
    # GIVEN a type as written in tables.yaml WHEN parsed THEN its SQL name is canonical
    assert parse_type(text).name == canonical


BAD_TYPE_NAMES = [
    # a typo
    ("varchar20", f"unknown type 'varchar20' (expected {EXPECTED})"),
    # not a PostgreSQL type we cast to
    ("money", f"unknown type 'money' (expected {EXPECTED})"),
    # SQL where a type should be
    ("text; drop table x", f"unknown type 'text; drop table x' (expected {EXPECTED})"),
    # varchar needs its length
    ("varchar", "invalid type 'varchar': varchar needs a length, e.g. varchar(20)"),
    ("varchar(0)", "invalid type 'varchar(0)': varchar needs a length, e.g. varchar(20)"),
    # scale larger than precision
    ("numeric(2,3)", "invalid type 'numeric(2,3)': need 1 <= p <= 1000 and 0 <= s <= p"),
    ("numeric(1,2,3)", "invalid type 'numeric(1,2,3)': expected numeric, numeric(p) or numeric(p,s)"),
    # arguments to a type that takes none
    ("text(5)", "invalid type 'text(5)': text takes no arguments"),
    # what a YAML flow mapping leaves of an unquoted numeric(12,2)
    ("numeric(12", "unknown type 'numeric(12': in a {...} mapping a comma ends the value, "
                   'so quote the type, e.g. type: "numeric(12,2)"'),
]


@pytest.mark.parametrize("text, message", BAD_TYPE_NAMES)
def test_bad_type_names(text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_type(text)
    assert str(caught.value) == message


# -- router/attrs.py: AttributeValues to exact Python values -----------------------------

ATTRIBUTE_VALUES = [
    # S
    ({"S": "Akua"}, "Akua"),
    ({"S": ""}, ""),
    # N is an exact Decimal with its trailing zeros
    ({"N": "1.10"}, D("1.10")),
    # DynamoDB's 38 significant digits, and its extreme magnitudes
    ({"N": DIGITS_38}, D(DIGITS_38)),
    ({"N": "-1E-130"}, D("-1E-130")),
    ({"N": "9.9999999999999999999999999999999999999E+125"}, D("9.9999999999999999999999999999999999999E+125")),
    # B: base64 text as Lambda sends it, bytes as boto3 returns them
    ({"B": "AAE="}, b"\x00\x01"),
    ({"B": b"\x00"}, b"\x00"),
    # BOOL and NULL
    ({"BOOL": True}, True),
    ({"BOOL": False}, False),
    ({"NULL": True}, None),
    # M and L, recursively, numbers exact
    ({"M": {"a": {"N": "1"}, "b": {"L": [{"S": "x"}, {"NULL": True}]}}}, {"a": D("1"), "b": ["x", None]}),
    ({"L": []}, []),
    ({"M": {}}, {}),
    # sets become sorted lists, so that output is deterministic
    ({"SS": ["b", "a"]}, ["a", "b"]),
    ({"NS": ["10", "9", "1.5"]}, [D("1.5"), D("9"), D("10")]),
    ({"BS": ["AQ==", "AA=="]}, [b"\x00", b"\x01"]),
]


@pytest.mark.parametrize("av, expected", ATTRIBUTE_VALUES, ids=show)
def test_attribute_values_convert_exactly(av: Any, expected: Any) -> None:
    assert repr(attrs.to_python(av)) == repr(expected)


MALFORMED = [
    # not a one-key mapping
    ({}, "not a DynamoDB AttributeValue: {}"),
    ({"S": "a", "N": "1"}, "not a DynamoDB AttributeValue: {'S': 'a', 'N': '1'}"),
    ("x", "not a DynamoDB AttributeValue: 'x'"),
    (None, "not a DynamoDB AttributeValue: None"),
    # an unknown tag
    ({"X": 1}, "unknown DynamoDB type tag 'X' (expected one of S, N, B, BOOL, NULL, M, L, SS, NS, BS)"),
    ({"s": "lower"}, "unknown DynamoDB type tag 's' (expected one of S, N, B, BOOL, NULL, M, L, SS, NS, BS)"),
    # payloads of the wrong kind
    ({"S": 1}, "malformed S value: 1"),
    ({"BOOL": "true"}, "malformed BOOL value: 'true'"),
    ({"M": []}, "malformed M value: []"),
    ({"L": {}}, "malformed L value: {}"),
    ({"SS": "a"}, "malformed SS value: 'a'"),
    # numbers: a JSON number instead of text, not a number, not finite
    ({"N": 1}, "invalid DynamoDB number 1"),
    ({"N": "abc"}, "invalid DynamoDB number 'abc'"),
    ({"N": ""}, "invalid DynamoDB number ''"),
    ({"N": "NaN"}, "invalid DynamoDB number 'NaN'"),
    ({"N": "Infinity"}, "invalid DynamoDB number 'Infinity'"),
    ({"NS": ["1", "x"]}, "invalid DynamoDB number 'x'"),
    # binary that is not base64
    ({"B": "!!!"}, "binary value is not base64: '!!!'"),
    ({"BS": ["%%"]}, "binary value is not base64: '%%'"),
    # a malformed value deep inside a map
    ({"M": {"a": {"L": [{"N": "x"}]}}}, "invalid DynamoDB number 'x'"),
]


@pytest.mark.parametrize("av, message", MALFORMED, ids=show)
def test_malformed_attribute_values_are_record_errors(av: Any, message: str) -> None:
    with pytest.raises(RecordError) as caught:
        attrs.to_python(av)
    assert str(caught.value) == message


def nested(tag: str, levels: int) -> dict[str, Any]:
    av: dict[str, Any] = {"S": "leaf"}
    for _ in range(levels):
        av = {"M": {"a": av}} if tag == "M" else {"L": [av]}
    return av


@pytest.mark.parametrize("tag", ["M", "L"])
def test_nesting_up_to_the_limit_converts(tag: str) -> None:
    # GIVEN 64 levels of maps or lists (DynamoDB itself allows 32)
    value = attrs.to_python(nested(tag, attrs.MAX_DEPTH))
    # THEN the leaf is reached
    for _ in range(attrs.MAX_DEPTH):
        value = value["a"] if tag == "M" else value[0]
    assert value == "leaf"


@pytest.mark.parametrize("levels", [attrs.MAX_DEPTH + 1, 10_000])
def test_deeper_nesting_is_a_record_error_not_a_crash(levels: int) -> None:
    # GIVEN a value nested deeper than the limit (10,000 would overflow Python's stack)
    with pytest.raises(RecordError) as caught:
        attrs.to_python(nested("M", levels))
    assert str(caught.value) == f"value nested deeper than {attrs.MAX_DEPTH} levels"


def test_dumps_exact_keeps_38_digit_numbers_exact() -> None:
    # GIVEN a converted map with 38-digit, tiny and trailing-zero numbers
    value = attrs.to_python({"M": {
        "big": {"N": DIGITS_38}, "tiny": {"N": "-1E-130"}, "price": {"N": "1.10"},
        "set": {"NS": ["2", "10"]}}})
    # WHEN written as JSON
    text = attrs.dumps_exact(value)
    # THEN every digit is there, and reading it back as Decimals gives the same values
    assert text == f'{{"big":{DIGITS_38},"tiny":-1E-130,"price":1.10,"set":[2,10]}}'
    assert json.loads(text, parse_float=Decimal, parse_int=Decimal) == value
    # while json.dumps through float would have lost digits
    assert json.dumps(float(D(DIGITS_38))) != DIGITS_38


DUMPS = [
    # strings are escaped as JSON
    ('é"\n', '"é\\"\\n"'),
    # null and booleans
    ([None, True, False], "[null,true,false]"),
    # bytes as base64
    (b"\x01", '"AQ=="'),
    # dates, datetimes and UUIDs as ISO / canonical text
    (dt.date(2024, 1, 2), '"2024-01-02"'),
    (dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), '"2024-01-02T03:04:05+00:00"'),
    (uuid.UUID(int=1), '"00000000-0000-0000-0000-000000000001"'),
    # non-string keys become strings
    ({1: D("2")}, '{"1":2}'),
    # exponents are valid JSON numbers
    (D("1E+2"), "1E+2"),
]


@pytest.mark.parametrize("value, text", DUMPS, ids=show)
def test_dumps_exact(value: Any, text: str) -> None:
    assert attrs.dumps_exact(value) == text


def test_dumps_exact_refuses_unknown_objects() -> None:
    with pytest.raises(TypeError, match="cannot encode object as JSON"):
        attrs.dumps_exact(object())
