"""Each route's progress, one row per route in the sink's state schema, written in the batch's transaction.

What ``cdc-router status`` shows as a route's last applied change: the highest SequenceNumber
applied (a number: ``greatest`` keeps a late batch of an older shard from moving it back),
when that change was made in DynamoDB (``ApproximateCreationDateTime``), and when it was
applied. Written by the same transaction as the rows it describes, so it never claims a
batch that rolled back. One statement per batch, sent in the batch's pipeline: no round trip.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import sql

from router.attrs import dumps_exact
from router.log import logger
from router.records import is_sequence_number
from router.sink import RouteBatch

PROGRESS = "route_progress"
_CREATE = """CREATE TABLE IF NOT EXISTS {} (
    "route" text PRIMARY KEY,
    "version" numeric NOT NULL,
    "changed_at" timestamptz,
    "applied_at" timestamptz NOT NULL DEFAULT now()
)"""
# A route's row is one for all its writers (shards): a writer that finds it held by another's open transaction
# leaves it to that one, instead of queueing behind its commit (issue 19): the batch's rows are applied all the
# same, and progress shows the other writer's batch until this one's next. Only the row's first insert can wait.
_SAVE = """WITH r AS (
    SELECT r."route", r."version", to_timestamp(r."created") AS "changed_at"
    FROM jsonb_to_recordset(%s::jsonb) AS r("route" text, "version" numeric, "created" double precision)
), free AS MATERIALIZED (
    SELECT p."route" FROM {0} p WHERE p."route" IN (SELECT r."route" FROM r) FOR UPDATE SKIP LOCKED
)
INSERT INTO {0} AS p ("route", "version", "changed_at")
SELECT r."route", r."version", r."changed_at" FROM r
WHERE r."route" IN (SELECT f."route" FROM free f) OR NOT EXISTS (SELECT FROM {0} q WHERE q."route" = r."route")
ON CONFLICT ("route") DO UPDATE SET
    "changed_at" = CASE WHEN EXCLUDED."version" >= p."version" THEN EXCLUDED."changed_at" ELSE p."changed_at" END,
    "version" = greatest(p."version", EXCLUDED."version"),
    "applied_at" = now()"""
_READ = 'SELECT "route", "version", "changed_at", "applied_at" FROM {}'


def table(state_schema: str) -> sql.Identifier:
    return sql.Identifier(state_schema, PROGRESS)


def create_statement(state_schema: str) -> sql.Composed:
    return sql.SQL(_CREATE).format(table(state_schema))


def save_statement(state_schema: str) -> str:
    return sql.SQL(_SAVE).format(table(state_schema)).as_string(None)


def read_statement(state_schema: str) -> sql.Composed:
    return sql.SQL(_READ).format(table(state_schema))


def exists(conn: Any, sink: Any) -> bool:
    """Whether the sink's progress table exists; a database set up before it gets a warning, and no
    progress, until ``cdc-router schema --apply`` creates it (a missing table must not fail batches)."""
    found = conn.execute("SELECT to_regclass(%s)", (table(sink.state_schema).as_string(None),)).fetchone()
    if found is None or found[0] is None:
        logger.warning("route progress is not recorded: its table is missing (cdc-router schema --apply)",
                       extra={"sink": sink.name})
        return False
    return True


def rows(batches: Sequence[RouteBatch]) -> str | None:
    """The batch's progress per route as JSON (None: nothing with a SequenceNumber, e.g. a backfill page)."""
    found = [_row(batch) for batch in batches]
    kept = [row for row in found if row is not None]
    return "[" + ",".join(dumps_exact(row) for row in kept) + "]" if kept else None


def _row(batch: RouteBatch) -> dict[str, Any] | None:
    records = [c.record for c in batch.changes] + [d.record for d in batch.dead_letters]
    numbered = [(int(r.sequence_number), r.created) for r in records
                if r.sequence_number is not None and is_sequence_number(r.sequence_number)]
    if not numbered:
        return None
    version, created = max(numbered, key=lambda found: found[0])
    return {"route": batch.route.name, "version": version, "created": created}
