"""``cdc-router backfill`` and ``cdc-router verify`` through Click's runner, with DynamoDB and S3
in-process (moto) and the real Postgres: output, exit codes and one-line refusals."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from click.testing import CliRunner, Result
from conftest import EMPLOYEES
from exports import upload, write_export
from factories import wire
from moto import mock_aws
from moto_tables import create_employees
from psycopg import sql
from replica import scan

from handlers.cli import app


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("dynamodb")


@pytest.fixture
def employees(pg: Any, write_config: Callable[..., Path]) -> Path:
    path = write_config(EMPLOYEES, pg, deletes="hard", on_error="fail")
    assert CliRunner().invoke(app, ["schema", "--config", str(path), "--apply"]).exit_code == 0
    return path


def cli(*args: Any) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args])


def put(dynamodb: Any, ids: range) -> None:
    for i in ids:
        dynamodb.put_item(TableName="Employees", Item=wire({"Id": i, "empName": f"name{i}", "empDepartment": "Ops"}))


def test_backfill_then_verify(dynamodb: Any, employees: Path, pg: Any) -> None:
    create_employees(dynamodb)
    put(dynamodb, range(1, 121))

    done = cli("backfill", "employees", "--config", employees, "--segments", 3, "--batch-size", 50)

    assert done.exit_code == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "scanning Employees in 3 segment(s), no read limit"
    assert "backfill employees" in done.stdout and "120/120" in done.stdout and "items/s" in done.stdout
    assert lines[-1].startswith("120 item(s) read in ") and lines[-1].endswith(
        f': 120 written, 0 already in the target or deleted since, 0 dead-lettered; positions in '
        f'"{pg.state_schema}"."backfill_checkpoints"')
    again = cli("backfill", "employees", "--config", employees, "--segments", 3)
    assert again.stdout.splitlines()[-1] == ("nothing to do: this backfill finished earlier (120 items); --restart "
                                             "runs it again")
    assert "backfill employees" not in again.stdout  # no progress bar drawn full before it (issue 18)

    checked = cli("verify", "employees", "--config", employees)
    assert checked.exit_code == 0, checked.stderr
    assert checked.stdout.splitlines()[-3:] == [
        f'route employees: 120 DynamoDB item(s) of Employees make 120 row(s); {pg.schema}.Employees holds 120 '
        'live row(s)',
        "missing in the target: 0; extra in the target: 0; different: 0",
        "no drift: the target matches its DynamoDB table"]


def test_verify_prints_the_first_differences_and_exits_1(dynamodb: Any, employees: Path, pg: Any) -> None:
    create_employees(dynamodb)
    put(dynamodb, range(1, 21))
    assert cli("backfill", "employees", "--config", employees).exit_code == 0
    table = sql.Identifier(pg.schema, "Employees")
    pg.conn.execute(sql.SQL('UPDATE {} SET "Name" = %s WHERE "Id" = 3').format(table), ("renamed",))
    pg.conn.execute(sql.SQL('DELETE FROM {} WHERE "Id" = 4').format(table))

    for args in ([], ["--sample", 50]):
        checked = cli("verify", "employees", "--config", employees, "--show", 5, *args)
        assert checked.exit_code == 1
        out = checked.stdout
        assert "missing in the target: 1; extra in the target: 0; different: 1" in out
        assert "renamed" in out and "name3" in out and "drift: the target does not match" in out


@pytest.mark.parametrize("stream", [False, True])
def test_backfill_refuses_a_table_without_a_stream(dynamodb: Any, employees: Path, stream: bool) -> None:
    create_employees(dynamodb, stream=False)
    done = cli("backfill", "employees", "--config", employees)
    assert done.exit_code == 1
    assert done.stderr.startswith("error: DynamoDB table 'Employees' has no stream, so nothing would carry")
    assert done.stderr.count("\n") == 1


def test_backfill_from_an_s3_export(dynamodb: Any, employees: Path, pg: Any, tmp_path: Path) -> None:
    create_employees(dynamodb)  # the stream first, then the export
    put(dynamodb, range(1, 301))
    write_export(tmp_path, "Employees", scan(dynamodb, "Employees"), files=4)
    upload(boto3.client("s3"), tmp_path)

    done = cli("backfill", "employees", "--config", employees, "--from-export", "s3://backups/exports")

    assert done.exit_code == 0, done.stderr
    assert done.stdout.startswith("reading export arn:aws:dynamodb:us-east-1:123456789012:table/Employees/export/"
                                  "01700000000000-a1b2c3d4 (4 data file(s), taken ")
    assert "300 item(s) read" in done.stdout and len(pg.rows("Employees")) == 300
    assert cli("verify", "employees", "--config", employees).exit_code == 0


def test_an_export_of_another_table_is_refused(dynamodb: Any, employees: Path, tmp_path: Path) -> None:
    create_employees(dynamodb)
    write_export(tmp_path, "Orders", [wire({"Id": 1})], files=1)
    done = cli("backfill", "employees", "--config", employees, "--from-export", tmp_path)
    assert (done.exit_code, done.stderr) == (
        1, f"error: export {tmp_path} is of table 'Orders', and route 'employees' reads 'Employees'\n")


def test_an_unknown_route_is_a_usage_error(employees: Path) -> None:
    done = cli("verify", "nope", "--config", employees)
    assert done.exit_code == 2 and "unknown route 'nope' (routes: employees)" in done.stderr


def test_verify_refuses_a_target_that_differs_from_its_route(dynamodb: Any, employees: Path, pg: Any) -> None:
    create_employees(dynamodb)
    pg.conn.execute(sql.SQL('ALTER TABLE {} DROP COLUMN "Department"').format(sql.Identifier(pg.schema, "Employees")))
    done = cli("verify", "employees", "--config", employees)
    assert (done.exit_code, done.stderr) == (
        1, "error: the table of route 'employees' differs from the route: see cdc-router schema --check\n")


def test_backfill_of_a_kinesis_route_needs_no_dynamodb_stream(dynamodb: Any, pg: Any,
                                                              write_config: Callable[..., Path]) -> None:
    # GIVEN Employees read through the Kinesis data stream 'changes', and a table with no DynamoDB stream
    template = EMPLOYEES.replace("    sink: aurora\n", "    kinesis: changes\n    version: approximate_creation_time\n"
                                                     "    sink: aurora\n")
    config = write_config(template, pg, deletes="hard", on_error="fail")
    assert cli("schema", "--config", config, "--apply").exit_code == 0
    dynamodb.create_table(TableName="Employees", BillingMode="PAY_PER_REQUEST",
                          AttributeDefinitions=[{"AttributeName": "Id", "AttributeType": "N"}],
                          KeySchema=[{"AttributeName": "Id", "KeyType": "HASH"}])
    put(dynamodb, range(1, 4))
    # WHEN it is backfilled THEN the items are written at version 0, with a reminder of the hand-over to Kinesis
    done = cli("backfill", "employees", "--config", config)
    assert done.exit_code == 0, done.stderr
    assert "through the Kinesis data stream 'changes'" in done.stdout and "describe-kinesis-streaming-destination" \
        in done.stdout
    assert [(r["Id"], r["_cdc_version"]) for r in pg.rows("Employees", order_by="Id", bookkeeping=True)] == [
        (1, 0), (2, 0), (3, 0)]
