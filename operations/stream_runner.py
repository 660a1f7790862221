"""The local stream runner: DynamoDB Streams API -> the Lambda pipeline, outside Lambda.

For development and small self-hosted deployments (the scaled path stays Lambda's event
source mapping). It reads the stream of every routed source table through any Streams
endpoint (AWS, DynamoDB Local, a moto server), reads shards parents-before-children
(``sources.shards``), hands each ``GetRecords`` batch to the same ``Pipeline`` the Lambda
handler uses, and saves its position per shard after every batch, so a restart resumes
right after the last applied record. A checkpoint is saved after the batch commits: a
crash in between replays that batch, which the version guard turns into no-ops.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from botocore.exceptions import ClientError

from router.log import logger
from router.pipeline import BatchResult, Pipeline
from router.retry import RetryPolicy
from sources.dynamodb_streams import lambda_record
from sources.shards import Shard, describe_shards, readable

START_POSITIONS = {"trim_horizon": "TRIM_HORIZON", "latest": "LATEST"}
MAX_BATCH = 1000  # GetRecords' own limit


class StreamError(Exception):
    """The runner cannot go on: a table without a stream, or a batch that keeps failing."""


@dataclass
class Checkpoint:
    sequence_number: int | None = None  # the last applied record; None: positioned, nothing applied yet
    finished: bool = False              # a closed shard read to its end


class Checkpoints(Protocol):
    """Where the runner keeps its position; ``operations.checkpoints`` is the real one."""

    def load(self, stream_arn: str) -> dict[str, Checkpoint]: ...

    def save(self, stream_arn: str, shard_id: str, sequence_number: int | None = None,
             finished: bool = False) -> None: ...


@dataclass
class BatchReport:
    """What one ``GetRecords`` batch did, for the command line's progress lines."""

    table: str
    shard_id: str
    records: list[dict[str, Any]]  # as Lambda would deliver them
    result: BatchResult

    @property
    def applied(self) -> int:
        return len(self.records) if self.result.failure is None else self.result.failure.index


@dataclass
class _Stream:
    table: str
    arn: str
    shards: list[Shard] = field(default_factory=list)
    checkpoints: dict[str, Checkpoint] = field(default_factory=dict)
    iterators: dict[str, str] = field(default_factory=dict)
    retry_at: dict[str, str] = field(default_factory=dict)  # shard -> SequenceNumber of a failed record
    attempts: dict[str, int] = field(default_factory=dict)

    @property
    def finished(self) -> set[str]:
        return {shard_id for shard_id, checkpoint in self.checkpoints.items() if checkpoint.finished}


class StreamRunner:
    """Reads every routed table's stream into ``pipeline``; ``run`` may be called again to go on."""

    def __init__(self, pipeline: Pipeline, streams: Any, dynamodb: Any, checkpoints: Checkpoints, *,
                 start: str = "trim_horizon", batch_size: int = 100, poll_interval: float = 1.0,
                 max_retries: int = 5, on_batch: Callable[[BatchReport], None] | None = None):
        """``max_retries``: how often a batch that failed transiently is tried again (``router.retry``)."""
        if start not in START_POSITIONS:
            raise ValueError(f"invalid start {start!r} (allowed: {', '.join(START_POSITIONS)})")
        self.pipeline, self.streams, self.dynamodb, self.checkpoints = pipeline, streams, dynamodb, checkpoints
        self.start, self.batch_size = START_POSITIONS[start], min(max(batch_size, 1), MAX_BATCH)
        self.poll_interval, self.retry = poll_interval, RetryPolicy(attempts=max_retries + 1, first_pause=0.2)
        self.on_batch = on_batch or (lambda report: None)
        self._streams: list[_Stream] | None = None

    def run(self, stop: threading.Event | None = None, until_idle: bool = False) -> int:
        """Read until ``stop`` is set (after the current batch), or until caught up with ``until_idle``.

        Returns the number of records applied.
        """
        stop = stop or threading.Event()
        streams = self._streams = self._streams or self._discover()
        for stream in streams:
            self._describe(stream)
        applied = 0
        while not stop.is_set():
            busy = False
            for stream in streams:
                for shard in readable(stream.shards, stream.finished):
                    if stop.is_set():
                        return applied
                    count, read = self._read(stream, shard, stop)
                    applied, busy = applied + count, busy or read
            if not busy:
                if until_idle:
                    break
                stop.wait(self.poll_interval)
        return applied

    # -- discovery ------------------------------------------------------------------------

    def _discover(self) -> list[_Stream]:
        routes = self.pipeline.config.routes.values()  # tables with kinesis: are operations.kinesis_runner's
        tables = sorted({route.source for route in routes if route.kinesis is None})
        return [_Stream(table, self._stream_arn(table)) for table in tables]

    def _stream_arn(self, table: str) -> str:
        try:
            description = self.dynamodb.describe_table(TableName=table)["Table"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ResourceNotFoundException":
                raise StreamError(f"DynamoDB table {table!r} (a route's source) does not exist") from None
            raise
        arn = description.get("LatestStreamArn")
        if not arn:
            raise StreamError(f"DynamoDB table {table!r} has no stream: enable one with StreamViewType "
                              "NEW_IMAGE or NEW_AND_OLD_IMAGES")
        return arn

    def _describe(self, stream: _Stream) -> None:
        stream.shards = describe_shards(self.streams, stream.arn)
        stream.checkpoints = self.checkpoints.load(stream.arn)

    # -- reading --------------------------------------------------------------------------

    def _read(self, stream: _Stream, shard: Shard, stop: threading.Event) -> tuple[int, bool]:
        """One ``GetRecords`` call on one shard: ``(records applied, anything read or finished)``."""
        iterator = stream.iterators.pop(shard.shard_id, None) or self._iterator(stream, shard)
        try:
            response = self.streams.get_records(ShardIterator=iterator, Limit=self.batch_size)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ExpiredIteratorException":
                raise
            return 0, True  # iterators live 15 minutes; the next pass starts again from the checkpoint
        records = response.get("Records") or []
        if records and not self._apply(stream, shard, records, stop):
            return 0, True  # the batch is retried from its failed record
        following = response.get("NextShardIterator")
        if following is not None:
            stream.iterators[shard.shard_id] = following
            return len(records), bool(records)
        # A closed shard read to its end: its children, now listed, may start.
        self.checkpoints.save(stream.arn, shard.shard_id, None, finished=True)
        self._describe(stream)
        return len(records), True

    def _iterator(self, stream: _Stream, shard: Shard) -> str:
        request = {"StreamArn": stream.arn, "ShardId": shard.shard_id}
        checkpoint = stream.checkpoints.get(shard.shard_id)
        listed = {s.shard_id for s in stream.shards}
        if shard.shard_id in stream.retry_at:
            request.update(ShardIteratorType="AT_SEQUENCE_NUMBER", SequenceNumber=stream.retry_at[shard.shard_id])
        elif checkpoint is not None and checkpoint.sequence_number is not None:
            request.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=str(checkpoint.sequence_number))
        elif checkpoint is not None or shard.parent_id in listed:
            request["ShardIteratorType"] = "TRIM_HORIZON"  # a child of a shard we read: all of it
        else:
            request["ShardIteratorType"] = self.start
            if self.start == "LATEST":
                # No record to checkpoint yet: remember that this shard was started, so that a restart
                # reads it from its beginning (replays are no-ops) instead of skipping what came meanwhile.
                self.checkpoints.save(stream.arn, shard.shard_id, None)
                stream.checkpoints[shard.shard_id] = Checkpoint()
        return self.streams.get_shard_iterator(**request)["ShardIterator"]

    def _apply(self, stream: _Stream, shard: Shard, raw: list[dict[str, Any]], stop: threading.Event) -> bool:
        """Run one batch through the pipeline and checkpoint what it committed; False: retry it later."""
        records = [lambda_record(record, stream.arn) for record in raw]
        report = BatchReport(stream.table, shard.shard_id, records, self.pipeline.process({"Records": records}))
        if report.applied:
            last = int(records[report.applied - 1]["dynamodb"]["SequenceNumber"])
            self.checkpoints.save(stream.arn, shard.shard_id, last)
            stream.checkpoints[shard.shard_id] = Checkpoint(last)
        self.on_batch(report)
        failure = report.result.failure
        if failure is None:
            stream.retry_at.pop(shard.shard_id, None)
            stream.attempts.pop(shard.shard_id, None)
            return True
        attempts = stream.attempts[shard.shard_id] = stream.attempts.get(shard.shard_id, 0) + 1
        pause = self.retry.pause(attempts) if failure.transient else None
        if pause is None:
            raise StreamError(f"table {stream.table}, {shard.shard_id}: {failure.reason} (position saved; "
                              f"the next run starts again from SequenceNumber {_sequence(records[failure.index])})")
        stream.retry_at[shard.shard_id] = _sequence(records[failure.index])
        logger.warning("batch failed; retrying", extra={"table": stream.table, "shard": shard.shard_id,
                                                         "attempt": attempts, "error": failure.reason})
        stop.wait(pause)  # the other shards are read after this one's pause: the runner is one thread
        return False


def _sequence(record: dict[str, Any]) -> str:
    return str(record["dynamodb"]["SequenceNumber"])
