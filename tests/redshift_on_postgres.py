"""Run the Redshift sink's statements for real, on the test PostgreSQL.

``PostgresTransport`` executes the exact statement list the Data API would receive, as one
transaction in a fresh session per call (the Data API gives each call its own session, so
temporary tables live exactly as long). The session parses like Redshift where the two
differ in what the sink sends: backslashes in string literals escape
(``standard_conforming_strings = off``), and the Redshift-only names resolve to stand-ins
in a ``redshift_shim`` schema: SUPER and VARBYTE are domains over jsonb and bytea,
JSON_PARSE and FROM_HEX are functions. This is a real database, not a mock: it also
enforces the primary keys Redshift only declares, so a duplicate row fails the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import EMPLOYEES, PgTarget, pg_target

from operations.assemble import load_config, pipeline_for
from router.pipeline import Pipeline
from sinks.redshift import RedshiftSink
from sinks.redshift.transport import Statement, statement_error

# Config templates: both sinks, then routes. ``{state}``/``{schema}`` are ``pg``'s schemas, ``{wstate}``/``{wschema}``
# ``warehouse_pg``'s. Tests use ``distribution: auto``: DISTKEY/SORTKEY are Redshift-only (compared as text).
BOTH_SINKS = """
version: 1
sinks:
  aurora:
    type: postgres
    dsn: ${{DATABASE_URL}}
    state_schema: {state}
  warehouse:
    type: redshift
    workgroup: analytics
    database: dev
    state_schema: {wstate}
    distribution: auto
routes:
"""
EMPLOYEES_ROUTE = EMPLOYEES.split("routes:\n", 1)[1]  # the spine's Employees route, on aurora

SHIM_SCHEMA = "redshift_shim"
SESSION = f"-c search_path={SHIM_SCHEMA} -c standard_conforming_strings=off -c escape_string_warning=off -c TimeZone=UTC"
_SHIMS = f"""
CREATE SCHEMA IF NOT EXISTS {SHIM_SCHEMA};
DO $$ BEGIN
    CREATE DOMAIN {SHIM_SCHEMA}.super AS jsonb;
EXCEPTION WHEN duplicate_object THEN NULL; END $$;
DO $$ BEGIN
    CREATE DOMAIN {SHIM_SCHEMA}.varbyte AS bytea;
EXCEPTION WHEN duplicate_object THEN NULL; END $$;
CREATE OR REPLACE FUNCTION {SHIM_SCHEMA}.json_parse(text) RETURNS {SHIM_SCHEMA}.super
    IMMUTABLE STRICT LANGUAGE sql AS 'SELECT $1::jsonb';
CREATE OR REPLACE FUNCTION {SHIM_SCHEMA}.from_hex(text) RETURNS {SHIM_SCHEMA}.varbyte
    IMMUTABLE STRICT LANGUAGE sql AS 'SELECT decode($1, ''hex'')';
"""


def install_shims(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(4242)")  # parallel sessions may install them at once
        try:
            conn.execute(_SHIMS)
        finally:
            conn.execute("SELECT pg_advisory_unlock(4242)")


class PostgresTransport:
    """The Redshift sink's transport, on PostgreSQL; ``calls`` and ``deadlines`` keep what it was given."""

    def __init__(self, url: str):
        self.url = url
        self.calls: list[list[str]] = []
        self.deadlines: list[float | None] = []

    def execute(self, statements: Sequence[Statement], deadline: float | None = None) -> list[int]:
        self.calls.append([s.sql for s in statements])
        self.deadlines.append(deadline)
        counts = []
        with psycopg.connect(self.url, options=SESSION) as conn:  # commits on success, rolls back on error
            for statement in statements:
                try:
                    cursor = conn.execute(statement.sql)
                except psycopg.Error as exc:
                    first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                    raise statement_error(statement, f"{exc.sqlstate}: {first_line}") from exc
                counts.append(max(cursor.rowcount, 0))
        return counts

    def close(self) -> None:
        pass


@pytest.fixture(scope="session")
def redshift_shims(database_url: str) -> str:
    install_shims(database_url)
    return database_url


@pytest.fixture
def warehouse_pg(redshift_shims: str) -> Iterator[PgTarget]:
    """A second pair of schemas: the Redshift sink's target and state tables, beside ``pg``'s."""
    with pg_target(redshift_shims) as target:
        yield target


def on_postgres(pipeline: Pipeline, url: str) -> Pipeline:
    """Point every Redshift sink of ``pipeline`` at PostgreSQL; create all sinks' tables."""
    for sink in pipeline.sinks.values():
        if isinstance(sink, RedshiftSink):
            sink.transport = PostgresTransport(url)
        sink.apply_ddl()
    return pipeline


@pytest.fixture
def make_both_pipeline(write_config: Callable[..., Path], warehouse_pg: PgTarget,
                       redshift_shims: str) -> Iterator[Callable[..., Pipeline]]:
    """Like ``make_pipeline``, for configs with Redshift sinks: ``{wschema}``/``{wstate}`` name
    the warehouse's schemas, and its statements run on the test PostgreSQL."""
    built: list[Pipeline] = []

    def make(pg: PgTarget, template: str, **fields: Any) -> Pipeline:
        fields.setdefault("deletes", "hard")
        fields.setdefault("on_error", "fail")
        path = write_config(template, pg, wschema=warehouse_pg.schema, wstate=warehouse_pg.state_schema, **fields)
        config = load_config(path)
        pipeline = on_postgres(pipeline_for(config), redshift_shims)
        built.append(pipeline)
        return pipeline

    yield make
    for pipeline in built:
        pipeline.close()
