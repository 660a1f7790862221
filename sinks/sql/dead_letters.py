"""Listing and removing rows of a SQL sink's dead-letter table (``STATE_SCHEMA.dead_letters``).

Each sink writes them in its batch's transaction; ``cdc-router dead-letters`` lists them and,
once a retry applied one, removes it here. The queries are the same on every SQL database
(named parameters, ``IN`` lists, no arrays); the record is read back as JSON text and parsed
here, so that numbers in it (``ApproximateCreationDateTime``) come back as written. Values
come back typed (psycopg) or as strings (the Redshift Data API): both are read.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from psycopg import sql

from router.sink import StoredDeadLetter
from sinks.sql.dialect import Dialect
from sinks.sql.rows import DEAD_LETTERS

Query = tuple[sql.Composed, dict[str, Any]]


def _in_list(column: str, prefix: str, values: Sequence[Any], dialect: Dialect) -> Query:
    names = [f"{prefix}{index}" for index in range(len(values))]
    condition = sql.SQL("{} IN ({})").format(sql.Identifier(column),
                                             sql.SQL(", ").join(dialect.placeholder(name) for name in names))
    return condition, dict(zip(names, values))


def select_query(state_schema: str, dialect: Dialect, routes: Sequence[str], limit: int | None) -> Query:
    """The dead letters of ``routes`` (all when empty), by route and SequenceNumber."""
    where, params = _in_list("route", "r", routes, dialect) if routes else (sql.SQL("TRUE"), {})
    return sql.SQL(
        'SELECT "id", "route", "source_table", "sequence_number", "error", {}, "failed_at" FROM {} WHERE {} '
        'ORDER BY "route", "sequence_number" NULLS LAST, "id"{}').format(
        sql.SQL(dialect.document_text).format(sql.Identifier("record")),
        sql.Identifier(state_schema, DEAD_LETTERS), where,
        sql.SQL(" LIMIT {}").format(sql.Literal(int(limit))) if limit is not None else sql.SQL("")), params


def delete_query(state_schema: str, dialect: Dialect, ids: Sequence[int]) -> Query:
    where, params = _in_list("id", "i", [int(i) for i in ids], dialect)
    return sql.SQL("DELETE FROM {} WHERE {}").format(sql.Identifier(state_schema, DEAD_LETTERS), where), params


def stored(row: Sequence[Any]) -> StoredDeadLetter:
    ident, route, source_table, sequence_number, error, record, failed_at = row
    return StoredDeadLetter(id=int(ident), route=route, source_table=source_table,
                            sequence_number=None if sequence_number is None else int(sequence_number),
                            error=error, record=json.loads(record), failed_at=_moment(failed_at))


def _moment(value: Any) -> dt.datetime:
    """A timestamptz as psycopg gives it, or as the Data API's text (``2024-01-02 03:04:05.6+00``)."""
    if isinstance(value, dt.datetime):
        return value
    moment = dt.datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
