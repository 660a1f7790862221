"""RouteTransform: a stream record in, the desired row (a ``Change``) or nothing out.

Deletes first (as Kafka Connect tests its transforms): every transform is applied to
REMOVE records of KEYS_ONLY and NEW_AND_OLD_IMAGES streams under each ``deletes`` mode.
Then upserts: renames, dotted paths, default against fallback, extras, filters.
"""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import pytest
from factories import MEMORY, Stream, load_event, route, tables, wire
from memory_sink import parse

from router.errors import CastError, RecordError, RouteConfigError
from router.model import Route
from router.records import ChangeRecord
from router.sink import DELETE, UPSERT
from router.transform import RouteTransform
from sources.dynamodb_streams import parse_record
from sources.lambda_events import parse_event

KEYS_ONLY, NEW_AND_OLD = "KEYS_ONLY", "NEW_AND_OLD_IMAGES"


def make_route(columns: dict[str, Any], key: list[str] | None = None, **options: Any) -> Route:
    """One validated route ``r`` (source Employees, memory sink) from plain Python values."""
    r = route("employees", sink="mem", key=key or ["Id"], columns=columns, **options)
    return parse(tables({"r": r}, {"mem": MEMORY})).routes["r"]


def upsert_record(item: dict[str, Any], key: tuple[str, ...] = ("Id",)) -> ChangeRecord:
    """An INSERT of ``item`` on a NEW_AND_OLD_IMAGES stream (which a filter on a non-key attribute needs)."""
    return parse_record(Stream("Employees", key=key, view=NEW_AND_OLD).insert(item), 0)


def remove_record(item: dict[str, Any], view: str, key: tuple[str, ...] = ("Id",)) -> ChangeRecord:
    """The REMOVE of ``item`` after its INSERT: Keys only, or Keys and the OldImage."""
    stream = Stream("Employees", key=key, view=view)
    stream.insert(item)
    record = parse_record(stream.remove({k: item[k] for k in key}), 1)
    assert record.error is None and record.is_delete
    return record


def outcome(route: Route, record: ChangeRecord) -> Any:
    """What the transform did, as plain data: (op, key, row), None, or the error's type and message."""
    try:
        change = RouteTransform(route)(record)
    except RecordError as exc:
        return type(exc), str(exc)
    if change is None:
        return None
    assert (change.version, change.record, change.first) == (record.version, record, record.index)
    return change.op, change.key, change.row


EMPLOYEE = {"Id": 2001, "empNo": "E-17", "empName": "Akua", "empDepartment": "AnyDept", "kind": "staff",
            "address": {"city": "Accra"}}
KEY_ROW = (DELETE, (2001,), {"Id": 2001})
NEEDS_OLD_IMAGE = ("route 'r' does not fit its source: the stream of DynamoDB table 'Employees' is KEYS_ONLY, but the "
                   "route's filter reads kind (not key attributes): without the OldImage a MODIFY or REMOVE cannot "
                   "tell whether the item was the route's. Enable the stream as NEW_AND_OLD_IMAGES (or set deletes: "
                   "ignore)")
NON_KEY = ("route 'r' does not fit its source: key column(s) read non-key attribute(s) 'empNo' of DynamoDB table "
           "'Employees' (its key attributes: Id): key columns must be read from the table's key attributes, which an "
           "item never changes")  # what a delete of EMPLOYEE is, whatever the rest of the route says

# (route, item, stream key, expected outcome of its REMOVE on a KEYS_ONLY stream, on a NEW_AND_OLD_IMAGES stream)
REMOVE_CASES = [
    # the reference article's route: a delete carries the key and nothing else
    pytest.param(dict(columns={"Id": {"type": "bigint"}, "Name": {"from": "empName", "type": "varchar(20)",
                                                                  "fallback": "NA"}}),
                 EMPLOYEE, ("Id",), KEY_ROW, KEY_ROW, id="article-route"),
    # rename: the key column reads a key attribute of another name
    pytest.param(dict(columns={"EmployeeId": {"from": "Id", "type": "bigint"}}, key=["EmployeeId"]),
                 EMPLOYEE, ("Id",), (DELETE, (2001,), {"EmployeeId": 2001}),
                 (DELETE, (2001,), {"EmployeeId": 2001}), id="renamed-key"),
    # the key is cast like an upsert's key, so that both address the same row
    pytest.param(dict(columns={"Id": {"type": "numeric(10,2)"}}),
                 EMPLOYEE, ("Id",), (DELETE, (Decimal("2001.00"),), {"Id": Decimal("2001.00")}),
                 (DELETE, (Decimal("2001.00"),), {"Id": Decimal("2001.00")}), id="key-cast"),
    # a composite key with a renamed sort key
    pytest.param(dict(columns={"pk": {"type": "text"}, "created": {"from": "sk", "type": "bigint"}},
                      key=["pk", "created"]),
                 {"pk": "EMP#1", "sk": 7, "empName": "Akua"}, ("pk", "sk"),
                 (DELETE, ("EMP#1", 7), {"pk": "EMP#1", "created": 7}),
                 (DELETE, ("EMP#1", 7), {"pk": "EMP#1", "created": 7}), id="composite-key"),
    # a dotted path on a non-key column is not read for a delete (Keys have no maps)
    pytest.param(dict(columns={"Id": {"type": "bigint"}, "City": {"from": "address.city"}}),
                 EMPLOYEE, ("Id",), KEY_ROW, KEY_ROW, id="dotted-path"),
    # defaults and fallbacks of non-key columns are not written by a delete
    pytest.param(dict(columns={"Id": {"type": "bigint"}, "Dept": {"from": "missing", "default": "none"},
                               "Name": {"from": "empName", "type": "integer", "fallback": 0}}),
                 EMPLOYEE, ("Id",), KEY_ROW, KEY_ROW, id="default-and-fallback"),
    # a value in the OldImage that would not fit its column does not stop the delete
    pytest.param(dict(columns={"Id": {"type": "bigint"}, "Name": {"from": "empName", "type": "varchar(2)"}}),
                 EMPLOYEE, ("Id",), KEY_ROW, KEY_ROW, id="uncastable-old-value"),
    # extras are not written by a delete
    pytest.param(dict(columns={"Id": {"type": "bigint"}}, extras="attributes"),
                 EMPLOYEE, ("Id",), KEY_ROW, KEY_ROW, id="extras"),
    # a filter the OldImage matches: the delete applies; without the OldImage nobody can know whether the item
    # was the route's, so the stream is refused (issue 12: a delete sent blindly failed or left phantom rows)
    pytest.param(dict(columns={"Id": {"type": "bigint"}}, filter={"attribute": "kind", "equals": "staff"}),
                 EMPLOYEE, ("Id",), (RouteConfigError, NEEDS_OLD_IMAGE), KEY_ROW, id="filter-matches"),
    # a filter the OldImage does not match: never this route's item, nothing to write
    pytest.param(dict(columns={"Id": {"type": "bigint"}}, filter={"attribute": "kind", "equals": "contractor"}),
                 EMPLOYEE, ("Id",), (RouteConfigError, NEEDS_OLD_IMAGE), None, id="filter-does-not-match"),
    # a filter on a key attribute (single-table design): the Keys alone decide
    pytest.param(dict(columns={"pk": {"type": "text"}, "sk": {"type": "bigint"}}, key=["pk", "sk"],
                      filter={"attribute": "pk", "begins_with": "ORDER#"}),
                 {"pk": "EMP#1", "sk": 7}, ("pk", "sk"), None, None, id="key-prefix-filter-does-not-match"),
    pytest.param(dict(columns={"pk": {"type": "text"}, "sk": {"type": "bigint"}}, key=["pk", "sk"],
                      filter={"attribute": "pk", "begins_with": "EMP#"}),
                 {"pk": "EMP#1", "sk": 7}, ("pk", "sk"), (DELETE, ("EMP#1", 7), {"pk": "EMP#1", "sk": 7}),
                 (DELETE, ("EMP#1", 7), {"pk": "EMP#1", "sk": 7}), id="key-prefix-filter-matches"),
    # a key column fed by a non-key attribute: refused on any stream (issue 12, finding 4)
    pytest.param(dict(columns={"EmpNo": {"from": "empNo"}}, key=["EmpNo"]),
                 EMPLOYEE, ("Id",), (RouteConfigError, NON_KEY), (RouteConfigError, NON_KEY),
                 id="key-from-non-key-attribute"),
]


@pytest.mark.parametrize("deletes", ["hard", "soft"])
@pytest.mark.parametrize("route_spec, item, key, keys_only, new_and_old", REMOVE_CASES)
def test_remove_record(route_spec: dict[str, Any], item: dict[str, Any], key: tuple[str, ...], keys_only: Any,
                       new_and_old: Any, deletes: str) -> None:
    # GIVEN a route with hard or soft deletes
    route = make_route(**route_spec, deletes=deletes)
    # WHEN the item's REMOVE arrives on each stream view type THEN the delete carries the key only
    assert outcome(route, remove_record(item, KEYS_ONLY, key)) == keys_only
    assert outcome(route, remove_record(item, NEW_AND_OLD, key)) == new_and_old


@pytest.mark.parametrize("view", [KEYS_ONLY, NEW_AND_OLD])
@pytest.mark.parametrize("route_spec, item, key, keys_only, new_and_old", REMOVE_CASES)
def test_remove_record_with_deletes_ignore(route_spec: dict[str, Any], item: dict[str, Any], key: tuple[str, ...],
                                           keys_only: Any, new_and_old: Any, view: str) -> None:
    # GIVEN the same routes with deletes: ignore WHEN a REMOVE arrives THEN it is not for the route
    route = make_route(**route_spec, deletes="ignore")
    expected = (RouteConfigError, NON_KEY) if route.key == ("EmpNo",) else None  # a key must be a key, always
    assert outcome(route, remove_record(item, view, key)) == expected


def test_remove_records_from_event_files() -> None:
    # GIVEN the saved KEYS_ONLY and NEW_AND_OLD_IMAGES events, and the article's route
    route = make_route({"Id": {"type": "bigint"}, "Name": {"from": "empName", "type": "varchar(20)",
                                                           "fallback": "NA"}})
    keys_only = parse_event(load_event("employees_delete_keys_only.json"))
    modify, remove = parse_event(load_event("employees_modify_remove_new_and_old.json"))
    # WHEN transformed THEN each REMOVE becomes a delete of its key
    assert outcome(route, keys_only[0]) == (DELETE, (2001,), {"Id": 2001})
    assert outcome(route, remove) == (DELETE, (7,), {"Id": 7})
    assert outcome(route, modify) == (UPSERT, (7,), {"Id": 7, "Name": "Ana"})


def test_remove_key_that_does_not_cast() -> None:
    # GIVEN a route whose key column is an integer WHEN a REMOVE carries a text key THEN the cast error says so
    route = make_route({"Id": {"type": "integer"}})
    record = remove_record({"Id": "abc"}, KEYS_ONLY)
    assert outcome(route, record) == (CastError, "column 'Id' (from 'Id'): 'abc' does not fit integer: not a number")


# -- upserts --------------------------------------------------------------------------------

ABSENT = object()
SPECS = {
    "plain": {"type": "integer"},
    "default": {"type": "integer", "default": 0},
    "fallback": {"type": "integer", "fallback": -1},
    "both": {"type": "integer", "default": 0, "fallback": -1},
    "null-default": {"type": "integer", "default": None},
    "null-fallback": {"type": "integer", "fallback": None},
}
CAST_ERROR = (CastError, "column 'N' (from 'n'): 'x' does not fit integer: not a number")
DEFAULT_VS_FALLBACK = [
    # no default, no fallback: absent and NULL are NULL, a bad value is an error for on_error
    ("plain", ABSENT, None), ("plain", None, None), ("plain", "x", CAST_ERROR), ("plain", 5, 5),
    # default: only when the attribute is absent
    ("default", ABSENT, 0), ("default", None, None), ("default", "x", CAST_ERROR), ("default", 5, 5),
    # fallback: absent, NULL or uncastable (the article's 'NA')
    ("fallback", ABSENT, -1), ("fallback", None, -1), ("fallback", "x", -1), ("fallback", 5, 5),
    # both: the default wins when absent, the fallback covers NULL and bad values
    ("both", ABSENT, 0), ("both", None, -1), ("both", "x", -1), ("both", 5, 5),
    # an explicit null default or fallback is a real value (NULL), not "none given"
    ("null-default", ABSENT, None), ("null-default", "x", CAST_ERROR),
    ("null-fallback", ABSENT, None), ("null-fallback", "x", None),
]


@pytest.mark.parametrize("spec, value, expected", DEFAULT_VS_FALLBACK)
def test_default_versus_fallback(spec: str, value: Any, expected: Any) -> None:
    # GIVEN a column N read from attribute n
    route = make_route({"Id": {"type": "bigint"}, "N": {"from": "n", **SPECS[spec]}})
    item = {"Id": 1} if value is ABSENT else {"Id": 1, "n": value}
    # WHEN an item with n absent, NULL, uncastable or fitting is upserted
    result = outcome(route, upsert_record(item))
    # THEN N holds the value, the default, the fallback, or the cast error names the column
    assert result == (expected if isinstance(expected, tuple) else (UPSERT, (1,), {"Id": 1, "N": expected}))


ROW_CASES = [
    # rename: the column reads another attribute
    ({"Id": {"type": "bigint"}, "Name": {"from": "empName"}}, {"Id": 1, "empName": "Akua"},
     {"Id": 1, "Name": "Akua"}),
    # no from: the attribute has the column's name
    ({"Id": {"type": "bigint"}, "empName": None}, {"Id": 1, "empName": "Akua"}, {"Id": 1, "empName": "Akua"}),
    # a dotted path into a map
    ({"Id": {"type": "bigint"}, "City": {"from": "address.city"}}, {"Id": 1, "address": {"city": "Accra"}},
     {"Id": 1, "City": "Accra"}),
    # three levels deep, with a cast
    ({"Id": {"type": "bigint"}, "Zip": {"from": "a.b.zip", "type": "integer"}},
     {"Id": 1, "a": {"b": {"zip": 10115}}}, {"Id": 1, "Zip": 10115}),
    # a dotted path through a value that is not a map: absent, so the default applies
    ({"Id": {"type": "bigint"}, "City": {"from": "address.city", "default": "unknown"}},
     {"Id": 1, "address": "12 Main St"}, {"Id": 1, "City": "unknown"}),
    # a dotted path whose map is missing: absent
    ({"Id": {"type": "bigint"}, "City": {"from": "address.city"}}, {"Id": 1}, {"Id": 1, "City": None}),
    # a NULL leaf at the end of the path takes the fallback
    ({"Id": {"type": "bigint"}, "City": {"from": "address.city", "fallback": "NA"}},
     {"Id": 1, "address": {"city": None}}, {"Id": 1, "City": "NA"}),
    # the article's fallback: a name too long for varchar(20) becomes NA
    ({"Id": {"type": "bigint"}, "Name": {"from": "empName", "type": "varchar(20)", "fallback": "NA"}},
     {"Id": 1, "empName": "x" * 25}, {"Id": 1, "Name": "NA"}),
    # exact numbers: N stays Decimal in numeric and in jsonb
    ({"Id": {"type": "bigint"}, "Total": {"type": "numeric(12,2)"}, "Items": {"type": "jsonb"}},
     {"Id": 1, "Total": Decimal("19.90"), "Items": [{"qty": Decimal("0.10")}]},
     {"Id": 1, "Total": Decimal("19.90"), "Items": [{"qty": Decimal("0.10")}]}),
    # a string set into text[]
    ({"Id": {"type": "bigint"}, "Tags": {"type": "text[]"}}, {"Id": 1, "Tags": {"b", "a"}},
     {"Id": 1, "Tags": ["a", "b"]}),
]


@pytest.mark.parametrize("columns, item, row", ROW_CASES)
def test_upsert_row(columns: dict[str, Any], item: dict[str, Any], row: dict[str, Any]) -> None:
    # GIVEN a route WHEN an item is upserted THEN the row holds the mapped, cast values
    assert outcome(make_route(columns), upsert_record(item)) == (UPSERT, (1,), row)


EXTRAS_CASES = [
    # every unmapped attribute is kept, numbers and sets exact
    ({"Id": 1, "empName": "Akua", "age": Decimal("42.50"), "skills": {"go", "sql"}, "active": True},
     {"age": Decimal("42.50"), "skills": ["go", "sql"], "active": True}),
    # nothing unmapped: an empty object, not NULL
    ({"Id": 1, "empName": "Akua"}, {}),
    # a NULL attribute is kept as null
    ({"Id": 1, "note": None}, {"note": None}),
]


@pytest.mark.parametrize("item, extras", EXTRAS_CASES)
def test_extras_keep_unmapped_attributes(item: dict[str, Any], extras: dict[str, Any]) -> None:
    # GIVEN a route with an extras column
    route = make_route({"Id": {"type": "bigint"}, "Name": {"from": "empName"}}, extras="attributes")
    # WHEN an item is upserted THEN unmapped attributes land in extras
    _, _, row = outcome(route, upsert_record(item))
    assert row["attributes"] == extras
    assert repr(row["attributes"]) == repr(extras)


def test_extras_that_cannot_be_stored_are_a_cast_error_naming_the_column() -> None:
    route = make_route({"Id": {"type": "bigint"}}, extras="attributes")
    assert outcome(route, upsert_record({"Id": 1, "note": "a\x00b"})) == (
        CastError, "extras column 'attributes': {'note': 'a\\x00b'} does not fit jsonb: "
                   "PostgreSQL cannot store NUL (0x00) characters")


def test_without_extras_unmapped_attributes_are_not_written() -> None:
    route = make_route({"Id": {"type": "bigint"}})
    assert outcome(route, upsert_record({"Id": 1, "age": 42})) == (UPSERT, (1,), {"Id": 1})


FILTER_CASES = [
    # equals: the item matches
    ({"attribute": "kind", "equals": "staff"}, {"kind": "staff"}, True),
    # equals: another value
    ({"attribute": "kind", "equals": "staff"}, {"kind": "contractor"}, False),
    # equals: the attribute is absent
    ({"attribute": "kind", "equals": "staff"}, {}, False),
    # equals a number: N 1 equals 1
    ({"attribute": "level", "equals": 1}, {"level": 1}, True),
    # the text "1" is not the number 1
    ({"attribute": "level", "equals": 1}, {"level": "1"}, False),
    # exists: a NULL attribute exists, an absent one does not
    ({"attribute": "kind", "exists": True}, {"kind": None}, True),
    ({"attribute": "kind", "exists": True}, {}, False),
    # begins_with: a key prefix in a single-table design
    ({"attribute": "sk", "begins_with": "ORDER#"}, {"sk": "ORDER#2024"}, True),
    ({"attribute": "sk", "begins_with": "ORDER#"}, {"sk": "ITEM#1"}, False),
    # begins_with on a number never matches
    ({"attribute": "sk", "begins_with": "1"}, {"sk": 12}, False),
]


@pytest.mark.parametrize("route_filter, attributes, selected", FILTER_CASES)
def test_filter_selects_upserts(route_filter: dict[str, Any], attributes: dict[str, Any], selected: bool) -> None:
    # GIVEN a route with a filter WHEN an item is upserted THEN it is the route's only if the filter says so
    route = make_route({"Id": {"type": "bigint"}}, filter=route_filter)
    expected = (UPSERT, (1,), {"Id": 1}) if selected else None
    assert outcome(route, upsert_record({"Id": 1, **attributes})) == expected


KEY_ERRORS = [
    # the key attribute is absent from the image
    ({"Id": {"type": "bigint"}, "Name": {"from": "empName"}}, ["Id"], {"empName": "Akua"},
     (RecordError, "key column 'Id' has no value (attribute absent or NULL)")),
    # the key attribute is NULL
    ({"Id": {"type": "bigint"}}, ["Id"], {"Id": None},
     (RecordError, "key column 'Id' has no value (attribute absent or NULL)")),
    # a key column read from a non-key attribute: the route does not fit the table
    ({"Id": {"type": "bigint"}, "EmpNo": {"from": "empNo"}}, ["Id", "EmpNo"], {"Id": 1},
     (RouteConfigError, "route 'r' does not fit its source: key column(s) read non-key attribute(s) 'empNo' of "
                        "DynamoDB table 'Employees' (its key attributes: Id): key columns must be read from the "
                        "table's key attributes, which an item never changes")),
    # the key does not cast: no fallback can exist for a key
    ({"Id": {"type": "bigint"}}, ["Id"], {"Id": "abc"},
     (CastError, "column 'Id' (from 'Id'): 'abc' does not fit bigint: not a number")),
]


@pytest.mark.parametrize("columns, key, image, error", KEY_ERRORS)
def test_key_missing_is_a_record_error(columns: dict[str, Any], key: list[str], image: dict[str, Any],
                                       error: tuple[type, str]) -> None:
    # GIVEN an INSERT whose NewImage lacks a usable key (Keys themselves are fine)
    raw = Stream("Employees").insert({"Id": 1})
    raw["dynamodb"]["NewImage"] = wire(image)
    # WHEN transformed THEN the record is refused with a message naming the key column
    assert outcome(make_route(columns, key=key), parse_record(raw, 0)) == error


def test_insert_without_new_image_is_a_record_error() -> None:
    # GIVEN an INSERT from a KEYS_ONLY stream WHEN transformed THEN the message names the view type to use
    record = parse_record(Stream("Employees", view=KEYS_ONLY).insert({"Id": 1}), 0)
    assert outcome(make_route({"Id": {"type": "bigint"}}), record) == (
        RouteConfigError, "route 'r' does not fit its source: INSERT record without NewImage: the stream of DynamoDB "
                          "table 'Employees' must be NEW_AND_OLD_IMAGES (or NEW_IMAGE where no route's filter needs the "
                          "OldImage), not KEYS_ONLY or OLD_IMAGE")


def test_malformed_attribute_value_is_not_covered_by_fallback() -> None:
    # GIVEN a column with a fallback, and an N value that is not a number (bad input, not a bad value)
    route = make_route({"Id": {"type": "bigint"}, "N": {"from": "n", "type": "integer", "fallback": 0}})
    raw = Stream("Employees").insert({"Id": 1})
    raw["dynamodb"]["NewImage"]["n"] = {"N": "twelve"}
    # WHEN transformed THEN it is a record error naming the column, not the fallback
    assert outcome(route, parse_record(raw, 0)) == (
        RecordError, "column 'N' (from 'n'): invalid DynamoDB number 'twelve'")


def vars_of(record: ChangeRecord) -> dict[str, Any]:
    return {name: getattr(record, name) for name in ChangeRecord.__slots__}


@pytest.mark.parametrize("view", [KEYS_ONLY, NEW_AND_OLD])
def test_transform_does_not_mutate_the_record(view: str) -> None:
    # GIVEN a route using every transform, an upsert and a delete
    route = make_route({"Id": {"type": "bigint"}, "Name": {"from": "empName", "type": "varchar(2)", "fallback": "NA"},
                        "City": {"from": "address.city", "default": "?"}}, extras="attributes")
    records = [upsert_record(EMPLOYEE), remove_record(EMPLOYEE, view)]
    before = [copy.deepcopy(vars_of(r)) for r in records]
    # WHEN transformed twice THEN the records are unchanged and the results equal
    first = [outcome(route, r) for r in records]
    assert [outcome(route, r) for r in records] == first
    assert [vars_of(r) for r in records] == before
    assert first[0] == (UPSERT, (2001,), {"Id": 2001, "Name": "NA", "City": "Accra", "attributes": {
        "empNo": "E-17", "empDepartment": "AnyDept", "kind": "staff"}})


@pytest.mark.parametrize("deletes, expected", [
    # the row must leave a hard-delete target, as if the item had been deleted
    ("hard", (DELETE, (2001,), {"Id": 2001})),
    # and be marked deleted in a soft-delete target
    ("soft", (DELETE, (2001,), {"Id": 2001})),
    # deletes: ignore keeps rows, whatever happens to the item
    ("ignore", None),
])
def test_modify_that_leaves_the_filter_removes_the_row(deletes: str, expected: Any) -> None:
    # GIVEN a route for kind=staff and a NEW_AND_OLD_IMAGES stream where an item was staff
    route = make_route({"Id": {"type": "bigint"}}, filter={"attribute": "kind", "equals": "staff"}, deletes=deletes)
    stream = Stream("Employees", view=NEW_AND_OLD)
    stream.insert(EMPLOYEE)
    # WHEN the item becomes a contractor (the OldImage matched, the NewImage does not)
    record = parse_record(stream.modify({**EMPLOYEE, "kind": "contractor"}), 1)
    # THEN the route's row for it goes away: otherwise the target keeps an item that is no longer selected
    assert outcome(route, record) == expected
