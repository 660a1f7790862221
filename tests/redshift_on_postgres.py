"""Run the Redshift sink's statements for real, on the test PostgreSQL, as Redshift would.

``PostgresTransport`` executes the exact statement list the Data API would receive, as one
transaction in a fresh session per call (the Data API gives each call its own session, so
temporary tables live exactly as long). Where Redshift behaves differently from PostgreSQL
in a way the sink depends on, the session models Redshift, so that a test fails where
Redshift would:

- literals: backslashes in string literals escape (``standard_conforming_strings = off``);
- types and functions: SUPER and VARBYTE are domains over jsonb and bytea in a
  ``redshift_shim_*`` schema of the session; JSON_PARSE and FROM_HEX take at most a VARCHAR's 65535 bytes;
- VARCHAR equality ignores trailing spaces ("Trailing spaces in VARCHAR and CHAR values are
  treated as semantically insignificant when values are compared"): an ``=`` operator on
  varchar in the shim schema compares the values without them;
- identifiers fold to lower case (``enable_case_sensitive_identifier`` is off by default):
  quoted identifiers are folded before the statement runs, so tables read back are lower case;
- primary keys are declared, not enforced: the constraint is dropped after CREATE TABLE, and
  tests look for duplicate rows themselves (``duplicate_keys``);
- the Data API's limits: at most 40 statements per call and 100 KB per statement, else the
  call is refused as a whole, as ``ValidationException`` would;
- ALTER COLUMN ... TYPE changes only the length of a VARCHAR, and never inside a transaction block
  (a BatchExecuteStatement call is one): https://docs.aws.amazon.com/redshift/latest/dg/r_ALTER_TABLE.html.
"""

from __future__ import annotations

import re
import string
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import EMPLOYEES, PgTarget, pg_target
from psycopg import sql

from operations.assemble import load_config, pipeline_for
from router.pipeline import Pipeline
from sinks.redshift import RedshiftSink
from sinks.redshift.transport import MAX_STATEMENT_BYTES, MAX_STATEMENTS, Statement, statement_error
from sinks.sql.sink import QueryResult

# Config templates: both sinks, then routes. ``{state}``/``{schema}`` are ``pg``'s schemas, ``{wstate}``/``{wschema}``
# ``warehouse_pg``'s. DISTKEY/SORTKEY are accepted and dropped by the stand-in.
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
# The spine's Employees route, its sink a parameter (aurora | warehouse): the only line that differs.
ONE_ROUTE = BOTH_SINKS + EMPLOYEES_ROUTE.replace("sink: aurora", "sink: {sink}")

SHIM_SCHEMA = f"redshift_shim_{uuid.uuid4().hex[:8]}"  # this session's, dropped at its end (beside other sessions')
_PARAMETER = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")  # :name, not the ::type of a cast
# pg_catalog last: the shim's objects are found first, as Redshift's own would be
SESSION = (f"-c search_path={SHIM_SCHEMA},pg_catalog -c standard_conforming_strings=off "
           "-c escape_string_warning=off -c TimeZone=UTC")
_SHIMS = f"""
CREATE SCHEMA IF NOT EXISTS {SHIM_SCHEMA};
DO $$ BEGIN
    CREATE DOMAIN {SHIM_SCHEMA}.super AS jsonb;
EXCEPTION WHEN duplicate_object THEN NULL; END $$;
DO $$ BEGIN
    CREATE DOMAIN {SHIM_SCHEMA}.varbyte AS bytea;
EXCEPTION WHEN duplicate_object THEN NULL; END $$;
CREATE OR REPLACE FUNCTION {SHIM_SCHEMA}.json_parse(text) RETURNS {SHIM_SCHEMA}.super
    IMMUTABLE STRICT LANGUAGE plpgsql AS $f$ BEGIN
    IF octet_length($1) > 65535 THEN
        RAISE EXCEPTION 'JSON_PARSE: an argument of % bytes, over VARCHAR''s 65535', octet_length($1);
    END IF;
    RETURN $1::jsonb; END $f$;
CREATE OR REPLACE FUNCTION {SHIM_SCHEMA}.json_serialize({SHIM_SCHEMA}.super) RETURNS text
    IMMUTABLE STRICT LANGUAGE sql AS 'SELECT $1::text';
CREATE OR REPLACE FUNCTION {SHIM_SCHEMA}.to_hex(bytea) RETURNS varchar
    IMMUTABLE STRICT LANGUAGE sql AS 'SELECT encode($1, ''hex'')';
CREATE OR REPLACE FUNCTION {SHIM_SCHEMA}.from_hex(text) RETURNS {SHIM_SCHEMA}.varbyte
    IMMUTABLE STRICT LANGUAGE plpgsql AS $f$ BEGIN
    IF octet_length($1) > 65535 THEN
        RAISE EXCEPTION 'FROM_HEX: an argument of % bytes, over VARCHAR''s 65535', octet_length($1);
    END IF;
    RETURN decode($1, 'hex'); END $f$;
CREATE OR REPLACE FUNCTION {SHIM_SCHEMA}.varchar_eq(varchar, varchar) RETURNS boolean
    IMMUTABLE STRICT LANGUAGE sql AS 'SELECT rtrim($1, '' '') OPERATOR(pg_catalog.=) rtrim($2, '' '')';
DO $$ BEGIN
    CREATE OPERATOR {SHIM_SCHEMA}.= (LEFTARG = varchar, RIGHTARG = varchar, FUNCTION = {SHIM_SCHEMA}.varchar_eq,
                                      COMMUTATOR = OPERATOR({SHIM_SCHEMA}.=));
EXCEPTION WHEN duplicate_function THEN NULL; END $$;
"""
TRANSIENT_STATES = ("40001", "40P01", "57014")  # serialization failure, deadlock, cancelled
# single-quoted literals (backslash escapes: standard_conforming_strings is off), quoted identifiers, the rest
_TOKENS = re.compile(r"'(?:[^'\\]|\\.|'')*'|\"(?:[^\"]|\"\")*\"|[^'\"]+", re.S)
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
_LAYOUT = re.compile(r"\) DISTKEY \([^)]*\) SORTKEY \([^)]*\)$")
# https://docs.aws.amazon.com/redshift/latest/dg/r_ALTER_TABLE.html: ADD [ COLUMN ] column_name column_type ...
_ADD_COLUMNS = re.compile(r"ALTER TABLE .* ADD (COLUMN )?IF NOT EXISTS|ALTER TABLE .* ADD .*, *ADD ", re.S)
_CREATED_TABLE = re.compile(r'CREATE TABLE IF NOT EXISTS "((?:[^"]|"")+)"\."((?:[^"]|"")+)"')
_ALTER_TYPE = re.compile(r'ALTER TABLE "((?:[^"]|"")+)"\."((?:[^"]|"")+)" ALTER COLUMN "((?:[^"]|"")+)" TYPE (.+)$',
                         re.S)


def install_shims(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(4242)")  # parallel sessions may install them at once
        try:
            conn.execute(_SHIMS)
        finally:
            conn.execute("SELECT pg_advisory_unlock(4242)")


def fold_identifiers(text: str) -> str:
    """Quoted identifiers folded to lower case (ASCII letters), as Redshift does by default."""
    return "".join(token.translate(_ASCII_LOWER) if token.startswith('"') else token
                   for token in _TOKENS.findall(text))


def duplicate_keys(url: str, schema: str, table: str, key: Sequence[str]) -> list[tuple[Any, ...]]:
    """Keys held by more than one row (Redshift does not enforce primary keys); exact, trailing spaces count."""
    columns = sql.SQL(", ").join(map(sql.Identifier, key))
    query = sql.SQL("SELECT {} FROM {} GROUP BY {} HAVING count(*) > 1").format(
        columns, sql.Identifier(schema, table), columns)
    with psycopg.connect(url) as conn:
        return conn.execute(query).fetchall()


class FoldedTarget:
    """A ``PgTarget`` read as the routes spell things: for tables whose names Redshift folded to lower case."""

    def __init__(self, target: PgTarget, names: Sequence[str]):
        self.target, self.names = target, {name.translate(_ASCII_LOWER): name for name in names}

    def rows(self, table: str, order_by: str | None = None, bookkeeping: bool = False) -> list[dict[str, Any]]:
        fold = _ASCII_LOWER
        rows = self.target.rows(table.translate(fold), order_by and order_by.translate(fold), bookkeeping)
        return [{self.names.get(k, k): v for k, v in row.items()} for row in rows]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.target, name)


class PostgresTransport:
    """The Redshift sink's transport, on PostgreSQL; ``calls`` and ``deadlines`` keep what it was given."""

    def __init__(self, url: str):
        self.url = url
        self.calls: list[list[str]] = []
        self.deadlines: list[float | None] = []

    def execute(self, statements: Sequence[Statement], deadline: float | None = None,
                rollback: bool = False) -> list[int]:
        self.calls.append([s.sql for s in statements])
        self.deadlines.append(deadline)
        _within_limits(statements)
        counts = []
        with psycopg.connect(self.url, options=SESSION) as conn:  # commits on success, rolls back on error
            for index, statement in enumerate(statements):
                counts.append(self._run(conn, statement, index))
            if rollback:
                conn.rollback()
        return counts

    def query(self, statement: str, params: Mapping[str, Any], deadline: float | None = None) -> QueryResult:
        """One statement, its Data API ``:name`` parameters bound as psycopg's ``%(name)s``."""
        self.calls.append([statement])
        self.deadlines.append(deadline)
        with psycopg.connect(self.url, options=SESSION) as conn:
            _alter_type_allowed(conn, Statement(statement), fold_identifiers(statement), alone=True)
            cursor = conn.execute(_PARAMETER.sub(r"%(\1)s", fold_identifiers(statement)), dict(params))
            return QueryResult(cursor.fetchall() if cursor.description else [], max(cursor.rowcount, 0))

    def _run(self, conn: psycopg.Connection[Any], statement: Statement, index: int) -> int:
        text = _LAYOUT.sub(")", fold_identifiers(statement.sql))  # accepted, and nothing to do on Postgres
        _alter_type_allowed(conn, statement, text, alone=False)
        if _ADD_COLUMNS.match(text):  # Redshift's ADD COLUMN: no IF NOT EXISTS, one column per ALTER TABLE
            raise statement_error(statement, "ERROR: syntax error at or near \"IF\" or \",\" (Redshift's ALTER "
                                             "TABLE adds one column, without IF NOT EXISTS)", False, index)
        try:
            cursor = conn.execute(text)
            created = _CREATED_TABLE.match(text)
            if created:  # declared, not enforced
                _drop_primary_key(conn, *(name.replace('""', '"') for name in created.groups()))
        except psycopg.Error as exc:
            first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise statement_error(statement, f"ERROR: {first_line}", exc.sqlstate in TRANSIENT_STATES,
                                  index) from exc
        return max(cursor.rowcount, 0)

    def close(self) -> None:
        pass


def _within_limits(statements: Sequence[Statement]) -> None:
    """The Data API refuses the whole call, before running anything (ValidationException)."""
    if not 1 <= len(statements) <= MAX_STATEMENTS:
        raise statement_error(None, f"ValidationException: {len(statements)} statements in one call, "
                                    f"at most {MAX_STATEMENTS} allowed")
    for statement in statements:
        if len(statement.sql.encode("utf-8")) > MAX_STATEMENT_BYTES:
            raise statement_error(statement, "ValidationException: Cannot process query string larger than 100kB")


def _alter_type_allowed(conn: psycopg.Connection[Any], statement: Statement, text: str, alone: bool) -> None:
    """Redshift's ALTER COLUMN TYPE: a VARCHAR's length only, outside a transaction block (ExecuteStatement)."""
    altered = _ALTER_TYPE.match(text)
    if not altered:
        return
    if not alone:
        raise statement_error(statement, "ERROR: ALTER TABLE ALTER COLUMN cannot run inside a transaction block")
    schema, table, column = (name.replace('""', '"') for name in altered.groups()[:3])
    found = conn.execute("SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a WHERE a.attrelid = "
                         "%s::regclass AND a.attname = %s", (sql.Identifier(schema, table).as_string(conn), column))
    current = (found.fetchone() or ("",))[0]
    if not (altered.group(4).upper().startswith("VARCHAR") and current.startswith("character varying")):
        raise statement_error(statement, f"ERROR: target data type {altered.group(4)} is not supported; "
                                         "ALTER COLUMN TYPE changes only the length of a VARCHAR column")


def _drop_primary_key(conn: psycopg.Connection[Any], schema: str, table: str) -> None:
    target = sql.Identifier(schema, table)
    found = conn.execute(sql.SQL("SELECT conname FROM pg_constraint WHERE contype = 'p' AND conrelid = {}::regclass")
                         .format(sql.Literal(target.as_string(conn)))).fetchall()
    for (name,) in found:
        conn.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(target, sql.Identifier(name)))


@pytest.fixture(scope="session")
def redshift_shims(database_url: str) -> Iterator[str]:
    """The stand-ins, in a schema of this session's that is dropped at its end."""
    install_shims(database_url)
    try:
        yield database_url
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(SHIM_SCHEMA)))


@pytest.fixture
def warehouse_pg(redshift_shims: str) -> Iterator[PgTarget]:
    """A second pair of schemas: the Redshift sink's target and state tables, beside ``pg``'s."""
    with pg_target(redshift_shims) as target:
        yield target


@pytest.fixture
def warehouse_cli(monkeypatch: pytest.MonkeyPatch, redshift_shims: str) -> None:
    """The command line's Redshift sinks talk to the test PostgreSQL instead of the Data API."""
    monkeypatch.setattr("sinks.redshift.sink.DataApiTransport", lambda *args, **kwargs: PostgresTransport(redshift_shims))


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

    def make(pg: PgTarget, template: str | dict[str, Any], **fields: Any) -> Pipeline:
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


def target(pg: Any, sink: str) -> Any:
    """The Employees table as the route names it (Redshift folds identifiers to lower case)."""
    return pg if sink == "aurora" else FoldedTarget(pg, ["Employees", "Id", "Name", "Department"])
