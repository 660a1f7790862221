"""Shard lineage: parents before children, a child only after its parent is finished.

moto gives every stream exactly one shard that never closes or splits, so a split is
built by hand here in the shape of a real ``DescribeStream`` answer: moto's own shard,
closed, becomes the parent of two children and a grandchild.
"""

from __future__ import annotations

import random
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto_tables import create_employees

from sources.shards import Shard, describe_shards, lineage_order, readable, shards_from_description

ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/Employees/stream/2024-01-01T00:00:00.000"


@pytest.fixture
def moto_description() -> Any:
    """A real moto ``StreamDescription`` of a table with a stream."""
    with mock_aws():
        arn = create_employees(boto3.client("dynamodb"))
        streams = boto3.client("dynamodbstreams")
        yield streams.describe_stream(StreamArn=arn)["StreamDescription"], describe_shards(streams, arn)


def _split(description: dict[str, Any]) -> dict[str, Any]:
    """moto's single shard, closed and split: two children, a grandchild, and an orphan root."""
    (parent,) = description["Shards"]
    start = int(parent["SequenceNumberRange"]["StartingSequenceNumber"])
    closed = {**parent, "SequenceNumberRange": {"StartingSequenceNumber": str(start),
                                                "EndingSequenceNumber": str(start + 99)}}

    def shard(shard_id: str, parent_id: str | None, first: int, last: int | None = None) -> dict[str, Any]:
        numbers = {"StartingSequenceNumber": str(first)} | ({"EndingSequenceNumber": str(last)} if last else {})
        lineage = {"ParentShardId": parent_id} if parent_id else {}
        return {"ShardId": shard_id, "SequenceNumberRange": numbers} | lineage

    shards = [
        closed,
        shard("shardId-child-b", parent["ShardId"], start + 200),
        shard("shardId-child-a", parent["ShardId"], start + 100, start + 150),
        shard("shardId-grandchild", "shardId-child-a", start + 300),
        # its parent is older than the 24-hour retention and no longer listed: a root
        shard("shardId-orphan", "shardId-trimmed-long-ago", start - 50, start - 1),
    ]
    random.Random(7).shuffle(shards)  # DescribeStream promises no order
    return {**description, "Shards": shards}


def test_moto_stream_has_one_open_shard(moto_description: Any) -> None:
    # GIVEN a moto table with a stream WHEN its shards are described THEN one open root shard
    description, shards = moto_description
    assert shards == shards_from_description(description)
    assert [(s.parent_id, s.closed) for s in shards] == [(None, False)]
    assert readable(shards, finished=()) == shards


def test_lineage_puts_parents_before_children(moto_description: Any) -> None:
    description, _ = moto_description
    parent_id = description["Shards"][0]["ShardId"]
    ordered = [s.shard_id for s in lineage_order(shards_from_description(_split(description)))]
    # the orphan and moto's shard are roots (older first), each followed by its descendants
    assert ordered == ["shardId-orphan", parent_id, "shardId-child-a", "shardId-grandchild", "shardId-child-b"]


@pytest.mark.parametrize("finished, expected", [
    # nothing read yet: only the roots
    ((), ["shardId-orphan", "PARENT"]),
    # the orphan done: moto's shard still holds its children back
    (("shardId-orphan",), ["PARENT"]),
    # the parent finished: both children, older first; the grandchild waits for child-a
    (("shardId-orphan", "PARENT"), ["shardId-child-a", "shardId-child-b"]),
    # child-a finished: the grandchild may start beside child-b
    (("shardId-orphan", "PARENT", "shardId-child-a"), ["shardId-grandchild", "shardId-child-b"]),
])
def test_a_child_is_readable_only_after_its_parent_finished(moto_description: Any, finished: tuple[str, ...],
                                                            expected: list[str]) -> None:
    description, _ = moto_description
    parent_id = description["Shards"][0]["ShardId"]
    shards = shards_from_description(_split(description))
    done = [parent_id if name == "PARENT" else name for name in finished]
    assert [s.shard_id for s in readable(shards, done)] == [parent_id if n == "PARENT" else n for n in expected]


def test_sequence_numbers_order_siblings_as_numbers() -> None:
    # "9" sorts after "10" as a string; as numbers 9 is older
    shards = [Shard(ARN, "shardId-b", starting_sequence=10), Shard(ARN, "shardId-a", starting_sequence=9)]
    assert [s.shard_id for s in lineage_order(shards)] == ["shardId-a", "shardId-b"]


def test_describe_follows_pages() -> None:
    class Pages:
        """Two DescribeStream pages, as AWS returns them for a stream with many shards."""

        def __init__(self) -> None:
            self.requests: list[dict[str, Any]] = []

        def describe_stream(self, **request: Any) -> dict[str, Any]:
            self.requests.append(request)
            if "ExclusiveStartShardId" not in request:
                return {"StreamDescription": {"StreamArn": ARN, "LastEvaluatedShardId": "shardId-1",
                                              "Shards": [{"ShardId": "shardId-1"}]}}
            return {"StreamDescription": {"StreamArn": ARN, "Shards": [{"ShardId": "shardId-2",
                                                                        "ParentShardId": "shardId-1"}]}}

    pages = Pages()
    assert [s.shard_id for s in describe_shards(pages, ARN)] == ["shardId-1", "shardId-2"]
    assert pages.requests == [{"StreamArn": ARN}, {"StreamArn": ARN, "ExclusiveStartShardId": "shardId-1"}]
