"""The Kinesis stream runner against moto's Kinesis and a real Postgres: every shard read, a
position per shard, a restart that goes on where it stopped, and the three starting points."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from conftest import PgTarget
from moto import mock_aws
from test_kinesis_source import KINESIS_EMPLOYEES, employee

from operations.assemble import load_config, pipeline_for
from operations.checkpoints import PostgresCheckpoints
from operations.kinesis_runner import KinesisRunner
from operations.shard_runner import BatchReport, StreamError
from router.pipeline import Pipeline

T0 = 1_732_957_420_000  # ApproximateCreationDateTime of the first change, in milliseconds


@pytest.fixture
def kinesis() -> Iterator[Any]:
    """moto Kinesis with the data stream 'changes' of two shards."""
    with mock_aws():
        client = boto3.client("kinesis")
        client.create_stream(StreamName="changes", ShardCount=2)
        yield client


def put(kinesis: Any, *changes: dict[str, Any]) -> None:
    """What DynamoDB's Kinesis streaming destination does (moto does not stream tables into Kinesis)."""
    for change in changes:
        key = change["dynamodb"]["Keys"]["Id"]["N"]
        kinesis.put_record(StreamName="changes", Data=json.dumps(change).encode(), PartitionKey=f"pk-{key}")


class Target:
    def __init__(self, pg: PgTarget, config_path: Path, kinesis: Any):
        self.pg, self.config, self.kinesis = pg, load_config(config_path), kinesis
        self.reports: list[BatchReport] = []
        self.pipelines: list[Pipeline] = []

    def runner(self, **options: Any) -> KinesisRunner:
        """A fresh process's worth of objects, positions in the test's state schema."""
        pipeline = pipeline_for(self.config)
        pipeline.sinks["aurora"].apply_ddl()
        self.pipelines.append(pipeline)
        checkpoints = PostgresCheckpoints(pipeline.sinks["aurora"])  # type: ignore[arg-type]
        checkpoints.create()
        options.setdefault("on_batch", self.reports.append)
        return KinesisRunner(pipeline, self.kinesis, checkpoints, **options)


@pytest.fixture
def target(pg: PgTarget, write_config: Any, kinesis: Any) -> Iterator[Target]:
    path = write_config(KINESIS_EMPLOYEES, pg, version="approximate_creation_time", deletes="hard", on_error="fail")
    built = Target(pg, path, kinesis)
    yield built
    for pipeline in built.pipelines:
        pipeline.close()


def test_every_shard_is_read_out_of_order_and_positions_are_kept_per_shard(target: Target, kinesis: Any) -> None:
    # GIVEN changes of three items over both shards, newer ones first and one twice
    put(kinesis, employee(1, "Akua", "ExDept", T0 + 5, "MODIFY"), employee(2, "Bo", "Ops", T0 + 1),
        employee(1, "Akua", "AnyDept", T0), employee(3, "Cy", "Lab", T0 + 2), employee(2, "Bo", "Ops", T0 + 1))
    # WHEN the runner reads until caught up
    assert target.runner(batch_size=2).run(until_idle=True) == 5
    # THEN the newest state of every item, and a position saved for each shard that had records
    assert target.pg.rows("Employees", order_by="Id") == [
        {"Id": 1, "Name": "Akua", "Department": "ExDept"}, {"Id": 2, "Name": "Bo", "Department": "Ops"},
        {"Id": 3, "Name": "Cy", "Department": "Lab"}]
    positions = {row["shard_id"]: row["sequence_number"] for row in target.pg.state("stream_checkpoints")}
    assert positions and all(number is not None for number in positions.values())
    # WHEN more changes come and a new runner (a restart) reads on
    put(kinesis, employee(3, "Cy", "Ops", T0 + 9, "MODIFY"))
    assert target.runner().run(until_idle=True) == 1  # only the new record: the positions held
    assert target.pg.rows("Employees", order_by="Id")[2] == {"Id": 3, "Name": "Cy", "Department": "Ops"}


@pytest.mark.parametrize("start, applied", [
    ("trim_horizon", 2),                                        # everything the stream keeps
    ("latest", 0),                                              # only what arrives after the start
    (dt.datetime(2000, 1, 1, tzinfo=dt.UTC), 2),                # AT_TIMESTAMP before every record
    (dt.datetime.now(dt.UTC) + dt.timedelta(days=1), 0),        # AT_TIMESTAMP after every record
])
def test_where_a_shard_without_a_position_starts(target: Target, kinesis: Any, start: Any, applied: int) -> None:
    put(kinesis, employee(1, "Akua", "Ops", T0), employee(2, "Bo", "Ops", T0 + 1))
    assert target.runner(start=start).run(until_idle=True) == applied
    assert len(target.pg.rows("Employees")) == applied


def test_a_record_that_cannot_be_applied_stops_the_runner_at_its_sequence_number(target: Target, kinesis: Any) -> None:
    kinesis.put_record(StreamName="changes", Data=b"not json", PartitionKey="pk")
    with pytest.raises(StreamError, match="kinesis.data is not JSON .* starts again from sequenceNumber"):
        target.runner().run(until_idle=True)


def test_a_stream_that_does_not_exist_is_named(pg: PgTarget, write_config: Any, kinesis: Any) -> None:
    path = write_config(KINESIS_EMPLOYEES.replace("kinesis: changes", "kinesis: missing"), pg,
                        version="approximate_creation_time", deletes="hard", on_error="fail")
    runner = Target(pg, path, kinesis).runner()
    with pytest.raises(StreamError, match="Kinesis data stream 'missing'"):
        runner.run(until_idle=True)
