"""DDL of every SQL sink, from ``(column, type)`` pairs: target tables and the state tables.

The columns are data (``target_columns``, ``TOMBSTONE_COLUMNS``, ``DEAD_LETTER_COLUMNS``);
one ``create_table`` spells them for any dialect, so that the drift check compares a live
table with exactly the columns the DDL would create.
"""

from __future__ import annotations

from collections.abc import Sequence

from psycopg import sql

from router.model import DELETED_COLUMN, VERSION_COLUMN, Route
from router.modes import Deletes
from sinks.sql.dialect import DOCUMENT, ID, NAME, STAMP, TEXT, VERSION, Dialect
from sinks.sql.rows import DEAD_LETTERS, TOMBSTONES, written_columns

# State tables: (column, kind of type, NOT NULL); the dialect names the type of each kind.
TOMBSTONE_COLUMNS = [("target", NAME, True), ("key", TEXT, True), ("version", VERSION, True),
                     ("deleted_at", STAMP, True)]
DEAD_LETTER_COLUMNS = [("id", ID, True), ("route", NAME, True), ("source_table", NAME, False),
                       ("target", NAME, True), ("sequence_number", VERSION, False), ("event_id", NAME, False),
                       ("error", TEXT, True), ("record", DOCUMENT, True), ("failed_at", STAMP, True)]
DEAD_LETTER_UNIQUE = ("route", "source_table", "sequence_number")


def target_columns(route: Route, dialect: Dialect) -> list[tuple[str, str]]:
    """Every column of a route's target table with its type: mapped, extras, version, soft-delete mark."""
    columns = [(name, dialect.column_type(type_name)) for name, type_name in written_columns(route)]
    columns.append((VERSION_COLUMN, dialect.version_type))
    return columns + ([(DELETED_COLUMN, dialect.deleted_type)] if route.deletes == Deletes.SOFT else [])


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
    columns = [(name, type_name + (" NOT NULL" if name in route.key or name == VERSION_COLUMN else ""))
               for name, type_name in target_columns(route, dialect)]
    table = create_table(sql.Identifier(route.schema, route.table), columns, [primary_key(route.key)],
                         dialect.layout(route.key, None))
    return schema_ddl(route.schema) + [table]


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
    statements.append(create_table(
        dead_letters, _state_columns(DEAD_LETTER_COLUMNS, dialect),
        [primary_key(("id",)), sql.SQL("UNIQUE ({})").format(sql.SQL(", ").join(map(sql.Identifier, DEAD_LETTER_UNIQUE)))]))
    return statements
