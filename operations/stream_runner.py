"""The local stream runner: DynamoDB Streams API -> the Lambda pipeline, outside Lambda.

For development and small self-hosted deployments (the scaled path stays Lambda's event
source mapping). It reads the stream of every routed source table through any Streams
endpoint (AWS, DynamoDB Local, a moto server), reads shards parents-before-children
(``sources.shards``), and hands each ``GetRecords`` batch to the same ``Pipeline`` the
Lambda handler uses; the loop, checkpoints and retries are ``operations.shard_runner``'s.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from botocore.exceptions import ClientError

from operations.shard_runner import BatchReport, Checkpoints, ShardRunner, Stream, StreamError, missing
from router.pipeline import Pipeline
from sources.dynamodb_streams import lambda_record
from sources.shards import Shard, describe_shards, readable

START_POSITIONS = {"trim_horizon": "TRIM_HORIZON", "latest": "LATEST"}
MAX_BATCH = 1000  # GetRecords' own limit


class StreamRunner(ShardRunner[Shard]):
    """Reads every routed table's stream into ``pipeline``; ``run`` may be called again to go on."""

    source_name, position_name = "table", "SequenceNumber"

    def __init__(self, pipeline: Pipeline, streams: Any, dynamodb: Any, checkpoints: Checkpoints, *,
                 start: str = "trim_horizon", batch_size: int = 100, poll_interval: float = 1.0,
                 max_retries: int = 5, on_batch: Callable[[BatchReport], None] | None = None):
        if start not in START_POSITIONS:
            raise ValueError(f"invalid start {start!r} (allowed: {', '.join(START_POSITIONS)})")
        super().__init__(pipeline, checkpoints, batch_size=batch_size, max_batch=MAX_BATCH,
                         poll_interval=poll_interval, max_retries=max_retries, on_batch=on_batch)
        self.streams, self.dynamodb, self.start = streams, dynamodb, START_POSITIONS[start]

    def _discover(self) -> list[Stream[Shard]]:
        routes = self.pipeline.config.routes.values()  # tables with kinesis: are operations.kinesis_runner's
        tables = sorted({route.source for route in routes if route.kinesis is None})
        return [Stream[Shard](table, self._stream_arn(table), table) for table in tables]

    def _stream_arn(self, table: str) -> str:
        try:
            description = self.dynamodb.describe_table(TableName=table)["Table"]
        except ClientError as exc:
            if missing(exc):
                raise StreamError(f"DynamoDB table {table!r} (a route's source) does not exist") from None
            raise
        arn = description.get("LatestStreamArn")
        if not arn:
            raise StreamError(f"DynamoDB table {table!r} has no stream: enable one with StreamViewType "
                              "NEW_IMAGE or NEW_AND_OLD_IMAGES")
        return str(arn)

    def _refresh(self, stream: Stream[Shard]) -> None:
        self._describe(stream)  # shards split and roll over between runs

    def _describe(self, stream: Stream[Shard]) -> None:
        stream.shards = describe_shards(self.streams, stream.arn)
        stream.checkpoints = self.checkpoints.load(stream.arn)

    def _readable(self, stream: Stream[Shard]) -> Iterable[tuple[str, Shard]]:
        return [(shard.shard_id, shard) for shard in readable(stream.shards, stream.finished)]

    def _iterator(self, stream: Stream[Shard], shard_id: str, retry_at: str | None) -> str:
        request = {"StreamArn": stream.arn, "ShardId": shard_id}
        checkpoint = stream.checkpoints.get(shard_id)
        parents = {s.shard_id: s.parent_id for s in stream.shards}
        if retry_at is not None:
            request.update(ShardIteratorType="AT_SEQUENCE_NUMBER", SequenceNumber=retry_at)
        elif checkpoint is not None and checkpoint.sequence_number is not None:
            request.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=str(checkpoint.sequence_number))
        elif checkpoint is not None or parents.get(shard_id) in parents:
            request["ShardIteratorType"] = "TRIM_HORIZON"  # a child of a shard we read: all of it
        else:
            request["ShardIteratorType"] = self.start
            if self.start == "LATEST":
                self._start_latest(stream, shard_id)
        return str(self.streams.get_shard_iterator(**request)["ShardIterator"])

    def _get_records(self, iterator: str) -> dict[str, Any]:
        return dict(self.streams.get_records(ShardIterator=iterator, Limit=self.batch_size))

    def _wrap(self, stream: Stream[Shard], shard_id: str, raw: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [lambda_record(record, stream.arn) for record in raw]

    def _position(self, record: dict[str, Any]) -> str:
        return str(record["dynamodb"]["SequenceNumber"])

    def _closed(self, stream: Stream[Shard], shard_id: str) -> None:
        self._describe(stream)  # its children, now listed, may start
