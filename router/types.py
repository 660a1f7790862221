"""Target column types: parse a type name from tables.yaml and cast values into it.

``parse_type("varchar(20)")`` returns a ``ColumnType`` whose ``cast(value)`` takes an
exact Python value (from ``router.attrs``, or a literal from the config) and returns
the value to store, or raises ``CastError``: never a silent truncation or rounding.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from router.casts import CASTS, INT_RANGES, Cast, array_cast, numeric_cast, varchar_cast

__all__ = ["ColumnType", "EXPECTED", "INT_RANGES", "parse_type"]

# Canonical names, in the order error messages list them.
SCALAR_TYPES = (
    "text", "varchar(n)", "smallint", "integer", "bigint", "numeric[(p[,s])]", "real",
    "double precision", "boolean", "date", "timestamp", "timestamptz", "uuid", "json",
    "jsonb", "bytea",
)
EXPECTED = ", ".join(SCALAR_TYPES) + ", or an array of a scalar type such as text[]"

ALIASES = {
    "int": "integer", "int4": "integer", "int2": "smallint", "int8": "bigint",
    "decimal": "numeric", "float4": "real", "float8": "double precision", "float": "double precision",
    "bool": "boolean", "character varying": "varchar",
    "timestamp without time zone": "timestamp", "timestamp with time zone": "timestamptz",
}
_TYPE_RE = re.compile(r"^(?P<base>[a-z][a-z0-9 ]*?)\s*(?:\((?P<args>[0-9 ,]*)\))?\s*(?P<array>\[\])?$")


@dataclass(frozen=True)
class ColumnType:
    """A validated target type. ``name`` is canonical and safe to emit as SQL."""

    name: str
    base: str
    cast: Cast
    is_array: bool = False
    length: int | None = None
    precision: int | None = None
    scale: int | None = None

    @property
    def is_json(self) -> bool:
        return self.base in ("json", "jsonb") and not self.is_array

    @property
    def has_equality(self) -> bool:
        """Usable in a key: compared and indexed by the target, hashable here (no documents, no arrays)."""
        return not self.is_array and self.base not in ("json", "jsonb")


def parse_type(text: str) -> ColumnType:
    """Parse a type name; ``ValueError`` carries the message for the config error."""
    match = _TYPE_RE.match(" ".join(str(text).lower().split()))
    if not match:
        if "(" in str(text) and ")" not in str(text):
            raise ValueError(f"unknown type {text!r}: in a {{...}} mapping a comma ends the value, "
                             f'so quote the type, e.g. type: "numeric(12,2)"')
        raise ValueError(f"unknown type {text!r} (expected {EXPECTED})")
    base = ALIASES.get(match["base"], match["base"])
    args = [a.strip() for a in match["args"].split(",")] if match["args"] is not None else []
    scalar = _scalar(base, args, text)
    if not match["array"]:
        return scalar
    return ColumnType(
        name=scalar.name + "[]", base=scalar.base, cast=array_cast(scalar.name, scalar.cast), is_array=True,
        length=scalar.length, precision=scalar.precision, scale=scalar.scale,
    )


def _scalar(base: str, args: list[str], text: str) -> ColumnType:
    if base == "varchar":
        if len(args) != 1 or not args[0].isdigit() or not 1 <= int(args[0]) <= 10485760:
            raise ValueError(f"invalid type {text!r}: varchar needs a length, e.g. varchar(20)")
        n = int(args[0])
        return ColumnType(f"varchar({n})", "varchar", varchar_cast(n), length=n)
    if base == "numeric":
        return _numeric(args, text)
    if args:
        raise ValueError(f"invalid type {text!r}: {base} takes no arguments")
    if base not in CASTS:
        raise ValueError(f"unknown type {text!r} (expected {EXPECTED})")
    return ColumnType(base, base, CASTS[base])


def _numeric(args: list[str], text: str) -> ColumnType:
    if not args:
        return ColumnType("numeric", "numeric", numeric_cast(None, None))
    if len(args) > 2 or not all(a.isdigit() for a in args):
        raise ValueError(f"invalid type {text!r}: expected numeric, numeric(p) or numeric(p,s)")
    precision, scale = int(args[0]), int(args[1]) if len(args) == 2 else 0
    if not 1 <= precision <= 1000 or scale > precision:
        raise ValueError(f"invalid type {text!r}: need 1 <= p <= 1000 and 0 <= s <= p")
    return ColumnType(f"numeric({precision},{scale})", "numeric", numeric_cast(precision, scale),
                      precision=precision, scale=scale)
