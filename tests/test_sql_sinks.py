"""What the SQL sink base gives both sinks: one tombstone key encoding, dead letters that
``cdc-router dead-letters list/retry`` reach on a Redshift route, and ``schema --check`` on one.

Redshift's statements run on the test PostgreSQL (``redshift_on_postgres``); the command line
builds its own sinks, so its Data API transport is swapped for that one.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import replace
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner, Result
from factories import Stream, event
from psycopg import sql
from redshift_on_postgres import BOTH_SINKS, EMPLOYEES_ROUTE

from handlers.cli import app
from router.modes import Fix
from router.sink import Drift, SinkError
from sinks.redshift.transport import Statement
from sinks.sql.rows import tombstone_key

PEOPLE = BOTH_SINKS + """  people:
    source: People
    sink: warehouse
    table: {wschema}.people
    key: [Id]
    columns:
      Id:   {{type: bigint}}
      Name: {{type: "{name_type}"}}
    deletes: hard
    on_error: dead_letter
"""
BOTH_FROM_ONE_SOURCE = BOTH_SINKS + EMPLOYEES_ROUTE + EMPLOYEES_ROUTE.replace(
    "  employees:", "  employees_warehouse:").replace("sink: aurora", "sink: warehouse").replace(
    "{schema}.Employees", "{wschema}.Employees")


def cli(*args: Any) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


# -- one tombstone key encoding ---------------------------------------------------------------


def test_both_sinks_write_the_same_tombstone(pg: Any, warehouse_pg: Any, make_both_pipeline: Any) -> None:
    pipeline = make_both_pipeline(pg, BOTH_FROM_ONE_SOURCE)
    s = Stream("Employees")
    assert pipeline.process(event([s.insert({"Id": 2001, "empName": "Akua"}), s.remove({"Id": 2001})])).failure is None
    postgres, redshift = pg.state("tombstones"), warehouse_pg.state("tombstones")
    assert [(t["target"], t["key"], t["version"]) for t in postgres] == [
        (f'"{pg.schema}"."Employees"', '["2001"]', 10**20 + 100)]
    assert [(t["key"], t["version"]) for t in redshift] == [(t["key"], t["version"]) for t in postgres]


@pytest.mark.parametrize("value, type_name", [
    (2001, "bigint"),
    (Decimal("-1.50"), "numeric(10,2)"),                      # the scale's zeros are part of the text
    ("O'Brien \"é\" \\ 😀", "text"),                          # quotes, backslash, non-ASCII kept as such
    (uuid.UUID("6f1c0a52-9b8e-4c8e-8f3e-0d2b8d1a7c11"), "uuid"),
    (dt.date(2024, 2, 29), "date"),
    (True, "boolean"),
    (dt.datetime(2024, 1, 1, 12, 0, 0, 500000, tzinfo=dt.timezone(dt.timedelta(hours=2))), "timestamptz"),
    (dt.datetime(2024, 1, 1, 12, 0, 0), "timestamp"),
    (b"\x00\xff", "bytea"),
])
def test_a_key_is_spelled_as_array_to_json_spells_the_former_text_array(value: Any, type_name: str,
                                                                         database_url: str) -> None:
    # the upgrade of tombstones kept as text[] (sinks.postgres.drift) relies on this equality
    query = sql.SQL("SELECT array_to_json(ARRAY[%s::{}::text, 'x'])::text").format(sql.SQL(type_name))
    with psycopg.connect(database_url, options="-c TimeZone=UTC") as conn:
        [(expected,)] = conn.execute(query, (value,)).fetchall()
    assert tombstone_key((value, "x")) == expected


def test_tombstones_kept_as_text_arrays_are_upgraded_and_still_stop_a_stale_replay(
        pg: Any, make_pipeline: Any) -> None:
    # GIVEN the tombstones table of an earlier version, holding a delete of 2001 newer than any record below
    tombstones = sql.Identifier(pg.state_schema, "tombstones")
    pg.conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(pg.state_schema)))
    pg.conn.execute(sql.SQL('CREATE TABLE {} ("target" text NOT NULL, "key" text[] NOT NULL, "version" numeric '
                            'NOT NULL, "deleted_at" timestamptz NOT NULL DEFAULT now(), PRIMARY KEY ("target", "key"))')
                    .format(tombstones))
    pg.conn.execute(sql.SQL("INSERT INTO {} VALUES (%s, ARRAY['2001'], %s)").format(tombstones),
                    (f'"{pg.schema}"."Employees"', 10**21))
    # WHEN the sink creates its tables, and a replayed insert of 2001 arrives
    pipeline = make_pipeline(pg)
    s = Stream("Employees")
    result = pipeline.process(event([s.insert({"Id": 2001, "empName": "Akua"}), s.insert({"Id": 7, "empName": "Bo"})]))
    # THEN the tombstone is in the one encoding and still stops the stale insert; the other key applies
    assert [t["key"] for t in pg.state("tombstones")] == ['["2001"]']
    assert (result.stats["employees"].upserted, result.stats["employees"].stale) == (1, 1)
    assert pg.rows("Employees") == [{"Id": 7, "Name": "Bo", "Department": "NA"}]


# -- dead letters of a Redshift route -----------------------------------------------------------


def test_dead_letters_of_a_redshift_route_are_listed_and_retried(
        pg: Any, warehouse_pg: Any, make_both_pipeline: Any, write_config: Any, warehouse_cli: None) -> None:
    # GIVEN a warehouse route whose Name is varchar(5): 'Akua Mansa' is dead-lettered, 'Ann' applied
    pipeline = make_both_pipeline(pg, PEOPLE, name_type="varchar(5)")
    s = Stream("People")
    result = pipeline.process(event([s.insert({"Id": 1, "Name": "Akua Mansa"}), s.insert({"Id": 2, "Name": "Ann"})]))
    assert result.failure is None and result.stats["people"].dead_lettered == 1
    fields = {"wschema": warehouse_pg.schema, "wstate": warehouse_pg.state_schema}

    # WHEN listed
    listed = cli("dead-letters", "list", "-c", write_config(PEOPLE, pg, name_type="varchar(5)", **fields))
    # THEN the warehouse's dead letter is there, with its route, sequence number, sink and error
    assert listed.exit_code == 0, listed.output
    [letter] = warehouse_pg.state("dead_letters")
    assert listed.output.startswith(f"1 dead letter(s)\npeople #{letter['id']}: table People, "
                                    f"SequenceNumber {10**20}, failed ")
    assert "sink warehouse\n" in listed.output and "'Akua Mansa' does not fit varchar(5)" in listed.output

    # WHEN the route and the column are widened and the dead letters retried
    warehouse_pg.conn.execute(sql.SQL('ALTER TABLE {} ALTER COLUMN "name" TYPE VARCHAR(200)').format(
        sql.Identifier(warehouse_pg.schema, "people")))  # Redshift folded the names to lower case
    done = cli("dead-letters", "retry", "-c", write_config(PEOPLE, pg, name_type="varchar(50)", **fields))
    # THEN the record is applied to the warehouse and its dead letter removed
    assert done.exit_code == 0, done.output
    assert f"people #{letter['id']} (SequenceNumber {10**20}): applied; removed from" in done.output
    assert warehouse_pg.rows("people", order_by="id") == [{"id": 1, "name": "Akua Mansa"}, {"id": 2, "name": "Ann"}]
    assert warehouse_pg.state("dead_letters") == []


def test_redshift_dead_letters_are_numbered_after_the_highest_id(
        pg: Any, warehouse_pg: Any, make_both_pipeline: Any) -> None:
    pipeline = make_both_pipeline(pg, PEOPLE, name_type="varchar(2)")
    s = Stream("People")
    for batch in ([s.insert({"Id": 1, "Name": "Akua"}), s.insert({"Id": 2, "Name": "Bo"})],
                  [s.insert({"Id": 3, "Name": "Cyd"}), s.insert({"Id": 4, "Name": "Dee"})]):
        pipeline.process(event(batch))
    letters = pipeline.sinks["warehouse"].dead_letters()
    assert [(letter.id, letter.record["dynamodb"]["Keys"]["Id"]) for letter in letters] == [
        (1, {"N": "1"}), (2, {"N": "3"}), (3, {"N": "4"})]
    assert pipeline.sinks["warehouse"].dead_letters(["people"], limit=1) == letters[:1]
    assert pipeline.sinks["warehouse"].remove_dead_letters([1, 3]) == 2
    assert [letter.id for letter in pipeline.sinks["warehouse"].dead_letters()] == [2]


# -- drift of a Redshift route -------------------------------------------------------------------


A, D, H = Fix.ADDITIVE, Fix.DESTRUCTIVE, Fix.BY_HAND


@pytest.mark.parametrize("alter, problem, column, expected, actual, fix, kind", [
    # the table as the route creates it: nothing to report
    ("", None, None, None, None, None, None),
    # a column the route writes is gone (Redshift's catalog names it in lower case)
    ('ALTER TABLE {t} DROP COLUMN "department"', "missing column", "Department", "VARCHAR(40)", None,
     ['ALTER TABLE "W"."Employees" ADD COLUMN "Department" VARCHAR(40)'], A),
    # a shorter varchar: Redshift changes a VARCHAR's length, with no USING, outside a transaction block
    ('ALTER TABLE {t} ALTER COLUMN "name" TYPE VARCHAR(10)', "type mismatch", "Name", "VARCHAR(80)", "VARCHAR(10)",
     ['ALTER TABLE "W"."Employees" ALTER COLUMN "Name" TYPE VARCHAR(80)'], D),
    # any other type change is not possible in place: the column is dropped and added (backfill --columns fills it)
    ('ALTER TABLE {t} DROP COLUMN "name", ADD COLUMN "name" BIGINT', "type mismatch", "Name", "VARCHAR(80)", "BIGINT",
     ['ALTER TABLE "W"."Employees" DROP COLUMN "Name"', 'ALTER TABLE "W"."Employees" ADD COLUMN "Name" VARCHAR(80)'],
     D),
    # a key column's type: neither (it is the PRIMARY KEY, and may be the DISTKEY): by hand, recreating the table
    ('ALTER TABLE {t} ALTER COLUMN "id" TYPE INTEGER', "type mismatch", "Id", "BIGINT", "INTEGER", [], H),
    # the version column the guard needs; existing rows get 0
    ('ALTER TABLE {t} DROP COLUMN "_cdc_version"', "missing column", "_cdc_version", "DECIMAL(38,0)", None,
     ['ALTER TABLE "W"."Employees" ADD COLUMN "_cdc_version" DECIMAL(38,0) NOT NULL DEFAULT 0'], A),
    # a column no route writes
    ('ALTER TABLE {t} ADD COLUMN "title" VARCHAR(20)', "extra column", "title", None, "VARCHAR(20)",
     ['ALTER TABLE "W"."Employees" DROP COLUMN "title"'], D),
    # another primary key: Redshift does not enforce keys, and the guard does not rely on them
    ('ALTER TABLE {t} ADD PRIMARY KEY ("id", "name")', None, None, None, None, None, None),
])
def test_schema_check_on_a_redshift_route(alter: str, problem: str | None, column: str | None, expected: str | None,
                                          actual: str | None, fix: list[str] | None, kind: Fix | None, pg: Any,
                                          warehouse_pg: Any, make_both_pipeline: Any, write_config: Any,
                                          warehouse_cli: None) -> None:
    sink = make_both_pipeline(pg, BOTH_FROM_ONE_SOURCE).sinks["warehouse"]  # its tables created
    route = next(route for route in sink.routes if route.name == "employees_warehouse")
    if alter:
        warehouse_pg.conn.execute(alter.format(t=sql.Identifier(warehouse_pg.schema, "employees").as_string(None)))
    fixes = [statement.replace('"W"', f'"{warehouse_pg.schema}"') for statement in fix or []]
    drifts = sink.check(route)
    assert [replace(d, note=None, alone=False) for d in drifts] == ([] if problem is None else [
        Drift("employees_warehouse", f"{warehouse_pg.schema}.Employees", problem, column, expected, actual,
              tuple(fixes), kind)])
    # the command line reports the same, with the fixing statements
    path = write_config(BOTH_FROM_ONE_SOURCE, pg, wschema=warehouse_pg.schema, wstate=warehouse_pg.state_schema,
                        deletes="hard", on_error="fail")
    checked = cli("schema", "-c", path, "--route", "employees_warehouse", "--check")
    assert checked.exit_code == (0 if problem is None else 1), checked.output
    assert all(f"{statement};" in checked.output for statement in fixes)
    if kind == H:  # no statement: the note says how; the stand-in refuses the ALTER as Redshift does
        assert "recreate the table" in (drifts[0].note or "") and "recreate the table" in checked.output
        alter = f'ALTER TABLE "{warehouse_pg.schema}"."Employees" ALTER COLUMN "Id" TYPE BIGINT'
        with pytest.raises(SinkError, match="ALTER COLUMN cannot run inside a transaction block"):
            sink.transport.execute([Statement(alter)])
        with pytest.raises(SinkError, match="changes only the length of a VARCHAR"):
            sink.transport.query(alter, {})
        return
    # and the fix, run as Redshift would run it (a VARCHAR's length alone, by ExecuteStatement), leaves no drift
    sink.apply_fixes(drifts)
    assert sink.check(route) == []


def test_schema_check_reports_a_missing_redshift_table_with_its_ddl(
        pg: Any, warehouse_pg: Any, make_both_pipeline: Any) -> None:
    sink = make_both_pipeline(pg, BOTH_FROM_ONE_SOURCE).sinks["warehouse"]
    route = next(route for route in sink.routes if route.name == "employees_warehouse")
    warehouse_pg.conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(warehouse_pg.schema, "employees")))
    [drift] = sink.check(route)
    assert (drift.problem, drift.fix) == ("missing table", tuple(sink.ddl(route)))
