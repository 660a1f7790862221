"""The backfill's positions, one row per (route, source, segment) in the sink's state schema.

Beside the rows they describe, like the stream runner's checkpoints: a target database
restored from a snapshot takes its backfill positions with it. Each save is its own
short transaction after the page it describes has committed.
"""

from __future__ import annotations

from typing import Any

from psycopg import sql
from psycopg.types.json import Jsonb

from operations.backfill import SegmentState
from sinks.postgres.sink import PostgresSink
from sinks.sql.ddl import create_schema

BACKFILL_CHECKPOINTS = "backfill_checkpoints"
_CREATE = """CREATE TABLE IF NOT EXISTS {} (
    "route" text NOT NULL,
    "source" text NOT NULL,
    "segment" text NOT NULL,
    "position" jsonb,
    "items" bigint NOT NULL DEFAULT 0,
    "finished" boolean NOT NULL DEFAULT false,
    "updated_at" timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY ("route", "source", "segment")
)"""
_SAVE = """INSERT INTO {} ("route", "source", "segment", "position", "items", "finished")
VALUES (%s, %s, %s, %s, %s, %s)
ON CONFLICT ("route", "source", "segment") DO UPDATE
SET "position" = EXCLUDED."position", "items" = EXCLUDED."items", "finished" = EXCLUDED."finished",
    "updated_at" = now()"""
_LOAD = 'SELECT "segment", "position", "items", "finished" FROM {} WHERE "route" = %s AND "source" = %s'
_CLEAR = 'DELETE FROM {} WHERE "route" = %s AND "source" = %s'


class PostgresBackfillCheckpoints:
    """``operations.backfill.Checkpoints`` on the sink's own connection."""

    def __init__(self, sink: PostgresSink):
        self.sink = sink
        self.table = sql.Identifier(sink.state_schema, BACKFILL_CHECKPOINTS)

    def create(self) -> None:
        self._run(create_schema(self.sink.state_schema))
        self._run(sql.SQL(_CREATE).format(self.table))

    def load(self, route: str, source: str) -> dict[str, SegmentState]:
        rows = self._run(sql.SQL(_LOAD).format(self.table), (route, source))
        return {segment: SegmentState(position, items, finished) for segment, position, items, finished in rows}

    def save(self, route: str, source: str, segment: str, state: SegmentState) -> None:
        self._run(sql.SQL(_SAVE).format(self.table),
                  (route, source, segment, None if state.position is None else Jsonb(state.position), state.items,
                   state.finished))

    def clear(self, route: str, source: str) -> None:
        self._run(sql.SQL(_CLEAR).format(self.table), (route, source))

    def _run(self, statement: sql.Composed, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        conn = self.sink.connection()
        with conn.transaction():
            cursor = conn.execute(statement, params)
            return cursor.fetchall() if cursor.description else []
