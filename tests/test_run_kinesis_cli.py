"""``cdc-router run`` on a Kinesis route, against a moto server's Kinesis: the stream read, positions
saved per shard, and ``--from`` with a time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from click.testing import CliRunner
from conftest import EMPLOYEES, PgTarget
from test_kinesis_source import KINESIS_EMPLOYEES, employee

from handlers.cli import app

T0 = 1_732_957_420_000


@pytest.fixture
def kinesis(endpoint: str) -> Any:
    client = boto3.client("kinesis", endpoint_url=endpoint)
    client.create_stream(StreamName="changes", ShardCount=2)
    return client


@pytest.fixture
def config(pg: PgTarget, write_config: Any) -> Path:
    path = write_config(KINESIS_EMPLOYEES, pg, version="approximate_creation_time", deletes="hard", on_error="fail")
    assert CliRunner().invoke(app, ["schema", "--config", str(path), "--apply"]).exit_code == 0
    return path


def put(kinesis: Any, *changes: dict[str, Any]) -> None:
    for change in changes:
        kinesis.put_record(StreamName="changes", Data=json.dumps(change).encode(),
                           PartitionKey=change["dynamodb"]["Keys"]["Id"]["N"])


@pytest.mark.parametrize("start", ["trim_horizon", "2000-01-01T00:00:00Z"])
def test_run_reads_the_kinesis_stream_until_idle(start: str, endpoint: str, kinesis: Any,
                                                 config: Path, pg: PgTarget) -> None:
    put(kinesis, employee(2, "Bo", "Ops", T0 + 1), employee(1, "Akua", "ExDept", T0 + 2, "MODIFY"),
        employee(1, "Akua", "AnyDept", T0))
    result = CliRunner().invoke(app, ["run", "--config", str(config), "--endpoint-url", endpoint, "--until-idle",
                                      "--from", start])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[-1].startswith("caught up: 3 record(s) applied")
    assert pg.rows("Employees", order_by="Id") == [{"Id": 1, "Name": "Akua", "Department": "ExDept"},
                                                   {"Id": 2, "Name": "Bo", "Department": "Ops"}]
    assert {row["stream_arn"] for row in pg.state("stream_checkpoints")} == {
        kinesis.describe_stream_summary(StreamName="changes")["StreamDescriptionSummary"]["StreamARN"]}


def test_from_a_time_is_refused_for_dynamodb_streams_and_a_bad_time_is_named(
        endpoint: str, pg: PgTarget, write_config: Any) -> None:
    path = write_config(EMPLOYEES, pg, deletes="hard", on_error="fail")
    late = CliRunner().invoke(app, ["run", "--config", str(path), "--endpoint-url", endpoint, "--until-idle",
                                    "--from", "2025-03-01T00:00:00Z"])
    assert late.exit_code == 1 and "--from TIME applies to Kinesis data streams only" in late.stderr
    bad = CliRunner().invoke(app, ["run", "--config", str(path), "--endpoint-url", endpoint, "--from", "yesterday"])
    assert bad.exit_code == 2 and "invalid start 'yesterday'" in bad.stderr
