"""``PostgresSink.check``: each kind of drift between a live table and its route, found in a
real Postgres, reported as data with the statements that fix it; running those statements
leaves no drift."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
from conftest import EMPLOYEES
from psycopg import sql

from operations.assemble import build_sinks, load_config
from router.modes import Fix
from router.sink import Drift
from sinks.postgres.statements import POSTGRES


@pytest.fixture
def checked(pg: Any, write_config: Callable[..., Any]) -> Iterator[Callable[[str], list[Drift]]]:
    """Create the Employees table with ``alter`` applied (``{t}`` is the table), then check it."""
    config = load_config(write_config(EMPLOYEES, pg, deletes="hard", on_error="fail"))
    sink = build_sinks(config)["aurora"]
    route = config.routes["employees"]
    table = sql.Identifier(pg.schema, "Employees").as_string(None)

    def check(alter: str) -> list[Drift]:
        sink.apply_ddl()
        if alter:
            pg.conn.execute(alter.format(t=table))
        return sink.check(route)

    yield check
    sink.close()


def _t(statement: str, schema: str) -> str:
    return statement.replace("SCHEMA", schema)


A, D, H = Fix.ADDITIVE, Fix.DESTRUCTIVE, Fix.BY_HAND


@pytest.mark.parametrize("alter, problem, column, expected, actual, fix, kind", [
    # the table as the route creates it: nothing to report
    ("", None, None, None, None, None, None),
    # a column the route writes is gone: adding it back changes no stored value
    ('ALTER TABLE {t} DROP COLUMN "Department"', "missing column", "Department", "varchar(10)", None,
     'ALTER TABLE "SCHEMA"."Employees" ADD COLUMN "Department" varchar(10)', A),
    # a column of another type (the catalog says "character varying(20)" for varchar(20)): may fail or cut
    ('ALTER TABLE {t} ALTER COLUMN "Name" TYPE text', "type mismatch", "Name", "varchar(20)", "text",
     'ALTER TABLE "SCHEMA"."Employees" ALTER COLUMN "Name" TYPE varchar(20) USING "Name"::varchar(20)', D),
    # the same type, another length: shown in the route's words, not the catalog's "character varying(30)"
    ('ALTER TABLE {t} ALTER COLUMN "Name" TYPE varchar(30)', "type mismatch", "Name", "varchar(20)", "varchar(30)",
     'ALTER TABLE "SCHEMA"."Employees" ALTER COLUMN "Name" TYPE varchar(20) USING "Name"::varchar(20)', D),
    # the version column the guard needs; existing rows get 0, older than any stream record
    ('ALTER TABLE {t} DROP COLUMN "_cdc_version"', "missing column", "_cdc_version", "numeric", None,
     'ALTER TABLE "SCHEMA"."Employees" ADD COLUMN "_cdc_version" numeric NOT NULL DEFAULT 0', A),
    # no primary key: ON CONFLICT has nothing to conflict on; adding one fails on repeated keys
    ('ALTER TABLE {t} DROP CONSTRAINT "Employees_pkey"', "missing primary key", None, "Id", None,
     'ALTER TABLE "SCHEMA"."Employees" ADD PRIMARY KEY ("Id")', D),
    # a primary key on other columns
    ('ALTER TABLE {t} DROP CONSTRAINT "Employees_pkey", ADD CONSTRAINT "pk" PRIMARY KEY ("Id", "Name")',
     "different primary key", None, "Id", "Id, Name",
     'ALTER TABLE "SCHEMA"."Employees" DROP CONSTRAINT "pk", ADD PRIMARY KEY ("Id")', D),
    # a column no route writes (dropped from the config, or renamed there): dropping it loses its values
    ('ALTER TABLE {t} ADD COLUMN "Title" text', "extra column", "Title", None, "text",
     'ALTER TABLE "SCHEMA"."Employees" DROP COLUMN "Title"', D),
])
def test_drift_is_found_and_its_fix_removes_it(checked: Callable[[str], list[Drift]], pg: Any, alter: str,
                                               problem: str | None, column: str | None, expected: str | None,
                                               actual: str | None, fix: str | None, kind: Fix | None) -> None:
    drifts = checked(alter)
    if problem is None:
        assert drifts == []
        return
    table = f"{pg.schema}.Employees"
    assert [replace(d, note=None) for d in drifts] == [
        Drift("employees", table, problem, column, expected, actual, (_t(fix, pg.schema),), kind)]
    assert kind == A or drifts[0].note  # what a destructive fix costs is said
    for statement in drifts[0].fix:
        pg.conn.execute(statement)
    assert checked("") == []


def test_a_missing_table_is_fixed_by_the_route_ddl(checked: Callable[[str], list[Drift]], pg: Any) -> None:
    (drift,) = checked("DROP TABLE {t}")
    assert (drift.problem, drift.table) == ("missing table", f"{pg.schema}.Employees")
    assert drift.fix[0] == f'CREATE SCHEMA IF NOT EXISTS "{pg.schema}"'
    assert drift.fix[1].startswith(f'CREATE TABLE IF NOT EXISTS "{pg.schema}"."Employees" (')
    for statement in drift.fix:
        pg.conn.execute(statement)
    assert checked("") == []


def test_several_differences_are_all_reported(checked: Callable[[str], list[Drift]]) -> None:
    drifts = checked('ALTER TABLE {t} DROP COLUMN "Department", ALTER COLUMN "Id" TYPE integer')
    assert [(d.problem, d.column) for d in drifts] == [("type mismatch", "Id"), ("missing column", "Department")]


@pytest.mark.parametrize("ours, catalog", [
    ("varchar(20)", "character varying(20)"),
    ("varchar(20)[]", "character varying(20)[]"),
    ("timestamptz", "timestamp with time zone"),
    ("timestamp", "timestamp without time zone"),
    ("timestamptz[]", "timestamp with time zone[]"),
    ("numeric(12,2)", "numeric(12,2)"),
    ("double precision", "double precision"),
    ("text[]", "text[]"),
])
def test_catalog_type_names(ours: str, catalog: str, pg: Any) -> None:
    # the mapping agrees with what Postgres itself reports for a column of that type, both ways
    assert POSTGRES.catalog_type(ours) == catalog and POSTGRES.route_type(catalog) == ours
    pg.conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(pg.schema)))
    pg.conn.execute(sql.SQL("CREATE TABLE {} (c {})").format(sql.Identifier(pg.schema, "probe"), sql.SQL(ours)))
    (row,) = pg.conn.execute("SELECT format_type(atttypid, atttypmod) AS t FROM pg_attribute "
                             "WHERE attrelid = %s::regclass AND attname = 'c'", (f"{pg.schema}.probe",)).fetchall()
    assert row["t"] == catalog
