"""``cdc-router failures list|replay`` against a moto server (SQS and DynamoDB Streams) and a real Postgres.

GIVEN a batch that Lambda gave up on (its description in the failure queue, its records
still in the stream) WHEN it is replayed THEN the target holds its rows and the message is gone;
a range the stream no longer holds stays in the queue with the backfill that repairs it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from click.testing import CliRunner
from conftest import EMPLOYEES
from moto_tables import create_employees

from handlers.cli import app
from operations.assemble import load_config, pipeline_for
from sources.dynamodb_streams import lambda_record


@pytest.fixture
def aws_endpoint(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)  # every AWS client of the command goes to the moto server
    return endpoint


class Stream:
    """The Employees table with its stream, and the failure queue, on the moto server."""

    def __init__(self, endpoint: str):
        self.dynamodb = boto3.client("dynamodb", endpoint_url=endpoint)
        self.streams = boto3.client("dynamodbstreams", endpoint_url=endpoint)
        self.sqs = boto3.client("sqs", endpoint_url=endpoint)
        self.arn = create_employees(self.dynamodb)
        self.queue = self.sqs.create_queue(QueueName="cdc-router-failures")["QueueUrl"]

    def put(self, id_: int, name: str) -> None:
        self.dynamodb.put_item(TableName="Employees", Item={"Id": {"N": str(id_)}, "empName": {"S": name}})

    def records(self) -> tuple[str, list[dict[str, Any]]]:
        (shard,) = self.streams.describe_stream(StreamArn=self.arn)["StreamDescription"]["Shards"]
        iterator = self.streams.get_shard_iterator(StreamArn=self.arn, ShardId=shard["ShardId"],
                                                   ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        return shard["ShardId"], self.streams.get_records(ShardIterator=iterator)["Records"]

    def give_up(self, shard: str, first: dict[str, Any], last: dict[str, Any], arn: str | None = None) -> None:
        """What Lambda sends to the on-failure destination when a batch's retries run out."""
        body = {"requestContext": {"condition": "RetryAttemptsExhausted", "approximateInvokeCount": 11},
                "version": "1.0", "timestamp": "2026-12-01T10:00:00.000Z",
                "DDBStreamBatchInfo": {"shardId": shard, "streamArn": arn or self.arn, "batchSize": 2,
                                       "startSequenceNumber": first["dynamodb"]["SequenceNumber"],
                                       "endSequenceNumber": last["dynamodb"]["SequenceNumber"]}}
        self.sqs.send_message(QueueUrl=self.queue, MessageBody=json.dumps(body))

    def depth(self) -> int:
        attributes = self.sqs.get_queue_attributes(QueueUrl=self.queue, AttributeNames=["All"])["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


@pytest.fixture
def stream(aws_endpoint: str) -> Stream:
    return Stream(aws_endpoint)


@pytest.fixture
def config(pg: Any, write_config: Callable[..., Path]) -> Path:
    path = write_config(EMPLOYEES, pg, deletes="hard", on_error="fail")
    assert CliRunner().invoke(app, ["schema", "--config", str(path), "--apply"]).exit_code == 0
    return path


def cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def test_replay_applies_the_skipped_range_and_deletes_its_message(stream: Stream, config: Path, pg: Any) -> None:
    # GIVEN four changes; the function applied the first and gave up on the next two (the fourth went on)
    for id_, name in ((1, "Ann"), (2, "Bo"), (3, "Cy"), (4, "Di")):
        stream.put(id_, name)
    shard, records = stream.records()
    pipeline = pipeline_for(load_config(config))
    try:
        for applied in (records[0], records[3]):
            assert pipeline.process({"Records": [lambda_record(applied, stream.arn)]}).failure is None
    finally:
        pipeline.close()
    stream.give_up(shard, records[1], records[2])
    assert [r["Id"] for r in pg.rows("Employees", order_by="Id")] == [1, 4]

    # WHEN the queue is listed, then replayed
    listed = cli("failures", "list", "--config", str(config), "--queue-url", stream.queue)
    replayed = cli("failures", "replay", "--config", str(config), "--queue-url", stream.queue)

    # THEN the list shows the range and leaves it; the replay writes rows 2 and 3 and deletes the message
    assert listed.exit_code == 0, listed.output
    first, last = records[1]["dynamodb"]["SequenceNumber"], records[2]["dynamodb"]["SequenceNumber"]
    assert f"Employees {shard} SequenceNumber {first}..{last} (2 records), RetryAttemptsExhausted" in listed.output
    assert replayed.exit_code == 0, replayed.output
    assert "applied: 2 records, employees upserted 2" in replayed.output
    assert [(r["Id"], r["Name"]) for r in pg.rows("Employees", order_by="Id")] == [
        (1, "Ann"), (2, "Bo"), (3, "Cy"), (4, "Di")]
    assert stream.depth() == 0


def test_a_range_the_stream_no_longer_holds_stays_with_the_backfill_that_repairs_it(
        stream: Stream, config: Path, pg: Any) -> None:
    # GIVEN a message whose table, and so its stream, is gone
    stream.put(1, "Ann")
    shard, records = stream.records()
    stream.give_up(shard, records[0], records[0])
    stream.dynamodb.delete_table(TableName="Employees")
    # WHEN it is replayed
    replayed = cli("failures", "replay", "--config", str(config), "--queue-url", stream.queue)
    # THEN nothing is written, the message stays, and the output names the repair; exit 1
    assert replayed.exit_code == 1
    assert "the stream no longer holds this range (ResourceNotFoundException)" in replayed.output
    assert "repair: cdc-router backfill employees" in replayed.output
    assert pg.rows("Employees") == []
    assert stream.depth() == 1
