"""The hand-over from backfill to stream: what must hold before a backfill writes anything.

The order that leaves no gap is: enable the stream, deploy the trigger reading it from
TRIM_HORIZON, then backfill. Every change made after the stream was enabled then reaches
the target through the stream, with a version that beats the backfill's 0; the backfill
only fills in keys the stream has not touched. That needs a stream (refused without
one), records that do not expire before the trigger reads them (kept 24 hours: warned
about), and, for an export, a stream older than the export's point in time.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from botocore.exceptions import ClientError

from router.errors import BackfillError
from sources.shards import describe_shards

STREAM_RETENTION = dt.timedelta(hours=24)
WARN_AGE = dt.timedelta(hours=20)
STREAM_VIEWS = ("NEW_IMAGE", "NEW_AND_OLD_IMAGES")
MAX_ROOTS = 20  # shards whose first record is looked at: the roots hold the oldest records


def source_table(dynamodb: Any, name: str) -> dict[str, Any]:
    """The ``DescribeTable`` answer for a route's source table."""
    try:
        return dynamodb.describe_table(TableName=name)["Table"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            raise BackfillError(f"DynamoDB table {name!r} (the route's source) does not exist") from None
        raise


def require_stream(table: dict[str, Any]) -> str:
    """The table's stream ARN (``table`` is a ``DescribeTable`` answer), or ``BackfillError``."""
    name = table["TableName"]
    spec = table.get("StreamSpecification") or {}
    arn = table.get("LatestStreamArn")
    if not spec.get("StreamEnabled") or not arn:
        raise BackfillError(f"DynamoDB table {name!r} has no stream, so nothing would carry the changes made during "
                            "and after the backfill: enable one (StreamViewType NEW_IMAGE or NEW_AND_OLD_IMAGES), "
                            "deploy the trigger from TRIM_HORIZON, then backfill")
    if spec.get("StreamViewType") not in STREAM_VIEWS:
        raise BackfillError(f"the stream of DynamoDB table {name!r} has StreamViewType {spec.get('StreamViewType')}: "
                            f"the trigger needs {' or '.join(STREAM_VIEWS)}")
    return arn


def oldest_record(streams: Any, stream_arn: str) -> dt.datetime | None:
    """When the oldest record still on the stream was written (None: the stream is empty)."""
    shards = describe_shards(streams, stream_arn)
    listed = {shard.shard_id for shard in shards}
    oldest: dt.datetime | None = None
    for shard in [s for s in shards if s.parent_id not in listed][:MAX_ROOTS]:
        iterator = streams.get_shard_iterator(StreamArn=stream_arn, ShardId=shard.shard_id,
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        for record in streams.get_records(ShardIterator=iterator, Limit=1).get("Records") or []:
            created = record["dynamodb"].get("ApproximateCreationDateTime")
            if isinstance(created, dt.datetime) and (oldest is None or created < oldest):
                oldest = created
    return oldest


def stream_warnings(streams: Any, table: dict[str, Any], now: dt.datetime | None = None) -> list[str]:
    """Refuse a table without a usable stream; warn when its oldest record is about to expire."""
    arn = require_stream(table)
    now = now or dt.datetime.now(dt.UTC)
    oldest = oldest_record(streams, arn)
    if oldest is None or now - oldest < WARN_AGE:
        return []
    return [f"the oldest record on the stream of {table['TableName']} is {_hours(now - oldest)} old and records "
            f"are kept {_hours(STREAM_RETENTION)}: make sure the trigger is reading the stream (deployed from "
            "TRIM_HORIZON) before its records expire, or changes made during the backfill are lost"]


def kinesis_warnings(table: dict[str, Any], stream: str) -> list[str]:
    """A table whose routes read it through Kinesis needs no DynamoDB stream; what cannot be checked here is said.

    The backfill's version 0 stays below every Kinesis version (creation times, attribute
    versions) as below every SequenceNumber, so the hand-over is the same: the table's Kinesis
    streaming destination active and the trigger reading it before the backfill starts.
    """
    name = table["TableName"]
    return [f"{name} reaches its routes through the Kinesis data stream {stream!r}: make sure the table's Kinesis "
            f"streaming destination is ACTIVE on it (aws dynamodb describe-kinesis-streaming-destination --table-name "
            f"{name}) and the trigger reads it from TRIM_HORIZON, or AT_TIMESTAMP before this backfill began"]


def export_warnings(table: dict[str, Any], export_time: dt.datetime, tombstone_hours: int | None,
                    now: dt.datetime | None = None) -> list[str]:
    """Refuse an export older than the stream (or than the tombstones); warn when it is nearly a day old."""
    now = now or dt.datetime.now(dt.UTC)
    enabled = _stream_created(table)
    if enabled is not None and enabled > export_time:
        raise BackfillError(f"the stream of {table['TableName']} was enabled at {enabled:%Y-%m-%d %H:%M:%S}Z, after "
                            f"the export's point in time ({export_time:%Y-%m-%d %H:%M:%S}Z): changes made in between "
                            "are in neither; export the table again")
    age = now - export_time
    if tombstone_hours is not None and age > dt.timedelta(hours=tombstone_hours):
        raise BackfillError(f"the export is {_hours(age)} old and tombstones are kept {tombstone_hours} hours: items "
                            "deleted since the export could come back; export the table again (or raise "
                            "tombstone_retention_hours)")
    if age < WARN_AGE:
        return []
    return [f"the export is {_hours(age)} old: every change since then must reach the target through the stream, "
            f"whose records are kept {_hours(STREAM_RETENTION)}; make sure the trigger has read them all"]


def _stream_created(table: dict[str, Any]) -> dt.datetime | None:
    """``LatestStreamLabel`` is the stream's creation time, in UTC (e.g. 2024-01-01T00:00:00.000)."""
    try:
        created = dt.datetime.fromisoformat(str(table.get("LatestStreamLabel")))
    except ValueError:
        return None
    return created if created.tzinfo else created.replace(tzinfo=dt.UTC)


def _hours(delta: dt.timedelta) -> str:
    return f"{delta.total_seconds() / 3600:.1f} hours"
