"""``mode: history`` and ``mode: log`` on Postgres: a row per version, keyed by the route's key and ``_cdc_version``
(the table and its index: ``sinks.sql.ddl``).

As for ``mode: current``, one statement applies a route's share of a batch. Both are idempotent:
a version already stored is left as it is (``ON CONFLICT DO NOTHING``). History is also
order-proof: the statement puts the batch's versions among the stored versions of their keys
and sets every ``_valid_to`` to the next version's ``_valid_from`` (NULL for the last), so a
late change lands in its place and its neighbours' validity is adjusted. A delete is a
version too (op ``d``, NULL values): it closes the version before it, and a late upsert
older than it cannot reopen the item.

A backfilled item is version 0 (below every stream version: its sequence number is unknown) and
valid from the time it was written, or from the key's first stream version if that is earlier: a
scanned state is not known to have held before a change the stream already carries, so that
version is then valid for no time at all (``_valid_from = _valid_to``). The result does not
depend on whether the stream's records of the item arrive before or after the backfill.
"""

from __future__ import annotations

from psycopg import sql

from router.model import DELETE_REASON, OP_COLUMN, TIME_COLUMN, VALID_FROM, VALID_TO, VERSION_COLUMN, Route
from router.modes import Mode
from sinks.postgres.statements import field_list, value_list
from sinks.sql.rows import written_columns

_RECORDS = """WITH d AS (
    SELECT * FROM json_to_recordset(%(rows)s::json) AS d({fields}, "v" numeric, "o" text, "t" timestamptz, "r" text)
)"""
_LOG = _RECORDS + """, ins AS (
    INSERT INTO {table} AS t ({columns}, {version}, {op}, {time}{reason_column})
    SELECT {values}, d."v", d."o", coalesce(d."t", now()){reason_value} FROM d
    ON CONFLICT ({key}, {version}) DO NOTHING
    RETURNING t.{op} AS op
)
SELECT count(*) FILTER (WHERE op = 'u'), count(*) FILTER (WHERE op = 'd') FROM ins"""
_HISTORY = _RECORDS + """, known AS (
    SELECT {stored_key}, t.{version} AS v, t.{valid_from} AS t, true AS stored FROM {table} t
    WHERE ({stored_key}) IN (SELECT {batch_key} FROM d)
), versions AS (
    SELECT DISTINCT ON ({key}, v) * FROM (
        SELECT * FROM known
        UNION ALL SELECT {batch_key}, d."v", coalesce(d."t", now()), false FROM d
    ) a ORDER BY {key}, v, stored DESC
), following AS (
    SELECT *, lead(t) OVER (PARTITION BY {key} ORDER BY v) AS valid_to FROM versions
), next AS (  -- a backfilled version (0) holds from the scan, or not at all if the stream changed the item before it
    SELECT *, CASE WHEN v = 0 THEN least(t, valid_to) ELSE t END AS valid_from FROM following
), ins AS (
    INSERT INTO {table} AS t ({columns}, {version}, {op}, {valid_from}, {valid_to}{reason_column})
    SELECT {values}, d."v", d."o", n.valid_from, n.valid_to{reason_value} FROM d JOIN next n ON {batch_match} AND n.v = d."v"
    WHERE NOT n.stored
    ON CONFLICT ({key}, {version}) DO NOTHING
    RETURNING t.{op} AS op
), upd AS (
    UPDATE {table} AS t SET {valid_to} = n.valid_to, {valid_from} = n.valid_from FROM next n
    WHERE n.stored AND {stored_match} AND t.{version} = n.v
      AND (t.{valid_to} IS DISTINCT FROM n.valid_to OR t.{valid_from} <> n.valid_from)
    RETURNING 1
)
SELECT (SELECT count(*) FILTER (WHERE op = 'u') FROM ins), (SELECT count(*) FILTER (WHERE op = 'd') FROM ins)"""


def apply_statement(route: Route) -> sql.Composed:
    """The statement of a history or log route; same parameters as ``statements.apply_statement``."""
    columns = written_columns(route)
    index = {name: i for i, (name, _) in enumerate(columns)}
    batch_key = [sql.SQL("d.{}").format(sql.Identifier(f"c{index[k]}")) for k in route.key]
    key = [sql.Identifier(k) for k in route.key]
    parts = dict(
        table=sql.Identifier(route.schema, route.table), fields=field_list(columns), values=value_list(columns),
        columns=sql.SQL(", ").join(sql.Identifier(name) for name, _ in columns),
        key=sql.SQL(", ").join(key), version=sql.Identifier(VERSION_COLUMN), op=sql.Identifier(OP_COLUMN),
        time=sql.Identifier(TIME_COLUMN), valid_from=sql.Identifier(VALID_FROM), valid_to=sql.Identifier(VALID_TO),
        stored_key=sql.SQL(", ").join(sql.SQL("t.{}").format(k) for k in key),
        batch_key=sql.SQL(", ").join(batch_key),
        batch_match=sql.SQL(" AND ").join(sql.SQL("n.{} = {}").format(k, f) for k, f in zip(key, batch_key)),
        stored_match=sql.SQL(" AND ").join(sql.SQL("t.{0} = n.{0}").format(k) for k in key),
        reason_column=sql.SQL(", {}").format(sql.Identifier(DELETE_REASON)) if route.delete_reason else sql.SQL(""),
        reason_value=sql.SQL(', d."r"') if route.delete_reason else sql.SQL(""),
    )
    return sql.SQL(_HISTORY if route.mode == Mode.HISTORY else _LOG).format(**parts)
