"""``cdc-router demo --kinesis``: the walkthrough with every change through a Kinesis data stream,
delivered twice and newest first, ends with the same tables as the DynamoDB Streams demo."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from test_demo import assert_walkthrough, demo_connections

from handlers.cli import app


def test_demo_through_kinesis(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("COLUMNS", "200")
    before = demo_connections(database_url)
    result = CliRunner().invoke(app, ["demo", "--kinesis"])
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[2].startswith("Kinesis: in-process moto; every change put into the data stream 'changes' twice")
    assert_walkthrough(result.stdout)  # the same tables after each step as through DynamoDB Streams
    # each step's change arrived twice, as Kinesis records of both tables' stream
    assert "Employees, Orders shardId-000000000000: 2 records (Kinesis sequenceNumber 1..2): employees upserted 1" \
        in result.stdout
    assert "employees deleted 1" in result.stdout and "│ customer_name │ Ama Mensah" in result.stdout
    assert demo_connections(database_url) == before
