"""``schema --check`` covers the sinks' state tables, and a batch that meets a missing table says
to run ``schema --apply`` (issue 12, finding 12)."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import EMPLOYEES
from factories import Stream, event
from psycopg import sql
from redshift_on_postgres import BOTH_SINKS, EMPLOYEES_ROUTE


def test_missing_state_tables_are_drift(pg: Any, make_both_pipeline: Any) -> None:
    # GIVEN both sinks with their tables, then the state tables dropped
    pipeline = make_both_pipeline(pg, BOTH_SINKS + EMPLOYEES_ROUTE)
    sink = pipeline.sinks["aurora"]
    for sink_ in pipeline.sinks.values():
        sink_.apply_ddl()
    assert sink.check_state() == []
    pg.conn.execute(sql.SQL("DROP TABLE {}, {}").format(sql.Identifier(pg.state_schema, "tombstones"),
                                                        sql.Identifier(pg.state_schema, "dead_letters")))
    # WHEN checked THEN each missing state table is drift, fixed by the state DDL
    drifts = sink.check_state()
    assert [(d.table, d.problem) for d in drifts] == [(f"{pg.state_schema}.tombstones", "missing state table"),
                                                      (f"{pg.state_schema}.dead_letters", "missing state table")]
    assert drifts[0].fix == tuple(sink.state_ddl())
    assert pipeline.sinks["warehouse"].check_state() == []


@pytest.mark.parametrize("table", ["tombstones", "Employees"])
def test_a_batch_meeting_a_missing_table_says_to_run_schema_apply(pg: Any, make_pipeline: Any, table: str) -> None:
    pipeline = make_pipeline(pg)
    schema = pg.state_schema if table == "tombstones" else pg.schema
    pg.conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(schema, table)))
    s = Stream("Employees")
    result = pipeline.process(event([s.insert({"Id": 1, "empName": "a"}), s.remove({"Id": 1})]))
    assert result.failure is not None and not result.failure.transient
    assert "does not exist" in result.failure.reason
    assert result.failure.reason.endswith("(create the missing tables with: cdc-router schema --apply)")


def test_schema_check_lists_missing_state_tables(pg: Any, make_pipeline: Any, write_config: Any) -> None:
    from click.testing import CliRunner

    from handlers.cli import app

    make_pipeline(pg)
    pg.conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(pg.state_schema, "tombstones")))
    path = write_config(EMPLOYEES, pg, deletes="hard", on_error="fail")
    result = CliRunner().invoke(app, ["schema", "--check", "-c", str(path)])
    assert result.exit_code == 1, result.output
    assert "cdc-router schema --apply" in result.output and "tombstones" in result.output
