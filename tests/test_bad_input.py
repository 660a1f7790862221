"""Malformed events through the parser, the pipeline and the handler.

Each bad record sits between two valid ones. Under on_error: fail the batch stops at it:
the record before is committed, the response names it (or the last record with a
SequenceNumber before it), the reason names it, nothing after it is written. Under
dead_letter it is kept in the dead-letter table and the rest of the batch is written;
a record that names no routed table cannot be dead-lettered (no route owns it) and
fails under both. Never an exception out of the handler, never a partial write.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from factories import Stream, event
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql

from router.records import is_sequence_number

ROUTE = """
version: 1
sinks:
  aurora: {{type: postgres, dsn: "${{DATABASE_URL}}", state_schema: {state}}}
routes:
  employees:
    source: Employees
    sink: aurora
    table: {schema}.Employees
    key: [Id]
    columns:
      Id:    {{from: Id, type: bigint}}
      Name:  {{from: empName, type: varchar(20)}}
      Hired: {{from: hired, type: timestamptz}}
    extras: attributes
    deletes: {deletes}
    on_error: {on_error}
"""


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"S": "deep"}
    for _ in range(depth):
        value = {"M": {"a": value}}
    return value


def image(record: dict[str, Any], **attributes: Any) -> None:
    record["dynamodb"]["NewImage"].update(attributes)


def key(record: dict[str, Any], value: dict[str, Any]) -> None:
    record["dynamodb"]["NewImage"]["Id"] = record["dynamodb"]["Keys"]["Id"] = value


def body(record: dict[str, Any]) -> dict[str, Any]:
    return record["dynamodb"]


# name -> how the middle record is broken; "unroutable" ones name no routed table
CASES: dict[str, Callable[[dict[str, Any]], Any]] = {
    "missing dynamodb": lambda r: r.pop("dynamodb"),
    "dynamodb not an object": lambda r: r.update(dynamodb="x"),
    "unknown eventName": lambda r: r.update(eventName="UPSERT"),
    "missing eventName": lambda r: r.pop("eventName"),
    "unknown type tag": lambda r: image(r, empName={"SX": "b"}),
    "AttributeValue with two tags": lambda r: image(r, empName={"S": "b", "N": "1"}),
    "BOOL holding a string": lambda r: image(r, empName={"BOOL": "yes"}),
    "string set holding numbers": lambda r: image(r, tags={"SS": [1, 2]}),
    "number string that is not a number": lambda r: key(r, {"N": "2x"}),
    "number beyond DynamoDB's range": lambda r: key(r, {"N": "1e999999999"}),
    "number of 400,000 digits": lambda r: key(r, {"N": "9" * 400_000}),
    "number beyond DynamoDB's range into a timestamp": lambda r: image(r, hired={"N": "1e999999"}),
    "NULL key": lambda r: key(r, {"NULL": True}),
    "key missing from the image": lambda r: body(r)["NewImage"].pop("Id"),
    "no Keys": lambda r: body(r).pop("Keys"),
    "empty Keys": lambda r: body(r).update(Keys={}),
    "NewImage not an object": lambda r: body(r).update(NewImage=[]),
    "INSERT without NewImage (configuration)": lambda r: body(r).pop("NewImage"),
    "400 KB item with a key that is not a number": lambda r: (key(r, {"S": "two"}), image(r, blob={"S": "x" * 400_000})),
    "map nested 100 levels": lambda r: image(r, empName=nested(100)),
    "map nested 490 levels (Python's recursion limit)": lambda r: image(r, extra=nested(490)),
    "unpaired surrogate in a string": lambda r: image(r, empName={"S": "b\ud800"}),
    "unpaired surrogate in an attribute name": lambda r: image(r, **{"\udc00x": {"S": "b"}}),
    "NUL in a string": lambda r: image(r, empName={"S": "b\x00"}),
    "escaped-NUL text in a record dead-lettered for its key": lambda r: (key(r, {"S": "two"}),
                                                                         image(r, note={"S": "\\u0000"})),
    "binary that is not base64": lambda r: image(r, empName={"B": "***not base64***"}),
    "SequenceNumber that is not a number": lambda r: body(r).update(SequenceNumber="abc"),
    "SequenceNumber of non-ASCII digits": lambda r: body(r).update(SequenceNumber="²"),
    "no SequenceNumber": lambda r: body(r).pop("SequenceNumber"),
    "SequenceNumber of 5,000 digits": lambda r: body(r).update(SequenceNumber="9" * 5000),
    "ApproximateCreationDateTime that is not a number": lambda r: body(r).update(ApproximateCreationDateTime="now"),
    "ApproximateCreationDateTime out of range": lambda r: body(r).update(ApproximateCreationDateTime=1e300),
    "eventSourceARN missing (unroutable)": lambda r: r.pop("eventSourceARN"),
    "eventSourceARN of another service (unroutable)": lambda r: r.update(
        eventSourceARN="arn:aws:kinesis:us-east-1:123456789012:stream/Employees"),
    "record that is not an object (unroutable)": lambda r: r.clear(),
}


def batch(case: str) -> list[Any]:
    """A valid record, the broken one, a valid one. Soft deletes: a REMOVE reads its creation time."""
    stream = Stream("Employees")
    first = stream.insert({"Id": 1, "empName": "a"})
    bad = (stream.remove({"Id": 2}) if "ApproximateCreationDateTime" in case else
           stream.insert({"Id": 2, "empName": "b"}))
    CASES[case](bad)
    return [first, "junk" if case.startswith("record that is not") else bad, stream.insert({"Id": 3, "empName": "c"})]


def retry_point(records: list[Any]) -> str:
    """The SequenceNumber Lambda must retry from: the bad record's, or the last valid one before it."""
    for record in reversed(records[:2]):
        body = record.get("dynamodb") if isinstance(record, dict) else None
        sequence = body.get("SequenceNumber") if isinstance(body, dict) else None
        if is_sequence_number(sequence):
            return sequence
    raise AssertionError("no SequenceNumber")


@pytest.mark.parametrize("on_error", ["fail", "dead_letter"])
@pytest.mark.parametrize("case", list(CASES))
def test_a_malformed_record_fails_or_is_dead_lettered_alone(pg: Any, make_pipeline: Any, case: str,
                                                           on_error: str) -> None:
    pipeline = make_pipeline(pg, template=ROUTE, deletes="soft", on_error=on_error)
    records = batch(case)
    result = pipeline.process(event(records))
    ids = sorted(row["Id"] for row in pg.rows("Employees"))
    # a stream without the images the route needs is the configuration's problem: never dead-lettered (issue 12)
    if on_error == "fail" or "unroutable" in case or "configuration" in case:
        assert result.response == {"batchItemFailures": [{"itemIdentifier": retry_point(records)}]}
        assert result.failure.index == 1 and result.failure.reason.startswith("record 1 "), result.failure.reason
        assert (ids, pg.state("dead_letters")) == ([1], [])
    else:
        assert result.response == {"batchItemFailures": []}, result.failure and result.failure.reason
        assert ids == [1, 3]
        (letter,) = pg.state("dead_letters")
        assert letter["error"] and letter["event_id"] == records[1].get("eventID")


# -- random corruption through the handler -----------------------------------------------------------

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
                    max_leaves=8)


def paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every place inside a record where a value can be replaced."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for name, item in value.items():
            found += paths(item, prefix + (name,))
    return found


@pytest.fixture(params=["fail", "dead_letter"])
def handler_module(request: Any, pg: Any, lambda_handler: Any) -> Any:
    """The Lambda handler module, its config loaded once for all examples."""
    return lambda_handler(pg, template=ROUTE, deletes="soft", on_error=request.param)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(choice=st.integers(0, 10**6), replacement=JSON)
def test_randomly_corrupted_record_never_escapes_the_handler(pg: Any, handler_module: Any, choice: int,
                                                            replacement: Any) -> None:
    pg.conn.execute(sql.SQL("TRUNCATE {}, {}").format(sql.Identifier(pg.schema, "Employees"),
                                                      sql.Identifier(pg.state_schema, "dead_letters")))
    stream = Stream("Employees")
    records = [stream.insert({"Id": 1, "empName": "a"}), stream.insert({"Id": 2, "empName": "b"}),
               stream.insert({"Id": 3, "empName": "c"})]
    places = paths(records[1])
    where = places[choice % len(places)]
    parent = records[1]
    for part in where[:-1]:
        parent = parent[part]
    parent[where[-1]] = replacement
    # WHEN the handler gets it THEN it answers (never raises), and retries start at or before the bad record
    failures = handler_module.handler(event(records), None)["batchItemFailures"]
    ids = sorted(row["Id"] for row in pg.rows("Employees"))
    assert 1 in ids
    if failures:
        assert failures[0]["itemIdentifier"] in (records[0]["dynamodb"]["SequenceNumber"], retry_point(records))
        assert 3 not in ids
    else:
        assert 3 in ids
