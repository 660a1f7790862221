"""SQL for the Redshift sink, composed with ``psycopg.sql`` and returned as data.

Redshift has no ON CONFLICT, does not enforce primary keys, and its MERGE refuses a
source with two rows for one key. So a route's share of a batch (already reduced to one
change per key) is applied in one transaction as:

1. stage: a temporary table receives the changes (``INSERT ... VALUES`` of literals);
2. guard: staged changes not newer than the stored row's ``_cdc_version`` (or, under
   ``deletes: hard``, than the key's tombstone) are removed from the stage: they are stale;
3. apply: what is left replaces rows unconditionally: deleted target rows, then the new
   rows inserted; soft deletes mark rows (or, when the batch also upserted the key, insert
   its values marked deleted); hard deletes replace the key's tombstone.

Every statement here is in the subset PostgreSQL shares with Redshift (temporary tables,
``DELETE ... USING``, ``UPDATE ... FROM``, ``INSERT ... SELECT``, LEFT JOIN); the target table
is referred to by its bare name because Redshift allows no alias on a DELETE or UPDATE
target. Redshift-only syntax lives in ``dialect`` (types, literals, table layout); the DDL of the
target and state tables is the SQL sink base's (``sinks.sql.ddl``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

from psycopg import sql

from router.model import DELETE_REASON, DELETED_COLUMN, VERSION_COLUMN, Route
from router.modes import Op
from router.sink import Fill
from sinks.redshift import dialect
from sinks.redshift.transport import Statement
from sinks.sql.ddl import DEAD_LETTER_COLUMNS
from sinks.sql.fill import guard as fill_guard
from sinks.sql.rows import AUTO_COLUMNS, DEAD_LETTERS, TOMBSTONES, written_columns

UPSERTED, DELETED = "upserted", "deleted"  # what a statement's row count adds to the route's stats
_VERSION, _DELETED, _REASON = map(sql.Identifier, (VERSION_COLUMN, DELETED_COLUMN, DELETE_REASON))
UPSERT, DELETE, KEPT = Op.UPSERT, Op.DELETE, Op.KEEP  # staged ops; KEPT: a soft delete with the values of an upsert
_BOOKKEEPING = [("v", dialect.VERSION_TYPE + " NOT NULL"), ("o", "CHAR(1) NOT NULL"),  # version, op
                ("t", "TIMESTAMPTZ"),                                                 # deleted at (soft deletes)
                ("k", f"VARCHAR({dialect.MAX_VARCHAR_BYTES})")]                       # key as text (tombstones)
_REASON_FIELD = [("r", "VARCHAR(6)")]  # a delete's reason, where the table keeps it (ttl_deletes: soft)
# The staged dead letters: the table's columns but the two this sink fills in while inserting them.
STAGED_LETTERS = [(name, dialect.REDSHIFT_TYPES[kind]) for name, kind, _ in DEAD_LETTER_COLUMNS
                  if name not in ("id", "failed_at")]


def stage_types(route: Route) -> list[str]:
    """Types of a route's staged columns, in ``written_columns`` order (c0, c1, ...)."""
    return [dialect.column_type(type_name) for _, type_name in written_columns(route)]


def _create_temp(stage: sql.Identifier, columns: list[tuple[str, str]]) -> str:
    fields = sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(type_name))
                                for name, type_name in columns)
    return sql.SQL("CREATE TEMP TABLE {} ({})").format(stage, fields).as_string(None)


def insert_prefix(stage: str) -> str:
    """The start of a staging INSERT; rendered rows ``(...), (...)`` follow it."""
    return sql.SQL("INSERT INTO {} VALUES ").format(sql.Identifier(stage)).as_string(None)


class RouteStatements:
    """The statements that apply one route's staged changes, for one stage table name."""

    def __init__(self, route: Route, state_schema: str, stage: str, target: str, now: dt.datetime):
        self.route, self.stage, self.now = route, sql.Identifier(stage), dialect.literal(now)
        self.table, self.bare = sql.Identifier(route.schema, route.table), sql.Identifier(route.table)
        self.tombstones, self.state = sql.Identifier(state_schema, TOMBSTONES), state_schema
        self.columns = [name for name, _ in written_columns(route)]
        self.fields = [sql.SQL("{}.{}").format(self.stage, sql.Identifier(f"c{i}")) for i in range(len(self.columns))]
        self.target = dialect.literal(target)

    def create(self) -> Statement:
        fields = [(f"c{i}", type_name) for i, type_name in enumerate(stage_types(self.route))]
        reason = _REASON_FIELD if self.route.delete_reason or self.route.mixed_deletes else []
        return Statement(_create_temp(self.stage, fields + _BOOKKEEPING + reason), self.route.name)

    def apply(self) -> list[Statement]:
        """Guard, then apply; in this order, because each step relies on the one before."""
        hard, soft = self.route.hard_deletes, self.route.soft_deletes
        steps: list[tuple[sql.Composed, str | None]] = [(self._stale_against_rows(), None)]
        if hard:
            steps += [(self._stale_against_tombstones(), None), (self._delete(DELETE, hard=True), DELETED)]
        if soft:
            steps += [(self._mark_deleted(), DELETED), (self._insert_deleted(), DELETED)]
        steps += [(self._delete(UPSERT, KEPT), None), (self._insert_rows(UPSERT), UPSERTED)]
        if soft:
            steps += [(self._insert_rows(KEPT), DELETED)]
        if hard:
            steps += [(self._clear_tombstones(), None), (self._write_tombstones(), None)]
        writes = ((self.route.schema, self.route.table),) + (((self.state, TOMBSTONES),) if hard else ())
        return [Statement(statement.as_string(None), self.route.name, counts, writes) for statement, counts in steps]

    def fill(self, fill: Fill, versions: str) -> list[Statement]:
        """``backfill --columns``: the staged values of ``fill.columns`` into rows that exist and whose version is
        still the one recorded in ``versions`` (a table of the state schema, ``sinks.sql.fill``), instead of
        ``apply``; counts as upserted."""
        types, recorded = dict(written_columns(self.route)), sql.Identifier(versions)
        same_key = sql.SQL(" AND ").join(
            dialect.same(sql.SQL("{}.{}").format(recorded, sql.Identifier(k)), self.fields[self.columns.index(k)],
                         types[k]) for k in self.route.key)
        sets = sql.SQL(", ").join(sql.SQL("{} = {}").format(sql.Identifier(name), self.fields[self.columns.index(name)])
                                  for name in fill.columns)
        statement = sql.SQL("UPDATE {} SET {} FROM {}, {} WHERE {} AND {} AND {} AND {}").format(
            self.table, sets, self.stage, sql.Identifier(self.state, versions), self._is(UPSERT), self._match(), same_key,
            fill_guard(self.route, self.bare, recorded))
        return [Statement(statement.as_string(None), self.route.name, UPSERTED, ((self.route.schema, self.route.table),))]

    # -- pieces ---------------------------------------------------------------------------

    def _col(self, name: str) -> sql.Composed:
        return sql.SQL("{}.{}").format(self.bare, sql.Identifier(name))

    def _staged(self, name: str) -> sql.Composed:
        return sql.SQL("{}.{}").format(self.stage, sql.Identifier(name))

    def _match(self) -> sql.Composable:
        types = dict(written_columns(self.route))
        return sql.SQL(" AND ").join(dialect.same(self._col(k), self.fields[self.columns.index(k)], types[k])
                                     for k in self.route.key)

    def _is(self, *ops: str, hard: bool | None = None) -> sql.Composed:
        """Staged rows of these ops; ``hard``: only the deletes that remove rows (True) or mark them (False),
        which differ by reason where users' deletes and expiries differ (``Route.mixed_deletes``)."""
        if len(ops) == 1:
            test = sql.SQL("{} = {}").format(self._staged("o"), dialect.literal(ops[0]))
        else:
            test = sql.SQL("{} IN ({})").format(self._staged("o"), sql.SQL(", ").join(map(dialect.literal, ops)))
        if hard is None or not self.route.mixed_deletes:
            return test
        return sql.SQL("{} AND {} {} {}").format(test, self._staged("r"), sql.SQL("=" if hard else "<>"),
                                                 dialect.literal(str(self.route.hard_reason)))

    def _tombstone_of_staged(self) -> sql.Composed:
        return sql.SQL("{0}.\"target\" = {1} AND {0}.\"key\" = {2}").format(
            sql.Identifier(TOMBSTONES), self.target, self._staged("k"))

    def _stale_against_rows(self) -> sql.Composed:
        return sql.SQL("DELETE FROM {} USING {} WHERE {} AND {} >= {}").format(
            self.stage, self.table, self._match(), self._col(VERSION_COLUMN), self._staged("v"))

    def _stale_against_tombstones(self) -> sql.Composed:
        return sql.SQL("DELETE FROM {} USING {} WHERE {} AND {}.\"version\" >= {}").format(
            self.stage, self.tombstones, self._tombstone_of_staged(), sql.Identifier(TOMBSTONES), self._staged("v"))

    def _delete(self, *ops: str, hard: bool | None = None) -> sql.Composed:
        return sql.SQL("DELETE FROM {} USING {} WHERE {} AND {}").format(self.table, self.stage, self._match(),
                                                                         self._is(*ops, hard=hard))

    def _insert_rows(self, op: str) -> sql.Composed:
        """New rows; KEPT rows are marked deleted (``t``), upserts are not (the column is left NULL)."""
        columns, values = [*map(sql.Identifier, self.columns), _VERSION], [*self.fields, self._staged("v")]
        if op == KEPT:
            columns, values = columns + self._marks(), values + self._mark_values()
        return sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} WHERE {}").format(
            self.table, sql.SQL(", ").join(columns), sql.SQL(", ").join(values), self.stage, self._is(op))

    def _marks(self) -> list[sql.Identifier]:
        """The columns a soft delete sets: when, and why under ``ttl_deletes: soft``."""
        return [_DELETED, _REASON] if self.route.delete_reason else [_DELETED]

    def _mark_values(self) -> list[sql.Composed]:
        return [self._staged("t"), self._staged("r")] if self.route.delete_reason else [self._staged("t")]

    def _mark_deleted(self) -> sql.Composed:
        marks = sql.SQL(", ").join(sql.SQL("{} = {}").format(c, v) for c, v in zip(self._marks(), self._mark_values()))
        return sql.SQL("UPDATE {} SET {} = {}, {} FROM {} WHERE {} AND {}").format(
            self.table, _VERSION, self._staged("v"), marks, self.stage, self._match(), self._is(DELETE, hard=False))

    def _insert_deleted(self) -> sql.Composed:
        """A soft delete of a row never seen: the key, marked deleted (as the Postgres sink does)."""
        keys = [self.fields[self.columns.index(k)] for k in self.route.key]
        return sql.SQL("INSERT INTO {} ({}, {}, {}) SELECT {}, {}, {} FROM {} LEFT JOIN {} ON {} "
                       "WHERE {} AND {} IS NULL").format(
            self.table, sql.SQL(", ").join(map(sql.Identifier, self.route.key)), _VERSION,
            sql.SQL(", ").join(self._marks()), sql.SQL(", ").join(keys), self._staged("v"),
            sql.SQL(", ").join(self._mark_values()), self.stage, self.table, self._match(),
            self._is(DELETE, hard=False), self._col(self.route.key[0]))

    def _clear_tombstones(self) -> sql.Composed:
        return sql.SQL("DELETE FROM {} USING {} WHERE {} AND {}").format(
            self.tombstones, self.stage, self._tombstone_of_staged(), self._is(DELETE, hard=True))

    def _write_tombstones(self) -> sql.Composed:
        """Stamped with the batch's time, as the Postgres sink does: the purge counts from the write."""
        return sql.SQL('INSERT INTO {} ("target", "key", "version", "deleted_at") SELECT {}, {}, {}, {} '
                       "FROM {} WHERE {}").format(
            self.tombstones, self.target, self._staged("k"), self._staged("v"), self.now, self.stage,
            self._is(DELETE, hard=True))


def dead_letter_statements(state_schema: str, stage: str, now: dt.datetime) -> tuple[Statement, list[Statement]]:
    """Stage, keep only letters not stored yet (Redshift does not enforce UNIQUE), then insert them
    numbered after the highest id (no IDENTITY: the same DDL runs on the test PostgreSQL; two writers
    reading the same highest id conflict under Redshift's serializable isolation, and one retries)."""
    staged, table = sql.Identifier(stage), sql.Identifier(state_schema, DEAD_LETTERS)
    names = [name for name, _ in STAGED_LETTERS]
    same = sql.SQL(" AND ").join(sql.SQL("{}.{} = {}.{}").format(sql.Identifier(DEAD_LETTERS), sql.Identifier(n),
                                                                 staged, sql.Identifier(n))
                                 for n in ("route", "source_table", "sequence_number"))
    steps = [
        sql.SQL("DELETE FROM {} USING {} WHERE {}").format(staged, table, same),
        sql.SQL('INSERT INTO {} ("id", {}, "failed_at") SELECT "n"."base" + ROW_NUMBER() OVER (ORDER BY {}), {}, {} '
                'FROM {} CROSS JOIN (SELECT COALESCE(MAX("id"), 0) AS "base" FROM {}) AS "n"').format(
            table, sql.SQL(", ").join(map(sql.Identifier, names)),
            sql.SQL("{}.{}").format(staged, sql.Identifier("sequence_number")),
            sql.SQL(", ").join(sql.SQL("{}.{}").format(staged, sql.Identifier(n)) for n in names),
            dialect.literal(now), staged, table),
    ]
    return (Statement(_create_temp(staged, STAGED_LETTERS)),
            [Statement(step.as_string(None), writes=((state_schema, DEAD_LETTERS),)) for step in steps])


def lock_statement(tables: Iterable[tuple[str, str]]) -> Statement:
    """LOCK every shared table a transaction writes, first and in one sorted order: concurrent writers
    of one target (two shards, a backfill beside the stream, two routes) then run one after the other
    instead of failing with serializable isolation violations or, under SNAPSHOT isolation, writing
    duplicate rows. https://docs.aws.amazon.com/redshift/latest/dg/r_LOCK.html"""
    return Statement(sql.SQL("LOCK {}").format(sql.SQL(", ").join(
        sql.Identifier(schema, table) for schema, table in sorted(set(tables)))).as_string(None))


# -- grants ----------------------------------------------------------------------------


def grants(user: str, database: str, state_schema: str, routes: Sequence[Route]) -> list[str]:
    """What the database user needs: temporary tables (the stage), its schemas, and reading and writing
    the target and state tables (LOCK included). The Data API maps an IAM role to the user
    ``IAMR:<role name>``: https://docs.aws.amazon.com/redshift/latest/dg/r_GRANT.html"""
    who = sql.Identifier(user)
    auto = [(state_schema, AUTO_COLUMNS)] if any(r.auto for r in routes) else []  # columns: auto (issue 15)
    tables = [(state_schema, TOMBSTONES), (state_schema, DEAD_LETTERS), *auto] + [(r.schema, r.table) for r in routes]
    schemas = list(dict.fromkeys(schema for schema, _ in tables))
    statements = [sql.SQL("GRANT TEMP ON DATABASE {} TO {}").format(sql.Identifier(database), who)]
    statements += [sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(schema), who) for schema in schemas]
    statements += [sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON {} TO {}").format(sql.Identifier(*table), who)
                   for table in dict.fromkeys(tables)]
    return [statement.as_string(None) for statement in statements]
