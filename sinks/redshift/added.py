"""Columns added for ``columns: auto`` (issue 15) through the Data API.

Redshift runs ``ALTER TABLE ... ADD COLUMN`` inside a transaction block (only external tables
refuse it), holding the table's lock until the transaction ends; but its ADD COLUMN has no
``IF NOT EXISTS`` and adds one column per statement
(https://docs.aws.amazon.com/redshift/latest/dg/r_ALTER_TABLE.html). A BatchExecuteStatement
call cannot branch on what a statement found, so the sink relies on its record instead:

- every call that writes an auto route's rows LOCKs the record (``auto_columns``) first, with
  the other shared tables (``statements.lock_statement``): adders and writers of auto routes
  run one after the other;
- a guard checks that the record holds as many columns for the target as the rows were
  transformed with, else it divides by zero and the call rolls back
  (``AddedColumnsChangedError``: the pipeline reads the record again and transforms anew);
- a batch that brings new columns sends, before its rows: the guard (as many as it knew), one
  ``ALTER TABLE ... ADD COLUMN`` per column, and their rows in the record. Under the lock, the
  guard proves no other writer added them, so the ALTER finds no column of that name.
"""

from __future__ import annotations

import datetime as dt

from psycopg import sql

from router.model import Route
from sinks.redshift import dialect
from sinks.redshift.transport import FailedStatementError, Statement
from sinks.sql.rows import AUTO_COLUMNS

GUARD = "SELECT 1 / (CASE WHEN COUNT(*) = "  # how a guard starts: its failure means the record changed


def guard(route: Route, target: str, state_schema: str, columns: int) -> Statement:
    """Fails (division by zero) unless the record holds ``columns`` added columns for the target."""
    text = sql.SQL(GUARD + "{} THEN 1 ELSE 0 END) FROM {} WHERE \"target\" = {}").format(
        sql.SQL(str(columns)), sql.Identifier(state_schema, AUTO_COLUMNS), dialect.literal(target))
    return Statement(text.as_string(None), route.name, writes=((state_schema, AUTO_COLUMNS),))


def additions(route: Route, target: str, state_schema: str, now: dt.datetime) -> list[Statement]:
    """The guard, the ALTERs and the record's new rows, for the route's new columns (none: nothing)."""
    new = [column for column in route.added if column.new]
    if not new:
        return []
    table = sql.Identifier(route.schema, route.table)
    alters = [Statement(sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(
        table, sql.Identifier(column.name), sql.SQL(dialect.column_type(column.type))).as_string(None))
        for column in new]
    values = sql.SQL(", ").join(
        sql.SQL("({})").format(sql.SQL(", ").join(dialect.literal(value) for value in (
            target, column.attribute, column.name, column.type, route.name,
            int(column.by) if column.by and column.by.isdigit() else None, now)))
        for column in new)
    record = sql.SQL('INSERT INTO {} ("target", "attribute", "column", "type", "route", "sequence_number", '
                     '"added_at") VALUES {}').format(sql.Identifier(state_schema, AUTO_COLUMNS), values)
    return [guard(route, target, state_schema, len(route.added) - len(new)), *alters,
            Statement(record.as_string(None), writes=((state_schema, AUTO_COLUMNS),))]


def changed(error: FailedStatementError) -> bool:
    """A guard refused the call (another writer added columns), or a column the rows name is gone."""
    statement = error.statement
    if statement is not None and statement.sql.startswith(GUARD):
        return True
    message = str(error)
    return "column" in message and "does not exist" in message
