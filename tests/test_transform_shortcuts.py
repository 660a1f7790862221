"""The transform's shortcuts for strings and integers agree exactly with the general path.

A shortcut may only answer where it is sure; everything else (too long, NUL, non-ASCII,
out of range, not a whole number, the wrong type tag) must come out exactly as the
general conversion makes it: the same value, the same fallback or the same error.
"""

from __future__ import annotations

from typing import Any

import pytest
from factories import MEMORY, route, tables
from memory_sink import parse

from router.errors import RecordError
from router.records import ChangeRecord
from router.transform import RouteTransform, _value

COLUMNS = {
    "k":        {"type": "bigint"},
    "text":     {"from": "v", "type": "text"},
    "short":    {"from": "v", "type": "varchar(5)"},
    "short_na": {"from": "v", "type": "varchar(5)", "fallback": "NA"},
    "small":    {"from": "v", "type": "smallint"},
    "int":      {"from": "v", "type": "integer"},
    "big":      {"from": "v", "type": "bigint"},
    "big_na":   {"from": "v", "type": "bigint", "fallback": -1},
}
ROUTE = parse(tables({"r": route("t", source="T", sink="mem", key=["k"], columns=COLUMNS)}, {"mem": MEMORY})).routes["r"]

VALUES = [
    {"S": "abc"}, {"S": ""}, {"S": "abcde"}, {"S": "abcdef"},   # fits, empty, at and over varchar(5)
    {"S": "a\x00b"}, {"S": "Zoë"}, {"S": "\ud800"},            # NUL, non-ASCII, unpaired surrogate
    {"N": "0"}, {"N": "-0"}, {"N": "007"}, {"N": "-42"},        # numbers: the general path's exact answers
    {"N": "32767"}, {"N": "32768"}, {"N": "-32768"}, {"N": "-32769"},              # smallint edges
    {"N": "2147483647"}, {"N": "2147483648"}, {"N": "-2147483649"},                 # integer edges
    {"N": "9223372036854775807"}, {"N": "9223372036854775808"}, {"N": "-9223372036854775808"},  # bigint edges
    {"N": "123456789012345678"}, {"N": "1234567890123456789"},  # just under / over the shortcut's 18 digits
    {"N": "1.0"}, {"N": "1.5"}, {"N": "1e3"}, {"N": "-"}, {"N": ""}, {"N": "+5"}, {"N": " 5"},
    {"N": "١٢٣"}, {"N": "²"}, {"N": "NaN"}, {"N": 5},          # non-ASCII digits, not a number, not a string
    {"S": "5"}, {"NULL": True}, {"BOOL": True}, {"S": "5", "N": "5"}, "5", None,  # other tags and shapes
]


def outcome(convert: Any) -> tuple[str, Any]:
    try:
        return "value", convert()
    except RecordError as exc:
        return type(exc).__name__, str(exc)


@pytest.mark.parametrize("av", VALUES, ids=repr)
@pytest.mark.parametrize("column", [c for c in ROUTE.columns if c.name != "k"], ids=lambda c: c.name)
def test_shortcut_equals_general_path(column: Any, av: Any) -> None:
    image = {"k": {"N": "1"}} if av is None else {"k": {"N": "1"}, "v": av}
    readers = dict(RouteTransform(ROUTE).readers)
    assert outcome(lambda: readers[column.name](image)) == outcome(lambda: _value(column, image))


def test_a_row_through_the_shortcuts() -> None:
    image = {"k": {"N": "12"}, "v": {"N": "300"}}
    record = ChangeRecord(0, {}, "T", event_name="INSERT", keys={"k": image["k"]}, new_image=image,
                          sequence_number="5", version=5)
    change = RouteTransform(ROUTE)(record)
    assert change is not None and change.key == (12,)
    assert change.row == {"k": 12, "text": "300", "short": "300", "short_na": "300", "small": 300, "int": 300,
                          "big": 300, "big_na": 300}
