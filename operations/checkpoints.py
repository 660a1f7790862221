"""The stream runner's positions, one row per shard in the sink's state schema.

Kept in the target database, beside the tombstones, so that the position and the rows it
describes live and die together. A position only moves forward (``greatest`` on a
numeric: sequence numbers compare as numbers), so a late or repeated save is harmless.
"""

from __future__ import annotations

from psycopg import sql

from operations.shard_runner import Checkpoint
from sinks.postgres.sink import PostgresSink
from sinks.sql.ddl import create_schema

CHECKPOINTS = "stream_checkpoints"
_CREATE = """CREATE TABLE IF NOT EXISTS {} (
    "stream_arn" text NOT NULL,
    "shard_id" text NOT NULL,
    "sequence_number" numeric,
    "finished" boolean NOT NULL DEFAULT false,
    "updated_at" timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY ("stream_arn", "shard_id")
)"""
_SAVE = """INSERT INTO {0} AS c ("stream_arn", "shard_id", "sequence_number", "finished")
VALUES (%s, %s, %s, %s)
ON CONFLICT ("stream_arn", "shard_id") DO UPDATE
SET "sequence_number" = greatest(c."sequence_number", EXCLUDED."sequence_number"),
    "finished" = c."finished" OR EXCLUDED."finished", "updated_at" = now()"""
_LOAD = 'SELECT "shard_id", "sequence_number", "finished" FROM {} WHERE "stream_arn" = %s'


class PostgresCheckpoints:
    """Checkpoints on the sink's own connection, each write its own short transaction."""

    def __init__(self, sink: PostgresSink):
        self.sink = sink
        self.table = sql.Identifier(sink.state_schema, CHECKPOINTS)

    def ddl(self) -> list[sql.Composed]:
        return [create_schema(self.sink.state_schema), sql.SQL(_CREATE).format(self.table)]

    def create(self) -> None:
        conn = self.sink.connection()
        with conn.transaction():
            for statement in self.ddl():
                conn.execute(statement)

    def load(self, stream_arn: str) -> dict[str, Checkpoint]:
        conn = self.sink.connection()
        with conn.transaction():
            rows = conn.execute(sql.SQL(_LOAD).format(self.table), (stream_arn,)).fetchall()
        return {shard_id: Checkpoint(None if number is None else int(number), finished)
                for shard_id, number, finished in rows}

    def save(self, stream_arn: str, shard_id: str, sequence_number: int | None = None,
             finished: bool = False) -> None:
        conn = self.sink.connection()
        with conn.transaction():
            conn.execute(sql.SQL(_SAVE).format(self.table), (stream_arn, shard_id, sequence_number, finished))
