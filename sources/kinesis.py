"""Lambda events of Kinesis Data Streams for DynamoDB to typed change records.

With a Kinesis data stream as a table's change destination, Lambda delivers Kinesis
records (``eventSource: aws:kinesis``): ``kinesis.sequenceNumber`` (what
``batchItemFailures`` names), ``kinesis.partitionKey`` and ``kinesis.data``, base64 of the
DynamoDB change as JSON: ``tableName``, ``eventName``, ``recordFormat``, ``userIdentity``,
``dynamodb.Keys/NewImage/OldImage/SizeBytes/ApproximateCreationDateTime``. There is no
per-item SequenceNumber, and records "might appear in a different sequence than the item
changes occurred" and "more than once" (Amazon DynamoDB Developer Guide, "Using Kinesis
Data Streams to capture changes to DynamoDB"): a route's ``version:`` orders them instead.

ApproximateCreationDateTime is epoch milliseconds, or microseconds when the table's
``ApproximateCreationDateTimePrecision`` is MICROSECOND; it is kept as exact microseconds
(``created_us``), whichever the precision, so that a table switched from one precision to
the other keeps versions that only grow.
"""

from __future__ import annotations

import base64
import binascii
import json
from functools import lru_cache
from typing import Any

from router.modes import SourceKind
from router.records import EVENT_NAMES, ChangeRecord, is_sequence_number, take_images

RECORD_FORMAT = "application/json"
MICROSECONDS_FROM = 10**14  # below: milliseconds (until the year 5138); above: microseconds (after 1973-03-03)
_MAX_MICROSECONDS = 253402300799999999  # 9999-12-31T23:59:59.999999Z


def parse_record(raw: Any, index: int) -> ChangeRecord:
    """One Lambda Kinesis record; a malformed one comes back with ``error`` set."""
    if not isinstance(raw, dict):
        return ChangeRecord(index, {"value": repr(raw)[:200]}, None, source=SourceKind.KINESIS,
                            error="record is not an object")
    kinesis = raw.get("kinesis")
    kinesis = kinesis if isinstance(kinesis, dict) else {}
    sequence = kinesis.get("sequenceNumber")
    record = ChangeRecord(index, raw, None, source=SourceKind.KINESIS,
                          sequence_number=sequence if isinstance(sequence, str) else None)
    record.stream, record.error = stream_from_arn(raw.get("eventSourceARN"))
    if record.error is None and not is_sequence_number(sequence):
        record.error = f"invalid kinesis.sequenceNumber {sequence!r} (expected a decimal string)"
    if record.error is None:
        change, record.error = decode_data(kinesis.get("data"))
        if change is not None:
            record.error = _fill(record, change)
    return record


def decode_data(data: Any) -> tuple[dict[str, Any] | None, str | None]:
    """``kinesis.data`` as the DynamoDB change it carries: ``(change, None)`` or ``(None, reason)``."""
    if not isinstance(data, str):
        return None, "kinesis.data is missing or not a string (expected base64 text)"
    try:
        text = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return None, "kinesis.data is not base64"
    try:
        change = json.loads(text)
    except (UnicodeDecodeError, ValueError):  # JSONDecodeError is a ValueError
        return None, "kinesis.data is not JSON (expected a DynamoDB change record)"
    if not isinstance(change, dict) or not isinstance(change.get("dynamodb"), dict) or "tableName" not in change:
        return None, ("kinesis.data is not a DynamoDB change record (expected an object with tableName, eventName "
                      "and dynamodb: is this stream the table's Kinesis streaming destination?)")
    return change, None


def _fill(record: ChangeRecord, change: dict[str, Any]) -> str | None:
    table, event_name, body = change.get("tableName"), change.get("eventName"), change["dynamodb"]
    record.event_id = change.get("eventID") if isinstance(change.get("eventID"), str) else None
    identity = change.get("userIdentity")
    record.user_identity = identity if isinstance(identity, dict) else None  # a TTL expiry's (router.records)
    if not isinstance(table, str) or not table:
        return f"invalid tableName {table!r} in kinesis.data (expected the DynamoDB table name)"
    record.table = table
    record_format = change.get("recordFormat", RECORD_FORMAT)
    if record_format != RECORD_FORMAT:
        return f"unsupported recordFormat {record_format!r} (expected {RECORD_FORMAT})"
    if event_name not in EVENT_NAMES:
        return f"unknown eventName {event_name!r} (expected one of {', '.join(EVENT_NAMES)})"
    error = take_images(record, body)
    if error is not None:
        return error
    record.event_name = event_name
    return _created(record, body.get("ApproximateCreationDateTime"))


def _created(record: ChangeRecord, value: Any) -> str | None:
    if value is None:
        return None  # only a route whose version is approximate_creation_time needs it: it says so
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        return (f"invalid ApproximateCreationDateTime {value!r} (expected epoch milliseconds or microseconds, "
                "a whole number)")
    micros = value if value >= MICROSECONDS_FROM else value * 1000
    if micros > _MAX_MICROSECONDS:
        return f"invalid ApproximateCreationDateTime {value!r} (after the year 9999)"
    record.created_us, record.created = micros, micros / 1_000_000
    return None


@lru_cache(maxsize=256)
def _arn_stream(arn: str) -> str | None:
    # arn:PARTITION:kinesis:REGION:ACCOUNT:stream/NAME
    parts = arn.split(":", 5)
    kind, _, name = parts[5].partition("/") if len(parts) == 6 and parts[2] == "kinesis" else ("", "", "")
    return name if kind == "stream" and name and "/" not in name else None


def stream_from_arn(arn: Any) -> tuple[str | None, str | None]:
    """``(stream name, None)``, or ``(None, error)`` for an ARN that names no Kinesis data stream."""
    name = _arn_stream(arn) if isinstance(arn, str) else None
    if name is None:
        return None, f"eventSourceARN {arn!r} is not a Kinesis data stream ARN (arn:aws:kinesis:...:stream/NAME)"
    return name, None


def lambda_record(data: bytes, stream_arn: str, sequence_number: str, partition_key: str,
                  shard_id: str = "shardId-000000000000", arrived: float | None = None) -> dict[str, Any]:
    """A record from the Kinesis API (``get_records``: raw ``Data`` bytes) as Lambda delivers it."""
    region = stream_arn.split(":")[3] if stream_arn.count(":") >= 5 else ""
    return {
        "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": partition_key, "sequenceNumber": sequence_number,
                    "data": base64.b64encode(data).decode("ascii"),
                    **({"approximateArrivalTimestamp": arrived} if arrived is not None else {})},
        "eventSource": "aws:kinesis", "eventVersion": "1.0", "eventID": f"{shard_id}:{sequence_number}",
        "eventName": "aws:kinesis:record", "awsRegion": region, "eventSourceARN": stream_arn,
    }
