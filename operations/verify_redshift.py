"""``operations.verify.Comparison`` for Redshift, through the sink's Data API path.

The Data API gives each call a session of its own, so the expected rows cannot wait in a
temporary table between calls as on Postgres: they go into a scratch table of the sink's
state schema (``cdc_router_verify_<random>``), written by the sink's own staged statements
(so their values take exactly the casts the replicated rows took) and dropped by ``close``.
One query then joins them with the target's live rows (soft-deleted rows count as absent;
for history and log tables, the current versions) and finds keys missing on either side and
columns that differ. Keys and VARCHAR values compare exactly (Redshift's ``=`` ignores trailing
spaces: byte lengths are compared too), SUPER values by their JSON text.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from typing import Any

from psycopg import sql

from operations.verify import Difference, Differences
from router import auto
from router.model import DELETED_COLUMN, OP_COLUMN, VERSION_COLUMN, AddedColumn, Route
from router.modes import Deletes, Mode
from router.sink import Change, RouteBatch
from sinks.redshift import RedshiftSink
from sinks.redshift import dialect as redshift
from sinks.sql.rows import written_columns

# Both directions as LEFT JOINs (an extra row: a target row no expected row matches), not a FULL JOIN, so that
# the key match may be any expression (the stand-in's VARCHAR equality cannot drive a FULL JOIN)
_SIDE = """SELECT {ordered}, {flags}, e.{k0} AS e_key, t.{k0} AS t_key, {source_text}, {target_text}
    FROM {left} LEFT JOIN {right} ON {key_match}"""
_COMPARE = """WITH t AS ({live}), diff AS (
    {expected_side}{extra_side}
)
SELECT CASE WHEN t_key IS NULL THEN 'missing' WHEN e_key IS NULL THEN 'extra' ELSE 'different' END AS kind,
       {keys}, {flag_names}, {texts},
       SUM(CASE WHEN t_key IS NULL THEN 1 ELSE 0 END) OVER (),
       SUM(CASE WHEN e_key IS NULL THEN 1 ELSE 0 END) OVER (),
       SUM(CASE WHEN t_key IS NOT NULL AND e_key IS NOT NULL THEN 1 ELSE 0 END) OVER ()
FROM diff WHERE t_key IS NULL OR e_key IS NULL OR {any_flag}
ORDER BY {order} LIMIT {show}"""


class RedshiftComparison:
    """One comparison in a scratch table of the sink's state schema; ``close`` drops it."""

    def __init__(self, sink: RedshiftSink, route: Route):
        self.added: Sequence[AddedColumn] = sink.added_columns(route) if route.auto else []
        route = auto.with_added(route, self.added, sink.capabilities) if route.auto else route
        self.sink, self.route, self.capabilities = sink, route, sink.capabilities
        scratch = f"cdc_router_verify_{uuid.uuid4().hex[:12]}"  # lower case: Redshift folds names
        # a plain route over the same columns: its writes add no columns (auto) and keep no tombstones
        self.expected = dataclasses.replace(route, schema=sink.state_schema, table=scratch, deletes=Deletes.IGNORE,
                                            ttl_deletes=None, mode=Mode.CURRENT, filter=None, auto=False, added=())
        self.columns = written_columns(route)
        self._writer = RedshiftSink(sink.config, [self.expected], transport=sink.transport, now=sink.now)
        self._writer.apply_ddl([self.expected])

    def load(self, changes: Sequence[Change]) -> None:
        if changes:
            self._writer.apply([RouteBatch(self.expected, list(changes))])

    def differences(self, show: int, sampled: bool) -> Differences:
        rows = self.sink.query(self._compare(sampled, max(show, 1))).rows
        first = [self._difference(row) for row in rows[:show]]
        missing, extra, different = (int(value or 0) for value in rows[0][-3:]) if rows else (0, 0, 0)
        source_rows = self._count(sql.SQL("SELECT count(*) FROM {}").format(self._expected_table))
        return Differences(source_rows, self.target_rows(), missing, extra, different, first)

    def target_rows(self, estimate: bool = False) -> int:
        return self._count(sql.SQL("SELECT count(*) FROM ({}) t").format(self._live()))

    def sample_keys(self, count: int) -> list[dict[str, Any]]:
        """``count`` live target keys drawn at random."""
        query = sql.SQL("SELECT {} FROM ({}) t ORDER BY RANDOM() LIMIT {}").format(
            sql.SQL(", ").join(map(sql.Identifier, self.route.key)), self._live(), sql.Literal(count))
        return [dict(zip(self.route.key, row)) for row in self.sink.query(query).rows]

    def close(self) -> None:
        self._writer.run([sql.SQL("DROP TABLE IF EXISTS {}").format(self._expected_table)])

    # -- pieces ---------------------------------------------------------------------------

    @property
    def _expected_table(self) -> sql.Identifier:
        return sql.Identifier(self.expected.schema, self.expected.table)

    def _count(self, query: sql.Composed) -> int:
        return int(self.sink.query(query).rows[0][0])

    def _live(self) -> sql.Composed:
        """The target's live rows: not soft-deleted; of a history or log table, each key's newest version
        unless it is a delete."""
        table = sql.Identifier(self.route.schema, self.route.table)
        if self.route.versioned:
            return sql.SQL("SELECT * FROM (SELECT h.*, ROW_NUMBER() OVER (PARTITION BY {} ORDER BY h.{} DESC) AS "
                           "cdc_router_rank FROM {} h) n WHERE n.cdc_router_rank = 1 AND n.{} = 'u'").format(
                sql.SQL(", ").join(sql.SQL("h.{}").format(sql.Identifier(k)) for k in self.route.key),
                sql.Identifier(VERSION_COLUMN), table, sql.Identifier(OP_COLUMN))
        if self.route.soft_deletes:
            return sql.SQL("SELECT * FROM {} WHERE {} IS NULL").format(table, sql.Identifier(DELETED_COLUMN))
        return sql.SQL("SELECT * FROM {}").format(table)

    def _compare(self, sampled: bool, show: int) -> sql.Composed:
        names, key = [name for name, _ in self.columns], self.route.key
        types = dict(self.columns)

        def col(alias: str, name: str) -> sql.Composed:
            return sql.SQL("{}.{}").format(sql.Identifier(alias), sql.Identifier(name))

        def flag(name: str) -> sql.Composed:
            left, right = col("e", name), col("t", name)
            if redshift.column_type(types[name]) == "SUPER":
                left, right = (sql.SQL("JSON_SERIALIZE({})").format(side) for side in (left, right))
            return sql.SQL("CASE WHEN {} THEN 0 WHEN {} IS NULL AND {} IS NULL THEN 0 ELSE 1 END").format(
                redshift.same(left, right, types[name]), left, right)

        def text(alias: str, name: str, index: int) -> sql.Composed:
            return sql.SQL("{} AS {}").format(redshift.as_text(col(alias, name), types[name]),
                                              sql.Identifier(f"{alias}{index}"))

        flags = [sql.Identifier(f"d{i}") for i in range(len(names))]
        parts = dict(
            k0=sql.Identifier(key[0]),
            ordered=sql.SQL(", ").join(sql.SQL("COALESCE({}, {}) AS {}").format(
                col("e", k), col("t", k), sql.Identifier(f"k{i}")) for i, k in enumerate(key)),
            flags=sql.SQL(", ").join(sql.SQL("{} AS {}").format(flag(n), f) for n, f in zip(names, flags)),
            key_match=sql.SQL(" AND ").join(redshift.same(col("e", k), col("t", k), types[k]) for k in key),
            source_text=sql.SQL(", ").join(text("e", n, i) for i, n in enumerate(names)),
            target_text=sql.SQL(", ").join(text("t", n, i) for i, n in enumerate(names)))
        expected, target = sql.SQL("{} e").format(self._expected_table), sql.SQL("t")
        extra_side = sql.SQL("\n    UNION ALL {} WHERE e.{} IS NULL").format(
            sql.SQL(_SIDE).format(left=target, right=expected, **parts), parts["k0"])
        return sql.SQL(_COMPARE).format(
            live=self._live(), expected_side=sql.SQL(_SIDE).format(left=expected, right=target, **parts),
            extra_side=sql.SQL("") if sampled else extra_side,
            keys=sql.SQL(", ").join(sql.SQL("{} AS {}").format(redshift.as_text(sql.Identifier(f"k{i}"), types[k]),
                                                               sql.Identifier(f"key{i}")) for i, k in enumerate(key)),
            flag_names=sql.SQL(", ").join(flags),
            texts=sql.SQL(", ").join(sql.Identifier(f"{side}{i}") for side in "et" for i in range(len(names))),
            any_flag=sql.SQL(" + ").join(flags) + sql.SQL(" > 0"),
            order=sql.SQL(", ").join(sql.Identifier(f"k{i}") for i in range(len(key))), show=sql.Literal(show))

    def _difference(self, row: tuple[Any, ...]) -> Difference:
        names, key = [name for name, _ in self.columns], self.route.key
        width = len(names)
        kind, keys = row[0], row[1:1 + len(key)]
        flags = row[1 + len(key):1 + len(key) + width]
        source = row[1 + len(key) + width:1 + len(key) + 2 * width]
        target = row[1 + len(key) + 2 * width:1 + len(key) + 3 * width]
        shown = [name for name, differs in zip(names, flags) if differs] if kind == "different" else []
        by_name = {"source": dict(zip(names, source)), "target": dict(zip(names, target))}
        return Difference(kind, {k: None if v is None else str(v) for k, v in zip(key, keys)}, shown,
                          {c: _text(by_name["source"][c]) for c in shown}, {c: _text(by_name["target"][c]) for c in shown})


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
