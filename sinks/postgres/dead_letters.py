"""Reading and removing rows of the Postgres sink's dead-letter table (``STATE_SCHEMA.dead_letters``).

The pipeline writes them (``statements.dead_letter_statement``, in the batch's transaction);
``cdc-router dead-letters`` lists them and, once a retry has applied one, removes it here.
The record is read back as JSON text and parsed here, so that numbers in it (the
``ApproximateCreationDateTime``) come back as written rather than through the connection's
JSON loader.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Protocol

import psycopg
from psycopg import sql

from router.sink import StoredDeadLetter
from sinks.postgres.connection import Credentials, classify
from sinks.postgres.statements import DEAD_LETTERS


class _Connected(Protocol):
    """What these functions need of the Postgres sink."""

    state_schema: str
    credentials: Credentials

    def connection(self) -> psycopg.Connection[Any]: ...

_SELECT = """\
SELECT "id", "route", "source_table", "sequence_number", "error", "record"::text, "failed_at" FROM {}
WHERE cardinality(%(routes)s::text[]) = 0 OR "route" = ANY(%(routes)s::text[])
ORDER BY "route", "sequence_number" NULLS LAST, "id"
LIMIT %(limit)s"""
_DELETE = 'DELETE FROM {} WHERE "id" = ANY(%s::bigint[])'


def select_statement(state_schema: str) -> sql.Composed:
    return sql.SQL(_SELECT).format(sql.Identifier(state_schema, DEAD_LETTERS))


def delete_statement(state_schema: str) -> sql.Composed:
    return sql.SQL(_DELETE).format(sql.Identifier(state_schema, DEAD_LETTERS))


def read(sink: _Connected, routes: Sequence[str], limit: int | None) -> list[StoredDeadLetter]:
    """The dead letters of ``routes`` (all when empty), by route and SequenceNumber."""
    params = {"routes": list(routes), "limit": limit}
    rows = _run(sink, select_statement(sink.state_schema), params, fetch=True)
    return [_letter(row) for row in rows]


def remove(sink: _Connected, ids: Sequence[int]) -> int:
    """Delete these dead letters in one statement; return how many rows went."""
    if not ids:
        return 0
    return _run(sink, delete_statement(sink.state_schema), (list(ids),), fetch=False)


def _run(sink: _Connected, statement: sql.Composed, params: Any, fetch: bool) -> Any:
    try:
        conn = sink.connection()
        with conn.transaction():
            cursor = conn.execute(statement, params)
            return cursor.fetchall() if fetch else cursor.rowcount
    except psycopg.Error as exc:
        raise classify(exc, sink.credentials) from None


def _letter(row: tuple[Any, ...]) -> StoredDeadLetter:
    ident, route, source_table, sequence_number, error, record, failed_at = row
    return StoredDeadLetter(id=ident, route=route, source_table=source_table,
                            sequence_number=None if sequence_number is None else int(sequence_number),
                            error=error, record=json.loads(record), failed_at=failed_at)
