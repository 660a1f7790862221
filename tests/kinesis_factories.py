"""Kinesis Data Streams for DynamoDB, as Lambda delivers it: records built from a table's history.

DynamoDB writes each item change to the table's Kinesis data stream as JSON (tableName,
eventName, recordFormat, userIdentity, dynamodb.Keys/NewImage/OldImage/SizeBytes/
ApproximateCreationDateTime); Lambda wraps each Kinesis record with its sequenceNumber and
the data in base64. moto serves Kinesis but does not stream a table into it, so tests and
the demo build the change records here, the way the developer guide shows them.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable
from typing import Any

from factories import ACCOUNT, REGION, wire

from sources.kinesis import lambda_record

KINESIS_STREAM = "changes"


def kinesis_arn(name: str = KINESIS_STREAM) -> str:
    return f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{name}"


def change_data(table: str, event_name: str, keys: dict[str, Any], new: dict[str, Any] | None,
                old: dict[str, Any] | None, created: int, event_id: str = "0") -> dict[str, Any]:
    """One DynamoDB change as it appears in ``kinesis.data`` (images in the wire format)."""
    body: dict[str, Any] = {"ApproximateCreationDateTime": created, "Keys": keys, "SizeBytes": 100}
    if new is not None:
        body["NewImage"] = new
    if old is not None:
        body["OldImage"] = old
    return {"awsRegion": REGION, "eventID": event_id, "eventName": event_name, "userIdentity": None,
            "recordFormat": "application/json", "tableName": table, "dynamodb": body, "eventSource": "aws:dynamodb"}


class KinesisStream:
    """A Kinesis data stream carrying DynamoDB tables: each ``put`` is one delivery of a change,
    with the next sequenceNumber (a duplicate is a second put of the same change)."""

    def __init__(self, name: str = KINESIS_STREAM, start: int = 49590338271490256608559692538361571095921575989136588898):
        self.arn = kinesis_arn(name)
        self._sequence = itertools.count(start, 7)

    def put(self, change: dict[str, Any], partition_key: str = "0") -> dict[str, Any]:
        data = json.dumps(change, separators=(",", ":")).encode()
        return lambda_record(data, self.arn, str(next(self._sequence)), partition_key)

    def puts(self, changes: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        return [self.put(change) for change in changes]


class Table:
    """A DynamoDB table's items and the change records its writes produce (NEW_AND_OLD images)."""

    def __init__(self, name: str = "Employees", key: tuple[str, ...] = ("Id",)):
        self.name, self.key = name, key
        self.items: dict[tuple[Any, ...], dict[str, Any]] = {}
        self.changes: list[dict[str, Any]] = []

    def put(self, item: dict[str, Any], created: int) -> dict[str, Any]:
        slot = tuple(item[k] for k in self.key)
        old = self.items.get(slot)
        self.items[slot] = dict(item)
        return self._change("MODIFY" if old is not None else "INSERT", slot, wire(item), old, created)

    def update(self, key: dict[str, Any], assign: dict[str, Any], created: int) -> dict[str, Any]:
        slot = tuple(key[k] for k in self.key)
        old = self.items.get(slot)
        return self.put({**(old or key), **assign}, created) if old is not None else self.put({**key, **assign}, created)

    def delete(self, key: dict[str, Any], created: int) -> dict[str, Any] | None:
        slot = tuple(key[k] for k in self.key)
        old = self.items.pop(slot, None)
        return None if old is None else self._change("REMOVE", slot, None, old, created)

    def _change(self, name: str, slot: tuple[Any, ...], new: dict[str, Any] | None, old: dict[str, Any] | None,
                created: int) -> dict[str, Any]:
        keys = wire(dict(zip(self.key, slot)))
        change = change_data(self.name, name, keys, new, None if old is None else wire(old), created,
                             event_id=str(len(self.changes)))
        self.changes.append(change)
        return change
