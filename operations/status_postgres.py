"""``cdc-router status`` reading a Postgres sink: progress, rows, tombstones, dead letters, checkpoints.

Each figure is one cheap query, and a state table that does not exist yet (a sink whose
``schema --apply`` never ran, a runner never started) reads as missing, not as an error.
A target's rows are counted exactly up to ``EXACT_UP_TO`` rows (by the planner's estimate)
and estimated above, so that status stays quick on a table of billions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import sql

from operations.checkpoints import CHECKPOINTS
from sinks.postgres import progress
from sinks.postgres.sink import PostgresSink
from sinks.sql.rows import DEAD_LETTERS, TOMBSTONES, target_name

EXACT_UP_TO = 1_000_000
_COUNT_BY = 'SELECT {}, count(*) FROM {} GROUP BY 1'


def fill(sink: PostgresSink, routes: Sequence[Any]) -> None:
    """Set each route's progress, rows, tombstones and dead letters (``operations.status.RouteStatus``)."""
    conn = sink.connection()
    schema = sink.state_schema
    by_name = {route.name: route for route in sink.routes}
    with conn.transaction():
        saved = _read(conn, schema, progress.PROGRESS, progress.read_statement(schema))
        tombstones = _counts(conn, schema, TOMBSTONES, "target")
        letters = _counts(conn, schema, DEAD_LETTERS, "route")
        for status in routes:
            route = by_name[status.route]
            if saved is None:
                status.note = f"no {schema}.{progress.PROGRESS} table: run cdc-router schema --apply"
            elif status.route in saved:
                _, version, status.changed_at, status.applied_at = saved[status.route]
                status.version = int(version)
            status.tombstones = None if tombstones is None else tombstones.get(target_name(route), 0)
            status.dead_letters = None if letters is None else letters.get(status.route, 0)
            status.rows, status.rows_estimated = _rows(conn, route.schema, route.table)


def checkpoints(sink: PostgresSink) -> list[tuple[str, str, int | None, bool, Any]]:
    """``(stream ARN, shard, SequenceNumber, finished, updated at)`` of every runner position."""
    conn = sink.connection()
    with conn.transaction():
        if not _exists(conn, sink.state_schema, CHECKPOINTS):
            return []
        query = sql.SQL('SELECT "stream_arn", "shard_id", "sequence_number", "finished", "updated_at" FROM {} '
                        'ORDER BY 1, 2').format(sql.Identifier(sink.state_schema, CHECKPOINTS))
        return [(arn, shard, None if number is None else int(number), finished, updated)
                for arn, shard, number, finished, updated in conn.execute(query).fetchall()]


def _read(conn: Any, schema: str, name: str, query: sql.Composable) -> dict[str, tuple[Any, ...]] | None:
    if not _exists(conn, schema, name):
        return None
    return {row[0]: tuple(row) for row in conn.execute(query).fetchall()}


def _counts(conn: Any, schema: str, name: str, column: str) -> dict[str, int] | None:
    query = sql.SQL(_COUNT_BY).format(sql.Identifier(column), sql.Identifier(schema, name))
    found = _read(conn, schema, name, query)
    return None if found is None else {key: int(row[1]) for key, row in found.items()}


def _rows(conn: Any, schema: str, table: str) -> tuple[int | None, bool]:
    if not _exists(conn, schema, table):
        return None, False
    identifier = sql.Identifier(schema, table)
    (estimate,) = conn.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)",
                               (identifier.as_string(None),)).fetchone()
    if estimate is not None and estimate > EXACT_UP_TO:
        return int(estimate), True
    (exact,) = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(identifier)).fetchone()
    return int(exact), False


def _exists(conn: Any, schema: str, name: str) -> bool:
    (found,) = conn.execute("SELECT to_regclass(%s)", (sql.Identifier(schema, name).as_string(None),)).fetchone()
    return found is not None
