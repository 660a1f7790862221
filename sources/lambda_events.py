"""Lambda events of either source: DynamoDB Streams, or Kinesis Data Streams for DynamoDB.

One function may be triggered by both (tables.yaml says which table comes through which),
so each record is parsed by its own ``eventSource``; the pipeline then checks that a
record came through the source its table's routes name.
"""

from __future__ import annotations

from typing import Any

from router.errors import InvalidEventError
from router.records import ChangeRecord
from sources import dynamodb_streams, kinesis

KINESIS_SOURCE = "aws:kinesis"


def parse_event(event: Any) -> list[ChangeRecord]:
    """Parse a Lambda event; raise ``InvalidEventError`` if it is not a batch of stream records."""
    records = event.get("Records") if isinstance(event, dict) else None
    if not isinstance(records, list):
        raise InvalidEventError(
            "not a DynamoDB Streams or Kinesis event: expected an object with a 'Records' list, got "
            + (f"keys {sorted(map(str, event))[:10]}" if isinstance(event, dict) else type(event).__name__)
        )
    return [parse_record(raw, index) for index, raw in enumerate(records)]


def parse_record(raw: Any, index: int) -> ChangeRecord:
    if isinstance(raw, dict) and (raw.get("eventSource") == KINESIS_SOURCE or "kinesis" in raw):
        return kinesis.parse_record(raw, index)
    return dynamodb_streams.parse_record(raw, index)
