"""A Postgres table as its catalog describes it, for the drift check (``sinks.sql.drift``), and
the one upgrade of a state table an earlier version created.

``pg_catalog`` rather than ``information_schema``: ``format_type`` names array types in
full (``character varying(20)[]``), which ``information_schema`` reports only as ``ARRAY``.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from router.model import Route
from sinks.sql.drift import LiveTable
from sinks.sql.rows import TOMBSTONES

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
_INDEXES = "SELECT indexname FROM pg_indexes WHERE schemaname = %s AND tablename = %s"


def live_table(conn: psycopg.Connection[Any], route: Route) -> LiveTable | None:
    """The catalog's view of the route's target table, or None when there is no such table."""
    columns = conn.execute(_COLUMNS, route.target).fetchall()
    if not columns:
        return None
    key = conn.execute(_PRIMARY_KEY, route.target).fetchone()
    indexes = frozenset(row[0] for row in conn.execute(_INDEXES, route.target))
    return LiveTable(dict(columns), tuple(key[1]) if key else (), key[0] if key else None, indexes)


_KEY_TYPE = """SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
WHERE a.attrelid = to_regclass(%s) AND a.attname = 'key' AND NOT a.attisdropped"""


def upgrade_tombstone_keys(conn: psycopg.Connection[Any], state_schema: str) -> bool:
    """Tombstone keys kept as text[] (before the SQL sinks shared one encoding) rewritten as its text.

    ``array_to_json`` of the old array spells strings and numbers as ``sinks.sql.rows.tombstone_key``
    does, so those tombstones keep guarding their keys. Returns whether there was anything to upgrade.
    """
    table = sql.Identifier(state_schema, TOMBSTONES)
    found = conn.execute(_KEY_TYPE, (table.as_string(None),)).fetchone()
    if not found or found[0] != "text[]":
        return False
    conn.execute(sql.SQL('ALTER TABLE {} ALTER COLUMN "key" TYPE text USING array_to_json("key")::text').format(table))
    return True
