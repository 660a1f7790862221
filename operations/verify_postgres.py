"""``operations.verify.Comparison`` for Postgres: what the target should hold, compared in the database.

The expected rows (DynamoDB items through the route's transform) are written into a
temporary table by the sink's own upsert statement, so their values take exactly the
casts the replicated rows took; one statement then joins them with the target's live rows
(soft-deleted rows count as absent) and finds keys missing on either side and columns
that differ (``IS DISTINCT FROM``; json compared as jsonb). Python holds one chunk of
items at a time; the database holds the rest on disk, and its join spills to disk past
``work_mem``, so the memory used stays bounded whatever the table's size.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from psycopg import sql

from operations.verify import Difference, Differences
from router import auto
from router.model import DELETED_COLUMN, OP_COLUMN, VALID_TO, VERSION_COLUMN, AddedColumn, Route
from router.modes import Deletes, Mode
from router.sink import Change
from sinks.postgres import statements
from sinks.postgres.sink import PostgresSink
from sinks.sql import ddl
from sinks.sql.rows import target_name, written_columns

EXPECTED = "cdc_router_verify_expected"
_COMPARE = """WITH t AS (SELECT * FROM {target} t{live}), diff AS (
    SELECT CASE WHEN t.{k0} IS NULL THEN 'missing' WHEN e.{k0} IS NULL THEN 'extra' ELSE 'different' END AS kind,
           {ordered}, ARRAY[{key_text}] AS key, array_remove(ARRAY[{differing}], NULL) AS columns,
           ARRAY[{source_text}] AS source, ARRAY[{target_text}] AS target
    FROM {expected} e {join} t ON {key_match}
    WHERE t.{k0} IS NULL OR e.{k0} IS NULL OR ROW({source}) IS DISTINCT FROM ROW({target_values})
)
SELECT kind, key, columns, source, target, count(*) FILTER (WHERE kind = 'missing') OVER (),
       count(*) FILTER (WHERE kind = 'extra') OVER (), count(*) FILTER (WHERE kind = 'different') OVER ()
FROM diff ORDER BY {order} LIMIT %(show)s"""
_CURRENT_VERSION = {
    Mode.HISTORY: " WHERE t.{valid_to} IS NULL AND t.{op} = 'u'",
    Mode.LOG: " WHERE t.{op} = 'u' AND NOT EXISTS (SELECT FROM {table} n WHERE {key_match} AND n.{version} > t.{version})",
}
_ESTIMATE = "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass"


class PostgresComparison:
    """One comparison on the sink's connection; ``close`` drops its temporary table."""

    def __init__(self, sink: PostgresSink, route: Route):
        self.added: Sequence[AddedColumn] = sink.added_columns(route) if route.auto else []
        route = auto.with_added(route, self.added, sink.capabilities) if route.auto else route
        self.sink, self.route, self.capabilities = sink, route, sink.capabilities
        self.expected = dataclasses.replace(route, schema="pg_temp", table=EXPECTED, deletes=Deletes.IGNORE,
                                            ttl_deletes=None, mode=Mode.CURRENT)
        self.columns = written_columns(route)
        self._load = statements.apply_statement(self.expected, sink.state_schema)
        conn = sink.connection()
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier("pg_temp", EXPECTED)))
        conn.execute(ddl.route_ddl(self.expected, statements.POSTGRES)[-1])  # pg_temp: no schema to create

    def load(self, changes: Sequence[Change]) -> None:
        if changes:
            self.sink.connection().execute(self._load, {"rows": statements.encode_rows(self.expected, changes)})

    def differences(self, show: int, sampled: bool) -> Differences:
        conn = self.sink.connection()
        rows = conn.execute(self._compare(sampled), {"show": max(show, 1)}).fetchall()
        names = [name for name, _ in self.columns]
        first = [_difference(self.route, names, *row[:5]) for row in rows[:show]]
        missing, extra, different = rows[0][5:] if rows else (0, 0, 0)
        source_rows = self._scalar(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("pg_temp", EXPECTED)))
        return Differences(source_rows, self.target_rows(estimate=sampled), missing, extra, different, first)

    def target_rows(self, estimate: bool = False) -> int:
        if estimate:  # the planner's estimate: a count of a large table reads all of it
            rows = self._scalar(sql.SQL(_ESTIMATE), (target_name(self.route),))
            if rows >= 0:  # -1: never analyzed
                return rows
        return self._scalar(sql.SQL("SELECT count(*) FROM {} t{}").format(self._table, self._live))

    def sample_keys(self, count: int) -> list[dict[str, Any]]:
        """``count`` live target keys drawn at random: a Bernoulli sample of about three times as many
        rows (one pass over the table, no sort of all of it), shuffled; a small table is shuffled whole."""
        estimate = self.target_rows(estimate=True)
        sampled: sql.Composable = sql.SQL("")
        if estimate > 10 * count:
            sampled = sql.SQL(" TABLESAMPLE BERNOULLI ({})").format(sql.Literal(300.0 * count / estimate))
        query = sql.SQL("SELECT {} FROM {} t{}{} ORDER BY random() LIMIT %s").format(
            sql.SQL(", ").join(map(sql.Identifier, self.route.key)), self._table, sampled, self._live)
        rows = self.sink.connection().execute(query, (count,)).fetchall()
        return [dict(zip(self.route.key, row)) for row in rows]

    def close(self) -> None:
        self.sink.connection().execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier("pg_temp", EXPECTED)))

    def _scalar(self, query: sql.Composed | sql.SQL, params: tuple[Any, ...] = ()) -> int:
        row = self.sink.connection().execute(query, params).fetchone()
        assert row is not None  # an aggregate always answers one row
        return int(row[0])

    @property
    def _table(self) -> sql.Identifier:
        return sql.Identifier(self.route.schema, self.route.table)

    @property
    def _live(self) -> sql.Composable:
        if self.route.versioned:  # the current versions: the last of each key, unless a delete
            return sql.SQL(_CURRENT_VERSION[self.route.mode]).format(
                op=sql.Identifier(OP_COLUMN), valid_to=sql.Identifier(VALID_TO), version=sql.Identifier(VERSION_COLUMN),
                table=self._table, key_match=sql.SQL(" AND ").join(
                    sql.SQL("n.{0} = t.{0}").format(sql.Identifier(k)) for k in self.route.key))
        if not self.route.soft_deletes:
            return sql.SQL("")
        return sql.SQL(" WHERE t.{} IS NULL").format(sql.Identifier(DELETED_COLUMN))

    def _compare(self, sampled: bool) -> sql.Composed:
        names = [name for name, _ in self.columns]
        types = dict(self.columns)

        def value(alias: str, name: str) -> sql.Composable:
            column = sql.SQL("{}.{}").format(sql.Identifier(alias), sql.Identifier(name))
            comparable = {"json": "jsonb", "json[]": "jsonb[]"}.get(types[name])  # json has no equality
            return sql.SQL("{}::{}").format(column, sql.SQL(comparable)) if comparable else column

        def joined(template: str, separator: str, columns: Sequence[str]) -> sql.Composed:
            return sql.SQL(separator).join(sql.SQL(template).format(n=sql.Identifier(c)) for c in columns)

        key = self.route.key
        return sql.SQL(_COMPARE).format(
            target=self._table, live=self._live, expected=sql.Identifier("pg_temp", EXPECTED),
            join=sql.SQL("LEFT JOIN" if sampled else "FULL JOIN"), k0=sql.Identifier(key[0]),
            ordered=sql.SQL(", ").join(sql.SQL("coalesce(e.{0}, t.{0}) AS {1}").format(
                sql.Identifier(k), sql.Identifier(f"k{i}")) for i, k in enumerate(key)),
            order=sql.SQL(", ").join(sql.Identifier(f"k{i}") for i in range(len(key))),
            key_text=joined("coalesce(e.{n}, t.{n})::text", ", ", key),
            key_match=joined("e.{n} = t.{n}", " AND ", key),
            differing=sql.SQL(", ").join(
                sql.SQL("CASE WHEN {} IS DISTINCT FROM {} THEN {} END").format(
                    value("e", n), value("t", n), sql.Literal(n)) for n in names),
            source_text=joined("e.{n}::text", ", ", names), target_text=joined("t.{n}::text", ", ", names),
            source=sql.SQL(", ").join(value("e", n) for n in names),
            target_values=sql.SQL(", ").join(value("t", n) for n in names),
        )


def _difference(route: Route, names: list[str], kind: str, key: list[str], columns: list[str],
                source: list[str | None], target: list[str | None]) -> Difference:
    by_name = {"source": dict(zip(names, source)), "target": dict(zip(names, target))}
    shown = columns if kind == "different" else []
    return Difference(kind, dict(zip(route.key, key)), shown,
                      {c: by_name["source"][c] for c in shown}, {c: by_name["target"][c] for c in shown})
