"""Lambda events to typed change records: the saved events, malformed records, ARNs, lambda_record()."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import pytest
from factories import ACCOUNT, EVENTS, REGION, load_event, stream_arn

from router import attrs
from router.errors import InvalidEventError
from router.records import ChangeRecord
from sources import lambda_events
from sources.dynamodb_streams import lambda_record, parse_record, table_from_arn
from sources.lambda_events import parse_event

CREATED = 1_700_000_000.0
KINESIS = ["49657616474389125408934519236126394011318427648836681730",
           "49657616474389125408934519236127602937138042278011387906",
           "49657616474389125408934519236128811862957656907186094082"]


def summary(record: ChangeRecord) -> tuple[Any, ...]:
    """The parsed fields of a record, with Keys converted, as one comparable tuple."""
    keys = {name: attrs.to_python(av) for name, av in (record.keys or {}).items()}
    return (record.index, record.table, record.event_name, record.sequence_number, record.version, keys,
            sorted(record.new_image or {}), sorted(record.old_image or {}), record.created, record.error)


EVENT_FILES = [
    # the reference article's put-item on a NEW_IMAGE stream
    ("employees_put_2001.json", [
        (0, "Employees", "INSERT", "111000000000000000000001", 111000000000000000000001, {"Id": 2001},
         ["Id", "empDepartment", "empName"], [], CREATED, None),
    ]),
    # put, update and delete of item 2001: a NEW_IMAGE REMOVE carries Keys only
    ("employees_put_update_delete_2001.json", [
        (0, "Employees", "INSERT", "111000000000000000000001", 111000000000000000000001, {"Id": 2001},
         ["Id", "empDepartment", "empName"], [], CREATED, None),
        (1, "Employees", "MODIFY", "111000000000000000000101", 111000000000000000000101, {"Id": 2001},
         ["Id", "empDepartment", "empName"], [], CREATED, None),
        (2, "Employees", "REMOVE", "111000000000000000000201", 111000000000000000000201, {"Id": 2001},
         [], [], CREATED, None),
    ]),
    # a KEYS_ONLY delete
    ("employees_delete_keys_only.json", [
        (0, "Employees", "REMOVE", "111000000000000000000501", 111000000000000000000501, {"Id": 2001},
         [], [], CREATED, None),
    ]),
    # NEW_AND_OLD_IMAGES: a MODIFY with both images, then a REMOVE with the OldImage
    ("employees_modify_remove_new_and_old.json", [
        (0, "Employees", "MODIFY", "111000000000000000000701", 111000000000000000000701, {"Id": 7},
         ["Id", "empDepartment", "empName"], ["Id", "empDepartment", "empName"], CREATED, None),
        (1, "Employees", "REMOVE", "111000000000000000000801", 111000000000000000000801, {"Id": 7},
         [], ["Id", "empDepartment", "empName"], CREATED, None),
    ]),
    # Kinesis Data Streams for DynamoDB (the developer guide's shape): a MODIFY before its INSERT, a REMOVE;
    # no per-item SequenceNumber (version 0: the route's version: decides), creation time in milliseconds
    ("kinesis_employees_changes.json", [
        (0, "Employees", "MODIFY", KINESIS[0], 0, {"Id": 1}, ["Id", "empDepartment", "empName"],
         ["Id", "empDepartment", "empName"], 1732957421.377, None),
        (1, "Employees", "INSERT", KINESIS[1], 0, {"Id": 1}, ["Id", "empDepartment", "empName"], [], 1732957420.604, None),
        (2, "Employees", "REMOVE", KINESIS[2], 0, {"Id": 2}, [], ["Id", "empName"], 1732957425.002, None),
    ]),
]


def test_every_saved_event_is_covered() -> None:
    assert sorted(name for name, _ in EVENT_FILES) == sorted(p.name for p in EVENTS.glob("*.json"))


@pytest.mark.parametrize("name, expected", EVENT_FILES)
def test_saved_events_parse(name: str, expected: list[tuple[Any, ...]]) -> None:
    # GIVEN a saved Lambda event WHEN parsed (as the handler does, by each record's source) THEN each record
    # is typed, in batch order
    records = lambda_events.parse_event(load_event(name))
    assert [summary(r) for r in records] == expected
    assert [r.is_delete for r in records] == [s[2] == "REMOVE" for s in expected]


def test_parsed_record_keeps_raw_record_and_says_where_it_is() -> None:
    event = load_event("employees_put_2001.json")
    (record,) = parse_event(event)
    # the raw record is kept as delivered, for dead letters
    assert record.raw == event["Records"][0]
    assert record.event_id == "00000001"
    # the message locator names position, table and SequenceNumber, never contents
    assert record.where == "record 0 (table Employees, SequenceNumber 111000000000000000000001)"
    assert record.created_at == dt.datetime(2023, 11, 14, 22, 13, 20, tzinfo=dt.UTC)


def test_sequence_numbers_compare_as_numbers() -> None:
    # GIVEN SequenceNumbers of different lengths ("9" sorts after "10" as text)
    event = load_event("employees_put_2001.json")
    first, second = copy.deepcopy(event["Records"][0]), copy.deepcopy(event["Records"][0])
    first["dynamodb"]["SequenceNumber"], second["dynamodb"]["SequenceNumber"] = "9", "10"
    # WHEN parsed THEN versions are numbers, in stream order
    records = parse_event({"Records": [first, second]})
    assert [r.version for r in records] == [9, 10]
    assert records[0].version < records[1].version


GOOD = load_event("employees_put_2001.json")["Records"][0]
SN = GOOD["dynamodb"]["SequenceNumber"]
ARN_HELP = "is not a DynamoDB stream ARN (arn:aws:dynamodb:...:table/NAME/stream/...)"


def body(**changes: Any) -> Callable[[dict[str, Any]], None]:
    """A mutation of the record's ``dynamodb`` object: set (or, with None, remove) fields."""
    def mutate(raw: dict[str, Any]) -> None:
        for name, value in changes.items():
            if value is None:
                raw["dynamodb"].pop(name)
            else:
                raw["dynamodb"][name] = value
    return mutate


MALFORMED = [
    # no dynamodb object at all: no SequenceNumber either
    pytest.param(lambda r: r.pop("dynamodb"), ("Employees", None, "record has no 'dynamodb' object"),
                 id="no-dynamodb"),
    # dynamodb is not an object
    pytest.param(lambda r: r.update(dynamodb="x"), ("Employees", None, "record has no 'dynamodb' object"),
                 id="dynamodb-not-object"),
    # an eventName that is not INSERT/MODIFY/REMOVE: the SequenceNumber is still known for the retry
    pytest.param(lambda r: r.update(eventName="UPSERT"),
                 ("Employees", SN, "unknown eventName 'UPSERT' (expected one of INSERT, MODIFY, REMOVE)"),
                 id="unknown-event-name"),
    # no eventName
    pytest.param(lambda r: r.pop("eventName"),
                 ("Employees", SN, "unknown eventName None (expected one of INSERT, MODIFY, REMOVE)"),
                 id="no-event-name"),
    # SequenceNumbers are decimal strings
    pytest.param(body(SequenceNumber="12a"),
                 ("Employees", "12a", "invalid SequenceNumber '12a' (expected a decimal string)"),
                 id="sequence-with-letter"),
    pytest.param(body(SequenceNumber="-1"),
                 ("Employees", "-1", "invalid SequenceNumber '-1' (expected a decimal string)"),
                 id="negative-sequence"),
    pytest.param(body(SequenceNumber=""),
                 ("Employees", "", "invalid SequenceNumber '' (expected a decimal string)"),
                 id="empty-sequence"),
    pytest.param(body(SequenceNumber=" 12"),
                 ("Employees", " 12", "invalid SequenceNumber ' 12' (expected a decimal string)"),
                 id="sequence-with-space"),
    # a number instead of a string
    pytest.param(body(SequenceNumber=123),
                 ("Employees", None, "invalid SequenceNumber 123 (expected a decimal string)"),
                 id="numeric-sequence"),
    # no SequenceNumber
    pytest.param(body(SequenceNumber=None),
                 ("Employees", None, "invalid SequenceNumber None (expected a decimal string)"),
                 id="no-sequence"),
    # a Unicode digit that is not a decimal digit: refused like any other bad SequenceNumber, not a crash
    pytest.param(body(SequenceNumber="²"),
                 ("Employees", "²", "invalid SequenceNumber '²' (expected a decimal string)"),
                 id="superscript-digit-sequence"),
    # Keys missing or empty
    pytest.param(body(Keys=None), ("Employees", SN, "record has no 'Keys'"), id="no-keys"),
    pytest.param(body(Keys={}), ("Employees", SN, "record has no 'Keys'"), id="empty-keys"),
    # images that are not objects
    pytest.param(body(NewImage=[]), ("Employees", SN, "'NewImage' is not an object"), id="new-image-not-object"),
    pytest.param(body(OldImage="x"), ("Employees", SN, "'OldImage' is not an object"), id="old-image-not-object"),
    # a creation time that is not epoch seconds
    pytest.param(body(ApproximateCreationDateTime="yesterday"),
                 ("Employees", SN, "invalid ApproximateCreationDateTime 'yesterday' (expected epoch seconds)"),
                 id="creation-time-text"),
    pytest.param(body(ApproximateCreationDateTime=True),
                 ("Employees", SN, "invalid ApproximateCreationDateTime True (expected epoch seconds)"),
                 id="creation-time-boolean"),
    # ARNs that name no DynamoDB table: the table is unknown
    pytest.param(lambda r: r.update(eventSourceARN="arn:aws:kinesis:us-east-1:1:stream/x"),
                 (None, SN, f"eventSourceARN 'arn:aws:kinesis:us-east-1:1:stream/x' {ARN_HELP}"), id="kinesis-arn"),
    pytest.param(lambda r: r.update(eventSourceARN="nonsense"), (None, SN, f"eventSourceARN 'nonsense' {ARN_HELP}"),
                 id="nonsense-arn"),
    pytest.param(lambda r: r.pop("eventSourceARN"), (None, SN, f"eventSourceARN None {ARN_HELP}"), id="no-arn"),
]


@pytest.mark.parametrize("mutate, expected", MALFORMED)
def test_malformed_record_is_marked_not_raised(mutate: Callable[[dict[str, Any]], None],
                                               expected: tuple[Any, ...]) -> None:
    # GIVEN a good record with one thing broken
    raw = copy.deepcopy(GOOD)
    mutate(raw)
    # WHEN parsed THEN the record carries the error (the route's on_error decides), with what could be read
    record = parse_record(raw, 3)
    assert (record.table, record.sequence_number, record.error) == expected
    assert record.index == 3 and record.raw is raw


@pytest.mark.parametrize("raw", ["x", None, 42, ["a"]])
def test_record_that_is_not_an_object(raw: Any) -> None:
    record = parse_record(raw, 5)
    assert (record.index, record.table, record.sequence_number, record.error) == (
        5, None, None, "record is not an object")
    assert record.raw == {"value": repr(raw)}


NOT_EVENTS = [
    # a list of records without the envelope
    ([], "not a DynamoDB Streams or Kinesis event: expected an object with a 'Records' list, got list"),
    (None, "not a DynamoDB Streams or Kinesis event: expected an object with a 'Records' list, got NoneType"),
    ("x", "not a DynamoDB Streams or Kinesis event: expected an object with a 'Records' list, got str"),
    # an object without Records
    ({}, "not a DynamoDB Streams or Kinesis event: expected an object with a 'Records' list, got keys []"),
    # the wrong case (an API Gateway or test event)
    ({"records": []}, "not a DynamoDB Streams or Kinesis event: expected an object with a 'Records' list, got keys ['records']"),
    # Records that is not a list
    ({"Records": {}}, "not a DynamoDB Streams or Kinesis event: expected an object with a 'Records' list, got keys ['Records']"),
]


@pytest.mark.parametrize("event, message", NOT_EVENTS)
def test_invalid_event_raises(event: Any, message: str) -> None:
    with pytest.raises(InvalidEventError) as caught:
        parse_event(event)
    assert str(caught.value) == message


def test_empty_batch_parses_to_nothing() -> None:
    assert parse_event({"Records": []}) == []


ARNS = [
    # the shape Lambda sends
    (stream_arn("Employees"), "Employees"),
    # table names may hold dots, dashes and underscores
    (f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/My.Table-1_x/stream/2024-01-01T00:00:00.000", "My.Table-1_x"),
    # other partitions
    ("arn:aws-cn:dynamodb:cn-north-1:123456789012:table/Orders/stream/label", "Orders"),
    ("arn:aws-us-gov:dynamodb:us-gov-west-1:123456789012:table/Orders/stream/label", "Orders"),
    # not DynamoDB
    ("arn:aws:kinesis:us-east-1:123456789012:stream/Orders", None),
    # DynamoDB, but not a table
    ("arn:aws:dynamodb:us-east-1:123456789012:global-table/Orders", None),
    # an empty table name
    ("arn:aws:dynamodb:us-east-1:123456789012:table//stream/label", None),
    # too few parts
    ("arn:aws:dynamodb:us-east-1", None),
    # not strings
    (None, None),
    (42, None),
]


@pytest.mark.parametrize("arn, table", ARNS)
def test_table_from_arn(arn: Any, table: str | None) -> None:
    name, error = table_from_arn(arn)
    assert name == table
    assert error == (None if table else f"eventSourceARN {arn!r} {ARN_HELP}")


def boto3_record() -> dict[str, Any]:
    """A record as the Streams API returns it through boto3: a datetime, and bytes in B and BS."""
    return {
        "eventID": "e1", "eventName": "MODIFY", "eventVersion": "1.1", "eventSource": "aws:dynamodb",
        "awsRegion": REGION,
        "dynamodb": {
            "ApproximateCreationDateTime": dt.datetime(2023, 11, 14, 22, 13, 20, tzinfo=dt.UTC),
            "Keys": {"Id": {"N": "1"}},
            "NewImage": {"Id": {"N": "1"}, "photo": {"B": b"\x00\x01"}, "docs": {"BS": [b"a", b"b"]},
                         "meta": {"M": {"thumb": {"B": b"\xff"}, "parts": {"L": [{"B": b"\x01"}, {"S": "x"}]}}}},
            "OldImage": {"Id": {"N": "1"}, "photo": {"B": b"\x02"}},
            "SequenceNumber": "100", "SizeBytes": 42, "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
    }


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def test_lambda_record_converts_a_boto3_record() -> None:
    # GIVEN a get_records record and its stream ARN
    raw, arn = boto3_record(), stream_arn("Employees")
    original = copy.deepcopy(raw)
    # WHEN converted to the Lambda shape
    converted = lambda_record(raw, arn)
    # THEN the time is epoch seconds, binary is base64 at every depth, the ARN is added
    assert converted == {**original, "eventSourceARN": arn, "dynamodb": {
        **original["dynamodb"],
        "ApproximateCreationDateTime": CREATED,
        "NewImage": {"Id": {"N": "1"}, "photo": {"B": b64(b"\x00\x01")}, "docs": {"BS": [b64(b"a"), b64(b"b")]},
                     "meta": {"M": {"thumb": {"B": b64(b"\xff")},
                                    "parts": {"L": [{"B": b64(b"\x01")}, {"S": "x"}]}}}},
        "OldImage": {"Id": {"N": "1"}, "photo": {"B": b64(b"\x02")}},
    }}
    # AND it is plain JSON, as Lambda would deliver it, and the input is untouched
    assert json.loads(json.dumps(converted)) == converted
    assert raw == original


def test_converted_record_parses_back_to_the_same_values() -> None:
    # GIVEN a converted boto3 record WHEN parsed and its images converted THEN the bytes come back
    record = parse_record(lambda_record(boto3_record(), stream_arn("Employees")), 0)
    assert (record.table, record.event_name, record.version, record.created, record.error) == (
        "Employees", "MODIFY", 100, CREATED, None)
    image = {name: attrs.to_python(av) for name, av in record.new_image.items()}
    assert image == {"Id": 1, "photo": b"\x00\x01", "docs": [b"a", b"b"],
                     "meta": {"thumb": b"\xff", "parts": [b"\x01", "x"]}}


def test_parse_record_accepts_a_datetime_creation_time() -> None:
    # GIVEN a boto3 record given straight to parse_record (with its ARN) WHEN parsed THEN the time is epoch seconds
    raw = {**boto3_record(), "eventSourceARN": stream_arn("Employees")}
    assert parse_record(raw, 0).created == CREATED
