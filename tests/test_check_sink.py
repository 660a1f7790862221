"""`cdc-router check-sink SINK`: every statement form of a sink, with edge values, read back and compared.

Run here against the test PostgreSQL (a Postgres sink), the Redshift stand-in (a Redshift
sink whose statements run on PostgreSQL as Redshift would run them), and, for the Data API
read it adds, botocore's Stubber.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import boto3
from botocore.stub import Stubber
from click.testing import CliRunner
from redshift_on_postgres import PostgresTransport

from handlers.cli import app
from operations.assemble import build_sinks, parse_config
from operations.check_sink import check_sink
from router.model import Config
from router.sink import Sink
from sinks.redshift.data_api import DataApiTransport
from sinks.redshift.transport import Statement

CONFIG = """
version: 1
sinks:
  aurora: {{type: postgres, dsn: "{url}"}}
  warehouse: {{type: redshift, workgroup: analytics, database: dev}}
routes:
  employees: {{source: Employees, sink: aurora, table: employees, key: [id], columns: {{id: {{type: bigint}}}}}}
"""


def scratch_schemas(url: str) -> list[str]:
    import psycopg
    with psycopg.connect(url) as conn:
        return [name for (name,) in conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'cdc_check_%'")]


def on_stand_in(url: str, transport: type[PostgresTransport] = PostgresTransport) -> Any:
    def make(scratch: Config, name: str) -> Sink:
        sink = build_sinks(scratch)[name]
        sink.transport = transport(url)  # type: ignore[attr-defined]
        return sink
    return make


def test_a_postgres_sink_passes_every_form_and_the_scratch_schemas_are_dropped(
        tmp_path: Path, database_url: str) -> None:
    path = tmp_path / "tables.yaml"
    path.write_text(CONFIG.format(url=database_url))
    before = scratch_schemas(database_url)
    result = CliRunner().invoke(app, ["check-sink", "aurora", "--config", str(path)])
    assert result.exit_code == 0, result.output
    assert "14 of 14 forms passed" in result.output and "FAIL" not in result.output
    assert scratch_schemas(database_url) == before


def test_the_redshift_statements_pass_every_form_on_the_stand_in(redshift_shims: str) -> None:
    config = parse_config(CONFIG.format(url=redshift_shims), "tables.yaml")
    results = check_sink(config, "warehouse", on_stand_in(redshift_shims))
    assert [(r.form, r.detail) for r in results if not r.passed] == []
    assert len(results) == 14


class ForgetsTombstones(PostgresTransport):
    """A broken sink: its tombstones are never written."""

    def execute(self, statements: Sequence[Statement], deadline: float | None = None,
                rollback: bool = False) -> list[int]:
        kept = [s for s in statements if not s.sql.startswith('INSERT INTO "cdc_check_')
                or '"tombstones"' not in s.sql]
        return super().execute(kept, deadline, rollback)


def test_a_form_that_fails_is_reported_and_the_others_still_run(redshift_shims: str) -> None:
    config = parse_config(CONFIG.format(url=redshift_shims), "tables.yaml")
    results = check_sink(config, "warehouse", on_stand_in(redshift_shims, ForgetsTombstones))
    assert [(r.form, r.detail) for r in results if not r.passed] == [
        ("hard delete: schema-qualified DELETE ... USING, tombstones guard a replay",
         "AssertionError('the deleted row came back')")]
    assert results[-1].form.startswith("DROP SCHEMA") and results[-1].passed


def test_an_unknown_sink_is_refused(tmp_path: Path, database_url: str) -> None:
    path = tmp_path / "tables.yaml"
    path.write_text(CONFIG.format(url=database_url))
    result = CliRunner().invoke(app, ["check-sink", "nope", "--config", str(path)])
    assert result.exit_code == 2 and "unknown sink 'nope' (sinks: aurora, warehouse)" in result.output


def test_the_warehouse_is_read_back_through_one_execute_statement_and_every_result_page() -> None:
    config = parse_config(CONFIG.format(url="postgresql://unused") + """
  docs:
    source: Docs
    sink: warehouse
    table: docs
    key: [id]
    columns: {id: {type: bigint}, doc: {type: jsonb}, blob: {type: bytea}, flag: {type: boolean}}
""", "tables.yaml")
    client = boto3.client("redshift-data", region_name="us-east-1")
    sink = build_sinks(config)["warehouse"]
    sink.transport = DataApiTransport({"WorkgroupName": "analytics", "Database": "dev"}, name="cdc-router:warehouse",  # type: ignore[attr-defined]
                                      client=client, sleep=lambda seconds: None)
    statement_id = str(uuid.UUID(int=2))
    stubber = Stubber(client)
    # every column as VARCHAR: SUPER through JSON_SERIALIZE, VARBYTE through TO_HEX, BOOLEAN through CASE
    select = ('SELECT CAST("id" AS VARCHAR) AS "id", JSON_SERIALIZE("doc") AS "doc", TO_HEX("blob") AS "blob", '
              'CASE WHEN "flag" THEN \'true\' WHEN NOT "flag" THEN \'false\' END AS "flag", '
              'CAST("_cdc_version" AS VARCHAR) AS "_cdc_version" FROM "public"."docs"')
    stubber.add_response("execute_statement", {"Id": statement_id}, {
        "Sql": select, "StatementName": "cdc-router:warehouse", "WorkgroupName": "analytics", "Database": "dev"})
    stubber.add_response("describe_statement", {"Id": statement_id, "Status": "FINISHED", "HasResultSet": True},
                         {"Id": statement_id})
    row = [{"stringValue": "1"}, {"stringValue": '{"n":1.50}'}, {"stringValue": "00ff"}, {"stringValue": "true"},
           {"stringValue": "100"}]
    stubber.add_response("get_statement_result", {"Records": [row], "NextToken": "page-2"}, {"Id": statement_id})
    stubber.add_response("get_statement_result", {"Records": [[*row[:3], {"isNull": True}, row[4]]]},
                         {"Id": statement_id, "NextToken": "page-2"})
    with stubber:
        rows = sink.read_text(config.routes["docs"])
    stubber.assert_no_pending_responses()
    assert rows == [{"id": "1", "doc": '{"n":1.50}', "blob": "00ff", "flag": flag, "_cdc_version": "100"}
                    for flag in ("true", None)]
