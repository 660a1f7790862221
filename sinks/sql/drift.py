"""Schema drift: compare a live table with its route, and compose the statements that fix it.

Each dialect reads its catalog into a ``LiveTable`` (Postgres: ``pg_catalog`` with
``format_type`` names; Redshift: ``information_schema``); ``differences`` is a pure function
of the route, that snapshot and the dialect, so each kind of drift is a plain value to test.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

from router.model import VERSION_COLUMN, Route
from router.sink import Drift
from sinks.sql.ddl import primary_key, route_ddl, table_key, target_columns
from sinks.sql.dialect import Dialect


@dataclass(frozen=True)
class LiveTable:
    columns: dict[str, str]                 # name -> catalog type name
    primary_key: tuple[str, ...] = ()
    primary_key_name: str | None = None


def differences(route: Route, live: LiveTable | None, dialect: Dialect) -> list[Drift]:
    table, shown = sql.Identifier(route.schema, route.table), route.qualified_table
    if live is None:
        return [Drift(route.name, shown, "missing table", fix=tuple(_text(s) for s in route_ddl(route, dialect)))]
    drifts = []
    for name, type_name in target_columns(route, dialect):
        actual = live.columns.get(dialect.same_name(name))
        if actual is None:
            drifts.append(Drift(route.name, shown, "missing column", name, type_name,
                                fix=(_text(_add_column(table, name, type_name)),)))
        elif actual != dialect.catalog_type(type_name):
            drifts.append(Drift(route.name, shown, "type mismatch", name, type_name, dialect.route_type(actual),
                                fix=(_text(_alter_type(table, name, type_name, dialect)),)))
    if dialect.keys_enforced and live.primary_key != tuple(map(dialect.same_name, table_key(route))):
        drifts.append(_key_drift(route, live, table, dialect))
    return drifts


def _key_drift(route: Route, live: LiveTable, table: sql.Identifier, dialect: Dialect) -> Drift:
    add = sql.SQL("ADD {}").format(primary_key(table_key(route)))
    expected = ", ".join(table_key(route))
    if live.primary_key_name is None:
        return Drift(route.name, route.qualified_table, "missing primary key", expected=expected,
                     fix=(_text(sql.SQL("ALTER TABLE {} {}").format(table, add)),))
    drop = sql.SQL("DROP CONSTRAINT {}").format(sql.Identifier(live.primary_key_name))
    fix: tuple[str, ...]
    if dialect.combined_alter:
        fix = (_text(sql.SQL("ALTER TABLE {} {}, {}").format(table, drop, add)),)
    else:
        fix = tuple(_text(sql.SQL("ALTER TABLE {} {}").format(table, clause)) for clause in (drop, add))
    return Drift(route.name, route.qualified_table, "different primary key", expected=expected,
                 actual=", ".join(live.primary_key), fix=fix)


def _add_column(table: sql.Identifier, name: str, type_name: str) -> sql.Composed:
    # Existing rows get version 0: older than any stream record, so the next change of each row applies.
    default = sql.SQL(" NOT NULL DEFAULT 0") if name == VERSION_COLUMN else sql.SQL("")
    return sql.SQL("ALTER TABLE {} ADD COLUMN {} {}{}").format(table, sql.Identifier(name), sql.SQL(type_name), default)


def _alter_type(table: sql.Identifier, name: str, type_name: str, dialect: Dialect) -> sql.Composed:
    column, column_type = sql.Identifier(name), sql.SQL(type_name)
    using = sql.SQL(" USING {}::{}").format(column, column_type) if dialect.alter_type_using else sql.SQL("")
    return sql.SQL("ALTER TABLE {} ALTER COLUMN {} TYPE {}{}").format(table, column, column_type, using)


def _text(statement: sql.Composable) -> str:
    return statement.as_string(None)
