"""The SQL sink base: what every SQL database's sink does alike.

It owns the options every SQL sink takes (``schema``, ``state_schema``,
``tombstone_retention_hours``), the targets' names, the state tables (tombstones with one
key encoding, dead letters), when tombstones are purged, DDL from ``(column, type)`` pairs,
the drift check, and listing and removing dead letters. A database's sink declares its
``Dialect`` and provides its batch write (``apply``) and two ways to reach the database:
``_run`` (statements in one transaction) and ``_query`` (one statement with named parameters).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from psycopg import sql

from router import auto
from router.log import logger
from router.model import AddedColumn, Route, SinkConfig
from router.sink import Drift, RouteBatch, RouteStats, Sink, StoredDeadLetter
from sinks.sql import ddl, dead_letters, drift, fill, readback
from sinks.sql.dialect import Dialect
from sinks.sql.rows import AUTO_COLUMNS, DEAD_LETTERS, TOMBSTONES, target_name

PURGE_EVERY = 3600.0  # seconds between tombstone purges, per container
RETENTION_HOURS = 48  # tombstones outlive the stream's 24 hours of records by a day
OPTIONS: dict[str, Any] = {
    "schema": {"type": "string", "empty": False, "default": "public"},
    "state_schema": {"type": "string", "empty": False, "default": "cdc_router"},
    "tombstone_retention_hours": {"type": "integer", "min": 24, "default": RETENTION_HOURS},
}


@dataclass
class QueryResult:
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    rowcount: int = 0


class SqlSink(Sink):
    """Base of the SQL sinks; subclasses set ``dialect`` and implement ``apply``, ``_run`` and ``_query``."""

    config_schema = OPTIONS
    dialect: Dialect

    def __init__(self, config: SinkConfig, routes: Sequence[Route] = ()):
        super().__init__(config, routes)
        self.state_schema: str = config.options.get("state_schema", "cdc_router")
        self._targets = {r.name: target_name(r, self.capabilities.identity) for r in routes}
        self._last_purge: float | None = None

    # -- the database, as each sink reaches it ---------------------------------------------

    def _run(self, statements: Sequence[tuple[str, str | None]]) -> None:
        """Run ``(statement, route name or None)`` pairs in one transaction."""
        raise NotImplementedError

    def _query(self, statement: sql.Composed, params: dict[str, Any]) -> QueryResult:
        """One statement; its rows (if any) and row count. Placeholders: ``dialect.placeholder``."""
        raise NotImplementedError

    # -- for operations that read or manage the sink's tables (verify) ----------------------

    def query(self, statement: sql.Composed, params: dict[str, Any] | None = None) -> QueryResult:
        """One statement outside any batch (``operations.verify_redshift``): its rows and row count."""
        return self._query(statement, params or {})

    def run(self, statements: Sequence[sql.Composed]) -> None:
        """Statements in one transaction, outside any batch (a scratch table's DROP)."""
        self._run([(statement.as_string(None), None) for statement in statements])

    # -- tombstone purge -------------------------------------------------------------------

    def _purge_due(self) -> bool:
        return self._last_purge is None or time.monotonic() - self._last_purge > PURGE_EVERY

    def _purged(self) -> None:
        self._last_purge = time.monotonic()

    def purge_before(self, now: dt.datetime) -> dt.datetime:
        """Tombstones deleted before this moment may go: the stream can no longer replay their rows."""
        return now - dt.timedelta(hours=self.config.options.get("tombstone_retention_hours", RETENTION_HOURS))

    def purge_statement(self, before: sql.Composable) -> sql.Composed:
        return sql.SQL('DELETE FROM {} WHERE "deleted_at" < {}').format(
            sql.Identifier(self.state_schema, TOMBSTONES), before)

    # -- DDL and drift ---------------------------------------------------------------------

    def ddl(self, route: Route) -> list[str]:
        return [statement.as_string(None) for statement in ddl.route_ddl(route, self.dialect)]

    def state_ddl(self) -> list[str]:
        return [statement.as_string(None) for statement in ddl.state_ddl(self.state_schema, self.dialect)]

    def apply_ddl(self, routes: Sequence[Route] | None = None) -> None:
        """Create the state tables and the target tables of ``routes`` (default: all of this sink's)."""
        statements: dict[str, str | None] = dict.fromkeys(self.state_ddl())
        for route in routes or self.routes:
            statements.update({s: route.name for s in self.ddl(route) if s not in statements})
        self._run(list(statements.items()))

    def check(self, route: Route) -> list[Drift]:
        """How the route's live target table differs from the route; empty when it matches. The columns
        added for an auto route's attributes are expected as recorded (any other extra column is no drift)."""
        if route.auto and AUTO_COLUMNS not in self._missing_state():
            route = auto.with_added(route, self.added_columns(route), self.capabilities)
        return drift.differences(route, self._live_table(route), self.dialect)

    def apply_fixes(self, drifts: Sequence[Drift]) -> None:
        """The fixes in one transaction (per Data API call on Redshift), in order; then, one statement at a
        time, those that cannot run inside a transaction block (``Drift.alone``)."""
        together = [(statement, None if d.route == "(state)" else d.route) for d in drifts if not d.alone
                    for statement in d.fix]
        if together:
            self._run(list(dict.fromkeys(together)))  # the state tables' DDL comes once per missing table
        for statement in (statement for d in drifts if d.alone for statement in d.fix):
            self._query(sql.Composed([sql.SQL(statement)]), {})  # ExecuteStatement on Redshift: no transaction block

    def added_columns(self, route: Route) -> list[AddedColumn]:
        """The target's added columns, as this sink's ``auto_columns`` table records them, oldest first."""
        query = sql.SQL('SELECT "attribute", "column", "type" FROM {} WHERE "target" = {} '
                        'ORDER BY "added_at", "attribute"').format(sql.Identifier(self.state_schema, AUTO_COLUMNS),
                                                                   self.dialect.placeholder("target"))
        rows = self._query(query, {"target": self._targets.get(route.name) or target_name(route,
                                                                                        self.capabilities.identity)})
        return [AddedColumn(str(attribute), str(column), str(type_name)) for attribute, column, type_name in rows.rows]

    def check_state(self) -> list[Drift]:
        """A missing state table: the first batch would fail on it (issue 12), so ``schema --check`` says so.
        The record of added columns is needed by auto routes only (a sink set up before issue 15 has none)."""
        return [Drift("(state)", f"{self.state_schema}.{name}", "missing state table", fix=tuple(self.state_ddl()))
                for name in self._missing_state()]

    def _missing_state(self) -> list[str]:
        query = sql.SQL("SELECT table_name FROM information_schema.tables WHERE table_schema = {}").format(
            self.dialect.placeholder("schema"))
        live = {str(row[0]) for row in self._query(query, {"schema": self.state_schema}).rows}
        needed = (TOMBSTONES, DEAD_LETTERS) + ((AUTO_COLUMNS,) if any(r.auto for r in self.routes) else ())
        return [name for name in needed if name not in live]

    def _live_table(self, route: Route) -> drift.LiveTable | None:
        """The catalog's view of the route's target table, or None when there is no such table."""
        raise NotImplementedError

    # -- fills (backfill --columns) ---------------------------------------------------------

    def versions_table(self, route: Route) -> sql.Identifier:
        """Where ``record_versions`` keeps the route's rows' versions: the state schema."""
        return sql.Identifier(self.state_schema, fill.versions_table(route))

    def record_versions(self, route: Route) -> None:
        self._run([(statement.as_string(None), route.name)
                   for statement in fill.record_versions(route, self.versions_table(route))])

    def has_versions(self, route: Route) -> bool:
        query = sql.SQL("SELECT table_name FROM information_schema.tables "
                        "WHERE table_schema = {schema} AND table_name = {table}")
        names = {"schema": self.dialect.placeholder("schema"), "table": self.dialect.placeholder("table")}
        found = self._query(query.format(**names), {"schema": self.state_schema, "table": fill.versions_table(route)})
        return bool(found.rows)

    def forget_versions(self, route: Route) -> None:
        self._run([(fill.forget_versions(self.versions_table(route)).as_string(None), route.name)])

    # -- reading back (check-sink) ---------------------------------------------------------

    def read_text(self, route: Route) -> list[dict[str, str | None]]:
        columns = [name for name, _ in readback.stored_columns(route)]
        rows = self._query(readback.select_as_text(route, self.dialect), {}).rows
        return [dict(zip(columns, (None if value is None else str(value) for value in row))) for row in rows]

    def drop_schemas(self, schemas: Sequence[str]) -> None:
        self._run([(readback.drop_schema(schema).as_string(None), None) for schema in schemas])

    # -- dead letters ----------------------------------------------------------------------

    def dead_letters(self, routes: Sequence[str] = (), limit: int | None = None) -> list[StoredDeadLetter]:
        query = dead_letters.select_query(self.state_schema, self.dialect, routes, limit)
        return [dead_letters.stored(row) for row in self._query(*query).rows]

    def remove_dead_letters(self, ids: Sequence[int]) -> int:
        return self._query(*dead_letters.delete_query(self.state_schema, self.dialect, ids)).rowcount if ids else 0


def log_added(sink: str, batches: Sequence[RouteBatch], stats: dict[str, RouteStats]) -> None:
    """Each column the batch added, and the record that brought it (its SequenceNumber, never a value)."""
    for batch in batches:
        new = [column for column in batch.route.added if column.new] if batch.changes else []
        for column in new:
            logger.info("column added", extra={"sink": sink, "route": batch.route.name,
                                               "table": batch.route.qualified_table, "column": column.name,
                                               "attribute": column.attribute, "type": column.type,
                                               "sequence_number": column.by})
        if new and batch.route.name in stats:
            stats[batch.route.name].columns_added += len(new)
