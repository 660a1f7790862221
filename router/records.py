"""Change records: one DynamoDB item change, whatever source delivered it.

Sources (Lambda events of DynamoDB Streams or Kinesis, the Streams API, a backfill)
build these; the core routes, transforms and reduces them. Images stay in the wire
format (AttributeValues); ``router.attrs`` converts what a route reads.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from router.modes import SourceKind, ViewType

EVENT_NAMES = ("INSERT", "MODIFY", "REMOVE")
NEW_AND_OLD, NEW_IMAGE = ViewType.NEW_AND_OLD_IMAGES, ViewType.NEW_IMAGE
KEYS_ONLY, OLD_IMAGE = ViewType.KEYS_ONLY, ViewType.OLD_IMAGE
VIEW_TYPES = tuple(ViewType)
# DynamoDB Streams SequenceNumbers have up to 40 digits and Kinesis ones 56; past Python's int() limit
# (4,300 digits) a 5,000-digit one would raise out of the handler instead of failing its record.
MAX_SEQUENCE_DIGITS = 128
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
TTL_IDENTITY = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}  # the userIdentity of a TTL expiry


@dataclass(slots=True, eq=False)
class ChangeRecord:
    """One stream record. ``error`` is set when the record is malformed."""

    index: int                     # position in the batch
    raw: dict[str, Any]            # the record as delivered, for dead letters
    table: str | None
    event_name: str | None = None
    keys: dict[str, Any] | None = None
    new_image: dict[str, Any] | None = None
    old_image: dict[str, Any] | None = None
    sequence_number: str | None = None
    version: int = 0
    created: float | None = None   # ApproximateCreationDateTime, epoch seconds
    event_id: str | None = None
    error: str | None = None
    source: SourceKind = SourceKind.DYNAMODB_STREAMS
    stream: str | None = None      # the Kinesis data stream it came through
    created_us: int | None = None  # ApproximateCreationDateTime in exact epoch microseconds (Kinesis)
    view: str | None = None        # StreamViewType, when the record says (Lambda's DynamoDB Streams events do)
    user_identity: dict[str, Any] | None = None  # who made the change; DynamoDB's TTL for an expiry

    @property
    def is_expiry(self) -> bool:
        """A REMOVE made by DynamoDB's TTL process, not by a user
        (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/time-to-live-ttl-streams.html)."""
        identity = self.user_identity
        return (self.event_name == "REMOVE" and identity is not None
                and identity.get("type") == TTL_IDENTITY["type"] and identity.get("principalId") == TTL_IDENTITY["principalId"])

    @property
    def is_delete(self) -> bool:
        return self.event_name == "REMOVE"

    @property
    def created_at(self) -> dt.datetime | None:
        return None if self.created is None else EPOCH + dt.timedelta(seconds=self.created)

    @property
    def where(self) -> str:
        """Where the record is, for messages: never its contents."""
        if self.source == SourceKind.KINESIS:
            return f"record {self.index} (table {self.table}, Kinesis sequenceNumber {self.sequence_number})"
        return f"record {self.index} (table {self.table}, SequenceNumber {self.sequence_number})"


def is_sequence_number(value: Any) -> bool:
    """A decimal string of ASCII digits (``str.isdigit`` also accepts '²', which ``int`` refuses)."""
    return isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= MAX_SEQUENCE_DIGITS


def take_images(record: ChangeRecord, body: dict[str, Any]) -> str | None:
    """Set ``keys``, ``new_image`` and ``old_image`` from a change's ``dynamodb`` object, or say what is wrong."""
    keys, new_image, old_image = body.get("Keys"), body.get("NewImage"), body.get("OldImage")
    if not isinstance(keys, dict) or not keys:
        return "record has no 'Keys'"
    for name, image in (("NewImage", new_image), ("OldImage", old_image)):
        if image is not None and not isinstance(image, dict):
            return f"'{name}' is not an object"
    record.keys, record.new_image, record.old_image = keys, new_image, old_image
    return None
