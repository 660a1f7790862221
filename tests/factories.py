"""Build test configs (tables.yaml as data), DynamoDB Streams records the way Lambda delivers
them, and read moto's streams."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from boto3.dynamodb.types import TypeSerializer

from sources.dynamodb_streams import lambda_record

EVENTS = Path(__file__).parent / "events"
REGION, ACCOUNT = "us-east-1", "123456789012"
_serializer = TypeSerializer()

# -- configs: tables.yaml as data ---------------------------------------------------------------

# The spine's Employees route (the reference article's table): three columns, two with a fallback.
EMPLOYEE_COLUMNS: dict[str, dict[str, Any]] = {
    "Id": {"from": "Id", "type": "bigint"},
    "Name": {"from": "empName", "type": "varchar(20)", "fallback": "NA"},
    "Department": {"from": "empDepartment", "type": "varchar(10)", "fallback": "NA"},
}


def route(table: str = "Employees", *, source: str = "Employees", sink: str = "aurora",
          key: Iterable[str] = ("Id",), columns: dict[str, Any] | None = None, **options: Any) -> dict[str, Any]:
    """One route of tables.yaml, as data: the Employees route unless told otherwise."""
    return {"source": source, "sink": sink, "table": table, "key": list(key),
            "columns": EMPLOYEE_COLUMNS if columns is None else columns, **options}


def postgres(state_schema: str | None = None, **options: Any) -> dict[str, Any]:
    """A postgres sink on $DATABASE_URL, unless ``options`` name a ``secret`` (or another ``dsn``)."""
    state = {} if state_schema is None else {"state_schema": state_schema}
    connection = {} if "secret" in options else {"dsn": "${DATABASE_URL}"}
    return {"type": "postgres", **connection, **state, **options}


def redshift(state_schema: str | None = None, **options: Any) -> dict[str, Any]:
    """A Redshift Serverless sink; ``distribution: auto`` (DISTKEY/SORTKEY are Redshift-only)."""
    state = {} if state_schema is None else {"state_schema": state_schema}
    return {"type": "redshift", "workgroup": "analytics", "database": "dev", "distribution": "auto",
            **state, **options}


MEMORY = {"type": "memory"}  # the tests' in-memory sink (memory_sink.py)


def tables(routes: dict[str, dict[str, Any]], sinks: dict[str, dict[str, Any]], **top: Any) -> dict[str, Any]:
    """A whole tables.yaml, as data (``as_yaml`` writes it; ``write_config`` takes it as it is)."""
    return {"version": 1, **top, "sinks": sinks, "routes": routes}


def as_yaml(config: dict[str, Any]) -> str:
    """The text of a tables.yaml built by ``tables``, in the order it was built."""
    return yaml.safe_dump(config, sort_keys=False, allow_unicode=True)


# -- stream records ---------------------------------------------------------------------------


def stream_arn(table: str, label: str = "2024-01-01T00:00:00.000") -> str:
    return f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}/stream/{label}"


def wire(item: dict[str, Any]) -> dict[str, Any]:
    """A Python item (ints, Decimals, str, bytes, sets...) as DynamoDB AttributeValues."""
    return {name: _serializer.serialize(value) for name, value in item.items()}


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def event(records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    return {"Records": list(records)}


class Stream:
    """Records of one table's stream, numbered in order like a shard's SequenceNumbers."""

    def __init__(self, table: str, key: Iterable[str] = ("Id",), view: str = "NEW_IMAGE", start: int = 10**20):
        self.table, self.key, self.view = table, tuple(key), view
        self.arn = stream_arn(table)
        self._sequence = itertools.count(start, 100)
        self._items: dict[tuple[Any, ...], dict[str, Any]] = {}

    def insert(self, item: dict[str, Any], **kw: Any) -> dict[str, Any]:
        return self._record("INSERT", item, **kw)

    def modify(self, item: dict[str, Any], **kw: Any) -> dict[str, Any]:
        return self._record("MODIFY", item, **kw)

    def remove(self, keys: dict[str, Any], **kw: Any) -> dict[str, Any]:
        return self._record("REMOVE", keys, **kw)

    def _record(self, name: str, item: dict[str, Any], sequence: int | None = None,
                created: float = 1_700_000_000.0) -> dict[str, Any]:
        keys = {k: item[k] for k in self.key}
        slot = tuple(keys.values())
        old = self._items.get(slot)
        body: dict[str, Any] = {"Keys": wire(keys), "StreamViewType": self.view, "SizeBytes": 100,
                                "SequenceNumber": str(next(self._sequence) if sequence is None else sequence),
                                "ApproximateCreationDateTime": dt.datetime.fromtimestamp(created, dt.UTC)}
        if name != "REMOVE" and self.view in ("NEW_IMAGE", "NEW_AND_OLD_IMAGES"):
            body["NewImage"] = wire(item)
        if old is not None and self.view in ("OLD_IMAGE", "NEW_AND_OLD_IMAGES"):
            body["OldImage"] = wire(old)
        if self.view == "KEYS_ONLY":
            body.pop("NewImage", None)
        if name == "REMOVE":
            self._items.pop(slot, None)
        else:
            self._items[slot] = item
        raw = {"eventID": f"{body['SequenceNumber'][-8:]}", "eventName": name, "eventVersion": "1.1",
               "eventSource": "aws:dynamodb", "awsRegion": REGION, "dynamodb": body}
        return lambda_record(raw, self.arn)


def read_stream(streams: Any, stream_arn_: str, iterators: dict[str, str]) -> list[dict[str, Any]]:
    """Everything new on a moto stream since the last call, as Lambda records (shards in order)."""
    records: list[dict[str, Any]] = []
    for shard in streams.describe_stream(StreamArn=stream_arn_)["StreamDescription"]["Shards"]:
        shard_id = shard["ShardId"]
        if shard_id not in iterators:
            iterators[shard_id] = streams.get_shard_iterator(
                StreamArn=stream_arn_, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        response = streams.get_records(ShardIterator=iterators[shard_id])
        iterators[shard_id] = response.get("NextShardIterator") or iterators[shard_id]
        records.extend(lambda_record(r, stream_arn_) for r in response["Records"])
    return records
