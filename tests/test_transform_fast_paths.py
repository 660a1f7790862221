"""The hot path's short cuts agree exactly with the long way, on generated values (issue 19).

Each fast path answers only where it is sure and leaves the rest to the general code. Here
both run on the same generated AttributeValues, malformed and out-of-range ones included,
and must give the same value (same type, same spelling: ``Decimal('4.90')`` is not
``Decimal('4.9')``), the same fallback, or the same error:

- column shortcuts (``router.shortcuts``) against ``transform._value`` with the conversion
  of ``router.attrs`` taken the long way (``convert``, no plain-number path);
- ``attrs.to_python`` and ``attrs.dumps_exact`` against their long ways;
- the extras column's shortcut against its general path;
- the batch document (``encode_rows``) and tombstone keys against the encoding they replaced.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any
from unittest import mock

from factories import MEMORY, route, tables
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from memory_sink import parse

from router import attrs
from router.errors import RecordError
from router.model import Route
from router.modes import Deletes, Op
from router.records import ChangeRecord
from router.reduce import reduce_changes
from router.sink import DELETE, Change
from router.transform import RouteTransform, _value
from sinks.postgres import statements
from sinks.sql.rows import _key_text, tombstone_key

TYPES = ["text", "varchar(5)", "smallint", "integer", "bigint", "numeric", "numeric(12,2)", "numeric(5,0)",
         "numeric(38,4)", "double precision", "real", "boolean", "uuid", "timestamptz", "timestamp", "date",
         "json", "jsonb", "text[]", "varchar(3)[]", "numeric[]", "numeric(5,2)[]", "bigint[]", "bytea"]
COLUMNS: dict[str, Any] = {"k": {"type": "bigint"}}
for i, type_name in enumerate(TYPES):
    COLUMNS[f"c{i}"] = {"from": "v", "type": type_name}
    COLUMNS[f"f{i}"] = {"from": "m.v", "type": type_name}  # nested, and with a fallback where the type takes one
FALLBACKS = {"text": "NA", "varchar(5)": "NA", "smallint": -1, "integer": -1, "bigint": -1, "numeric": 0,
             "numeric(12,2)": 0, "numeric(5,0)": 0, "double precision": 0, "boolean": False, "date": "2024-01-01",
             "timestamptz": "2024-01-01T00:00:00Z", "jsonb": {"none": True}}
for i, type_name in enumerate(TYPES):
    if type_name in FALLBACKS:
        COLUMNS[f"f{i}"]["fallback"] = FALLBACKS[type_name]
CONFIG = parse(tables({
    "wide": route("t", source="T", sink="mem", key=["k"], columns=COLUMNS, extras="extras"),
    "soft": route("s", source="T", sink="mem", key=["k"], columns=COLUMNS, deletes="soft"),
}, {"mem": MEMORY}))
ROUTE = CONFIG.routes["wide"]

# Texts where the fast paths and the long way could part: numbers at the edges of their forms,
# times and UUIDs with padding, strings a database refuses.
NUMBER_TEXTS = ["0", "-0", "007", "-42", "4.90", "4.9", "-0.00", ".5", "5.", "-.5", "1e3", "1E+2", "+5", " 5", "5 ",
                "1_000", "NaN", "Infinity", "-", "", ".", "١٢٣", "²", "32767", "32768", "-2147483649",
                "9223372036854775807", "9223372036854775808", "1" * 38, "1" * 39, "0." + "0" * 37 + "1",
                "1" + "0" * 40, "1E-131", "9.9E+125", "12345678901.23", "1234567890.12", "99999", "100000",
                "1706000000000", "17060000000", "1706000000", "-1706000000123", "999999999999999999",
                "1000000000000000000", "123456789012345678901234567890", "9999999999", "10000000000",
                "99999999999", "100000000000", "-99999999999", "-100000000000"]
STRING_TEXTS = ["abc", "", "abcdef", "a\x00b", "Zoë", "\ud800", " 2024-05-01T12:00:00Z ", "2024-05-01T12:00:00",
                "2024-05-01T12:00:00.123456+02:00", "2024-05-01", "2024-13-01", " 2024-05-01",
                "12345678-1234-5678-1234-567812345678", "{12345678-1234-5678-1234-567812345678}",
                " 12345678-1234-5678-1234-567812345678", "true", "5", "AQI="]

texts = st.one_of(st.sampled_from(STRING_TEXTS), st.text(max_size=8))
numbers = st.one_of(st.sampled_from(NUMBER_TEXTS), st.decimals(allow_nan=False, allow_infinity=False).map(str),
                    st.integers(-10**20, 10**20).map(str), st.floats(allow_nan=False, allow_infinity=False).map(repr))
scalars = st.one_of(
    texts.map(lambda t: {"S": t}), numbers.map(lambda n: {"N": n}), st.booleans().map(lambda b: {"BOOL": b}),
    st.just({"NULL": True}), st.just({"B": "AQI="}), st.just({"B": "not base64!"}),
    st.lists(texts, max_size=3).map(lambda ts: {"SS": ts}), st.lists(numbers, max_size=3).map(lambda ns: {"NS": ns}),
    st.sampled_from([{"S": 5}, {"N": 5}, {"BOOL": "yes"}, {"M": []}, {"L": {}}, {"SS": "a"}, {"X": "1"}, {},
                     {"S": "a", "N": "1"}, "plain", None, 5]),
)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.dictionaries(texts, inner, max_size=3).map(lambda m: {"M": m}),
    st.lists(inner, max_size=3).map(lambda items: {"L": items})), max_leaves=8)


@contextmanager
def long_way() -> Iterator[None]:
    """``router.attrs`` without its short paths: the conversion as it was before them."""
    with mock.patch.object(attrs, "to_python", attrs.convert), \
            mock.patch.object(attrs, "plain_number", lambda text: None), \
            mock.patch.object(attrs, "dumps_exact", attrs._dumps_other):
        yield


def spelled(value: Any) -> Any:
    """A value with its type and exact spelling, all the way down."""
    if isinstance(value, dict):
        return ("dict", [(spelled(k), spelled(v)) for k, v in value.items()])
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, [spelled(v) for v in value])
    return (type(value).__name__, repr(value))


def outcome(compute: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return "value", spelled(compute())
    except RecordError as exc:
        return type(exc).__name__, str(exc)


def image_of(av: Any) -> dict[str, Any]:
    image: dict[str, Any] = {"k": {"N": "1"}}
    if av is not None:
        image["v"] = av
        image["m"] = {"M": {"v": av}}
    return image


FAST = dict(RouteTransform(ROUTE).readers)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(av=values)
def test_every_column_shortcut_agrees_with_the_general_path(av: Any) -> None:
    assert_columns_agree(av)


def assert_columns_agree(av: Any) -> None:
    image = image_of(av)
    fast = {column.name: outcome(lambda c=column: FAST[c.name](image)) for column in ROUTE.columns}
    with long_way():
        general = {column.name: outcome(lambda c=column: _value(c, image)) for column in ROUTE.columns}
    assert fast == general


@settings(max_examples=200, deadline=None)
@given(av=values)
def test_the_generated_row_reader_is_the_columns_readers(av: Any) -> None:
    """One generated function per route reads what the readers read, in the same order, with the same counts."""
    image = image_of(av)
    generated, by_column = RouteTransform(ROUTE), RouteTransform(ROUTE)
    assert outcome(lambda: generated.read_row(image)) == outcome(
        lambda: {name: read(image) for name, read in by_column.readers})
    assert vars(generated.tally.drain()) == vars(by_column.tally.drain())


EDGES = ([{"N": n} for n in NUMBER_TEXTS] + [{"S": t} for t in STRING_TEXTS] + [{"NS": [n]} for n in NUMBER_TEXTS]
         + [{"SS": [t, "b"]} for t in STRING_TEXTS] + [{"M": {t: {"N": n}}} for t, n in zip(STRING_TEXTS, NUMBER_TEXTS)])


def test_every_column_shortcut_agrees_on_the_edge_values() -> None:
    for av in EDGES:
        assert_columns_agree(av)


@settings(max_examples=300, deadline=None)
@given(av=values)
def test_to_python_and_dumps_exact_agree_with_the_long_way(av: Any) -> None:
    fast = outcome(lambda: attrs.to_python(av))
    with long_way():
        assert outcome(lambda: attrs.to_python(av)) == fast
    if fast[0] == "value":
        value = attrs.to_python(av)
        text = attrs.dumps_exact(value)
        with long_way():
            assert attrs.dumps_exact(value) == text


@settings(max_examples=200, deadline=None)
@given(attributes=st.dictionaries(st.one_of(st.sampled_from(["extra", "Zoë", "a\x00", "\udc80"]), st.text(max_size=4)),
                                  values, max_size=4))
def test_the_extras_shortcut_agrees_with_its_general_path(attributes: dict[str, Any]) -> None:
    transform = RouteTransform(ROUTE)
    image = {**attributes, "k": {"N": "1"}}
    fast = outcome(lambda: transform._extras(image))
    with long_way():
        assert outcome(lambda: transform._extras_general(image)) == fast


def test_the_shortcuts_answer_the_bench_forms() -> None:
    """Where a shortcut must answer (else it is no shortcut): the forms of the benchmark's wide route."""
    from router import shortcuts

    expect = {"numeric(12,2)": ({"N": "4.90"}, Decimal("4.90")), "numeric": ({"N": "0.4239"}, Decimal("0.4239")),
              "double precision": ({"N": "18.653"}, 18.653), "boolean": ({"BOOL": True}, True),
              "uuid": ({"S": "12345678-1234-5678-1234-567812345678"}, uuid.UUID("12345678-1234-5678-1234-567812345678")),
              "timestamptz": ({"N": "1706000000123"}, dt.datetime(2024, 1, 23, 8, 53, 20, 123000, tzinfo=dt.UTC)),
              "date": ({"S": "2024-01-29"}, dt.date(2024, 1, 29)), "text[]": ({"SS": ["b", "a"]}, ["a", "b"]),
              "numeric[]": ({"NS": ["2", "1.5"]}, [Decimal("1.5"), Decimal("2")]),
              "jsonb": ({"L": [{"M": {"qty": {"N": "3"}, "sku": {"S": "A"}}}]}, [{"qty": Decimal(3), "sku": "A"}])}
    for column in ROUTE.columns:
        if column.name.startswith("c") and column.type.name in expect:
            av, value = expect[column.type.name]
            shortcut = shortcuts.for_column(column)
            assert shortcut is not None and spelled(shortcut(av)) == spelled(value), column.type.name


# -- the batch document --------------------------------------------------------------------------

def encode_rows_before(route: Route, changes: list[Change]) -> str:
    """``encode_rows`` as it was before its plan was kept per route: the encoding it must keep."""
    columns = [(c.name, c.type.name) for c in route.columns] + ([(route.extras, "jsonb")] if route.extras else [])
    fields = [(f"c{i}", name, type_name in ("json", "jsonb")) for i, (name, type_name) in enumerate(columns)]
    hard = route.deletes == Deletes.HARD and not route.versioned
    documents = []
    for change in changes:
        row = change.row
        if change.op == DELETE and not change.keeps_values:
            document = {f"c{i}": row[name] for i, (name, _) in enumerate(columns) if name in route.key}
            document["o"], document["t"] = Op.DELETE, change.time
        else:
            document = {field: (attrs.dumps_exact(row[name]) if is_json and row[name] is not None else row[name])
                        for field, name, is_json in fields}
            document["o"] = Op.UPSERT
            if change.keeps_values:
                document["t"] = change.time
        document["v"] = change.version
        if hard:
            document["k"] = json.dumps([_key_text(v) for v in change.key], ensure_ascii=False, separators=(",", ":"))
        documents.append(document)
    return json.dumps(documents, default=statements._json_default, separators=(",", ":"))


@settings(max_examples=100, deadline=None)
@given(items=st.lists(st.tuples(st.integers(1, 4), st.sampled_from(["INSERT", "MODIFY", "REMOVE"]), values),
                      min_size=1, max_size=8))
def test_the_batch_document_is_the_encoding_it_replaced(items: list[tuple[int, str, Any]]) -> None:
    for name in ("wide", "soft"):
        transform = RouteTransform(CONFIG.routes[name])
        changes = []
        for index, (key, event_name, av) in enumerate(items):
            image = {**image_of(av), "k": {"N": str(key)}, "extra": av if av is not None else {"NULL": True}}
            record = ChangeRecord(index, {}, "T", event_name=event_name, keys={"k": {"N": str(key)}},
                                  new_image=None if event_name == "REMOVE" else image,
                                  sequence_number=str(10 + index), version=10 + index, created=1.7e9 + index)
            try:
                change = transform(record)
            except RecordError:
                continue
            if change is not None:
                changes.append(change)
        reduced = reduce_changes(changes)
        assert statements.encode_rows(CONFIG.routes[name], reduced) == encode_rows_before(CONFIG.routes[name], reduced)


@given(key=st.tuples(st.one_of(st.integers(), st.text(), st.booleans(), st.decimals(allow_nan=False,
                                                                                      allow_infinity=False))))
def test_tombstone_keys_are_spelled_as_before(key: tuple[Any, ...]) -> None:
    assert tombstone_key(key) == json.dumps([_key_text(v) for v in key], ensure_ascii=False, separators=(",", ":"))
    for value in key:
        if type(value) is int:
            assert _key_text(value) == format(Decimal(value), "f")
