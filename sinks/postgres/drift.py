"""Schema drift: compare a live Postgres table with its route, and compose the fixing statements.

``live_table`` reads the catalog (columns with ``format_type`` names, the primary key);
``differences`` is a pure function of the route and that snapshot, so each kind of drift
is a plain value to test. Fixes are composed with ``psycopg.sql`` like all other DDL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from router.model import DELETED_COLUMN, VERSION_COLUMN, Route
from router.modes import Deletes
from router.sink import Drift
from sinks.postgres.statements import route_ddl, written_columns

# Our type names as the catalog spells them (format_type); the others are spelled alike.
_CATALOG_NAMES = (("varchar", "character varying"), ("timestamptz", "timestamp with time zone"),
                  ("timestamp", "timestamp without time zone"))
_COLUMNS = """SELECT a.attname, format_type(a.atttypid, a.atttypmod)
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum"""
_PRIMARY_KEY = """SELECT k.conname, array_agg(a.attname ORDER BY u.position)
FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN unnest(k.conkey) WITH ORDINALITY AS u(attnum, position)
JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.attnum
WHERE n.nspname = %s AND c.relname = %s AND k.contype = 'p'
GROUP BY k.conname"""


@dataclass(frozen=True)
class LiveTable:
    columns: dict[str, str]                 # name -> catalog type name
    primary_key: tuple[str, ...] = ()
    primary_key_name: str | None = None


def live_table(conn: psycopg.Connection[Any], route: Route) -> LiveTable | None:
    """The catalog's view of the route's target table, or None when there is no such table."""
    columns = conn.execute(_COLUMNS, route.target).fetchall()
    if not columns:
        return None
    key = conn.execute(_PRIMARY_KEY, route.target).fetchone()
    return LiveTable(dict(columns), tuple(key[1]) if key else (), key[0] if key else None)


def catalog_type(type_name: str) -> str:
    """``varchar(20)[]`` -> ``character varying(20)[]``: how ``format_type`` names a route's type."""
    for ours, catalog in _CATALOG_NAMES:
        if type_name == ours or type_name.startswith((ours + "(", ours + "[")):
            return catalog + type_name[len(ours):]
    return type_name


def expected_columns(route: Route) -> list[tuple[str, str]]:
    """Every column the sink writes: mapped, extras, the version, and the soft-delete mark."""
    columns = written_columns(route) + [(VERSION_COLUMN, "numeric")]
    return columns + ([(DELETED_COLUMN, "timestamptz")] if route.deletes == Deletes.SOFT else [])


def differences(route: Route, live: LiveTable | None) -> list[Drift]:
    table = sql.Identifier(route.schema, route.table)
    shown = route.qualified_table
    if live is None:
        return [Drift(route.name, shown, "missing table", fix=tuple(_text(s) for s in route_ddl(route)))]
    drifts = []
    for name, type_name in expected_columns(route):
        actual = live.columns.get(name)
        if actual is None:
            drifts.append(Drift(route.name, shown, "missing column", name, type_name,
                                fix=(_text(_add_column(table, name, type_name)),)))
        elif actual != catalog_type(type_name):
            drifts.append(Drift(route.name, shown, "type mismatch", name, type_name, actual,
                                fix=(_text(_alter_type(table, name, type_name)),)))
    if live.primary_key != route.key:
        drifts.append(_key_drift(route, live, table))
    return drifts


def _key_drift(route: Route, live: LiveTable, table: sql.Identifier) -> Drift:
    key = sql.SQL("ADD PRIMARY KEY ({})").format(sql.SQL(", ").join(map(sql.Identifier, route.key)))
    expected = ", ".join(route.key)
    if live.primary_key_name is None:
        return Drift(route.name, route.qualified_table, "missing primary key", expected=expected,
                     fix=(_text(sql.SQL("ALTER TABLE {} {}").format(table, key)),))
    statement = sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}, {}").format(
        table, sql.Identifier(live.primary_key_name), key)
    return Drift(route.name, route.qualified_table, "different primary key", expected=expected,
                 actual=", ".join(live.primary_key), fix=(_text(statement),))


def _add_column(table: sql.Identifier, name: str, type_name: str) -> sql.Composed:
    # Existing rows get version 0: older than any stream record, so the next change of each row applies.
    default = sql.SQL(" NOT NULL DEFAULT 0") if name == VERSION_COLUMN else sql.SQL("")
    return sql.SQL("ALTER TABLE {} ADD COLUMN {} {}{}").format(table, sql.Identifier(name), sql.SQL(type_name), default)


def _alter_type(table: sql.Identifier, name: str, type_name: str) -> sql.Composed:
    column, column_type = sql.Identifier(name), sql.SQL(type_name)
    return sql.SQL("ALTER TABLE {} ALTER COLUMN {} TYPE {} USING {}::{}").format(
        table, column, column_type, column, column_type)


def _text(statement: sql.Composable) -> str:
    return statement.as_string(None)
