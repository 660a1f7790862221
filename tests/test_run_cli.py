"""``cdc-router run`` against a moto server endpoint: through Click's runner, and as a real
process that Ctrl-C (SIGINT) stops after the current batch with its position saved."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from click.testing import CliRunner
from conftest import EMPLOYEES
from factories import as_yaml, redshift, route, tables
from moto_tables import create_employees

from handlers.cli import app

BIN = Path(sys.executable).parent


@pytest.fixture
def dynamodb(endpoint: str) -> Any:
    client = boto3.client("dynamodb", endpoint_url=endpoint)
    create_employees(client)
    return client


@pytest.fixture
def employees(pg: Any, write_config: Callable[..., Path]) -> Path:
    path = write_config(EMPLOYEES, pg, deletes="hard", on_error="fail")
    assert CliRunner().invoke(app, ["schema", "--config", str(path), "--apply"]).exit_code == 0
    return path


def put(dynamodb: Any, *ids: int) -> None:
    for id_ in ids:
        dynamodb.put_item(TableName="Employees", Item={"Id": {"N": str(id_)}, "empName": {"S": f"n{id_}"}})


def test_run_until_idle_through_the_cli_runner(endpoint: str, dynamodb: Any, employees: Path, pg: Any) -> None:
    put(dynamodb, 1, 2, 3)
    result = CliRunner().invoke(app, ["run", "--config", str(employees), "--endpoint-url", endpoint,
                                      "--until-idle", "--batch-size", "2"])
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "reading the streams of Employees"
    assert [line.split(": ", 1)[1] for line in lines[1:3]] == [
        "2 records (SequenceNumber 1100000000017454423009..1100000000017454423010): employees upserted 2",
        "1 record (SequenceNumber 1100000000017454423011): employees upserted 1"]
    assert lines[3] == (f'caught up: 3 record(s) applied; positions saved in "{pg.state_schema}".'
                        '"stream_checkpoints"')
    assert [r["Id"] for r in pg.rows("Employees", order_by="Id")] == [1, 2, 3]


def test_run_without_a_postgres_sink_is_one_line(tmp_path: Path, endpoint: str) -> None:
    config = tmp_path / "tables.yaml"
    config.write_text(as_yaml(tables({"employees": route(sink="warehouse")}, {"warehouse": redshift()})))
    result = CliRunner().invoke(app, ["run", "--config", str(config), "--endpoint-url", endpoint, "--until-idle"])
    assert (result.exit_code, result.stderr) == (
        1, f"error: run keeps its stream positions in a postgres sink, and {config} has none\n")


def test_ctrl_c_stops_a_real_process_after_the_current_batch(endpoint: str, dynamodb: Any, employees: Path,
                                                             pg: Any) -> None:
    put(dynamodb, *range(1, 41))
    # GIVEN the console script reading one record per batch (40 of them: far more than it reads before
    # the signal arrives), polling while idle
    process = subprocess.Popen(
        [str(BIN / "cdc-router"), "run", "--config", str(employees), "--endpoint-url", endpoint,
         "--batch-size", "1", "--poll-interval", "0.1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "COLUMNS": "200"})
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith("reading the streams of Employees (Ctrl-C stops")
        first_batch = process.stdout.readline()
        assert "1 record (SequenceNumber 1100000000017454423009): employees upserted 1" in first_batch
        # WHEN it is interrupted
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    # THEN it finishes the batch in hand, saves its position and exits 0
    assert process.returncode == 0, err
    assert "stopping after the current batch" in err
    applied = len(pg.rows("Employees"))
    assert 1 <= applied < 40
    assert f"stopped: {applied} record(s) applied" in out
    (checkpoint,) = pg.state("stream_checkpoints")
    assert int(checkpoint["sequence_number"]) == 1100000000017454423009 + applied - 1

    # WHEN it runs again THEN it applies exactly the rest
    again = subprocess.run([str(BIN / "cdc-router"), "run", "--config", str(employees), "--endpoint-url", endpoint,
                            "--until-idle"], capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stderr
    assert f"caught up: {40 - applied} record(s) applied" in again.stdout
    assert [r["Id"] for r in pg.rows("Employees", order_by="Id")] == list(range(1, 41))
