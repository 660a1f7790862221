"""The local stream runner for Kinesis Data Streams for DynamoDB: the Kinesis API -> the pipeline.

Beside ``operations.stream_runner`` (DynamoDB Streams), for the routes with ``kinesis:``. It
reads every shard of each named Kinesis data stream through any Kinesis endpoint (AWS, a
moto server), wraps each ``GetRecords`` batch the way Lambda's event source mapping does
(``sources.kinesis.lambda_record``), hands it to the same ``Pipeline`` the Lambda handler
uses, and saves its position per shard after each batch. Shards need no lineage order here:
Kinesis routes order changes by their version, not by delivery, so a child shard read
before its parent converges all the same.

Where a shard without a checkpoint starts: ``trim_horizon``, ``latest``, or a time
(AT_TIMESTAMP: the first record that arrived at or after it).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from operations.stream_runner import BatchReport, Checkpoint, Checkpoints, StreamError
from router.log import logger
from router.pipeline import Pipeline
from sources.kinesis import lambda_record

MAX_BATCH = 10000  # GetRecords' own limit
Start = str | dt.datetime  # "trim_horizon", "latest", or a time


@dataclass
class _Stream:
    name: str
    arn: str
    shards: list[str] = field(default_factory=list)
    checkpoints: dict[str, Checkpoint] = field(default_factory=dict)
    iterators: dict[str, str] = field(default_factory=dict)
    retry_at: dict[str, str] = field(default_factory=dict)  # shard -> sequenceNumber of a failed record
    attempts: dict[str, int] = field(default_factory=dict)


class KinesisRunner:
    """Reads the config's Kinesis data streams into ``pipeline``; ``run`` may be called again to go on."""

    def __init__(self, pipeline: Pipeline, kinesis: Any, checkpoints: Checkpoints, *, start: Start = "trim_horizon",
                 batch_size: int = 100, poll_interval: float = 1.0, max_retries: int = 5,
                 on_batch: Callable[[BatchReport], None] | None = None):
        if isinstance(start, str) and start not in ("trim_horizon", "latest"):
            raise ValueError(f"invalid start {start!r} (allowed: trim_horizon, latest, or a time)")
        self.pipeline, self.kinesis, self.checkpoints, self.start = pipeline, kinesis, checkpoints, start
        self.batch_size, self.poll_interval = min(max(batch_size, 1), MAX_BATCH), poll_interval
        self.max_retries, self.on_batch = max_retries, on_batch or (lambda report: None)
        names = sorted({r.kinesis for r in pipeline.config.routes.values() if r.kinesis is not None})
        self._names = names
        self._streams: list[_Stream] | None = None
        self._tables = {name: ", ".join(sorted({r.source for r in pipeline.config.routes.values() if r.kinesis == name}))
                        for name in names}

    @property
    def stream_names(self) -> list[str]:
        return list(self._names)

    def run(self, stop: threading.Event | None = None, until_idle: bool = False) -> int:
        """Read until ``stop`` is set, or until every shard is caught up with ``until_idle``; the records applied."""
        stop = stop or threading.Event()
        streams = self._streams = self._streams or [self._describe(name) for name in self._names]
        applied = 0
        while not stop.is_set():
            busy = False
            for stream in streams:
                for shard_id in list(stream.shards):
                    if stop.is_set():
                        return applied
                    count, read = self._read(stream, shard_id, stop)
                    applied, busy = applied + count, busy or read
            if not busy:
                if until_idle:
                    break
                stop.wait(self.poll_interval)
        return applied

    def _describe(self, name: str) -> _Stream:
        try:
            arn = self.kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ResourceNotFoundException":
                raise StreamError(f"Kinesis data stream {name!r} (kinesis: of a route) does not exist") from None
            raise
        stream = _Stream(name, arn, checkpoints=self.checkpoints.load(arn))
        stream.shards = [s for s in self._shard_ids(name) if not stream.checkpoints.get(s, Checkpoint()).finished]
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

    def _read(self, stream: _Stream, shard_id: str, stop: threading.Event) -> tuple[int, bool]:
        iterator = stream.iterators.pop(shard_id, None) or self._iterator(stream, shard_id)
        try:
            response = self.kinesis.get_records(ShardIterator=iterator, Limit=self.batch_size)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ExpiredIteratorException":
                raise
            return 0, True  # the next pass starts again from the checkpoint
        records = [lambda_record(r["Data"], stream.arn, r["SequenceNumber"], r["PartitionKey"], shard_id,
                                 _epoch(r.get("ApproximateArrivalTimestamp"))) for r in response.get("Records") or []]
        if records and not self._apply(stream, shard_id, records, stop):
            return 0, True
        following = response.get("NextShardIterator")
        if following is None:  # a closed shard read to its end
            self.checkpoints.save(stream.arn, shard_id, None, finished=True)
            stream.shards.remove(shard_id)
            stream.shards.extend(s for s in self._shard_ids(stream.name)
                                 if s not in stream.shards and not self._finished(stream, s))
            return len(records), True
        stream.iterators[shard_id] = following
        return len(records), bool(records)

    def _finished(self, stream: _Stream, shard_id: str) -> bool:
        stream.checkpoints = self.checkpoints.load(stream.arn)
        return stream.checkpoints.get(shard_id, Checkpoint()).finished

    def _iterator(self, stream: _Stream, shard_id: str) -> str:
        request: dict[str, Any] = {"StreamName": stream.name, "ShardId": shard_id}
        checkpoint = stream.checkpoints.get(shard_id)
        if shard_id in stream.retry_at:
            request.update(ShardIteratorType="AT_SEQUENCE_NUMBER", StartingSequenceNumber=stream.retry_at[shard_id])
        elif checkpoint is not None and checkpoint.sequence_number is not None:
            request.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER",
                           StartingSequenceNumber=str(checkpoint.sequence_number))
        elif checkpoint is not None:
            request["ShardIteratorType"] = "TRIM_HORIZON"  # started earlier at LATEST: replays are no-ops
        elif isinstance(self.start, dt.datetime):
            request.update(ShardIteratorType="AT_TIMESTAMP", Timestamp=self.start)
        else:
            request["ShardIteratorType"] = self.start.upper()
            if self.start == "latest":  # remember it was started, so a restart does not skip what came meanwhile
                self.checkpoints.save(stream.arn, shard_id, None)
                stream.checkpoints[shard_id] = Checkpoint()
        return self.kinesis.get_shard_iterator(**request)["ShardIterator"]

    def _apply(self, stream: _Stream, shard_id: str, records: list[dict[str, Any]], stop: threading.Event) -> bool:
        report = BatchReport(self._tables[stream.name], shard_id, records, self.pipeline.process({"Records": records}))
        if report.applied:
            last = int(records[report.applied - 1]["kinesis"]["sequenceNumber"])
            self.checkpoints.save(stream.arn, shard_id, last)
            stream.checkpoints[shard_id] = Checkpoint(last)
        self.on_batch(report)
        failure = report.result.failure
        if failure is None:
            stream.retry_at.pop(shard_id, None)
            stream.attempts.pop(shard_id, None)
            return True
        failed = records[failure.index]["kinesis"]["sequenceNumber"]
        attempts = stream.attempts[shard_id] = stream.attempts.get(shard_id, 0) + 1
        if not failure.transient or attempts > self.max_retries:
            raise StreamError(f"Kinesis stream {stream.name}, {shard_id}: {failure.reason} (position saved; the next "
                              f"run starts again from sequenceNumber {failed})")
        stream.retry_at[shard_id] = failed
        logger.warning("batch failed; retrying", extra={"stream": stream.name, "shard": shard_id,
                                                         "attempt": attempts, "error": failure.reason})
        stop.wait(min(2.0 ** attempts * 0.1, 10.0))
        return False


def _epoch(value: Any) -> float | None:
    return value.timestamp() if isinstance(value, dt.datetime) else None
