"""The Redshift sink: a batch staged, guarded and applied in one Data API transaction.

``apply`` renders each route's reduced changes as rows of literals, wraps them in the
statements of ``statements.RouteStatements`` (stage, guard, apply), adds the batch's dead
letters and now and then a tombstone purge, and sends the list through the transport as one
BatchExecuteStatement. A change that cannot be sent at all (a row over the Data API's 100 KB
statement limit, a version over 38 digits) is raised as ``RejectedChangeError`` before
anything is sent, so that the pipeline dead-letters it or stops the batch there.

A batch larger than one call allows (40 statements of 100 KB) is sent as several calls in
order, each its own transaction. Should a later one fail, the pipeline retries the sink's
whole share, and the version guard turns what was already committed into no-ops.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from psycopg import sql

from router import deadline
from router.auto import AddedColumnsChangedError
from router.log import logger
from router.model import Route, SinkConfig
from router.modes import MergeStrategy
from router.sink import (
    DELETE,
    Capabilities,
    Change,
    DeadLetter,
    Fill,
    RejectedChangeError,
    RouteBatch,
    RouteStats,
    SinkError,
)
from sinks.redshift import added, catalog, dialect, statements, versions
from sinks.redshift.data_api import DataApiTransport, request_target
from sinks.redshift.statements import DELETED, UPSERTED, RouteStatements
from sinks.redshift.transport import (
    MAX_STATEMENT_BYTES,
    MAX_STATEMENTS,
    FailedStatementError,
    Statement,
    Transport,
)
from sinks.sql.drift import LiveTable
from sinks.sql.fill import versions_table as fill_versions_table
from sinks.sql.rows import TOMBSTONES, dead_letter_row, route_stats, storable_json, tombstone_key, written_columns
from sinks.sql.sink import OPTIONS, QueryResult, SqlSink, log_added

ROW_ROOM = MAX_STATEMENT_BYTES - 200  # bytes of rows per staging INSERT, leaving room for its prefix
MAX_ERROR_CHARS = 2000                # of a dead letter's error (ours: a line naming the column and value)
MAX_RECORD_SQL = 80_000               # bytes of a dead letter's record literal, so that its row always fits


class RedshiftSink(SqlSink):
    config_schema = {
        **OPTIONS,
        "workgroup": {"type": "string", "empty": False, "required": True, "excludes": "cluster_identifier"},
        "cluster_identifier": {"type": "string", "empty": False, "required": True, "excludes": "workgroup"},
        "database": {"type": "string", "empty": False, "required": True},
        "secret_arn": {"type": "string", "empty": False, "excludes": "db_user"},
        "db_user": {"type": "string", "empty": False, "excludes": ["secret_arn", "workgroup"]},
        "region": {"type": "string", "empty": False},
        "distribution": {"type": "string", "allowed": ["key", "auto"], "default": "key"},
        "max_wait_seconds": {"type": "integer", "min": 1, "default": 900},
    }
    capabilities = Capabilities(
        max_identifier_bytes=127, merge_strategy=MergeStrategy.DELETE_INSERT,
        max_decimal_precision=dialect.MAX_DECIMAL_PRECISION, default_decimal=dialect.DEFAULT_DECIMAL,
        max_text_bytes=dialect.MAX_VARCHAR_BYTES, folds_identifiers=True,
    )
    connection_options = frozenset({"workgroup", "cluster_identifier", "database", "secret_arn", "db_user", "region"})

    @classmethod
    def route_problems(cls, route: Route, options: Mapping[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
        """Redshift refuses a VARBYTE or SUPER column as DISTKEY or SORTKEY (``distribution: key`` puts
        both on the route's key): https://docs.aws.amazon.com/redshift/latest/dg/r_VARBYTE_type.html,
        https://docs.aws.amazon.com/redshift/latest/dg/limitations-super.html"""
        if options.get("distribution", "key") != "key":
            return []
        types = {column.name: dialect.column_type(column.type.name) for column in route.key_columns}
        return [(("key", index), f"key column {name!r} is {types[name]} on Redshift, which cannot be a DISTKEY "
                                 "or SORTKEY (distribution: key puts both on the key); set distribution: auto on "
                                 f"sink {route.sink!r}, or key the route on another column")
                for index, name in enumerate(route.key) if types[name] in dialect.UNSORTABLE]

    def __init__(self, config: SinkConfig, routes: Sequence[Route] = (), transport: Transport | None = None,
                 now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)):
        super().__init__(config, routes)
        self.now = now  # the batch's time: tombstones, dead letters, soft deletes without a record time
        options = config.options
        self.distribution: str = options.get("distribution", "key")
        self.dialect = dialect.sql_dialect(self.distribution)
        self.transport: Transport = transport or DataApiTransport(
            request_target(options), name=f"cdc-router:{config.name}", region=options.get("region"),
            max_wait=float(options.get("max_wait_seconds", 900)))
        self._rows = {r.name: _Rows(r) for r in routes}

    # -- apply ----------------------------------------------------------------------------

    def apply(self, batches: Sequence[RouteBatch]) -> dict[str, RouteStats]:
        purge_due = self._purge_due()
        try:
            counts = self._execute(self._calls(batches, purge_due))
        except FailedStatementError as exc:
            if added.changed(exc) and any(b.route.auto for b in batches):
                raise AddedColumnsChangedError(f"another writer added columns: {exc}") from None
            raise self._narrowed(batches, exc) from None
        if purge_due:
            self._purged()
        stats = {batch.route.name: route_stats(batch.changes, counts[(batch.route.name, UPSERTED)],
                                               counts[(batch.route.name, DELETED)])
                 for batch in batches if batch.changes}
        log_added(self.name, batches, stats)
        return stats

    # -- a refused statement, narrowed to the change that caused it -----------------------

    def _narrowed(self, batches: Sequence[RouteBatch], error: FailedStatementError) -> SinkError:
        """The change whose statements Redshift refuses, found by trials that roll back (bisecting the
        route's changes in stream order: the shortest failing prefix ends with it), as
        ``RejectedChangeError`` so that ``on_error`` decides; else the error as it was. No savepoints
        in Redshift: a trial is a whole Data API call, about log2(changes) + 1 of them."""
        route = error.statement.route if error.statement else None
        batch = next((b for b in batches if b.route.name == route and b.changes), None)
        if batch is None:
            return error  # a statement on the sink's own tables: no change to blame
        changes = sorted(batch.changes, key=lambda change: change.first)
        logger.warning("redshift refused a statement; finding the change", extra={"route": route,
                                                                                  "changes": len(changes)})
        if self._passes(batch.route, changes, batch.fill):
            return error  # the route's changes pass on their own: not one change's fault
        low, high = 0, len(changes) - 1
        while low < high:
            middle = (low + high) // 2
            if self._passes(batch.route, changes[: middle + 1], batch.fill):
                low = middle + 1
            else:
                high = middle
        return RejectedChangeError(str(error), changes[low])

    def _passes(self, route: Route, changes: Sequence[Change], fill: Fill | None = None) -> bool:
        """Whether Redshift takes these changes of ``route``: a trial, rolled back whatever happens."""
        groups = self._route_groups(RouteBatch(route, list(changes), fill=fill), itertools.count(), self.now())
        try:
            for call in _pack(groups):
                self.transport.execute(call, deadline.current(), rollback=True)
        except FailedStatementError:
            return False
        return True

    def explain(self, batches: Sequence[RouteBatch]) -> list[str]:
        """The statements ``apply`` would send; the first of each Data API call under a comment."""
        calls = self._calls(batches, self._purge_due())
        return [(f"-- {self.name}: BatchExecuteStatement {number} of {len(calls)} (one transaction)\n"
                 if index == 0 else "") + statement.sql
                for number, call in enumerate(calls, 1) for index, statement in enumerate(call)]

    def _calls(self, batches: Sequence[RouteBatch], purge: bool) -> list[list[Statement]]:
        """Every statement of the batch, packed into Data API calls; raises RejectedChangeError first."""
        now = self.now()
        numbers = itertools.count()  # stage tables are unique within an apply, so calls can share them out
        groups = [group for batch in batches if batch.changes for group in self._route_groups(batch, numbers, now)]
        letters = [letter for batch in batches for letter in batch.dead_letters]
        if letters:
            groups += self._dead_letter_groups(letters, numbers, now)
        if purge:
            before = dialect.literal(self.purge_before(now))
            groups.append([Statement(self.purge_statement(before).as_string(None),
                                     writes=((self.state_schema, TOMBSTONES),))])
        return _pack(groups)

    def _execute(self, calls: list[list[Statement]]) -> Counter[tuple[str | None, str]]:
        if len(calls) > 1:
            logger.warning("redshift statements split into several transactions (Data API limits)",
                           extra={"sink": self.name, "calls": len(calls)})
        counts: Counter[tuple[str | None, str]] = Counter()
        for call in calls:
            for statement, rows in zip(call, self.transport.execute(call, deadline.current())):
                if statement.counts:
                    counts[(statement.route, statement.counts)] += rows
        return counts

    def _route_groups(self, batch: RouteBatch, numbers: Iterator[int], now: dt.datetime) -> list[list[Statement]]:
        """The route's statements: as many stage tables as the Data API's limits require (usually one)."""
        route, target = batch.route, self._targets[batch.route.name]
        # columns: auto (sinks.redshift.added): each stage applied under a guard of the added columns
        guards = [added.guard(route, target, self.state_schema, len(route.added))] if route.auto else []

        def parts(stage: str) -> tuple[Statement, list[Statement]]:
            kind = versions.VersionStatements if route.versioned else RouteStatements
            staged = kind(route, self.state_schema, stage, target, now)
            if batch.fill is not None and isinstance(staged, RouteStatements):
                return staged.create(), staged.fill(batch.fill, fill_versions_table(route))
            return staged.create(), [*guards, *staged.apply()]
        rows = _chunks([(change, self._row_writer(route).row(change, now)) for change in batch.changes])
        additions = added.additions(route, target, self.state_schema, now) if route.auto else []
        return ([additions] if additions else []) + _staged(rows, (f"_cdc_stage_{n}" for n in numbers), parts,
                                                            route.name)

    def _row_writer(self, route: Route) -> _Rows:
        """The route's rows; an auto route's for the columns it has now (cached per set)."""
        if not route.added:
            return self._rows[route.name]
        key = f"{route.name}\x1f" + "\x1f".join(column.name for column in route.added)
        if key not in self._rows:
            self._rows[key] = _Rows(route)
        return self._rows[key]

    def _dead_letter_groups(self, letters: Sequence[DeadLetter], numbers: Iterator[int],
                            now: dt.datetime) -> list[list[Statement]]:
        rows = _chunks([(None, self._dead_letter(letter)) for letter in letters])
        return _staged(rows, (f"_cdc_dead_letters_{n}" for n in numbers),
                       lambda stage: statements.dead_letter_statements(self.state_schema, stage, now), None)

    def _dead_letter(self, letter: DeadLetter) -> str:
        row = dead_letter_row(letter, self._targets[letter.route.name])
        sequence = row["sequence_number"]
        row["sequence_number"] = int(sequence) if sequence and int(sequence) <= dialect.MAX_VERSION else None
        row["error"] = row["error"][:MAX_ERROR_CHARS]
        text = row.pop("record")
        record = dialect.from_json(text)
        if len(text.encode("utf-8")) > dialect.MAX_VARCHAR_BYTES or len(record.encode("utf-8")) > MAX_RECORD_SQL:
            record = dialect.from_json(storable_json(_identity(letter.record.raw)))  # JSON_PARSE reads a VARCHAR
        return "(" + ", ".join([dialect.render(value) for value in row.values()] + [record]) + ")"

    # -- the base's statements -------------------------------------------------------------

    def _run(self, statements: Sequence[tuple[str, str | None]]) -> None:
        self._execute(_pack([[Statement(sql, route)] for sql, route in statements]))

    def _query(self, statement: sql.Composed, params: dict[str, Any]) -> QueryResult:
        return self.transport.query(statement.as_string(None), params, deadline.current())

    def _live_table(self, route: Route) -> LiveTable | None:
        return catalog.live_table(self._query, route, self.dialect.placeholder)

    def grants(self, routes: Sequence[Route]) -> list[str]:
        options = self.config.options
        user = options.get("db_user") or ("<the username in secret_arn>" if options.get("secret_arn")
                                          else "IAMR:<the Lambda role's name>")
        return statements.grants(user, options["database"], self.state_schema, routes)

    def close(self) -> None:
        self.transport.close()


class _Rows:
    """A route's changes as rows of the stage table: its columns, then v, o, t, k (and r: see statements)."""

    def __init__(self, route: Route):
        self.columns = [name for name, _ in written_columns(route)]
        self.renders = [dialect.renderer(type_name) for _, type_name in written_columns(route)]
        self.hard = route.hard_deletes
        self.why = route.delete_reason or route.mixed_deletes

    def row(self, change: Change, now: dt.datetime) -> str:
        if change.version > dialect.MAX_VERSION:
            raise RejectedChangeError(f"version {change.version} has more than 38 digits: it does not fit "
                                      f"Redshift's {dialect.VERSION_TYPE}", change)
        try:
            values = [render(change.row.get(name)) for name, render in zip(self.columns, self.renders)]
        except (ValueError, TypeError) as exc:  # a NUL character; a value its column type cannot hold
            raise RejectedChangeError(f"cannot be written to Redshift: {exc}", change) from None
        values += [str(change.version), dialect.quote(_op(change)), dialect.render(change.time or now),
                   dialect.render(tombstone_key(change.key) if self.hard else None)]
        if self.why:
            values.append(dialect.render(change.reason))
        return "(" + ", ".join(values) + ")"


def _op(change: Change) -> str:
    if change.op != DELETE:
        return statements.UPSERT
    return statements.KEPT if change.keeps_values else statements.DELETE


def _identity(raw: Any) -> dict[str, Any]:
    """What identifies a stream record, for a dead letter whose full record is too large to store."""
    body = raw.get("dynamodb") if isinstance(raw, dict) else None
    body = body if isinstance(body, dict) else {}
    return {"eventID": raw.get("eventID") if isinstance(raw, dict) else None,
            "eventSourceARN": raw.get("eventSourceARN") if isinstance(raw, dict) else None,
            "dynamodb": {"Keys": body.get("Keys"), "SequenceNumber": body.get("SequenceNumber")},
            "truncated": "the record was larger than Redshift's 65535-byte limit for JSON_PARSE"}


def _chunks(rows: list[tuple[Change | None, str]]) -> list[str]:
    """Rows joined into as few VALUES lists as the Data API's statement size allows."""
    chunks: list[list[str]] = []
    size = ROW_ROOM
    for change, text in rows:
        try:
            length = len(text.encode("utf-8")) + 2
        except UnicodeEncodeError:
            raise RejectedChangeError("cannot be written to Redshift: not valid UTF-8 (unpaired surrogate)",
                                      change) from None
        if length > ROW_ROOM:
            raise RejectedChangeError(f"its row is {length} bytes of SQL, over the Data API's "
                                      f"{MAX_STATEMENT_BYTES}-byte statement limit", change)
        if size + length > ROW_ROOM:
            chunks.append([])
            size = 0
        chunks[-1].append(text)
        size += length
    return [", ".join(chunk) for chunk in chunks]


def _staged(chunks: list[str], stages: Iterator[str], parts: Callable[[str], tuple[Statement, list[Statement]]],
            route: str | None) -> list[list[Statement]]:
    """Rows spread over as many stage tables as calls of MAX_STATEMENTS need: each group is a stage's
    CREATE, its INSERTs and the statements that apply it (``parts(stage)``), complete in itself."""
    groups: list[list[Statement]] = []
    while chunks:
        stage = next(stages)
        create, apply = parts(stage)
        room = MAX_STATEMENTS - 2 - len(apply)  # and the CREATE of the stage, and the call's LOCK
        inserts = [Statement(statements.insert_prefix(stage) + chunk, route) for chunk in chunks[:room]]
        groups.append([create, *inserts, *apply])
        chunks = chunks[room:]
    return groups


def _pack(groups: list[list[Statement]]) -> list[list[Statement]]:
    """Groups (each complete in itself) packed in order into calls of at most MAX_STATEMENTS, each call
    starting with a LOCK of the shared tables its statements write."""
    calls: list[list[Statement]] = []
    for group in groups:
        if not calls or len(calls[-1]) + len(group) > MAX_STATEMENTS - 1:
            calls.append([])
        calls[-1].extend(group)
    return [[statements.lock_statement(tables), *call] if (tables := [t for s in call for t in s.writes]) else call
            for call in calls]
