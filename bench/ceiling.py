"""What Postgres itself can ingest on this machine: the ceilings cdc-router is held against.

Both take the same batches as the handler, already turned into final rows (one per key,
the newest image; deletes left out) and rendered as COPY text before the clock starts, so
that they measure the database and the COPY protocol, not Python. One transaction per batch, like the handler,
and batch by batch in turn with it (``Ceilings.after``), so that all three share
whatever else the machine is doing at the time.

- ``copy``: plain ``COPY`` into an empty table with the target's columns and no index
  (a key written in two batches would violate a primary key): the raw ingest rate.
- ``staged``: ``COPY`` into a temporary staging table, then ``INSERT ... SELECT ... ON
  CONFLICT DO UPDATE`` into a table prefilled like the target: the usual fast bulk upsert.
"""

from __future__ import annotations

import json
import time
from typing import Any

import psycopg
from psycopg import sql

from bench.db import columns, copy_row, table
from router.model import Route
from router.reduce import reduce_changes
from router.sink import DELETE
from router.transform import RouteTransform
from sources.lambda_events import parse_event  # DynamoDB Streams and Kinesis events alike

Rows = list[tuple[Any, ...]]


def batch_rows(route: Route, payload: str) -> Rows:
    """The rows the ceilings write for one event (JSON text): the route's reduced upserts as COPY values."""
    transform = RouteTransform(route)
    changes = [c for c in map(transform, parse_event(json.loads(payload))) if c is not None]
    return [copy_row(route, c.row, c.version) for c in reduce_changes(changes) if c.op != DELETE]


class Ceilings:
    """The two ceilings' tables next to the route's, and their accumulated seconds."""

    def __init__(self, url: str, route: Route):
        self.route = route
        self.copy_table = sql.Identifier(route.schema, route.table + "_copy_ceiling")
        self.staged_table = sql.Identifier(route.schema, route.table + "_staged_ceiling")
        self.copy_seconds = self.staged_seconds = 0.0
        names = columns(route)
        column_list = sql.SQL(", ").join(map(sql.Identifier, names))
        self._copy_sql = sql.SQL("COPY {} ({}) FROM STDIN").format(self.copy_table, column_list)
        self._stage_sql = sql.SQL("COPY bench_stage ({}) FROM STDIN").format(column_list)
        self._render_sql = sql.SQL("COPY bench_stage ({}) TO STDOUT").format(column_list)
        self._upsert_sql = sql.SQL("INSERT INTO {} AS t ({}) SELECT {} FROM bench_stage ON CONFLICT ({}) "
                                   "DO UPDATE SET {}").format(
            self.staged_table, column_list, column_list, sql.SQL(", ").join(map(sql.Identifier, route.key)),
            sql.SQL(", ").join(sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(n))
                               for n in names if n not in route.key))
        self.conn = psycopg.connect(url, autocommit=True)
        self.conn.execute(sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS)").format(self.copy_table, table(route)))
        self.conn.execute(sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING ALL)").format(self.staged_table, table(route)))
        self.conn.execute(sql.SQL("CREATE TEMP TABLE bench_stage (LIKE {}) ON COMMIT DELETE ROWS").format(table(route)))

    def after(self, payload: str) -> None:
        """Write the rows of one event both ways, one transaction each."""
        text = self._render(batch_rows(self.route, payload))
        self.copy_seconds += self._timed(text, self._copy_sql)
        self.staged_seconds += self._timed(text, self._stage_sql, self._upsert_sql)

    def _render(self, rows: Rows) -> bytes:
        """The rows as COPY text, rendered by the server before the clock starts: psycopg's ``write_row``
        formats every value in Python (measured: 45 us per wide record, 2 us per Employees record)."""
        with self.conn.transaction(), self.conn.cursor() as cursor:
            with cursor.copy(self._stage_sql) as copy:
                for row in rows:
                    copy.write_row(row)
            with cursor.copy(self._render_sql) as copy:
                text = b"".join(bytes(block) for block in copy)
        return text  # bench_stage: ON COMMIT DELETE ROWS

    def _timed(self, text: bytes, copy_sql: sql.Composed, then: sql.Composed | None = None) -> float:
        start = time.perf_counter()
        with self.conn.transaction(), self.conn.cursor() as cursor:
            with cursor.copy(copy_sql) as copy:
                copy.write(text)
            if then is not None:
                cursor.execute(then)
        return time.perf_counter() - start

    def close(self) -> None:
        for target in (self.copy_table, self.staged_table):
            self.conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(target))
        self.conn.close()

