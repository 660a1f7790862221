"""DDL of every SQL sink, from ``(column, type)`` pairs: target tables and the state tables.

The columns are data (``target_columns``, ``TOMBSTONE_COLUMNS``, ``DEAD_LETTER_COLUMNS``);
one ``create_table`` spells them for any dialect, so that the drift check compares a live
table with exactly the columns the DDL would create.
"""

from __future__ import annotations

from collections.abc import Sequence

from psycopg import sql

from router.model import (
    DELETE_REASON,
    DELETED_COLUMN,
    OP_COLUMN,
    TIME_COLUMN,
    VALID_FROM,
    VALID_TO,
    VERSION_COLUMN,
    Route,
)
from router.modes import Mode
from sinks.sql.dialect import DOCUMENT, ID, NAME, STAMP, TEXT, TIME, VERSION, Dialect
from sinks.sql.rows import AUTO_COLUMNS, DEAD_LETTERS, TOMBSTONES, written_columns

# State tables: (column, kind of type, NOT NULL); the dialect names the type of each kind.
TOMBSTONE_COLUMNS = [("target", NAME, True), ("key", TEXT, True), ("version", VERSION, True),
                     ("deleted_at", STAMP, True)]
DEAD_LETTER_COLUMNS = [("id", ID, True), ("route", NAME, True), ("source_table", NAME, False),
                       ("target", NAME, True), ("sequence_number", VERSION, False), ("event_id", NAME, False),
                       ("error", TEXT, True), ("record", DOCUMENT, True), ("failed_at", STAMP, True)]
DEAD_LETTER_UNIQUE = ("route", "source_table", "sequence_number")
# One row per column added to a target for an attribute (columns: auto), by whom: every container maps alike.
# Keyed by the column: an attribute's name may be 64 KB, more than a btree index entry holds.
AUTO_COLUMN_COLUMNS = [("target", NAME, True), ("attribute", TEXT, True), ("column", NAME, True), ("type", NAME, True),
                       ("route", NAME, True), ("sequence_number", VERSION, False), ("added_at", STAMP, True)]


def target_columns(route: Route, dialect: Dialect) -> list[tuple[str, str]]:
    """Every column of a route's target table with its type: mapped, extras, version, then the soft-delete
    mark, or for history and log tables the op and the change's time (history: valid from, valid to); last,
    under ``ttl_deletes: soft``, why a row was deleted."""
    columns = [(name, dialect.column_type(type_name)) for name, type_name in written_columns(route)]
    columns.append((VERSION_COLUMN, dialect.version_type))
    if route.versioned:
        stamps = (VALID_FROM, VALID_TO) if route.mode == Mode.HISTORY else (TIME_COLUMN,)
        columns += [(OP_COLUMN, dialect.types[NAME])] + [(name, dialect.types[TIME]) for name in stamps]
    elif route.soft_deletes:
        columns.append((DELETED_COLUMN, dialect.deleted_type))
    return columns + ([(DELETE_REASON, dialect.types[NAME])] if route.delete_reason else [])


def table_key(route: Route) -> tuple[str, ...]:
    """The target table's primary key: the route's key, and the version for history and log tables."""
    return (*route.key, VERSION_COLUMN) if route.versioned else route.key


def route_indexes(route: Route, dialect: Dialect) -> dict[str, sql.Composed]:
    """The secondary indexes a route's table is read by, by name: a history table's current versions,
    a log's time. None on a dialect without indexes, or for a table of current rows."""
    if not (route.versioned and dialect.indexes):
        return {}
    table = sql.Identifier(route.schema, route.table)
    if route.mode == Mode.HISTORY:
        name = f"{route.table}_current"[:63]
        return {name: sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} ({}) WHERE {} IS NULL").format(
            sql.Identifier(name), table, sql.SQL(", ").join(map(sql.Identifier, route.key)), sql.Identifier(VALID_TO))}
    name = f"{route.table}_time"[:63]
    return {name: sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} ({})").format(
        sql.Identifier(name), table, sql.Identifier(TIME_COLUMN))}


def create_schema(schema: str) -> sql.Composed:
    return sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema))


def schema_ddl(schema: str) -> list[sql.Composed]:
    """Creating ``schema``, unless it is ``public`` (which exists, and may not be ours to touch)."""
    return [] if schema == "public" else [create_schema(schema)]


def create_table(table: sql.Identifier, columns: Sequence[tuple[str, str]], constraints: Sequence[sql.Composable],
                 layout: sql.Composable = sql.SQL("")) -> sql.Composed:
    lines = [sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(type_name)) for name, type_name in columns]
    return sql.SQL("CREATE TABLE IF NOT EXISTS {} (\n    {}\n){}").format(
        table, sql.SQL(",\n    ").join([*lines, *constraints]), layout)


def primary_key(key: Sequence[str]) -> sql.Composed:
    return sql.SQL("PRIMARY KEY ({})").format(sql.SQL(", ").join(map(sql.Identifier, key)))


def route_ddl(route: Route, dialect: Dialect) -> list[sql.Composed]:
    key, not_null = table_key(route), (VERSION_COLUMN, OP_COLUMN, VALID_FROM)
    columns = [(name, type_name + (" NOT NULL" if name in key or name in not_null else ""))
               for name, type_name in target_columns(route, dialect)]
    table = create_table(sql.Identifier(route.schema, route.table), columns, [primary_key(key)],
                         dialect.layout(key, None))
    return schema_ddl(route.schema) + [table, *route_indexes(route, dialect).values()]


def _state_columns(columns: Sequence[tuple[str, str, bool]], dialect: Dialect) -> list[tuple[str, str]]:
    return [(name, dialect.types[kind] + (" NOT NULL" if not_null else ""))
            for name, kind, not_null in columns]


def state_ddl(state_schema: str, dialect: Dialect) -> list[sql.Composed]:
    tombstones, dead_letters = sql.Identifier(state_schema, TOMBSTONES), sql.Identifier(state_schema, DEAD_LETTERS)
    statements = [
        create_schema(state_schema),
        # distributed on the key where the dialect distributes: one target's tombstones would sit on one slice
        create_table(tombstones, _state_columns(TOMBSTONE_COLUMNS, dialect), [primary_key(("target", "key"))],
                     dialect.layout(("target", "key"), "key")),
    ]
    if dialect.indexes:  # the purge deletes by age
        statements.append(sql.SQL('CREATE INDEX IF NOT EXISTS {} ON {} ("deleted_at")').format(
            sql.Identifier("tombstones_deleted_at"), tombstones))
    statements.append(create_table(sql.Identifier(state_schema, AUTO_COLUMNS),
                                   _state_columns(AUTO_COLUMN_COLUMNS, dialect), [primary_key(("target", "column"))]))
    statements.append(create_table(
        dead_letters, _state_columns(DEAD_LETTER_COLUMNS, dialect),
        [primary_key(("id",)), sql.SQL("UNIQUE ({})").format(sql.SQL(", ").join(map(sql.Identifier, DEAD_LETTER_UNIQUE)))]))
    return statements
