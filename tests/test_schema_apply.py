"""``cdc-router schema --apply`` brings a table replicated under an earlier config to the current one:
additive changes run, destructive ones are printed and held back (exit 3) unless --allow-destructive,
and what Redshift cannot do in place is left to do by hand with the way to do it (exit 4). On the real
PostgreSQL and on the Redshift stand-in, which refuses what Redshift refuses."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner, Result
from factories import Stream, event, postgres, redshift, route, tables

from handlers.cli import app
from handlers.cli_schema import EXIT_BY_HAND, EXIT_WITHHELD

V1_COLUMNS = {"Id": {"type": "bigint"}, "Name": {"from": "empName", "type": "varchar(20)"},
              "Title": {"type": "text"}}
# v2: Name widened, Title no longer written, Email new
V2_COLUMNS = {"Id": {"type": "bigint"}, "Name": {"from": "empName", "type": "varchar(40)"},
              "Email": {"type": "text"}}


def cli(*args: Any) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def config(sink: str, pg: Any, warehouse_pg: Any, columns: dict[str, Any]) -> dict[str, Any]:
    schema = pg.schema if sink == "aurora" else warehouse_pg.schema
    return tables({"employees": route(f"{schema}.Employees", sink=sink, columns=columns)},
                  {"aurora": postgres(pg.state_schema), "warehouse": redshift(warehouse_pg.state_schema)})


def rows(sink: str, pg: Any, warehouse_pg: Any) -> list[dict[str, Any]]:
    """The table's rows, column names in lower case (Redshift folds them)."""
    target, table = (pg, "Employees") if sink == "aurora" else (warehouse_pg, "employees")
    return [{k.lower(): v for k, v in row.items()} for row in target.rows(table, order_by="id" if sink != "aurora"
                                                                               else "Id")]


@pytest.mark.parametrize("sink", ["aurora", "warehouse"])
def test_additive_changes_apply_destructive_ones_wait_for_allow_destructive(
        sink: str, pg: Any, warehouse_pg: Any, make_both_pipeline: Any, write_config: Any, warehouse_cli: None) -> None:
    # GIVEN a table replicated under v1, with rows
    pipeline = make_both_pipeline(pg, config(sink, pg, warehouse_pg, V1_COLUMNS))
    s = Stream("Employees")
    assert pipeline.process(event([s.insert({"Id": 1, "empName": "Akua", "Title": "CTO"}),
                                   s.insert({"Id": 2, "empName": "Bo", "Title": "Dev"})])).failure is None
    path = write_config(config(sink, pg, warehouse_pg, V2_COLUMNS), pg)
    # WHEN schema --apply runs with v2
    first = cli("schema", "-c", path, "--apply")
    # THEN the new column is added, the rest is printed with the statements that would run, exit 3
    assert first.exit_code == EXIT_WITHHELD, first.output
    assert rows(sink, pg, warehouse_pg) == [{"id": 1, "name": "Akua", "title": "CTO", "email": None},
                                            {"id": 2, "name": "Bo", "title": "Dev", "email": None}]
    assert f"-- sink {sink}: applied:" in first.output and "missing column Email" in first.output
    assert "-- destructive, not run: these statements would run:" in first.output
    assert 'ALTER COLUMN "Name" TYPE' in first.output and 'DROP COLUMN "' in first.output
    assert "-- to run them: cdc-router schema --apply --allow-destructive --route employees" in first.output
    assert cli("schema", "-c", path, "--check").exit_code == 1
    # WHEN run again with --allow-destructive THEN the type is widened (values kept), Title dropped, no drift
    second = cli("schema", "-c", path, "--apply", "--allow-destructive")
    assert second.exit_code == 0, second.output
    assert rows(sink, pg, warehouse_pg) == [{"id": 1, "name": "Akua", "email": None},
                                            {"id": 2, "name": "Bo", "email": None}]
    checked = cli("schema", "-c", path, "--check")
    assert checked.exit_code == 0 and "no drift" in checked.output
    # AND the function under v2 writes the new shape into it
    v2 = make_both_pipeline(pg, config(sink, pg, warehouse_pg, V2_COLUMNS))
    assert v2.process(event([s.modify({"Id": 2, "empName": "B" * 30, "Email": "b@x"})])).failure is None
    assert rows(sink, pg, warehouse_pg)[1] == {"id": 2, "name": "B" * 30, "email": "b@x"}


def test_what_redshift_cannot_do_in_place_is_left_to_do_by_hand(
        pg: Any, warehouse_pg: Any, make_both_pipeline: Any, write_config: Any, warehouse_cli: None) -> None:
    # GIVEN a Redshift table whose key column was INTEGER, and a column now of another type than VARCHAR
    make_both_pipeline(pg, config("warehouse", pg, warehouse_pg, {**V1_COLUMNS, "Id": {"type": "integer"}}))
    path = write_config(config("warehouse", pg, warehouse_pg, {**V1_COLUMNS, "Title": {"type": "bigint"}}), pg)
    # WHEN applied, even with --allow-destructive
    applied = cli("schema", "-c", path, "--apply", "--allow-destructive")
    # THEN the key column's type is left as it is, with how to change it; Title is dropped and added as BIGINT
    assert applied.exit_code == EXIT_BY_HAND, applied.output
    assert "-- not possible in place, to do by hand:" in applied.output
    assert "employees: " + f"{warehouse_pg.schema}.Employees: type mismatch Id: Redshift cannot change the type of " \
           "Id in place" in applied.output
    assert "recreate the table" in applied.output and "cdc-router backfill employees" in applied.output
    assert "cdc-router backfill employees --columns Title" in applied.output
    left = cli("schema", "-c", path, "--check")
    assert left.exit_code == 1 and "type mismatch" in left.output and "Title" not in left.output.split("│ Id")[-1]


def test_a_missing_history_index_is_created(pg: Any, make_pipeline: Any, write_config: Any) -> None:
    history = tables({"employees": route(f"{pg.schema}.Employees", mode="history")}, {"aurora": postgres(pg.state_schema)})
    make_pipeline(pg, history)
    pg.conn.execute(f'DROP INDEX "{pg.schema}"."Employees_current"')
    path = write_config(history, pg)
    checked = cli("schema", "-c", path, "--check")
    assert checked.exit_code == 1 and "missing index" in checked.output
    assert cli("schema", "-c", path, "--apply").exit_code == 0
    assert cli("schema", "-c", path, "--check").exit_code == 0


def test_allow_destructive_goes_with_apply(pg: Any, write_config: Any) -> None:
    path = write_config(tables({"employees": route(f"{pg.schema}.Employees")}, {"aurora": postgres(pg.state_schema)}), pg)
    result = CliRunner().invoke(app, ["schema", "-c", str(path), "--allow-destructive"])
    assert result.exit_code == 2 and "--allow-destructive goes with --apply" in result.output


def test_columns_an_auto_route_added_are_not_extra(pg: Any, make_pipeline: Any, write_config: Any) -> None:
    # GIVEN an auto route's table with a column beyond the listed ones (as an attribute adds it)
    auto = tables({"employees": route(f"{pg.schema}.Employees", columns={"Id": {"type": "bigint"}}, auto=True)},
                  {"aurora": postgres(pg.state_schema)})
    make_pipeline(pg, auto)
    pg.conn.execute(f'ALTER TABLE "{pg.schema}"."Employees" ADD COLUMN "Nickname" text')
    path = write_config(auto, pg)
    # THEN it is no drift, and --apply drops nothing, even with --allow-destructive
    assert cli("schema", "-c", path, "--check").exit_code == 0
    assert cli("schema", "-c", path, "--apply", "--allow-destructive").exit_code == 0
    assert pg.rows("Employees") == [] and "Nickname" in {c.name for c in pg.conn.execute(
        f'SELECT * FROM "{pg.schema}"."Employees"').description}
