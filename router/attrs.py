"""DynamoDB AttributeValues (the wire format ``{"S": "x"}``) to exact Python values.

A direct converter instead of boto3's ``TypeDeserializer``: the same mapping (N to
``Decimal``, never float; sets to sorted lists so that output is deterministic) at
about half the cost, which matters on the per-record hot path. Values arrive either
as Lambda delivers them (B as base64 text) or as boto3 returns them (B as bytes).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import uuid
from decimal import Decimal, InvalidOperation
from typing import Any

from router.errors import RecordError

TAGS = ("S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS")
MAX_DEPTH = 64  # DynamoDB itself allows 32 levels of nesting


def split(av: Any) -> tuple[str, Any]:
    """Return ``(tag, payload)`` of one AttributeValue, or raise ``RecordError``."""
    if type(av) is not dict or len(av) != 1:
        raise RecordError(f"not a DynamoDB AttributeValue: {_preview(av)}", "not a DynamoDB AttributeValue")
    ((tag, payload),) = av.items()
    return tag, payload


def to_python(av: Any, _depth: int = 0) -> Any:
    """Convert one AttributeValue to its exact Python value.

    The commonest well-formed values take a short path; anything else, errors included, is
    answered by ``convert``, to which the short path agrees exactly (tests/test_transform_fast_paths.py).
    """
    if type(av) is dict and len(av) == 1:
        ((tag, payload),) = av.items()
        if type(payload) is str:
            if tag == "S":
                return payload
            if tag == "N":
                value = plain_number(payload)
                if value is not None:
                    return value
        elif tag == "M":
            if type(payload) is dict and _depth < MAX_DEPTH:
                return {k: to_python(v, _depth + 1) for k, v in payload.items()}
        elif tag == "L":
            if type(payload) is list and _depth < MAX_DEPTH:
                return [to_python(v, _depth + 1) for v in payload]
        elif tag == "BOOL" and type(payload) is bool:
            return payload
    return convert(av, _depth)


def convert(av: Any, _depth: int = 0) -> Any:
    """``to_python`` the long way: every tag and every malformed value, with the reason."""
    tag, payload = split(av)
    if tag == "S":
        return _string(payload)
    if tag == "N":
        return number(payload)
    if tag in ("M", "L"):
        if _depth >= MAX_DEPTH:
            raise RecordError(f"value nested deeper than {MAX_DEPTH} levels")
        if tag == "M" and type(payload) is dict:
            return {k: to_python(v, _depth + 1) for k, v in payload.items()}
        if tag == "L" and type(payload) is list:
            return [to_python(v, _depth + 1) for v in payload]
    elif tag == "BOOL" and type(payload) is bool:
        return payload
    elif tag == "NULL":
        return None
    elif tag == "B":
        return binary(payload)
    elif tag in ("SS", "NS", "BS") and type(payload) is list:
        convert = {"SS": _string, "NS": number, "BS": binary}[tag]
        return sorted(convert(v) for v in payload)
    if tag not in TAGS:
        raise RecordError(f"unknown DynamoDB type tag {tag!r} (expected one of {', '.join(TAGS)})")
    raise RecordError(f"malformed {tag} value: {_preview(payload)}", f"malformed {tag} value")


def plain_number(text: str) -> Decimal | None:
    """``number(text)`` for plain decimal text (``-12.50``: at most 38 digits, no exponent), else None.

    Such a number is within DynamoDB's limits by its form: at most 38 significant digits, and a
    magnitude between 1E-38 and 1E+38; so the check of ``number`` is not needed.
    """
    digits = text[1:] if text[:1] == "-" else text
    digits = digits.replace(".", "", 1)
    if len(digits) <= 38 and digits.isdigit() and digits.isascii():
        return Decimal(text)
    return None


def number(text: Any) -> Decimal:
    """A DynamoDB N payload as an exact ``Decimal``."""
    if type(text) is str:
        value = plain_number(text)
        if value is not None:
            return value
        try:
            value = Decimal(text)
        except InvalidOperation:
            value = None
        if value is not None and value.is_finite():
            if _in_dynamodb_range(value):
                return value
            limits = "outside DynamoDB's limits (at most 38 digits, magnitude 1E-130 to 1E+126)"
            raise RecordError(f"invalid DynamoDB number {_preview(text)}: {limits}", f"invalid DynamoDB number: {limits}")
    raise RecordError(f"invalid DynamoDB number {_preview(text)}", "invalid DynamoDB number")


def _in_dynamodb_range(value: Decimal) -> bool:
    """DynamoDB's own limits: a number outside them is not from DynamoDB, and converting one
    such as 1E+999999999 to an int would hang the function."""
    significant = "".join(map(str, value.as_tuple().digits)).strip("0")  # normalize() could overflow
    return not value or (len(significant) <= 38 and -130 <= value.adjusted() <= 125)


def binary(payload: Any) -> bytes:
    """A DynamoDB B payload: base64 text (Lambda events) or bytes (boto3)."""
    if isinstance(payload, (bytes, bytearray)):
        return bytes(payload)
    if type(payload) is str:
        try:
            return base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            pass
    raise RecordError(f"binary value is not base64: {_preview(payload)}", "binary value is not base64")


def _string(payload: Any) -> str:
    if type(payload) is str:
        return payload
    raise RecordError(f"malformed S value: {_preview(payload)}", "malformed S value")


def _preview(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


_encode_str = json.encoder.encode_basestring


def dumps_exact(value: Any) -> str:
    """JSON text for converted values, keeping numbers exact (``json`` turns Decimal into float).

    bytes become base64 strings, dates ISO-8601 strings, UUIDs their canonical text.
    """
    kind = type(value)  # what converted documents hold, first: the rest as below, from _dumps_other
    if kind is str:
        return _encode_str(value)
    if kind is dict:
        return "{" + ",".join([_encode_str(k if type(k) is str else str(k)) + ":" + dumps_exact(v)
                               for k, v in value.items()]) + "}"
    if kind is list:
        return "[" + ",".join([dumps_exact(v) for v in value]) + "]"
    if kind is Decimal or kind is int:
        return str(value)
    return _dumps_other(value)


def _dumps_other(value: Any) -> str:
    if isinstance(value, str):
        return _encode_str(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (int, Decimal)):
        return str(value)
    if isinstance(value, float):
        return repr(value) if value == value and value not in (float("inf"), float("-inf")) else "null"
    if isinstance(value, dict):
        return "{" + ",".join(_encode_str(str(k)) + ":" + dumps_exact(v) for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple, set, frozenset)):
        return "[" + ",".join(dumps_exact(v) for v in value) + "]"
    if isinstance(value, (bytes, bytearray)):
        return _encode_str(base64.b64encode(value).decode("ascii"))
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return _encode_str(value.isoformat())
    if isinstance(value, uuid.UUID):
        return _encode_str(str(value))
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")
