"""Where a route's version comes from: the number the version guard compares.

- ``sequence_number``: the DynamoDB Streams SequenceNumber (the default; DynamoDB Streams only).
- ``approximate_creation_time``: ApproximateCreationDateTime in epoch microseconds, whatever the
  precision it was delivered in (Kinesis only: DynamoDB Streams round it down to the second).
- ``{attribute: NAME}``: an item attribute the application maintains, a whole number (a
  counter, epoch milliseconds) or ISO-8601 text (taken as epoch microseconds), followed by
  one digit: 0 for a write, 1 for a delete. A REMOVE takes the attribute from its OldImage,
  so without that digit it would tie with the write it deletes (a DeleteItem does not bump
  the application's counter) and the guard, which lets only newer versions through, would
  keep the row. Version 5 is stored as 50; its deletion as 51; a re-created item at 6, 60.

A backfill record is version 0 whatever the route says: below every stream version (sequence
numbers and creation times are positive; attribute versions are refused below 0), so the
stream always wins the hand-over and a tombstone always stops a backfilled item.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal, InvalidOperation

from router.errors import RecordError
from router.model import VersionSpec
from router.modes import SourceKind, VersionSource
from router.records import EPOCH, ChangeRecord

MAX_VERSION = 10**38 - 1  # what every sink stores exactly (Redshift: DECIMAL(38,0))
MAX_ATTRIBUTE = MAX_VERSION // 10  # room for the write/delete digit

VersionReader = Callable[[ChangeRecord], int]


def version_reader(spec: VersionSpec) -> VersionReader:
    """``record -> version`` for one route's ``version:``."""
    if spec.source == VersionSource.APPROXIMATE_CREATION_TIME:
        return _unless_backfill(_creation_time)
    if spec.source == VersionSource.ATTRIBUTE:
        attribute = spec.attribute
        assert attribute is not None
        return _unless_backfill(lambda record: _attribute(record, attribute))
    return lambda record: record.version


def _unless_backfill(read: VersionReader) -> VersionReader:
    def version(record: ChangeRecord) -> int:
        return record.version if record.source == SourceKind.BACKFILL else read(record)
    return version


def _creation_time(record: ChangeRecord) -> int:
    if record.created_us is None:
        raise RecordError("record has no ApproximateCreationDateTime, which this route's version "
                          "(approximate_creation_time) is")
    return record.created_us


def _attribute(record: ChangeRecord, attribute: str) -> int:
    image_name, image = ("OldImage", record.old_image) if record.is_delete else ("NewImage", record.new_image)
    av = (image or {}).get(attribute)
    if av is None and record.is_delete:
        av = (record.keys or {}).get(attribute)
    if not isinstance(av, dict) or len(av) != 1:
        raise RecordError(f"version attribute {attribute!r} is absent from the {image_name} (every item must carry "
                          "it; a REMOVE needs a stream that sends OldImage)")
    ((tag, payload),) = av.items()
    if tag == "N" and isinstance(payload, str):
        return _whole_number(attribute, payload) * 10 + (1 if record.is_delete else 0)
    if tag == "S" and isinstance(payload, str):
        return _iso_time(attribute, payload) * 10 + (1 if record.is_delete else 0)
    raise RecordError(f"version attribute {attribute!r} is of type {tag} (expected a number or ISO-8601 text)",
                      f"version attribute {attribute!r} is of type {tag}")


def _whole_number(attribute: str, text: str) -> int:
    try:
        number = Decimal(text)
    except InvalidOperation:
        number = Decimal("NaN")
    if not number.is_finite() or number != number.to_integral_value() or not 0 <= number <= MAX_ATTRIBUTE:
        raise RecordError(f"version attribute {attribute!r} is {text} (expected a whole number from 0 to 10^37-1: "
                          "a counter or epoch milliseconds; or ISO-8601 text)",
                          f"version attribute {attribute!r} is not a whole number from 0 to 10^37-1")
    return int(number)


def _iso_time(attribute: str, text: str) -> int:
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise RecordError(f"version attribute {attribute!r} is {text!r} (expected ISO-8601 text such as "
                          "2024-05-01T12:00:00.123456Z, or a number)",
                          f"version attribute {attribute!r} is not ISO-8601 text") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)  # no offset: UTC, as DynamoDB users write them
    delta = moment - EPOCH
    micros = (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
    if micros < 0:
        raise RecordError(f"version attribute {attribute!r} is {text!r}, before 1970 (versions start at 0)",
                          f"version attribute {attribute!r} is before 1970")
    return micros


def describe(spec: VersionSpec) -> str:
    return f"{{attribute: {spec.attribute}}}" if spec.source == VersionSource.ATTRIBUTE else str(spec.source)


def check_source(record: ChangeRecord, route_kinesis: str | None, route_name: str) -> str | None:
    """Why a record cannot feed this route because it came through the other source (None: it can)."""
    if record.source == SourceKind.KINESIS and route_kinesis is None:
        return (f"table {record.table} arrived through the Kinesis data stream {record.stream!r}, but route "
                f"{route_name!r} reads it from the table's DynamoDB stream (no kinesis: key): set kinesis: "
                f"{record.stream} on the routes of {record.table}, or remove this function's trigger on that stream")
    if record.source == SourceKind.DYNAMODB_STREAMS and route_kinesis is not None:
        return (f"table {record.table} arrived through its DynamoDB stream, but route {route_name!r} reads it from "
                f"the Kinesis data stream {route_kinesis!r} (kinesis: {route_kinesis}): remove kinesis: from the "
                "routes of this table, or remove this function's trigger on the table's DynamoDB stream")
    if record.source == SourceKind.KINESIS and record.stream != route_kinesis:
        return (f"table {record.table} arrived through the Kinesis data stream {record.stream!r}, but route "
                f"{route_name!r} reads it from the Kinesis data stream {route_kinesis!r}")
    return None
