"""Columns added for ``columns: auto`` (issue 15), in the Postgres sink's batch transaction.

Before a batch writes an auto route's rows, in the same pipeline (no extra round trip):

1. a transaction advisory lock on the target's schema: shared when the batch adds no column,
   exclusive when it does (taken after the row locks, like them in one sorted order, so that
   no two writers wait on each other in a cycle);
2. a guard: the target's record of added columns still has as many rows as the container knows
   of, else the statement divides by zero and the batch rolls back (another container added
   columns: ``AddedColumnsChangedError``, the pipeline reads them and transforms the batch
   again). Under the lock no column can appear between the guard and the rows, so a row never
   leaves a column it does not know of with an older value;
3. for new columns: ``ALTER TABLE ... ADD COLUMN IF NOT EXISTS`` (nullable) and their rows in
   the record, so that the rows written next have their columns and the record commits with them.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from router.attrs import dumps_exact
from router.model import Route
from router.sink import RouteBatch
from router.types import parse_type
from sinks.postgres.statements import LOCK_BUCKETS
from sinks.sql.rows import AUTO_COLUMNS

SCHEMA_LOCK = LOCK_BUCKETS  # the second key of a target's schema lock: past the row locks' buckets 0..63
_LOCK = {True: "SELECT pg_advisory_xact_lock(%s::int, %s::int)",
         False: "SELECT pg_advisory_xact_lock_shared(%s::int, %s::int)"}
_GUARD = """SELECT 1 / (CASE WHEN count(*) = %s THEN 1 ELSE 0 END) FROM {} WHERE "target" = %s"""
_RECORD = """INSERT INTO {} ("target", "attribute", "column", "type", "route", "sequence_number")
SELECT %s, a."attribute", a."column", a."type", %s, a."sequence_number"
FROM json_to_recordset(%s::json) AS a("attribute" text, "column" text, "type" text, "sequence_number" numeric)"""
# No ON CONFLICT: under the exclusive lock, the guard proved the record holds none of these columns.
Work = list[tuple[str, tuple[Any, ...]]]


def statements(batches: Sequence[RouteBatch], targets: dict[str, str], state_schema: str) -> Work:
    """The locks, guards and additions of the batch's auto routes, in the targets' sorted order."""
    record = sql.Identifier(state_schema, AUTO_COLUMNS)
    guard, insert = sql.SQL(_GUARD).format(record).as_string(None), sql.SQL(_RECORD).format(record).as_string(None)
    work: Work = []
    for batch in sorted((b for b in batches if b.route.auto and b.changes), key=lambda b: targets[b.route.name]):
        route, target = batch.route, targets[batch.route.name]
        new = [column for column in route.added if column.new]
        work.append((_LOCK[bool(new)], (zlib.crc32(target.encode()) - 2**31, SCHEMA_LOCK)))
        work.append((guard, (len(route.added) - len(new), target)))
        if new:
            work += [(add_column(route, column.name, column.type), ()) for column in new]
            rows = [{"attribute": c.attribute, "column": c.name, "type": c.type, "sequence_number": c.by} for c in new]
            work.append((insert, (target, route.name, "[" + ",".join(map(dumps_exact, rows)) + "]")))
    return work


def add_column(route: Route, name: str, type_name: str) -> str:
    return sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}").format(
        sql.Identifier(route.schema, route.table), sql.Identifier(name), sql.SQL(parse_type(type_name).name)
    ).as_string(None)


def changed(exc: BaseException) -> bool:
    """The guard's division by zero (another container added columns), or a column that is gone."""
    return isinstance(exc, (psycopg.errors.DivisionByZero, psycopg.errors.UndefinedColumn))
