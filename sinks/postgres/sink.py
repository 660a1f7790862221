"""The Postgres sink: one connection per container, one transaction and one round trip per batch.

``apply`` sends, in one pipeline: BEGIN, one statement per route (``statements.apply_statement``),
one INSERT for the batch's dead letters, now and then a tombstone purge, and COMMIT.
When the database rejects a change (a constraint, a value out of range), the batch is
rolled back and the change is found by replaying it row by row under savepoints, so
that the pipeline can dead-letter it or stop the batch exactly there.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import pq, sql

from router.attrs import dumps_exact
from router.auto import AddedColumnsChangedError
from router.log import logger
from router.model import Route, SinkConfig
from router.retry import RetryPolicy
from router.sink import Capabilities, Change, DeadLetter, RejectedChangeError, RouteBatch, RouteStats, SinkError
from sinks.postgres import added, drift, progress, statements, versions
from sinks.postgres.connection import Credentials, classify
from sinks.sql.drift import LiveTable
from sinks.sql.rows import dead_letter_row, route_stats
from sinks.sql.sink import OPTIONS, QueryResult, SqlSink, log_added

# A lost connection: one more try at once on a new one (router.retry: not when the Lambda deadline is near).
RECONNECT = RetryPolicy(attempts=2, first_pause=0.0)


class PostgresSink(SqlSink):
    config_schema = {
        **OPTIONS,
        "dsn": {"type": "string", "empty": False, "required": True, "excludes": "secret"},
        "secret": {"type": "string", "empty": False, "required": True, "excludes": "dsn"},
        "connect_timeout": {"type": "integer", "min": 1, "default": 10},
        "statement_timeout_ms": {"type": "integer", "min": 0},
        "lock_timeout_ms": {"type": "integer", "min": 0},
        "sslmode": {"type": "string",
                    "allowed": ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]},
        "sslrootcert": {"type": "string", "empty": False},
        "iam_auth": {"type": "boolean", "default": False},   # the password: an IAM token (sinks.postgres.iam_auth)
        "region": {"type": "string", "empty": False},        # of the database, for iam_auth [default: the function's]
        "application_name": {"type": "string", "default": "cdc-router"},
    }
    capabilities = Capabilities(max_identifier_bytes=63)
    dialect = statements.POSTGRES
    connection_options = frozenset({"dsn", "secret", "sslrootcert", "application_name"})

    def __init__(self, config: SinkConfig, routes: Sequence[Route] = ()):
        super().__init__(config, routes)
        self.credentials = Credentials(config.options)
        self._conn: psycopg.Connection[Any] | None = None
        self._refresh_secret = False
        self._apply_sql = {r.name: (versions.apply_statement(r) if r.versioned else statements.apply_statement(
            r, self.state_schema)).as_string(None) for r in routes}
        self._dead_letter_sql = statements.dead_letter_statement(self.state_schema).as_string(None)
        self._auto_sql: dict[tuple[str, tuple[str, ...]], str] = {}  # columns: auto, per set of added columns
        self._purge_sql = self.purge_statement(sql.Placeholder()).as_string(None)
        self._progress_sql: str | None = None  # set on connect when the progress table exists (sinks.postgres.progress)

    # -- connection -----------------------------------------------------------------------

    def connection(self) -> psycopg.Connection[Any]:
        """The container's connection: reconnects when it is closed or broken."""
        conn = self._conn
        if conn is None or conn.closed or conn.broken:
            self._conn = conn = self._connect()
        elif conn.info.transaction_status != pq.TransactionStatus.IDLE:
            conn.rollback()
        return conn

    def _connect(self) -> psycopg.Connection[Any]:
        conninfo = self.credentials.conninfo(refresh=self._refresh_secret)
        try:
            conn = psycopg.connect(conninfo, autocommit=True)  # transactions are explicit, see _apply
        except psycopg.Error as exc:
            self._refresh_secret = getattr(exc, "sqlstate", None) == "28P01"  # the secret may have rotated
            raise
        self._refresh_secret = False
        logger.info("connected to postgres", extra={"sink": self.name, "server_version": conn.info.server_version})
        self._progress_sql = progress.save_statement(self.state_schema) if progress.exists(conn, self) else None
        return conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- apply ----------------------------------------------------------------------------

    def apply(self, batches: Sequence[RouteBatch]) -> dict[str, RouteStats]:
        reused = self._conn is not None and not self._conn.closed

        def lost(exc: Exception) -> bool:
            # The connection died: mostly while the container was idle (a restart, a failover), else
            # during this batch. Either its transaction was rolled back or, if only COMMIT's answer
            # was lost, it committed; replaying the batch is idempotent, so retry once on a new one.
            if not (isinstance(exc, psycopg.OperationalError) and reused and self._conn is not None
                    and self._conn.broken):
                return False
            logger.warning("postgres connection lost; reconnecting and retrying once", extra={"sink": self.name})
            return True

        try:
            stats = RECONNECT.call(lambda: self._apply(batches), lost)
        except psycopg.Error as exc:
            if added.changed(exc) and any(b.route.auto for b in batches):
                raise AddedColumnsChangedError(f"another writer added columns: {exc}") from None
            error = classify(exc, self.credentials)
        else:
            log_added(self.name, batches, stats)
            return stats
        if isinstance(error, RejectedChangeError):
            error.change = self._find_rejected(batches)
        raise error

    def _apply(self, batches: Sequence[RouteBatch]) -> dict[str, RouteStats]:
        work = [(batch, self._statement(batch), self._params(batch.route, batch.changes))
                for batch in batches if batch.changes]
        letters = [letter for batch in batches for letter in batch.dead_letters]
        conn = self.connection()
        # One round trip: BEGIN ... COMMIT travel in one pipeline and the server answers at the Sync.
        # If a statement fails, the server skips the rest up to the Sync, COMMIT included, and the
        # transaction is rolled back (``connection()`` clears the aborted state before the next use).
        keys: dict[str, list[tuple[Any, ...]]] = {}
        for batch in batches:
            if not batch.route.versioned:
                keys.setdefault(self._targets[batch.route.name], []).extend(c.key for c in batch.changes)
        locks = statements.batch_locks(keys)
        with conn.pipeline():
            conn.execute("BEGIN")
            for lock, lock_params in locks:
                conn.execute(lock, lock_params)
            for query, params in added.statements(batches, self._targets, self.state_schema):  # columns: auto
                conn.execute(query, params)
            cursors = [(batch, conn.execute(query, params, prepare=True)) for batch, query, params in work]
            if letters:
                conn.execute(self._dead_letter_sql, (self._encode_dead_letters(letters),))
            progressed = progress.rows(batches)
            if progressed and self._progress_sql:
                conn.execute(self._progress_sql, (progressed,))
            self._maybe_purge(conn)
            conn.execute("COMMIT")
        stats = {}
        for batch, cursor in cursors:
            upserted, deleted = cursor.fetchone() or (0, 0)
            stats[batch.route.name] = route_stats(batch.changes, upserted, deleted)  # soft deletes count as deletes
        return stats

    def _statement(self, batch: RouteBatch) -> str:
        """The batch's statement: for a fill (``backfill --columns``) the fill statement, else the route's apply
        statement; an auto route's, for the columns it has now (cached per set)."""
        route = batch.route
        if batch.fill is not None:
            return statements.fill_statement(route, self.versions_table(route), batch.fill).as_string(None)
        if not route.added:
            return self._apply_sql[route.name]
        key = (route.name, tuple(column.name for column in route.added))
        if key not in self._auto_sql:
            self._auto_sql[key] = (versions.apply_statement(route) if route.versioned else statements.apply_statement(
                route, self.state_schema)).as_string(None)
        return self._auto_sql[key]

    def _params(self, route: Route, changes: Sequence[Change]) -> dict[str, str]:
        return {"rows": statements.encode_rows(route, changes), "target": self._targets[route.name]}

    def _encode_dead_letters(self, letters: Sequence[DeadLetter]) -> str:
        return "[" + ",".join(dumps_exact(dead_letter_row(d, self._targets[d.route.name])) for d in letters) + "]"

    def _maybe_purge(self, conn: psycopg.Connection[Any]) -> None:
        if self._purge_due():
            conn.execute(self._purge_sql, (self.purge_before(dt.datetime.now(dt.UTC)),))
            self._purged()

    def _find_rejected(self, batches: Sequence[RouteBatch]) -> Change | None:
        """Replay the batch change by change under savepoints; return the first one refused."""
        changes = sorted((c for b in batches for c in b.changes), key=lambda c: c.first)
        queries = {b.route.name: self._statement(b) for b in batches if b.changes}
        try:
            conn = self.connection()
            with conn.transaction(force_rollback=True):
                for query, params in added.statements(batches, self._targets, self.state_schema):
                    conn.execute(query, params)  # the batch's new columns, for its rows
                for change in changes:
                    try:
                        with conn.transaction():
                            conn.execute(queries[change.route.name], self._params(change.route, [change]))
                    except psycopg.Error as exc:
                        if isinstance(classify(exc, self.credentials), RejectedChangeError):
                            return change
                        raise
        except (psycopg.Error, SinkError) as exc:
            error = exc if isinstance(exc, SinkError) else classify(exc, self.credentials)
            if error.transient:  # the batch cannot be judged now: retry it whole, as any transient failure
                raise error from None
            return None
        return None

    def explain(self, batches: Sequence[RouteBatch]) -> list[str]:
        """Each route's apply statement, under a comment with the parameters ``apply`` would send."""
        explained = []
        for batch in (b for b in batches if b.changes):
            params = ", ".join(f"%({k})s = {v}" for k, v in self._params(batch.route, batch.changes).items())
            explained.append(f"-- {batch.route.name}: {params}\n{self._statement(batch)}")
        return explained

    # -- the base's statements -------------------------------------------------------------

    def _run(self, statements: Sequence[tuple[str, str | None]]) -> None:
        conn = self.connection()
        with conn.transaction():
            for statement, _ in statements:
                conn.execute(statement)

    def _query(self, statement: sql.Composed, params: dict[str, Any]) -> QueryResult:
        try:
            conn = self.connection()
            with conn.transaction():
                cursor = conn.execute(statement, params)
                return QueryResult(cursor.fetchall() if cursor.description else [], cursor.rowcount)
        except psycopg.Error as exc:
            raise classify(exc, self.credentials) from None

    def _live_table(self, route: Route) -> LiveTable | None:
        conn = self.connection()
        with conn.transaction():
            return drift.live_table(conn, route)

    def state_ddl(self) -> list[str]:
        """The base's state tables, and each route's progress (``sinks.postgres.progress``)."""
        return [*super().state_ddl(), progress.create_statement(self.state_schema).as_string(None)]

    def apply_ddl(self, routes: Sequence[Route] | None = None) -> None:
        """The base's DDL, then tombstones of an earlier version brought to the one key encoding."""
        super().apply_ddl(routes)
        self._progress_sql = progress.save_statement(self.state_schema)
        conn = self.connection()
        with conn.transaction():
            drift.upgrade_tombstone_keys(conn, self.state_schema)
