"""``cdc-router demo --kinesis``: the same walkthrough, with the changes going through Kinesis.

Every route reads its table through one Kinesis data stream, ``changes``, ordered by
``version: approximate_creation_time``. moto serves Kinesis but does not stream a table into
it, so this demo does what DynamoDB's Kinesis streaming destination would: after each step
it reads the table's changes (its DynamoDB stream, NEW_AND_OLD_IMAGES, in moto) and puts each
one into the Kinesis stream as the change record Kinesis carries (tableName, eventName,
recordFormat, ApproximateCreationDateTime in microseconds) -- twice, and newest first, as
Kinesis may deliver them. The Kinesis runner (``cdc-router run``'s) applies what arrives.
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

from handlers.demo import REGION, Demo
from operations.checkpoints import PostgresCheckpoints
from operations.kinesis_runner import KinesisRunner
from router.model import Config, VersionSpec
from router.modes import VersionSource
from sources.dynamodb_streams import lambda_record

STREAM = "changes"


def kinesis_config(config: Config) -> Config:
    """``config`` with every route reading its table through the Kinesis data stream ``changes``."""
    version = VersionSpec(VersionSource.APPROXIMATE_CREATION_TIME)
    routes = {name: dataclasses.replace(route, kinesis=STREAM, version=version) for name, route in config.routes.items()}
    return dataclasses.replace(config, routes=routes)


class KinesisDemo(Demo):
    stream_view = "NEW_AND_OLD_IMAGES"  # the images a Kinesis change record carries

    def __init__(self, config: Config, dsn: str):
        super().__init__(config, dsn)
        self.config = kinesis_config(self.config)

    def _setup(self) -> None:
        import boto3

        super()._setup()
        kinesis = boto3.client("kinesis", region_name=REGION)
        kinesis.create_stream(StreamName=STREAM, ShardCount=2)
        checkpoints = PostgresCheckpoints(next(iter(self.pipeline.sinks.values())))  # type: ignore[arg-type]
        runner = KinesisRunner(self.pipeline, kinesis, checkpoints, batch_size=100)
        self.runner = _Destination(boto3.client("dynamodbstreams", region_name=REGION), self.dynamodb, kinesis,
                                   self.sources, runner)  # type: ignore[assignment]


class _Destination:
    """DynamoDB's Kinesis streaming destination, for moto: table changes into the Kinesis stream,
    then the Kinesis runner; shaped like a runner (``on_batch``, ``run``) for ``Demo.steps``."""

    def __init__(self, streams: Any, dynamodb: Any, kinesis: Any, tables: list[str], runner: KinesisRunner):
        self.streams, self.kinesis, self.runner = streams, kinesis, runner
        self.arns = {table: dynamodb.describe_table(TableName=table)["Table"]["LatestStreamArn"] for table in tables}
        self.iterators: dict[tuple[str, str], str] = {}
        self.clock = 0

    @property
    def on_batch(self) -> Any:
        return self.runner.on_batch

    @on_batch.setter
    def on_batch(self, callback: Any) -> None:
        self.runner.on_batch = callback

    def run(self, until_idle: bool = True) -> int:
        changes = [change for table in self.arns for change in self._changes(table)]
        for change in [*reversed(changes), *reversed(changes)]:  # out of order and more than once
            key = json.dumps(change["dynamodb"]["Keys"], sort_keys=True)
            self.kinesis.put_record(StreamName=STREAM, Data=json.dumps(change).encode(), PartitionKey=key)
        return self.runner.run(until_idle=until_idle)

    def _changes(self, table: str) -> list[dict[str, Any]]:
        arn = self.arns[table]
        changes: list[dict[str, Any]] = []
        for shard in self.streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
            slot = (table, shard["ShardId"])
            iterator = self.iterators.get(slot) or self.streams.get_shard_iterator(
                StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
            response = self.streams.get_records(ShardIterator=iterator)
            self.iterators[slot] = response.get("NextShardIterator") or iterator
            changes.extend(self._change(table, lambda_record(record, arn)) for record in response["Records"])
        return changes

    def _change(self, table: str, record: dict[str, Any]) -> dict[str, Any]:
        """A DynamoDB Streams record as the change record Kinesis carries (MICROSECOND precision)."""
        self.clock = max(time.time_ns() // 1000, self.clock + 1)
        body = {name: record["dynamodb"][name] for name in ("Keys", "NewImage", "OldImage", "SizeBytes")
                if name in record["dynamodb"]}
        return {"awsRegion": REGION, "eventID": record.get("eventID"), "eventName": record["eventName"],
                "userIdentity": None, "recordFormat": "application/json", "tableName": table,
                "dynamodb": {"ApproximateCreationDateTime": self.clock, **body}, "eventSource": "aws:dynamodb"}

