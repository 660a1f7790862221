"""``cdc-router status``: each route's last applied change from the progress table the sink writes in
the batch's transaction, its rows, tombstones and dead letters, the runner's checkpoints; with AWS
(moto) each trigger's state and the failure queue's depth."""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from click.testing import CliRunner
from conftest import EMPLOYEES
from factories import Stream, event
from moto import mock_aws
from moto_tables import create_employees
from pgfaults import SERIALIZATION_FAILURE, FaultTrigger

from handlers.cli import app
from operations import status as reading
from operations.assemble import load_config, pipeline_for
from operations.checkpoints import PostgresCheckpoints

ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/Employees/stream/2026-12-01T00:00:00.000"


def bad_id(record: dict[str, Any]) -> dict[str, Any]:
    """A cast error on the key column: dead-lettered under on_error: dead_letter."""
    record["dynamodb"]["Keys"]["Id"] = record["dynamodb"]["NewImage"]["Id"] = {"N": "1.5"}
    return record


@pytest.fixture
def config(pg: Any, write_config: Callable[..., Path]) -> Path:
    path = write_config(EMPLOYEES, pg, deletes="hard", on_error="dead_letter")
    assert CliRunner().invoke(app, ["schema", "--config", str(path), "--apply"]).exit_code == 0
    return path


def progress(config: Path) -> reading.RouteStatus:
    pipeline = pipeline_for(load_config(config))
    try:
        [route] = reading.read(pipeline).routes
    finally:
        pipeline.close()
    return route


def test_status_shows_the_last_applied_change_rows_tombstones_dead_letters_and_checkpoints(
        config: Path, pg: Any) -> None:
    stream, now = Stream("Employees"), time.time()
    pipeline = pipeline_for(load_config(config))
    try:
        # GIVEN rows 1, 2, 3; then 2 deleted and a record that can never fit (dead-lettered)
        pipeline.process(event([stream.insert({"Id": n, "empName": f"n{n}"}, sequence=100 + n, created=now - 60)
                                for n in (1, 2, 3)]))
        pipeline.process(event([stream.remove({"Id": 2}, sequence=200, created=now - 30),
                                bad_id(stream.insert({"Id": 9}, sequence=300, created=now - 20))]))
        PostgresCheckpoints(pipeline.sinks["aurora"]).create()  # type: ignore[arg-type]
        PostgresCheckpoints(pipeline.sinks["aurora"]).save(ARN, "shardId-0001", 300)  # type: ignore[arg-type]
    finally:
        pipeline.close()
    # WHEN the status is read
    route = progress(config)
    # THEN the newest change applied is the dead-lettered one (the stream moved past it), made 20 s ago
    assert (route.version, route.rows, route.rows_estimated, route.tombstones, route.dead_letters) == (
        300, 2, False, 1, 1)
    assert route.changed_at is not None and abs(route.changed_at.timestamp() - (now - 20)) < 1
    assert route.lag is not None and route.applied_at is not None
    # and the command prints it on one screen with the runner's checkpoint
    shown = CliRunner().invoke(app, ["status", "--config", str(config)])
    assert shown.exit_code == 0, shown.output
    [line] = [line for line in shown.output.splitlines() if "employees" in line]
    assert "#300" in line and "Employees -> " in line
    assert [cell.strip() for cell in line.split("│")[-4:-1]] == ["2", "1", "1"]
    assert "shardId-0001" in shown.output and "local runner" in shown.output


def test_progress_moves_only_with_committed_batches_and_never_back(config: Path, pg: Any) -> None:
    stream = Stream("Employees")
    pipeline = pipeline_for(load_config(config))
    try:
        pipeline.process(event([stream.insert({"Id": 1}, sequence=500)]))
        # GIVEN a batch the database refuses (rolled back): progress stays
        faults = FaultTrigger(pg.conn, pg.schema, "Employees", "Id")
        faults.arm(2, SERIALIZATION_FAILURE)
        assert pipeline.process(event([stream.insert({"Id": 2}, sequence=600)])).failure is not None
        assert progress(config).version == 500
        faults.clear()
        # GIVEN a late batch of an older shard: progress does not go back
        pipeline.process(event([stream.insert({"Id": 3}, sequence=400)]))
        assert progress(config).version == 500
    finally:
        pipeline.close()


def test_a_database_without_the_progress_table_still_replicates_and_status_says_why(
        config: Path, pg: Any) -> None:
    # GIVEN a state schema made before the progress table existed
    pg.conn.execute(f'DROP TABLE "{pg.state_schema}"."route_progress"')
    pipeline = pipeline_for(load_config(config))
    try:
        # WHEN a batch arrives, THEN it applies (no progress recorded)
        assert pipeline.process(event([Stream("Employees").insert({"Id": 1})])).failure is None
    finally:
        pipeline.close()
    route = progress(config)
    assert (route.version, route.rows) == (None, 1)
    assert route.note == f"no {pg.state_schema}.route_progress table: run cdc-router schema --apply"


def test_with_a_stack_status_shows_each_trigger_and_the_failure_queues_depth(config: Path) -> None:
    with mock_aws():
        # GIVEN a function with a trigger on the Employees stream, disabled, and a stack naming it and its queue
        stream_arn = create_employees(boto3.client("dynamodb"))
        function = deploy_function(stream_arn, enabled=False)
        queue_url = deploy_stack(function)
        boto3.client("sqs").send_message(QueueUrl=queue_url, MessageBody=json.dumps({"DDBStreamBatchInfo": {}}))
        # WHEN the status is asked with the stack
        shown = CliRunner().invoke(app, ["status", "--config", str(config), "--stack", "cdc"])
    # THEN the trigger's state and the queue's depth are on the screen
    assert shown.exit_code == 0, shown.output
    [trigger] = [line for line in shown.output.splitlines() if line.startswith("│ Employees ")]
    assert "Disabled" in trigger
    assert "failure queue: 1 message(s) (cdc-router failures list)" in shown.output


def deploy_function(stream_arn: str, enabled: bool) -> str:
    role = boto3.client("iam").create_role(RoleName="cdc", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("handler.py", "def handler(event, context): pass\n")
    client = boto3.client("lambda")
    client.create_function(FunctionName="cdc-fn", Runtime="python3.12", Role=role, Handler="handler.handler",
                           Code={"ZipFile": code.getvalue()})
    client.create_event_source_mapping(EventSourceArn=stream_arn, FunctionName="cdc-fn",
                                       StartingPosition="TRIM_HORIZON", Enabled=enabled)
    return "cdc-fn"


def deploy_stack(function: str) -> str:
    """A stack with the outputs the rendered template has: FunctionName and FailureQueueUrl."""
    template = {"Resources": {"FailureQueue": {"Type": "AWS::SQS::Queue"}},
                "Outputs": {"FunctionName": {"Value": function}, "FailureQueueUrl": {"Value": {"Ref": "FailureQueue"}}}}
    cloudformation = boto3.client("cloudformation")
    cloudformation.create_stack(StackName="cdc", TemplateBody=json.dumps(template))
    outputs = cloudformation.describe_stacks(StackName="cdc")["Stacks"][0]["Outputs"]
    return next(o["OutputValue"] for o in outputs if o["OutputKey"] == "FailureQueueUrl")
