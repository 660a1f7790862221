"""``mode: history`` and ``mode: log`` on Redshift: the Postgres sink's semantics (``sinks.postgres.versions``)
in statements Redshift runs, over the same stage table as ``mode: current``.

The stage's rows already stored (same key and version) are dropped, the rest inserted; for
history, every version of the batch's keys then gets ``_valid_to`` from the next version's
``_valid_from`` (LEAD over the key's versions), which puts a late change in its place, and a
backfilled version (0) starts no later than the stream's first version of its key (as on Postgres).
"""

from __future__ import annotations

from psycopg import sql

from router.model import DELETE_REASON, OP_COLUMN, TIME_COLUMN, VALID_FROM, VALID_TO, VERSION_COLUMN
from router.modes import Mode
from sinks.redshift.statements import DELETE, DELETED, UPSERT, UPSERTED, RouteStatements
from sinks.redshift.transport import Statement


class VersionStatements(RouteStatements):
    """A history or log route's statements for one stage table."""

    def apply(self) -> list[Statement]:
        steps: list[tuple[sql.Composed, str | None]] = [
            (sql.SQL("DELETE FROM {} USING {} WHERE {} AND {} = {}").format(   # versions stored already
                self.stage, self.table, self._match(), self._col(VERSION_COLUMN), self._staged("v")), None),
            (self._insert(UPSERT), UPSERTED), (self._insert(DELETE), DELETED)]
        if self.route.mode == Mode.HISTORY:
            steps.append((self._validity(), None))
        return [Statement(statement.as_string(None), self.route.name, counts) for statement, counts in steps]

    def _insert(self, op: str) -> sql.Composed:
        stamps = [VALID_FROM] if self.route.mode == Mode.HISTORY else [TIME_COLUMN]
        why = [DELETE_REASON] if self.route.delete_reason else []
        columns = [*map(sql.Identifier, [*self.columns, VERSION_COLUMN, OP_COLUMN, *stamps, *why])]
        values = [*self.fields, self._staged("v"), self._staged("o"), self._staged("t"), *[self._staged("r")] * len(why)]
        return sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} WHERE {}").format(
            self.table, sql.SQL(", ").join(columns), sql.SQL(", ").join(values), self.stage, self._is(op))

    def _validity(self) -> sql.Composed:
        """Every version of the batch's keys valid until the next one's time; the last one open; a backfilled
        version (0) valid from the earlier of its write and the next version's time."""
        key = [sql.Identifier(k) for k in self.route.key]
        staged_key = [self.fields[self.columns.index(k)] for k in self.route.key]
        version, valid_from, valid_to = map(sql.Identifier, (VERSION_COLUMN, VALID_FROM, VALID_TO))
        return sql.SQL(
            "UPDATE {table} SET {valid_to} = n.next_from,\n"
            "    {valid_from} = CASE WHEN n.v = 0 THEN LEAST(n.valid_from, n.next_from) ELSE n.valid_from END FROM (\n"
            "    SELECT {h_key}, h.{version} AS v, h.{valid_from} AS valid_from,"
            " LEAD(h.{valid_from}) OVER (PARTITION BY {h_key} ORDER BY h.{version}) AS next_from\n"
            "    FROM {table} h JOIN (SELECT DISTINCT {staged_key} FROM {stage}) s ON {s_match}\n"
            ") n WHERE {n_match} AND {bare}.{version} = n.v").format(
            table=self.table, bare=self.bare, valid_to=valid_to, version=version, valid_from=valid_from,
            stage=self.stage, h_key=sql.SQL(", ").join(sql.SQL("h.{}").format(k) for k in key),
            staged_key=sql.SQL(", ").join(sql.SQL("{} AS {}").format(f, k) for f, k in zip(staged_key, key)),
            s_match=sql.SQL(" AND ").join(sql.SQL("h.{0} = s.{0}").format(k) for k in key),
            n_match=sql.SQL(" AND ").join(sql.SQL("{}.{} = n.{}").format(self.bare, k, k) for k in key))
