"""The local runners' common core: read shards batch by batch into the pipeline, checkpoint, retry.

``operations.stream_runner`` (DynamoDB Streams) and ``operations.kinesis_runner`` (Kinesis Data
Streams) differ only in how they find streams and shards, ask for an iterator, and wrap a
``GetRecords`` record the way Lambda's event source mapping delivers it. Everything else is
here, once: the polling loop, handing each batch to the same ``Pipeline`` the Lambda handler
uses, saving the position per shard after the batch commits (a crash in between replays the
batch, which the version guard turns into no-ops), and retrying a batch that failed
transiently from its failed record, as ``RetryPolicy`` allows.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from botocore.exceptions import ClientError

from router.log import logger
from router.pipeline import BatchResult, Pipeline
from router.retry import RetryPolicy


class StreamError(Exception):
    """The runner cannot go on: a table without a stream, or a batch that keeps failing."""


@dataclass
class Checkpoint:
    sequence_number: int | None = None  # the last applied record; None: positioned, nothing applied yet
    finished: bool = False              # a closed shard read to its end


class Checkpoints(Protocol):
    """Where a runner keeps its position; ``operations.checkpoints`` is the real one."""

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


ShardT = TypeVar("ShardT")


@dataclass
class Stream(Generic[ShardT]):
    """One stream's reading state. ``name``: the DynamoDB table or the Kinesis stream; ``label``: the
    table(s) it carries, for progress lines; ``shards``: what the source lists (its own shard type)."""

    name: str
    arn: str
    label: str
    shards: list[ShardT] = field(default_factory=list)
    checkpoints: dict[str, Checkpoint] = field(default_factory=dict)
    iterators: dict[str, str] = field(default_factory=dict)
    retry_at: dict[str, str] = field(default_factory=dict)  # shard -> sequence number of a failed record
    attempts: dict[str, int] = field(default_factory=dict)

    @property
    def finished(self) -> set[str]:
        return {shard_id for shard_id, checkpoint in self.checkpoints.items() if checkpoint.finished}


class ShardRunner(ABC, Generic[ShardT]):
    """Reads streams into ``pipeline``; ``run`` may be called again to go on.

    A source names itself and its position for messages, and implements the abstract methods below.
    """

    source_name = "stream"            # in messages: "table T, shard: ..." or "Kinesis stream S, shard: ..."
    position_name = "sequence number"  # the source's own word: SequenceNumber, sequenceNumber

    def __init__(self, pipeline: Pipeline, checkpoints: Checkpoints, *, batch_size: int, max_batch: int,
                 poll_interval: float = 1.0, max_retries: int = 5,
                 on_batch: Callable[[BatchReport], None] | None = None):
        """``max_retries``: how often a batch that failed transiently is tried again (``router.retry``)."""
        self.pipeline, self.checkpoints = pipeline, checkpoints
        self.batch_size, self.poll_interval = min(max(batch_size, 1), max_batch), poll_interval
        self.retry = RetryPolicy(attempts=max_retries + 1, first_pause=0.2)
        self.on_batch = on_batch or (lambda report: None)
        self._streams: list[Stream[ShardT]] | None = None

    # -- what a source provides -----------------------------------------------------------

    @abstractmethod
    def _discover(self) -> list[Stream[ShardT]]:
        """The streams the config reads."""

    def _refresh(self, stream: Stream[ShardT]) -> None:
        """At the start of each ``run``: list shards again if the source's shards change under a reader."""

    @abstractmethod
    def _readable(self, stream: Stream[ShardT]) -> Iterable[tuple[str, ShardT]]:
        """``(shard id, shard)`` of the shards that may be read now, in the order to read them."""

    @abstractmethod
    def _iterator(self, stream: Stream[ShardT], shard_id: str, retry_at: str | None) -> str:
        """A shard iterator: at ``retry_at`` (a failed record), else after the checkpoint, else the start."""

    @abstractmethod
    def _get_records(self, iterator: str) -> dict[str, Any]:
        """One ``GetRecords`` call."""

    @abstractmethod
    def _wrap(self, stream: Stream[ShardT], shard_id: str, raw: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``GetRecords`` records as Lambda's event source mapping delivers them."""

    @abstractmethod
    def _position(self, record: dict[str, Any]) -> str:
        """A wrapped record's sequence number."""

    @abstractmethod
    def _closed(self, stream: Stream[ShardT], shard_id: str) -> None:
        """A closed shard was read to its end (its checkpoint saved): list what follows it."""

    # -- the loop ---------------------------------------------------------------------------

    def run(self, stop: threading.Event | None = None, until_idle: bool = False) -> int:
        """Read until ``stop`` is set (after the current batch), or until caught up with ``until_idle``.

        Returns the number of records applied.
        """
        stop = stop or threading.Event()
        streams = self._streams = self._streams or self._discover()
        for stream in streams:
            self._refresh(stream)
        applied = 0
        while not stop.is_set():
            busy = False
            for stream in streams:
                for shard_id, _ in list(self._readable(stream)):
                    if stop.is_set():
                        return applied
                    count, read = self._read(stream, shard_id, stop)
                    applied, busy = applied + count, busy or read
            if not busy:
                if until_idle:
                    break
                stop.wait(self.poll_interval)
        return applied

    def _read(self, stream: Stream[ShardT], shard_id: str, stop: threading.Event) -> tuple[int, bool]:
        """One ``GetRecords`` call on one shard: ``(records applied, anything read or finished)``."""
        iterator = stream.iterators.pop(shard_id, None) or self._iterator(stream, shard_id,
                                                                          stream.retry_at.get(shard_id))
        try:
            response = self._get_records(iterator)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ExpiredIteratorException":
                raise
            return 0, True  # iterators expire; the next pass starts again from the checkpoint
        records = self._wrap(stream, shard_id, response.get("Records") or [])
        if records and not self._apply(stream, shard_id, records, stop):
            return 0, True  # the batch is retried from its failed record
        following = response.get("NextShardIterator")
        if following is not None:
            stream.iterators[shard_id] = following
            return len(records), bool(records)
        self.checkpoints.save(stream.arn, shard_id, None, finished=True)
        stream.checkpoints[shard_id] = Checkpoint(finished=True)
        self._closed(stream, shard_id)
        return len(records), True

    def _apply(self, stream: Stream[ShardT], shard_id: str, records: list[dict[str, Any]],
               stop: threading.Event) -> bool:
        """Run one batch through the pipeline and checkpoint what it committed; False: retry it later."""
        report = BatchReport(stream.label, shard_id, records, self.pipeline.process({"Records": records}))
        if report.applied:
            last = int(self._position(records[report.applied - 1]))
            self.checkpoints.save(stream.arn, shard_id, last)
            stream.checkpoints[shard_id] = Checkpoint(last)
        self.on_batch(report)
        failure = report.result.failure
        if failure is None:
            stream.retry_at.pop(shard_id, None)
            stream.attempts.pop(shard_id, None)
            return True
        failed = self._position(records[failure.index])
        attempts = stream.attempts[shard_id] = stream.attempts.get(shard_id, 0) + 1
        pause = self.retry.pause(attempts) if failure.transient else None
        if pause is None:
            raise StreamError(f"{self.source_name} {stream.name}, {shard_id}: {failure.reason} (position saved; "
                              f"the next run starts again from {self.position_name} {failed})")
        stream.retry_at[shard_id] = failed
        logger.warning("batch failed; retrying", extra={"stream": stream.name, "shard": shard_id,
                                                         "attempt": attempts, "error": failure.reason})
        stop.wait(pause)  # the other shards are read after this one's pause: the runner is one thread
        return False

    def _start_latest(self, stream: Stream[ShardT], shard_id: str) -> None:
        """A shard started at LATEST has no record to checkpoint yet: remember that it was started, so
        that a restart reads it from its beginning (replays are no-ops) instead of skipping what came
        meanwhile."""
        self.checkpoints.save(stream.arn, shard_id, None)
        stream.checkpoints[shard_id] = Checkpoint()


def missing(exc: ClientError) -> bool:
    return exc.response["Error"]["Code"] == "ResourceNotFoundException"
