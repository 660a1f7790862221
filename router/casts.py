"""Casts into target column types: an exact Python value in, the value to store out.

Each cast raises ``CastError`` for a value that does not fit: never a silent truncation
or rounding. ``router.types`` names the types and picks their casts from here.
"""

from __future__ import annotations

import base64
import datetime as dt
import math
import struct
import uuid
from collections.abc import Callable, Iterator
from decimal import Context, Decimal, InvalidOperation
from typing import Any

from router.attrs import dumps_exact
from router.errors import CastError

Cast = Callable[[Any], Any]
INT_RANGES = {"smallint": 2**15, "integer": 2**31, "bigint": 2**63}
_WIDE = Context(prec=1100)  # numeric(p,s) allows p up to 1000: the default 28 digits would refuse 38-digit values
# Without ``epoch:`` on the column, numbers below 10**10 are seconds (years 1653-2286) and numbers from
# 10**11 on are milliseconds (from 1973-03-03); between them a number could be either (seconds: years
# 2286-5138, milliseconds: 1970-04-26 to 1973-03-03), so it is refused with a hint to set the unit.
EPOCH_SECONDS_BELOW = 10**10
EPOCH_MS_FROM = 10**11
EPOCH_DIVISORS = {"s": 1, "ms": 1000, "us": 1_000_000}


def _fail(value: Any, type_name: str, reason: str = "") -> CastError:
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    because = f": {reason}" if reason else ""
    return CastError(f"{shown} does not fit {type_name}{because}", f"a value does not fit {type_name}{because}")


def _text(value: Any) -> str:
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (int, Decimal)):
        text = str(value)
    elif isinstance(value, (bytes, bytearray)):
        text = base64.b64encode(value).decode("ascii")
    elif isinstance(value, (dt.date, dt.datetime)):
        text = value.isoformat()
    else:
        text = dumps_exact(value)
    _check_storable(value, text, "text")
    return text


def _check_storable(value: Any, text: str, type_name: str) -> None:
    """PostgreSQL text and jsonb hold neither NUL nor unpaired surrogates (invalid UTF-8)."""
    if "\x00" in text:
        raise _fail(value, type_name, "PostgreSQL cannot store NUL (0x00) characters")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise _fail(value, type_name, "not valid UTF-8 (unpaired surrogate)") from None


def _strings(value: Any) -> Iterator[str]:
    """Every string inside a nested value, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            yield from _strings(item)


def varchar_cast(n: int) -> Cast:
    def cast(value: Any) -> str:
        text = _text(value)
        if len(text) > n:
            raise _fail(value, f"varchar({n})", f"{len(text)} characters, at most {n} allowed")
        return text
    return cast


def _decimal(value: Any, type_name: str) -> Decimal:
    if isinstance(value, bool):
        raise _fail(value, type_name, "a boolean is not a number")
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        return Decimal(value)
    elif isinstance(value, float):
        number = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            raise _fail(value, type_name, "not a number") from None
    else:
        raise _fail(value, type_name, "not a number")
    if not number.is_finite():
        raise _fail(value, type_name, "not a finite number")
    return number


def _int_cast(type_name: str) -> Cast:
    bound = INT_RANGES[type_name]

    def cast(value: Any) -> int:
        if type(value) is int:
            number = value
        else:
            decimal = _decimal(value, type_name)
            if decimal != decimal.to_integral_value():
                raise _fail(value, type_name, "not a whole number")
            number = int(decimal)
        if not -bound <= number < bound:
            raise _fail(value, type_name, "out of range")
        return number
    return cast


def numeric_cast(precision: int | None, scale: int | None) -> Cast:
    type_name = "numeric" if precision is None else f"numeric({precision},{scale})"
    scale = scale or 0

    def cast(value: Any) -> Decimal:
        number = _decimal(value, type_name)
        if precision is None:
            return number
        try:
            fitted = number.quantize(Decimal(1).scaleb(-scale), context=_WIDE)
        except InvalidOperation:
            raise _fail(value, type_name, "too many digits") from None
        if fitted != number:
            raise _fail(value, type_name, f"more than {scale} decimal places")
        if fitted.adjusted() >= precision - scale:
            raise _fail(value, type_name, f"more than {precision - scale} digits before the point")
        return fitted
    return cast


def _float_cast(type_name: str, to_float: Callable[[float], float]) -> Cast:
    def cast(value: Any) -> float:
        number = _decimal(value, type_name)
        try:
            result = to_float(float(number))
        except OverflowError:
            result = math.inf
        # PostgreSQL refuses both overflow and underflow to zero ("out of range"); so must we.
        if not math.isfinite(result) or (result == 0.0 and number != 0):
            raise _fail(value, type_name, "out of range")
        return result
    return cast


def _as_real(number: float) -> float:
    """Round to single precision as PostgreSQL's real does."""
    return struct.unpack("f", struct.pack("f", number))[0]


_TRUE, _FALSE = {"true", "t", "yes", "y", "1", "on"}, {"false", "f", "no", "n", "0", "off"}


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, Decimal)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise _fail(value, "boolean")


def from_epoch(value: Any, type_name: str, unit: str | None = None) -> dt.datetime:
    """An epoch number as a UTC time: in ``unit`` (s, ms, us), or by the rule above."""
    seconds = _decimal(value, type_name)
    if unit is None:
        if EPOCH_SECONDS_BELOW <= abs(seconds) < EPOCH_MS_FROM:
            raise _fail(value, type_name, "ambiguous epoch number (seconds or milliseconds?): set epoch: s, ms or us "
                                          "on the column")
        unit = "ms" if abs(seconds) >= EPOCH_MS_FROM else "s"
    seconds = seconds / EPOCH_DIVISORS[unit]
    try:
        return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=float(seconds))
    except OverflowError:
        raise _fail(value, type_name, "out of range") from None


def _datetime(value: Any, type_name: str) -> dt.datetime:
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, dt.date):
        moment = dt.datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            moment = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise _fail(value, type_name, "expected an ISO-8601 time or epoch seconds/milliseconds") from None
    elif isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        moment = from_epoch(value, type_name)
    else:
        raise _fail(value, type_name, "expected an ISO-8601 time or epoch seconds/milliseconds")
    return moment


def _timestamptz(value: Any) -> dt.datetime:
    moment = _datetime(value, "timestamptz")
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _timestamp(value: Any) -> dt.datetime:
    moment = _datetime(value, "timestamp")
    return moment.astimezone(dt.UTC).replace(tzinfo=None) if moment.tzinfo else moment


def _date(value: Any) -> dt.date:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    moment = _datetime(value, "date")
    if isinstance(value, str):
        return moment.date()  # the date as written, as PostgreSQL's own cast keeps it (not the UTC date)
    return (moment.astimezone(dt.UTC) if moment.tzinfo else moment).date()


def _uuid(value: Any) -> uuid.UUID:
    try:
        if isinstance(value, uuid.UUID):
            return value
        if isinstance(value, str):
            return uuid.UUID(value.strip())
        if isinstance(value, (bytes, bytearray)):
            return uuid.UUID(bytes=bytes(value))
    except ValueError:
        pass
    raise _fail(value, "uuid")


def _json_cast(type_name: str) -> Cast:
    def cast(value: Any) -> Any:
        for text in _strings(value):
            if type_name == "jsonb" or not text.isascii():
                _check_storable(value, text, type_name)
        return value
    return cast


def _bytea(value: Any) -> bytes:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    raise _fail(value, "bytea", "expected a binary (B) value")


def array_cast(element_name: str, element_cast: Cast) -> Cast:
    def cast(value: Any) -> list:
        if not isinstance(value, (list, tuple, set, frozenset)):
            raise _fail(value, element_name + "[]", "expected a list or a set")
        return [None if item is None else element_cast(item) for item in value]
    return cast


CASTS: dict[str, Cast] = {
    "text": _text,
    "smallint": _int_cast("smallint"),
    "integer": _int_cast("integer"),
    "bigint": _int_cast("bigint"),
    "real": _float_cast("real", _as_real),
    "double precision": _float_cast("double precision", float),
    "boolean": _boolean,
    "date": _date,
    "timestamp": _timestamp,
    "timestamptz": _timestamptz,
    "uuid": _uuid,
    "json": _json_cast("json"),
    "jsonb": _json_cast("jsonb"),
    "bytea": _bytea,
}
