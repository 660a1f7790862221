"""DynamoDB Streams shard lineage: which shards of a stream may be read, and in what order.

A stream's shards form a forest: when a shard closes (it splits, or DynamoDB rolls it
over every few hours) its children carry on, and the records of one item move from the
parent to a child. Reading a child before its parent is finished would apply an item's
newer changes before its older ones, so a child is read only once its parent is
finished. ``DescribeStream`` lists shards in no particular order
(https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_streams_DescribeStream.html),
and a parent older than the stream's 24-hour retention is no longer listed: such an
orphan is a root.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Shard:
    stream_arn: str
    shard_id: str
    parent_id: str | None = None
    starting_sequence: int = 0
    closed: bool = False           # has an EndingSequenceNumber: no new records will arrive


def shards_from_description(description: Mapping[str, Any]) -> list[Shard]:
    """The shards of one ``DescribeStream`` page (``StreamDescription``)."""
    arn = description["StreamArn"]
    shards = []
    for raw in description.get("Shards", []):
        numbers = raw.get("SequenceNumberRange") or {}
        shards.append(Shard(
            stream_arn=arn, shard_id=raw["ShardId"], parent_id=raw.get("ParentShardId"),
            starting_sequence=int(numbers.get("StartingSequenceNumber") or 0),  # numbers, never strings
            closed="EndingSequenceNumber" in numbers,
        ))
    return shards


def describe_shards(streams: Any, stream_arn: str) -> list[Shard]:
    """Every shard of a stream, following ``LastEvaluatedShardId`` across pages."""
    shards: list[Shard] = []
    request: dict[str, Any] = {"StreamArn": stream_arn}
    while True:
        description = streams.describe_stream(**request)["StreamDescription"]
        shards.extend(shards_from_description(description))
        last = description.get("LastEvaluatedShardId")
        if not last:
            return shards
        request["ExclusiveStartShardId"] = last


def lineage_order(shards: Iterable[Shard]) -> list[Shard]:
    """Parents before children; among siblings (and roots), the older shard first."""
    by_id = {shard.shard_id: shard for shard in shards}
    children: dict[str | None, list[Shard]] = {}
    for shard in by_id.values():
        parent = shard.parent_id if shard.parent_id in by_id else None  # an orphan is a root
        children.setdefault(parent, []).append(shard)
    ordered: list[Shard] = []
    pending = sorted(children.get(None, []), key=_age, reverse=True)
    while pending:  # depth-first with an explicit stack: lineages can be long
        shard = pending.pop()
        ordered.append(shard)
        pending.extend(sorted(children.get(shard.shard_id, []), key=_age, reverse=True))
    return ordered


def readable(shards: Sequence[Shard], finished: Iterable[str]) -> list[Shard]:
    """The shards to read now: not finished, and their parent finished or no longer listed."""
    done = set(finished)
    listed = {shard.shard_id for shard in shards}
    return [shard for shard in lineage_order(shards)
            if shard.shard_id not in done and (shard.parent_id not in listed or shard.parent_id in done)]


def _age(shard: Shard) -> tuple[int, str]:
    return (shard.starting_sequence, shard.shard_id)
