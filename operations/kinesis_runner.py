"""The local stream runner for Kinesis Data Streams for DynamoDB: the Kinesis API -> the pipeline.

Beside ``operations.stream_runner`` (DynamoDB Streams), for the routes with ``kinesis:``. It
reads every shard of each named Kinesis data stream through any Kinesis endpoint (AWS, a
moto server), wraps each ``GetRecords`` batch the way Lambda's event source mapping does
(``sources.kinesis.lambda_record``) and hands it to the same ``Pipeline`` the Lambda handler
uses; the loop, checkpoints and retries are ``operations.shard_runner``'s. Shards need no
lineage order here: Kinesis routes order changes by their version, not by delivery, so a
child shard read before its parent converges all the same.

Where a shard without a checkpoint starts: ``trim_horizon``, ``latest``, or a time
(AT_TIMESTAMP: the first record that arrived at or after it).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from typing import Any

from botocore.exceptions import ClientError

from operations.shard_runner import BatchReport, Checkpoints, ShardRunner, Stream, StreamError, missing
from router.pipeline import Pipeline
from sources.kinesis import lambda_record

MAX_BATCH = 10000  # GetRecords' own limit
Start = str | dt.datetime  # "trim_horizon", "latest", or a time


class KinesisRunner(ShardRunner[str]):
    """Reads the config's Kinesis data streams into ``pipeline``; ``run`` may be called again to go on."""

    source_name, position_name = "Kinesis stream", "sequenceNumber"

    def __init__(self, pipeline: Pipeline, kinesis: Any, checkpoints: Checkpoints, *, start: Start = "trim_horizon",
                 batch_size: int = 100, poll_interval: float = 1.0, max_retries: int = 5,
                 on_batch: Callable[[BatchReport], None] | None = None):
        if isinstance(start, str) and start not in ("trim_horizon", "latest"):
            raise ValueError(f"invalid start {start!r} (allowed: trim_horizon, latest, or a time)")
        super().__init__(pipeline, checkpoints, batch_size=batch_size, max_batch=MAX_BATCH,
                         poll_interval=poll_interval, max_retries=max_retries, on_batch=on_batch)
        self.kinesis, self.start = kinesis, start
        routes = pipeline.config.routes.values()
        self._tables = {name: ", ".join(sorted({r.source for r in routes if r.kinesis == name}))
                        for name in sorted({r.kinesis for r in routes if r.kinesis is not None})}

    @property
    def stream_names(self) -> list[str]:
        return list(self._tables)

    def _discover(self) -> list[Stream[str]]:
        return [self._describe(name) for name in self._tables]

    def _describe(self, name: str) -> Stream[str]:
        try:
            arn = self.kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
        except ClientError as exc:
            if missing(exc):
                raise StreamError(f"Kinesis data stream {name!r} (kinesis: of a route) does not exist") from None
            raise
        stream = Stream[str](name, arn, self._tables[name], checkpoints=self.checkpoints.load(arn))
        stream.shards = [s for s in self._shard_ids(name) if s not in stream.finished]
        return stream

    def _shard_ids(self, name: str) -> list[str]:
        shards: list[str] = []
        request: dict[str, Any] = {"StreamName": name}
        while True:
            page = self.kinesis.list_shards(**request)
            shards.extend(shard["ShardId"] for shard in page.get("Shards", []))
            if not page.get("NextToken"):
                return shards
            request = {"NextToken": page["NextToken"]}

    def _readable(self, stream: Stream[str]) -> Iterable[tuple[str, str]]:
        return [(shard_id, shard_id) for shard_id in stream.shards]

    def _iterator(self, stream: Stream[str], shard_id: str, retry_at: str | None) -> str:
        request: dict[str, Any] = {"StreamName": stream.name, "ShardId": shard_id}
        checkpoint = stream.checkpoints.get(shard_id)
        if retry_at is not None:
            request.update(ShardIteratorType="AT_SEQUENCE_NUMBER", StartingSequenceNumber=retry_at)
        elif checkpoint is not None and checkpoint.sequence_number is not None:
            request.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER",
                           StartingSequenceNumber=str(checkpoint.sequence_number))
        elif checkpoint is not None:
            request["ShardIteratorType"] = "TRIM_HORIZON"  # started earlier at LATEST: replays are no-ops
        elif isinstance(self.start, dt.datetime):
            request.update(ShardIteratorType="AT_TIMESTAMP", Timestamp=self.start)
        else:
            request["ShardIteratorType"] = self.start.upper()
            if self.start == "latest":
                self._start_latest(stream, shard_id)
        return str(self.kinesis.get_shard_iterator(**request)["ShardIterator"])

    def _get_records(self, iterator: str) -> dict[str, Any]:
        return dict(self.kinesis.get_records(ShardIterator=iterator, Limit=self.batch_size))

    def _wrap(self, stream: Stream[str], shard_id: str, raw: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [lambda_record(r["Data"], stream.arn, r["SequenceNumber"], r["PartitionKey"], shard_id,
                              _epoch(r.get("ApproximateArrivalTimestamp"))) for r in raw]

    def _position(self, record: dict[str, Any]) -> str:
        return str(record["kinesis"]["sequenceNumber"])

    def _closed(self, stream: Stream[str], shard_id: str) -> None:
        """Its children, listed now, join the shards read (Kinesis routes need no lineage order)."""
        stream.shards.remove(shard_id)
        stream.checkpoints = self.checkpoints.load(stream.arn)
        stream.shards.extend(s for s in self._shard_ids(stream.name)
                             if s not in stream.shards and s not in stream.finished)


def _epoch(value: Any) -> float | None:
    return value.timestamp() if isinstance(value, dt.datetime) else None
