"""Reading a route's table back as text, and dropping schemas: what ``cdc-router check-sink``
needs of a SQL sink to compare what it sent with what the database stored."""

from __future__ import annotations

from psycopg import sql

from router.model import DELETE_REASON, DELETED_COLUMN, VERSION_COLUMN, Route
from sinks.sql.dialect import Dialect
from sinks.sql.rows import written_columns


def stored_columns(route: Route) -> list[tuple[str, str]]:
    """``written_columns`` and the bookkeeping columns: every column of the route's table."""
    columns = written_columns(route) + [(VERSION_COLUMN, "numeric")]
    columns += [(DELETED_COLUMN, "timestamptz")] if route.soft_deletes else []
    return columns + ([(DELETE_REASON, "text")] if route.delete_reason else [])


def select_as_text(route: Route, dialect: Dialect) -> sql.Composed:
    """Every row of the route's table, each column through the dialect's ``as_text``."""
    fields = [sql.SQL("{} AS {}").format(dialect.as_text(sql.Identifier(name), type_name), sql.Identifier(name))
              for name, type_name in stored_columns(route)]
    return sql.SQL("SELECT {} FROM {}").format(sql.SQL(", ").join(fields), sql.Identifier(route.schema, route.table))


def drop_schema(schema: str) -> sql.Composed:
    return sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
