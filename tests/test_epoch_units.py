"""Epoch numbers into date and time columns: an explicit unit per column, or a rule with no
ambiguous range; dates keep the date as written (issue 12, finding 9)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from factories import MEMORY, Stream, route, tables
from memory_sink import parse

from router.errors import CastError, ConfigError, RecordError
from router.records import ChangeRecord
from router.transform import RouteTransform
from sources.dynamodb_streams import parse_record

UTC = dt.UTC


def cast(column: dict[str, Any], value: Any) -> Any:
    """The value of attribute ``at`` through a column ``At`` configured as ``column``."""
    config = parse(tables({"r": route(sink="mem", columns={"Id": {"type": "bigint"}, "At": {"from": "at", **column}})},
                          {"mem": MEMORY}))
    record: ChangeRecord = parse_record(Stream("Employees").insert({"Id": 1, "at": value}), 0)
    try:
        change = RouteTransform(config.routes["r"])(record)
    except RecordError as exc:
        return type(exc), str(exc)
    assert change is not None
    return change.row["At"]


CASES = [
    # finding 9: milliseconds of 1972 were read as seconds (the year 3968); without a unit they are refused
    ({"type": "timestamptz"}, Decimal(63072000000),
     (CastError, "column 'At' (from 'at'): Decimal('63072000000') does not fit timestamptz: ambiguous epoch number "
                 "(seconds or milliseconds?): set epoch: s, ms or us on the column")),
    # with the unit, they are what they are
    ({"type": "timestamptz", "epoch": "ms"}, Decimal(63072000000), dt.datetime(1972, 1, 1, tzinfo=UTC)),
    ({"type": "timestamptz", "epoch": "ms"}, Decimal(1000), dt.datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)),
    # the unit is the column's word: seconds, then, even far away
    ({"type": "timestamptz", "epoch": "s"}, Decimal(63072000000), dt.datetime(3968, 9, 3, tzinfo=UTC)),
    ({"type": "timestamp", "epoch": "us"}, Decimal("1700000000123456"), dt.datetime(2023, 11, 14, 22, 13, 20, 123456)),
    ({"type": "date", "epoch": "s"}, Decimal(1700000000), dt.date(2023, 11, 14)),
    # the rule without a unit: seconds below 10**10, milliseconds from 10**11
    ({"type": "timestamptz"}, Decimal(1700000000), dt.datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
    ({"type": "timestamptz"}, Decimal(1700000000123), dt.datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC)),
    # ISO strings are not epoch numbers, whatever the unit
    ({"type": "timestamptz", "epoch": "ms"}, "2024-03-10T23:30:00Z", dt.datetime(2024, 3, 10, 23, 30, tzinfo=UTC)),
    # a date keeps the date as written, as PostgreSQL's '2024-03-10T23:30:00-05:00'::date does (not the UTC date)
    ({"type": "date"}, "2024-03-10T23:30:00-05:00", dt.date(2024, 3, 10)),
]


@pytest.mark.parametrize("column, value, expected", CASES)
def test_epoch_units(column: dict[str, Any], value: Any, expected: Any) -> None:
    assert cast(column, value) == expected


@pytest.mark.parametrize("column, error", [
    ({"type": "text", "epoch": "ms"}, "epoch applies to date, timestamp and timestamptz columns, not text"),
    ({"type": "timestamptz", "epoch": "min"}, "invalid value 'min' (allowed: s, ms, us)"),
])
def test_epoch_option_is_checked(column: dict[str, Any], error: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse(tables({"r": route(sink="mem", columns={"Id": {"type": "bigint"}, "At": column})}, {"mem": MEMORY}))
    assert raised.value.errors == [f"test.yaml: routes.r.columns.At.epoch: {error}"]
