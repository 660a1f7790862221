"""What only Redshift writes: its column types, its literals, its table layout, and the
``Dialect`` the SQL sink base composes the state tables, DDL, drift check and queries with.

Everything else the sink sends is SQL that PostgreSQL reads the same way, which is how the
tests execute it for real. The pieces here are the ones they stand in for: SUPER (nested
values and arrays, through ``JSON_PARSE``), VARBYTE (through ``FROM_HEX``), and string
literals in which a backslash escapes (Redshift's ``QUOTE_LITERAL`` doubles both quotes
and backslashes; PostgreSQL reads them alike with ``standard_conforming_strings = off``).

Values reach the SQL text only through ``render``: the one place, like psycopg's dumpers,
where a Python value becomes SQL. The Data API limits a statement to 100 KB, so a batch
is sent as literals in a few statements rather than as one parameter per value.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from psycopg import sql

from router.attrs import dumps_exact
from router.types import parse_type
from sinks.sql.dialect import DOCUMENT, ID, NAME, STAMP, TEXT, TIME, VERSION, Dialect

MAX_VARCHAR_BYTES = 65535
MAX_HEX_CHARS = MAX_VARCHAR_BYTES - 1  # hex digits per FROM_HEX literal (even: two per byte)
MAX_DECIMAL_PRECISION = 38
INT64_DECIMAL = 19  # the precision whose DECIMAL is 64-bit but whose digits are not (2**63 - 1 has 19)
UNSORTABLE = ("VARBYTE", "SUPER")  # types that cannot be a DISTKEY or SORTKEY
DEFAULT_DECIMAL = (38, 9)  # what a bare `numeric` becomes: dlt's default for Redshift decimals
VERSION_TYPE = "DECIMAL(38,0)"  # _cdc_version: DynamoDB Streams sequence numbers have 21 to ~30 digits
MAX_VERSION = 10**38 - 1

Render = Callable[[Any], str]

_TYPES = {
    "text": f"VARCHAR({MAX_VARCHAR_BYTES})",  # Redshift's TEXT is VARCHAR(256)
    "smallint": "SMALLINT", "integer": "INTEGER", "bigint": "BIGINT",
    "real": "REAL", "double precision": "DOUBLE PRECISION", "boolean": "BOOLEAN",
    "date": "DATE", "timestamp": "TIMESTAMP", "timestamptz": "TIMESTAMPTZ",
    "uuid": "VARCHAR(36)", "json": "SUPER", "jsonb": "SUPER",
    "bytea": "VARBYTE",  # 64,000 bytes: more than a 100 KB statement carries in hex
}


def column_type(type_name: str) -> str:
    """The Redshift type that stores a route's ``type``, as the route's cast produces it."""
    column = parse_type(type_name)
    if column.is_array or column.is_json:
        return "SUPER"  # sets and lists become SUPER arrays
    if column.base == "varchar":
        # varchar(n) counts characters (the route's contract); Redshift counts bytes, up to 4 per character
        return f"VARCHAR({min(4 * (column.length or 1), MAX_VARCHAR_BYTES)})"
    if column.base == "numeric":
        precision, scale = (column.precision, column.scale) if column.precision else DEFAULT_DECIMAL
        # DECIMAL(19,s) is stored in 64 bits: at most 9223372036854775807 unscaled, not nineteen 9s.
        # One more digit makes it 128-bit, which holds every value numeric(19,s) allows. See "Notes about
        # using 128-bit DECIMAL or NUMERIC columns": https://docs.aws.amazon.com/redshift/latest/dg/r_Numeric_types201.html
        return f"DECIMAL({INT64_DECIMAL + 1 if precision == INT64_DECIMAL else precision},{scale})"
    return _TYPES[column.base]


def quote(text: str) -> str:
    """A string literal: quotes and backslashes doubled. NUL cannot be stored, so it is refused."""
    if "\x00" in text:
        raise ValueError("a NUL (0x00) character cannot be stored in Redshift")
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def _moment(value: dt.datetime) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC)
    return quote(value.isoformat(sep=" "))


_RENDER: dict[str, Render] = {
    "smallint": lambda v: str(int(v)), "integer": lambda v: str(int(v)), "bigint": lambda v: str(int(v)),
    "numeric": lambda v: format(Decimal(v), "f"),  # plain digits: exact, never an exponent
    "real": lambda v: repr(float(v)), "double precision": lambda v: repr(float(v)),
    "boolean": lambda v: "TRUE" if v else "FALSE",
    "date": lambda v: quote(v.isoformat()),
    "timestamp": _moment, "timestamptz": _moment,
    "bytea": lambda v: _varbyte(bytes(v)),
}


def _varbyte(value: bytes) -> str:
    """FROM_HEX takes a VARCHAR literal, at most 65535 hex characters; longer values are concatenated
    (VARBYTE's ``||``): https://docs.aws.amazon.com/redshift/latest/dg/r_FROM_HEX.html,
    https://docs.aws.amazon.com/redshift/latest/dg/r_VARBYTE_OPERATORS.html"""
    text = value.hex()
    pieces = [text[start:start + MAX_HEX_CHARS] for start in range(0, len(text), MAX_HEX_CHARS)] or [""]
    return " || ".join("FROM_HEX(" + quote(piece) + ")" for piece in pieces)


def _super(value: Any) -> str:
    return from_json(dumps_exact(value))


def from_json(text: str) -> str:
    """A SUPER value from JSON text."""
    return "JSON_PARSE(" + quote(text) + ")"


def renderer(type_name: str) -> Render:
    """How a value of ``type_name`` is written as a literal; None becomes NULL."""
    column = parse_type(type_name)
    render = _super if column.is_array or column.is_json else _RENDER.get(column.base, lambda v: quote(str(v)))
    return lambda value: "NULL" if value is None else render(value)


def render(value: Any) -> str:
    """A literal for a value whose type follows from the value (state tables, bookkeeping columns)."""
    if value is None:
        return "NULL"
    if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
        return format(Decimal(value), "f")
    if isinstance(value, dt.datetime):
        return _moment(value)
    return quote(str(value))


def literal(value: Any) -> sql.SQL:
    """A value rendered by this module as SQL text, to be composed with ``psycopg.sql`` (verbatim)."""
    return sql.SQL(render(value))


REDSHIFT_TYPES = {NAME: "VARCHAR(1024)", TEXT: f"VARCHAR({MAX_VARCHAR_BYTES})", VERSION: VERSION_TYPE,
                  TIME: "TIMESTAMPTZ", STAMP: "TIMESTAMPTZ", DOCUMENT: "SUPER", ID: "BIGINT"}


def table_layout(keys: Sequence[str], distkey: str | None = None, distribution: str = "key") -> sql.Composable:
    """Redshift's table attributes: distribute on a key column (the first, by default) and
    sort on the key, so that the per-batch joins on the key are co-located and
    range-restricted. ``auto`` leaves both to Redshift's automatic table optimization (and
    writes standard SQL)."""
    if distribution != "key":
        return sql.SQL("")
    return sql.SQL(" DISTKEY ({}) SORTKEY ({})").format(
        sql.Identifier(distkey or keys[0]), sql.SQL(", ").join(map(sql.Identifier, keys)))


def sql_dialect(distribution: str) -> Dialect:
    """Redshift as the SQL sink base sees it. Its catalog folds names to lower case; it has no
    indexes, no ALTER ... USING, one change per ALTER TABLE; ALTER COLUMN TYPE changes only the length of a
    VARCHAR that is not in a key, and not inside a transaction block
    (https://docs.aws.amazon.com/redshift/latest/dg/r_ALTER_TABLE.html); primary keys are declared but not
    enforced (the sink's guard does not rely on them), so they are not checked; parameters are ``:name``
    (https://docs.aws.amazon.com/redshift/latest/mgmt/data-api-calling.html#data-api-calling-considerations)."""
    return Dialect(column_type=column_type, types=REDSHIFT_TYPES, placeholder=lambda name: sql.SQL(":" + name),
                   document_text="JSON_SERIALIZE({})", indexes=False, folds_case=True, alter_type_using=False,
                   varchar_length_only=True, combined_alter=False, keys_enforced=False,
                   layout=lambda keys, distkey: table_layout(keys, distkey, distribution), as_text=as_text)


def same(left: sql.Composable, right: sql.Composable, type_name: str) -> sql.Composable:
    """Key equality. Redshift compares VARCHAR values without their trailing spaces ("Trailing spaces
    in VARCHAR and CHAR values are treated as semantically insignificant when values are compared",
    https://docs.aws.amazon.com/redshift/latest/dg/r_Character_types.html), so keys "a" and "a " would
    be one row; equal byte lengths (which count trailing spaces) make the comparison exact, and the
    plain ``=`` is kept for the join on the distribution and sort key."""
    equal = sql.SQL("{} = {}").format(left, right)
    if not column_type(type_name).startswith("VARCHAR"):
        return equal
    return sql.SQL("{} AND OCTET_LENGTH({}) = OCTET_LENGTH({})").format(equal, left, right)


def as_text(column: sql.Composable, type_name: str) -> sql.Composable:
    """A column read back as text: SUPER through JSON_SERIALIZE, VARBYTE through TO_HEX, BOOLEAN through
    CASE (Redshift casts no boolean to VARCHAR), the rest cast to VARCHAR."""
    stored = column_type(type_name)
    if stored == "SUPER":
        return sql.SQL("JSON_SERIALIZE({})").format(column)
    if stored == "VARBYTE":
        return sql.SQL("TO_HEX({})").format(column)
    if stored == "BOOLEAN":
        return sql.SQL("CASE WHEN {0} THEN 'true' WHEN NOT {0} THEN 'false' END").format(column)
    return sql.SQL("CAST({} AS VARCHAR)").format(column)
