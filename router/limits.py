"""A sink's declared limits applied to a route's column types, once, when the config loads.

The same ``type: numeric`` means "any number" on PostgreSQL and DECIMAL(38, 9) on
Redshift; the same ``type: text`` holds 1 GB on one and 65,535 bytes on the other. Fitting
the type here keeps the rule of DESIGN.md ("a value that does not fit is a cast error
handled by fallback or on_error, never truncated or rounded") true on every sink, because
the transform's cast is where fallback and on_error are decided.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from router.attrs import dumps_exact
from router.errors import CastError
from router.sink import Capabilities
from router.types import ColumnType, parse_type

_TEXT_BASES = ("text", "varchar")


def fit_type(column_type: ColumnType, capabilities: Capabilities) -> ColumnType:
    """``column_type`` within ``capabilities``; ``ValueError`` if it can never fit."""
    fitted = _fit_decimal(column_type, capabilities)
    limit = capabilities.max_text_bytes
    if limit is not None and (fitted.is_array or fitted.is_json or fitted.base in _TEXT_BASES):
        fitted = dataclasses.replace(fitted, cast=_limited(fitted, limit))
    return fitted


def _fit_decimal(column_type: ColumnType, capabilities: Capabilities) -> ColumnType:
    most = capabilities.max_decimal_precision
    if column_type.base != "numeric" or most is None:
        return column_type
    suffix = "[]" if column_type.is_array else ""
    if column_type.precision is None:
        precision, scale = capabilities.default_decimal or (most, 0)
        return parse_type(f"numeric({precision},{scale}){suffix}")
    if column_type.precision > most:
        raise ValueError(f"invalid type {column_type.name!r}: this sink stores at most {most} digits "
                         f"(numeric(p,s) with p <= {most})")
    return column_type


def _limited(column_type: ColumnType, limit: int) -> Any:
    """The type's cast, then a size check on the text the sink will store."""
    cast = column_type.cast

    def checked(value: Any) -> Any:
        result = cast(value)
        text = result if isinstance(result, str) else dumps_exact(result)
        size = len(text.encode("utf-8"))
        if size > limit:
            shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
            raise CastError(f"{shown} does not fit {column_type.name}: {size} bytes, "
                            f"at most {limit} allowed by the sink")
        return result
    return checked
