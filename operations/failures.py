"""Replaying what the failure queue holds: the batches Lambda gave up on, re-read from the stream.

When a trigger's retries run out, Lambda sends a description of the batch (not its records)
to the on-failure destination. For DynamoDB Streams, its ``DDBStreamBatchInfo`` names the
stream, the shard, and the first and last SequenceNumber of the batch
(https://docs.aws.amazon.com/lambda/latest/dg/services-dynamodb-errors.html). The records are
still in the stream for its 24-hour retention: ``replay`` re-reads exactly that range
(``AT_SEQUENCE_NUMBER`` the first, until the last), runs it through the pipeline as the
function would (the version guard turns what was applied since into no-ops), and deletes the
message once the whole range is applied. A range the stream no longer holds cannot be
replayed: its message stays, and the report names the backfill that repairs its routes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError

from router.model import Config
from router.pipeline import Pipeline
from router.sink import RouteStats
from sources.dynamodb_streams import lambda_record, table_from_arn

VISIBILITY = 300      # seconds a received message stays hidden while its range is replayed
PAGE = 1000           # GetRecords' own limit
MAX_EMPTY_PAGES = 10  # an open shard may answer empty pages before the records it holds
EXPIRED = ("TrimmedDataAccessException", "ResourceNotFoundException", "ExpiredIteratorException")


class ReplayOutcome(StrEnum):
    APPLIED = "applied"        # every record of the range went through; the message is deleted
    FAILED = "failed"          # a record failed again (the cause is still there); the message stays
    EXPIRED = "expired"        # the stream no longer holds the range; the message stays, a backfill repairs
    UNREADABLE = "unreadable"  # not a DynamoDB Streams batch description; the message stays


class NotABatchMessageError(ValueError):
    """A message in the queue that does not describe a DynamoDB Streams batch."""


class RangeIncompleteError(Exception):
    """The shard stopped answering records before the range's last SequenceNumber."""


@dataclass(frozen=True)
class FailedBatch:
    """One failure-queue message: the batch's range in its stream."""

    message_id: str
    receipt: str
    stream_arn: str
    shard_id: str
    first: str                  # SequenceNumbers, as text: they exceed 64 bits
    last: str
    size: int | None = None
    condition: str | None = None  # RetryAttemptsExhausted, RecordAgeExceeded, ...
    failed_at: str | None = None

    @property
    def table(self) -> str | None:
        return table_from_arn(self.stream_arn)[0]


@dataclass
class Replay:
    batch: FailedBatch
    outcome: ReplayOutcome
    records: int = 0
    stats: dict[str, RouteStats] = field(default_factory=dict)
    reason: str | None = None
    repair: list[str] = field(default_factory=list)  # commands that repair what the replay cannot


def parse(message: dict[str, Any]) -> FailedBatch:
    """A received SQS message as a ``FailedBatch``; ``NotABatchMessageError`` for anything else."""
    try:
        body = json.loads(message["Body"])
        info = body["DDBStreamBatchInfo"]
        first, last = str(info["startSequenceNumber"]), str(info["endSequenceNumber"])
        stream, shard = str(info["streamArn"]), str(info["shardId"])
    except (KeyError, TypeError, ValueError):
        raise NotABatchMessageError(f"message {message.get('MessageId')}: not a DynamoDB Streams batch "
                                    "description (no DDBStreamBatchInfo)") from None
    context = body.get("requestContext") if isinstance(body.get("requestContext"), dict) else {}
    return FailedBatch(message["MessageId"], message["ReceiptHandle"], stream, shard, first, last,
                       info.get("batchSize"), context.get("condition"), body.get("timestamp"))


class FailureQueue:
    """The on-failure SQS queue of the function's triggers."""

    def __init__(self, sqs: Any, url: str):
        self.sqs, self.url = sqs, url

    def receive(self, limit: int, visibility: int = VISIBILITY) -> Iterator[dict[str, Any]]:
        """Up to ``limit`` messages, each hidden from other readers for ``visibility`` seconds."""
        seen: set[str] = set()
        while len(seen) < limit:
            response = self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=min(10, limit - len(seen)),
                                                VisibilityTimeout=visibility, WaitTimeSeconds=0)
            fresh = [m for m in response.get("Messages") or [] if m["MessageId"] not in seen]
            if not fresh:
                return
            for message in fresh:
                seen.add(message["MessageId"])
                yield message

    def release(self, message: dict[str, Any] | FailedBatch) -> None:
        """Visible again at once: the message stays for the next ``list`` or ``replay``."""
        receipt = message.receipt if isinstance(message, FailedBatch) else message["ReceiptHandle"]
        self.sqs.change_message_visibility(QueueUrl=self.url, ReceiptHandle=receipt, VisibilityTimeout=0)

    def delete(self, batch: FailedBatch) -> None:
        self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=batch.receipt)

    def depth(self) -> int:
        attributes = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=[
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        return sum(int(attributes.get(name, 0)) for name in ("ApproximateNumberOfMessages",
                                                             "ApproximateNumberOfMessagesNotVisible"))


def list_failures(queue: FailureQueue, limit: int) -> tuple[list[FailedBatch], list[str]]:
    """The queue's batches (and a line per foreign message), leaving every message in the queue."""
    batches, foreign = [], []
    received = list(queue.receive(limit, visibility=30))
    for message in received:
        try:
            batches.append(parse(message))
        except NotABatchMessageError as exc:
            foreign.append(str(exc))
        queue.release(message)
    return batches, foreign


def read_range(streams: Any, batch: FailedBatch) -> Iterator[list[dict[str, Any]]]:
    """The batch's records, page by page, from its first SequenceNumber through its last."""
    first, last = int(batch.first), int(batch.last)
    iterator = streams.get_shard_iterator(StreamArn=batch.stream_arn, ShardId=batch.shard_id,
                                          ShardIteratorType="AT_SEQUENCE_NUMBER",
                                          SequenceNumber=batch.first)["ShardIterator"]
    empty = 0
    while iterator is not None:
        response = streams.get_records(ShardIterator=iterator, Limit=PAGE)
        records = response.get("Records") or []
        numbers = [int(r["dynamodb"]["SequenceNumber"]) for r in records]
        wanted = [r for r, n in zip(records, numbers) if first <= n <= last]
        if wanted:
            yield wanted
        if any(n >= last for n in numbers):
            return
        empty = 0 if records else empty + 1
        if empty > MAX_EMPTY_PAGES:
            raise RangeIncompleteError(f"the shard answered {empty} empty pages before SequenceNumber {batch.last}")
        iterator = response.get("NextShardIterator")
    if iterator is None:  # a closed shard ended before the range did
        raise RangeIncompleteError(f"the shard ended before SequenceNumber {batch.last}")


def replay_batch(pipeline: Pipeline, streams: Any, batch: FailedBatch) -> Replay:
    """Apply one batch's range through the pipeline; stop at its first failed record."""
    replay = Replay(batch, ReplayOutcome.APPLIED, stats={name: RouteStats() for name in pipeline.config.routes})
    try:
        for page in read_range(streams, batch):
            result = pipeline.process({"Records": [lambda_record(r, batch.stream_arn) for r in page]})
            applied = len(page) if result.failure is None else result.failure.index
            replay.records += applied
            for name, stats in result.stats.items():
                replay.stats[name].add(stats)
            if result.failure is not None:
                replay.outcome, replay.reason = ReplayOutcome.FAILED, result.failure.reason
                return replay
    except RangeIncompleteError as exc:
        replay.outcome, replay.reason = ReplayOutcome.FAILED, str(exc)
    except ClientError as exc:
        code = exc.response["Error"].get("Code", "")
        if code not in EXPIRED:
            raise
        replay.outcome, replay.reason = ReplayOutcome.EXPIRED, f"the stream no longer holds this range ({code})"
        replay.repair = backfill_commands(pipeline.config, batch.table)
    return replay


def replay(pipeline: Pipeline, queue: FailureQueue, streams: Any, limit: int) -> Iterator[Replay]:
    """Replay up to ``limit`` messages; delete each once its range is applied, release the others."""
    for message in queue.receive(limit):
        try:
            batch = parse(message)
        except NotABatchMessageError as exc:
            queue.release(message)
            yield Replay(_foreign(message), ReplayOutcome.UNREADABLE, reason=str(exc))
            continue
        done = replay_batch(pipeline, streams, batch)
        if done.outcome is ReplayOutcome.APPLIED:
            queue.delete(batch)
        else:
            queue.release(batch)
        yield done


def backfill_commands(config: Config, table: str | None) -> list[str]:
    routes = config.routes_for(table) if table else []
    return [f"cdc-router backfill {route.name}" for route in routes]


def _foreign(message: dict[str, Any]) -> FailedBatch:
    return FailedBatch(message["MessageId"], message["ReceiptHandle"], "", "", "", "")
