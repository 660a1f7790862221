"""The stream runner against moto's DynamoDB Streams and a real Postgres: position per shard,
stop and restart without gaps or double applies, failures that stop or retry in place."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import boto3
import pytest
from conftest import EMPLOYEES
from memory_sink import MemorySink
from moto import mock_aws
from moto_tables import create_employees

from operations.assemble import load_config, pipeline_for
from operations.checkpoints import PostgresCheckpoints
from operations.shard_runner import BatchReport, Checkpoint, StreamError
from operations.stream_runner import StreamRunner
from router.pipeline import Pipeline
from router.sink import TransientSinkError


@pytest.fixture
def aws() -> Iterator[tuple[Any, Any]]:
    """moto DynamoDB with the Employees table and its NEW_IMAGE stream."""
    with mock_aws():
        dynamodb = boto3.client("dynamodb")
        create_employees(dynamodb)
        yield dynamodb, boto3.client("dynamodbstreams")


class Target:
    """A config over the test's schemas; each ``runner()`` is a fresh process's worth of objects."""

    def __init__(self, pg: Any, config_path: Any, aws: tuple[Any, Any]):
        self.pg, self.config, (self.dynamodb, self.streams) = pg, load_config(config_path), aws
        self.reports: list[BatchReport] = []
        self.pipelines: list[Pipeline] = []

    def pipeline(self) -> Pipeline:
        pipeline = pipeline_for(self.config)
        pipeline.sinks["aurora"].apply_ddl()
        self.pipelines.append(pipeline)
        return pipeline

    def runner(self, pipeline: Pipeline | None = None, **options: Any) -> StreamRunner:
        """A runner whose checkpoints live in the test's Postgres state schema."""
        postgres = self.pipeline()
        checkpoints = PostgresCheckpoints(postgres.sinks["aurora"])  # type: ignore[arg-type]
        checkpoints.create()
        options.setdefault("on_batch", self.reports.append)
        return StreamRunner(pipeline or postgres, self.streams, self.dynamodb, checkpoints, **options)

    def checkpoint(self) -> Checkpoint:
        (row,) = self.pg.state("stream_checkpoints")
        return Checkpoint(int(row["sequence_number"]) if row["sequence_number"] is not None else None,
                          row["finished"])

    def applied_sequences(self) -> list[int]:
        return [int(r["dynamodb"]["SequenceNumber"]) for rep in self.reports for r in rep.records[: rep.applied]]

    def dynamodb_rows(self) -> list[dict[str, Any]]:
        """The DynamoDB table as the route maps it: what the target must equal."""
        items = self.dynamodb.scan(TableName="Employees")["Items"]
        rows = [{"Id": int(i["Id"]["N"]), "Name": i.get("empName", {}).get("S", "NA"),
                 "Department": i.get("empDepartment", {}).get("S", "NA")} for i in items]
        return sorted(rows, key=lambda row: row["Id"])


@pytest.fixture
def target(pg: Any, write_config: Callable[..., Any], aws: tuple[Any, Any]) -> Iterator[Target]:
    made = Target(pg, write_config(EMPLOYEES, pg, deletes="hard", on_error="fail"), aws)
    yield made
    for pipeline in made.pipelines:
        pipeline.close()


def put(dynamodb: Any, id_: int, name: str, department: str | None = None) -> None:
    item = {"Id": {"N": str(id_)}, "empName": {"S": name}}
    if department:
        item["empDepartment"] = {"S": department}
    dynamodb.put_item(TableName="Employees", Item=item)


def stream_sequences(streams: Any, dynamodb: Any) -> list[int]:
    """Every record on the stream, read independently of the runner."""
    arn = dynamodb.describe_table(TableName="Employees")["Table"]["LatestStreamArn"]
    (shard,) = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"],
                                          ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    return [int(r["dynamodb"]["SequenceNumber"]) for r in streams.get_records(ShardIterator=iterator)["Records"]]


def stop_after(batches: int, target: Target) -> tuple[threading.Event, Callable[[BatchReport], None]]:
    """A stop event that is set, as Ctrl-C would, once ``batches`` batches are done; and the hook that counts."""
    stop = threading.Event()

    def on_batch(report: BatchReport) -> None:
        target.reports.append(report)
        if len(target.reports) >= batches:
            stop.set()

    return stop, on_batch


def test_stop_mid_stream_and_restart_loses_nothing_and_applies_nothing_twice(target: Target) -> None:
    db = target.dynamodb
    for id_ in range(1, 8):
        put(db, id_, f"name {id_}", "Dept")

    # GIVEN seven records WHEN the runner starts from trim_horizon and is stopped after two batches of two
    stop, on_batch = stop_after(2, target)
    assert target.runner(batch_size=2, on_batch=on_batch).run(stop) == 4
    position = target.checkpoint()
    assert position == Checkpoint(stream_sequences(target.streams, db)[3])  # the fourth record
    assert [r["Id"] for r in target.pg.rows("Employees", order_by="Id")] == [1, 2, 3, 4]

    # WHEN the table changes while the runner is down (an update, a delete, a new item, an upsert that
    # moto reports as two INSERTs) and a new runner starts from the saved positions
    db.update_item(TableName="Employees", Key={"Id": {"N": "2"}}, UpdateExpression="SET empName = :n",
                   ExpressionAttributeValues={":n": {"S": "renamed"}})
    db.delete_item(TableName="Employees", Key={"Id": {"N": "6"}})
    put(db, 8, "eight")
    db.update_item(TableName="Employees", Key={"Id": {"N": "9"}}, UpdateExpression="SET empName = :n",
                   ExpressionAttributeValues={":n": {"S": "nine"}})
    assert target.runner(batch_size=2).run(until_idle=True) == len(stream_sequences(target.streams, db)) - 4

    # THEN every record was applied exactly once, in order, and the target equals DynamoDB
    everything = stream_sequences(target.streams, db)
    assert target.applied_sequences() == everything
    assert sum(s.stale for rep in target.reports for s in rep.result.stats.values()) == 0
    assert target.pg.rows("Employees", order_by="Id") == target.dynamodb_rows()
    assert target.checkpoint() == Checkpoint(everything[-1])
    assert everything[-1] > position.sequence_number


def test_a_third_start_with_nothing_new_reads_nothing(target: Target) -> None:
    put(target.dynamodb, 1, "one")
    target.runner().run(until_idle=True)
    before = target.checkpoint()
    assert target.runner().run(until_idle=True) == 0
    assert target.checkpoint() == before and len(target.reports) == 1


def test_from_latest_skips_the_past_but_not_what_happens_while_stopped(target: Target) -> None:
    put(target.dynamodb, 1, "before the first start")
    # GIVEN a first start from latest with nothing new: no record to checkpoint, but the shard is marked
    assert target.runner(start="latest").run(until_idle=True) == 0
    assert target.checkpoint() == Checkpoint(None)
    # WHEN an item is written while the runner is down and it starts again
    put(target.dynamodb, 2, "while stopped")
    target.runner(start="latest").run(until_idle=True)
    # THEN the restart read the shard from its start: nothing written meanwhile was skipped
    assert [r["Id"] for r in target.pg.rows("Employees", order_by="Id")] == [1, 2]


def test_a_failing_record_stops_the_runner_after_saving_what_was_applied(target: Target) -> None:
    db = target.dynamodb
    put(db, 1, "fine")
    db.put_item(TableName="Employees", Item={"Id": {"N": "2"}, "empName": {"S": "n"}})
    sequences = stream_sequences(target.streams, db)
    # an Id too large for bigint: a cast error on a key column, and on_error is fail
    db.put_item(TableName="Employees", Item={"Id": {"N": "99999999999999999999"}, "empName": {"S": "too big"}})
    put(db, 3, "after the failure")

    with pytest.raises(StreamError) as failed:
        target.runner().run(until_idle=True)

    failing = stream_sequences(target.streams, db)[2]
    assert str(failed.value).startswith("table Employees, shardId-")
    assert f"the next run starts again from SequenceNumber {failing}" in str(failed.value)
    assert target.checkpoint() == Checkpoint(sequences[1])
    assert [r["Id"] for r in target.pg.rows("Employees", order_by="Id")] == [1, 2]


def test_a_transient_failure_is_retried_from_the_failed_record(target: Target) -> None:
    memory = MemorySink(target.config.sinks["aurora"], list(target.config.routes.values()))
    memory.fail_next(TransientSinkError("connection reset"), times=2)
    pipeline = pipeline_for(target.config, {"aurora": memory})
    for id_ in (1, 2, 3):
        put(target.dynamodb, id_, f"name {id_}", "Dept")

    assert target.runner(pipeline, max_retries=3).run(until_idle=True) == 3

    assert [rep.result.failure is not None for rep in target.reports] == [True, True, False]
    assert sorted(key for (key,) in memory.rows(target.config.routes["employees"])) == [1, 2, 3]
    assert target.checkpoint() == Checkpoint(stream_sequences(target.streams, target.dynamodb)[-1])


@pytest.mark.parametrize("stream, error", [
    (False, "DynamoDB table 'Employees' has no stream: enable one with StreamViewType NEW_IMAGE or "
            "NEW_AND_OLD_IMAGES"),
    (None, "DynamoDB table 'Employees' (a route's source) does not exist"),
])
def test_a_table_without_a_stream_is_one_clear_error(target: Target, stream: bool | None, error: str) -> None:
    target.dynamodb.delete_table(TableName="Employees")
    if stream is not None:  # the table again, without a stream
        create_employees(target.dynamodb, stream=False)
    with pytest.raises(StreamError) as failed:
        target.runner().run(until_idle=True)
    assert str(failed.value) == error


def test_version_numbers_are_exact(target: Target) -> None:
    put(target.dynamodb, 1, "one")
    target.runner().run(until_idle=True)
    (row,) = target.pg.rows("Employees", bookkeeping=True)
    assert row["_cdc_version"] == Decimal(stream_sequences(target.streams, target.dynamodb)[0])
