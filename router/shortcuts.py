"""The transform's shortcuts: the commonest values of a column's type, converted in a few steps.

The general path (``router.transform._value``: ``attrs.to_python``, then the type's cast)
answers every value, with its fallback or its error, at 0.5-15 us a value. A shortcut takes
an AttributeValue and answers only values on which it agrees exactly with the general path
(the same value, of the same type and spelling); for everything else, absent attributes,
NULL, fallbacks and errors included, it returns ``SLOW`` and the general path answers.
tests/test_transform_shortcuts.py and tests/test_transform_fast_paths.py hold them to that.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from router.attrs import MAX_DEPTH, plain_number
from router.casts import EPOCH_DIVISORS, EPOCH_MS_FROM, EPOCH_SECONDS_BELOW, INT_RANGES
from router.model import Column
from router.paths import lookup
from router.types import ColumnType

SLOW: Any = object()  # "not a value the shortcut is sure about": take the general path
Shortcut = Callable[[Any], Any]  # AttributeValue -> value, or SLOW
Reader = Callable[[dict[str, Any]], Any]  # image -> value
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def for_column(column: Column) -> Shortcut | None:
    """The column's shortcut, or None where it has none (masked columns never do)."""
    if column.mask is not None:
        return None
    column_type = column.type
    if column_type.is_array:
        if column_type.base in ("text", "varchar"):
            return _string_set(column_type)
        return _number_set if column_type.base == "numeric" and column_type.precision is None else None
    if column_type.base in ("timestamptz", "date", "timestamp") and column.epoch is not None:
        return None  # a unit of its own: the general path
    make = _MAKERS.get(column_type.base)
    return None if make is None else make(column_type)


def row_reader(columns: Sequence[tuple[str, tuple[str, ...], Shortcut | None, Reader]]) -> Callable[[Any], dict[str, Any]]:
    """``image -> row`` for ``(name, path, shortcut, general reader)`` per column, in one function.

    Generated once per route from its column plan (names and paths as literals, each column's
    shortcut and general reader bound by name): no call, loop or lookup per column beyond the
    shortcut itself. It computes exactly what ``{name: read(image)}`` over the columns' readers
    does, in the same order (the same first error, the same counts).
    """
    namespace: dict[str, Any] = {"SLOW": SLOW, "lookup": lookup}
    lines = ["def read_row(image):", "    get = image.get"]
    for i, (_, path, shortcut, general) in enumerate(columns):
        namespace[f"general{i}"] = general
        if shortcut is None:
            lines.append(f"    v{i} = general{i}(image)")
            continue
        namespace[f"shortcut{i}"] = shortcut
        av = f"get({path[0]!r})" if len(path) == 1 else f"lookup(image, {path!r})"
        lines += [f"    v{i} = shortcut{i}({av})", f"    if v{i} is SLOW:", f"        v{i} = general{i}(image)"]
    lines.append("    return {" + ", ".join(f"{name!r}: v{i}" for i, (name, *_) in enumerate(columns)) + "}")
    exec(compile("\n".join(lines), "<router.shortcuts.row_reader>", "exec"), namespace)
    reader: Callable[[Any], dict[str, Any]] = namespace["read_row"]
    return reader


def _payload(av: Any, tag: str) -> Any:
    """The payload of a well-formed ``{tag: str}``, else None."""
    if type(av) is dict and len(av) == 1:
        payload = av.get(tag)
        if type(payload) is str:
            return payload
    return None


def _text(column_type: ColumnType) -> Shortcut:
    limit = column_type.length or math.inf

    def convert(av: Any) -> Any:  # _payload inlined: the commonest shortcut of all
        if type(av) is dict and len(av) == 1:
            payload = av.get("S")
            if type(payload) is str and len(payload) <= limit and "\x00" not in payload and (
                    payload.isascii() or storable(payload)):
                return payload
        return SLOW
    return convert


def _integer(column_type: ColumnType) -> Shortcut:
    bound = INT_RANGES[column_type.base]

    def convert(av: Any) -> Any:
        if type(av) is dict and len(av) == 1:
            payload = av.get("N")
            if type(payload) is str and len(payload) < 19 and payload.isascii():
                digits = payload[1:] if payload[:1] == "-" else payload
                if digits.isdigit():
                    number = int(payload)
                    if -bound <= number < bound:
                        return number
        return SLOW
    return convert


def _numeric(column_type: ColumnType) -> Shortcut:
    """numeric: any plain number; numeric(p,s): one written with exactly s decimals and at most p-s
    digits before the point, which the cast's quantize returns as it is."""
    precision, scale = column_type.precision, column_type.scale or 0
    if precision is None:
        def convert_any(av: Any) -> Any:
            payload = _payload(av, "N")
            value = None if payload is None else plain_number(payload)
            return SLOW if value is None else value
        return convert_any
    whole_digits = precision - scale

    def convert(av: Any) -> Any:
        payload = _payload(av, "N")
        if payload is None or not payload.isascii():
            return SLOW
        digits = payload[1:] if payload[:1] == "-" else payload
        whole, point, fraction = digits.partition(".")
        if (0 < len(whole) <= whole_digits and len(whole) + scale <= 38 and whole.isdigit()
                and len(fraction) == scale and (fraction.isdigit() if scale else not point)):
            return Decimal(payload)
        return SLOW
    return convert


def _double(column_type: ColumnType) -> Shortcut:
    """A plain number of at most 38 digits is a finite, non-zero-underflowing double: float() of its
    text is the correctly rounded value, as float() of its Decimal is."""
    def convert(av: Any) -> Any:
        payload = _payload(av, "N")
        if payload is not None and plain_number(payload) is not None:
            return float(payload)
        return SLOW
    return convert


def _boolean(column_type: ColumnType) -> Shortcut:
    def convert(av: Any) -> Any:
        if type(av) is dict and len(av) == 1 and type(payload := av.get("BOOL")) is bool:
            return payload
        return SLOW
    return convert


def _parsed(parse: Callable[[str], Any]) -> Callable[[ColumnType], Shortcut]:
    """S text parsed as the type's cast parses it (stripped): uuid, date; SLOW where it does not parse."""
    def make(column_type: ColumnType) -> Shortcut:
        def convert(av: Any) -> Any:
            payload = _payload(av, "S")
            if payload is not None:
                try:
                    return parse(payload.strip())
                except ValueError:
                    pass
            return SLOW
        return convert
    return make


def _timestamptz(column_type: ColumnType) -> Shortcut:
    """ISO-8601 text, or whole epoch seconds/milliseconds as the general path tells them apart."""
    def convert(av: Any) -> Any:
        if type(av) is not dict or len(av) != 1:
            return SLOW
        payload = av.get("S")
        if type(payload) is str:
            try:
                moment = dt.datetime.fromisoformat(payload.strip())
            except ValueError:
                return SLOW
            return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
        payload = av.get("N")
        if type(payload) is str and len(payload) <= 18 and payload.isascii():
            digits = payload[1:] if payload[:1] == "-" else payload
            if digits.isdigit():
                number = int(payload)
                magnitude = abs(number)
                if EPOCH_SECONDS_BELOW <= magnitude < EPOCH_MS_FROM:
                    return SLOW  # ambiguous: the general path says why
                divisor = EPOCH_DIVISORS["ms" if magnitude >= EPOCH_MS_FROM else "s"]
                # number / divisor is exact in Decimal (18 digits) and both roundings to float are correct
                try:
                    return _EPOCH + dt.timedelta(seconds=number / divisor)
                except OverflowError:
                    return SLOW
        return SLOW
    return convert


def _document_shortcut(column_type: ColumnType) -> Shortcut:
    def convert(av: Any) -> Any:
        value = document(av)
        return SLOW if value is None else value  # NULL: the general path's fallback
    return convert


def _string_set(column_type: ColumnType) -> Shortcut:
    limit = column_type.length or math.inf

    def convert(av: Any) -> Any:
        if type(av) is dict and len(av) == 1 and type(payload := av.get("SS")) is list:
            for text in payload:
                if type(text) is not str or len(text) > limit or not storable(text):
                    return SLOW
            return sorted(payload)
        return SLOW
    return convert


def _number_set(av: Any) -> Any:
    if type(av) is dict and len(av) == 1 and type(payload := av.get("NS")) is list:
        numbers = [plain_number(text) if type(text) is str else None for text in payload]
        if None not in numbers:
            return sorted(numbers)
    return SLOW


def document(av: Any, depth: int = 0) -> Any:
    """``attrs.to_python(av)`` for a json/jsonb value whose every string (map keys included) a
    database stores as it is: valid UTF-8 without NUL. SLOW for anything else (binary values,
    malformed ones), which the general path converts, checks and refuses with the reason."""
    if type(av) is not dict or len(av) != 1:
        return SLOW
    ((tag, payload),) = av.items()
    kind = type(payload)
    if kind is str:
        if tag == "S":
            return payload if storable(payload) else SLOW
        if tag == "N":
            value = plain_number(payload)
            return SLOW if value is None else value
        return SLOW
    if depth >= MAX_DEPTH:
        return SLOW
    if tag == "M" and kind is dict:
        result = {}
        for key, item in payload.items():
            value = document(item, depth + 1)
            if value is SLOW or type(key) is not str or not storable(key):
                return SLOW
            result[key] = value
        return result
    if tag == "L" and kind is list:
        values = [document(item, depth + 1) for item in payload]
        return SLOW if SLOW in values else values
    if tag == "BOOL" and kind is bool:
        return payload
    if tag == "NULL":
        return None
    if tag == "SS" and kind is list:
        return sorted(payload) if all(type(text) is str and storable(text) for text in payload) else SLOW
    if tag == "NS" and kind is list:
        return _number_set(av)
    return SLOW


def storable(text: str) -> bool:
    """Text a database stores as it is (jsonb, text): valid UTF-8 without NUL."""
    if "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_MAKERS: dict[str, Callable[[ColumnType], Shortcut]] = {
    "text": _text, "varchar": _text, "smallint": _integer, "integer": _integer, "bigint": _integer,
    "numeric": _numeric, "double precision": _double, "boolean": _boolean, "uuid": _parsed(uuid.UUID),
    "timestamptz": _timestamptz, "date": _parsed(dt.date.fromisoformat), "json": _document_shortcut, "jsonb": _document_shortcut,
}
