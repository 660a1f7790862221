"""What Postgres itself can ingest on this machine: the ceilings cdc-router is held against.

Both take the same batches as the handler, already turned into final rows (one per key,
the newest image; deletes left out) before the clock starts, so that they measure the
database and the COPY protocol, not Python. One transaction per batch, like the handler.

- ``copy``: plain ``COPY`` into an empty table with the target's columns and no index
  (a key written in two batches would violate a primary key): the raw ingest rate.
- ``staged upsert``: ``COPY`` into a temporary staging table, then ``INSERT ... SELECT
  ... ON CONFLICT DO UPDATE`` into the (prefilled) target: the usual fast bulk upsert.
"""

from __future__ import annotations

import json
import time
from typing import Any, Sequence

import psycopg
from psycopg import sql

from bench.db import columns, copy_row, table
from router.events import parse_event
from router.model import Route
from router.reduce import reduce_changes
from router.transform import RouteTransform
from sinks.base import DELETE

Rows = list[tuple[Any, ...]]


def batch_rows(route: Route, payloads: Sequence[str]) -> list[Rows]:
    """Per event (JSON text), the rows the ceilings write: the route's reduced upserts as COPY values."""
    transform = RouteTransform(route)
    rows = []
    for payload in payloads:
        changes = [c for c in map(transform, parse_event(json.loads(payload))) if c is not None]
        rows.append([copy_row(route, c.row, c.version) for c in reduce_changes(changes) if c.op != DELETE])
    return rows


def copy_ceiling(url: str, route: Route, batches: list[Rows]) -> float:
    """Seconds to COPY every batch, one transaction each, into an empty table shaped like the target."""
    scratch = sql.Identifier(route.schema, route.table + "_copy_ceiling")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(scratch))
        conn.execute(sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS)").format(scratch, table(route)))
        try:
            return _timed(conn, batches, _copy_sql(scratch, route))
        finally:
            conn.execute(sql.SQL("DROP TABLE {}").format(scratch))


def staged_upsert_ceiling(url: str, route: Route, batches: list[Rows]) -> float:
    """Seconds to COPY each batch into a staging table and upsert it into the (prefilled) target."""
    names = columns(route)
    upsert = sql.SQL("INSERT INTO {} AS t ({}) SELECT {} FROM bench_stage ON CONFLICT ({}) DO UPDATE SET {}").format(
        table(route), sql.SQL(", ").join(map(sql.Identifier, names)), sql.SQL(", ").join(map(sql.Identifier, names)),
        sql.SQL(", ").join(map(sql.Identifier, route.key)),
        sql.SQL(", ").join(sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(n)) for n in names if n not in route.key))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE TEMP TABLE bench_stage (LIKE {}) ON COMMIT DELETE ROWS").format(table(route)))
        return _timed(conn, batches, _copy_sql(sql.Identifier("bench_stage"), route), upsert)


def _copy_sql(target: sql.Identifier, route: Route) -> sql.Composed:
    return sql.SQL("COPY {} ({}) FROM STDIN").format(target, sql.SQL(", ").join(map(sql.Identifier, columns(route))))


def _timed(conn: psycopg.Connection[Any], batches: list[Rows], copy_sql: sql.Composed,
           then: sql.Composed | None = None) -> float:
    elapsed = 0.0
    for rows in batches:
        start = time.perf_counter()
        with conn.transaction(), conn.cursor() as cursor:
            with cursor.copy(copy_sql) as copy:
                for row in rows:
                    copy.write_row(row)
            if then is not None:
                cursor.execute(then)
        elapsed += time.perf_counter() - start
    return elapsed
