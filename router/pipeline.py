"""The batch pipeline: parse -> route -> transform -> reduce -> sink -> respond.

Stop at the first failure: records before it are committed, it and everything after
it are reported through ``batchItemFailures`` so that Lambda retries from there, in
order. A record that can never succeed goes to the dead-letter table instead when its
route says ``on_error: dead_letter``, in the same transaction as the rest of the batch.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from router import auto
from router.errors import InvalidEventError, RecordError, RouteConfigError, SourceMismatchError, UnroutedRecordError
from router.log import logger
from router.masking import SecretReader
from router.model import Column, Config
from router.modes import OnError, Unrouted
from router.records import ChangeRecord, is_sequence_number
from router.reduce import reduce_changes
from router.sink import Change, DeadLetter, RejectedChangeError, RouteBatch, RouteStats, Sink, SinkError
from router.transform import RouteTransform
from router.versions import check_source


@dataclass
class Failure:
    index: int                     # first record not committed
    reason: str
    route: str | None = None
    transient: bool = False
    redacted: str | None = None    # the reason without item values, for the logs (None: the same)
    configuration: bool = False    # tables.yaml does not fit the source (RouteConfigError): fix the config


@dataclass
class BatchResult:
    records: list[ChangeRecord]
    stats: dict[str, RouteStats] = field(default_factory=dict)
    failure: Failure | None = None

    @property
    def response(self) -> dict[str, list[dict[str, str]]]:
        if self.failure is None:
            return {"batchItemFailures": []}
        return {"batchItemFailures": [{"itemIdentifier": _identifier(self.records, self.failure.index)}]}

    @property
    def max_lag_ms(self) -> float | None:
        created = [r.created for r in self.records if r.created is not None]
        return (time.time() - min(created)) * 1000 if created else None


@dataclass
class _Plan:
    changes: list[Change] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    failure: Failure | None = None

    def before(self, index: int) -> _Plan:
        return _Plan([c for c in self.changes if c.record.index < index],
                     [d for d in self.dead_letters if d.record.index < index])


@contextmanager
def paused_collector() -> Iterator[None]:
    """Keep the cyclic garbage collector out of a batch.

    A batch allocates several objects per record (records, changes, rows) that all live
    until it ends, so every collection the allocations trigger walks them, and the event,
    in vain; the cost grows with the batch (measured on the Employees route: 6.3 -> 5.1 us
    per record at batch 1,000, 9.1 -> 7.3 at 10,000). Reference counting still frees
    everything as usual; cycles wait for the next collection after the batch.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


MAX_REREADS = 3  # times a batch reads its sink's added columns again before it is retried whole

Parser = Callable[[Any], list[ChangeRecord]]
"""A source's event parser: a Lambda event in, change records out (``InvalidEventError`` if not its kind)."""


class Pipeline:
    """Built once per container from the config; ``process`` handles one Lambda batch.

    The sinks and the source's event parser are handed in by the entry point: the core
    names no implementation of either.
    """

    def __init__(self, config: Config, sinks: Mapping[str, Sink], parse: Parser,
                 read_secret: SecretReader | None = None):
        self.config = config
        self.sinks = dict(sinks)
        self.parse = parse
        self.read_secret = read_secret  # the mask keys' secrets (router.masking)
        self.transforms = {name: RouteTransform(route, read_secret, config.sinks[route.sink].capabilities)
                           for name, route in config.routes.items()}
        self._warned: set[tuple[str, str]] = set()  # (route, column) whose absent attribute was logged
        # Masked columns of the other routes of a route's table: a record that route dead-letters or logs
        # must not carry them in clear either. A dead letter keeps in clear what the route itself reads
        # (its target holds it in clear anyway, and a redrive needs the value); a log line keeps nothing.
        self._stored_masks = {name: self._foreign_masks(name, stored=True) for name in config.routes}
        self._logged_masks = {name: self._foreign_masks(name, stored=False) for name in config.routes}

    def _foreign_masks(self, name: str, stored: bool) -> list[tuple[Column, RouteTransform]]:
        own = self.transforms[name]
        return [(column, other) for route in self.config.routes_for(own.route.source) if route.name != name
                for column, other in self.transforms[route.name].masks
                if not (stored and own.reads(column.path))]

    @paused_collector()
    def process(self, event: Any) -> BatchResult:
        return self.process_records(self.parse(event))

    def process_records(self, records: list[ChangeRecord]) -> BatchResult:
        """``process`` for records built elsewhere: the backfill makes INSERTs of version 0."""
        result = BatchResult(records, {name: RouteStats() for name in self.config.routes})
        unread = self._read_added_columns()
        if unread is not None:
            result.failure = unread
            self._log(result)
            return result
        plan = self._plan(records)
        self._count_substitutes(result)
        failure = plan.failure
        for sink_name in sorted({c.route.sink for c in plan.changes} | {d.route.sink for d in plan.dead_letters}):
            sink_failure = self._apply_sink(self.sinks[sink_name], plan, result, records)
            if sink_failure and (failure is None or sink_failure.index < failure.index):
                failure = sink_failure
        result.failure = failure
        self._count_expired(result)
        self._count_failed(result)
        self._log(result)
        return result

    def close(self) -> None:
        for sink in self.sinks.values():
            sink.close()

    # -- route and transform ------------------------------------------------------------

    def _read_added_columns(self, sink_name: str | None = None) -> Failure | None:
        """Each auto route's added columns as its sink records them: on the container's first batch, and
        (``sink_name``) when the sink found that another container added some since."""
        for transform in self.transforms.values():
            route = transform.route
            if transform.auto is not None and route.auto and (sink_name == route.sink or not transform.auto.loaded):
                try:
                    transform.auto.load(self.sinks[route.sink].added_columns(route))
                except SinkError as exc:
                    return Failure(0, f"sink {route.sink!r}: cannot read the added columns: {exc}", route.name,
                                   transient=exc.transient)
        return None

    def _plan(self, records: list[ChangeRecord]) -> _Plan:
        autos = [t.auto for t in self.transforms.values() if t.auto is not None]
        for each in autos:
            each.begin()
        plan = _Plan()
        for record in records:
            try:
                changes, dead_letters = self._transform(record)
            except RecordError as exc:
                plan.failure = Failure(record.index, f"{record.where}: {exc}", exc.route,
                                       redacted=f"{record.where}: {exc.redacted}",
                                       configuration=isinstance(exc, RouteConfigError))
                break
            plan.changes.extend(changes)
            plan.dead_letters.extend(dead_letters)
        if autos:
            for name, changes in _by_route(plan.changes).items():
                added = self.transforms[name].auto
                if added is not None:
                    auto.finish(added, changes)
        return plan

    def _transform(self, record: ChangeRecord) -> tuple[list[Change], list[DeadLetter]]:
        if record.table is None:
            raise RecordError(record.error or "record names no table")
        routes = self.config.routes_for(record.table)
        if not routes:
            if self.config.unrouted == Unrouted.SKIP:
                logger.warning("record skipped: no route", extra={"table": record.table, "index": record.index})
                return [], []
            raise UnroutedRecordError(f"no route for DynamoDB table {record.table!r} in {self.config.path} "
                                      f"(add a route with source: {record.table}, or set unrouted: skip)")
        mismatch = check_source(record, routes[0].kinesis, routes[0].name)  # routes of a table agree on it
        if mismatch is not None:
            raise SourceMismatchError(f"{mismatch} (in {self.config.path})")
        changes: list[Change] = []
        dead_letters: list[DeadLetter] = []
        for route in routes:
            try:
                if record.error is not None:
                    raise RecordError(record.error)
                change = self.transforms[route.name](record)
            except RecordError as exc:
                dead_letter = route.on_error == OnError.DEAD_LETTER or isinstance(exc, auto.NewAttributeError)
                if not dead_letter or isinstance(exc, RouteConfigError):
                    exc.route = route.name
                    raise
                dead_letters.append(DeadLetter(route, record, str(exc)))
                continue
            if change is not None:
                changes.append(change)
        return changes, dead_letters

    # -- apply ----------------------------------------------------------------------------

    def _apply_sink(self, sink: Sink, plan: _Plan, result: BatchResult, records: list[ChangeRecord]) -> Failure | None:
        """Apply one sink's share; on a rejected change, dead-letter it or cut the batch there."""
        plan = _Plan([c for c in plan.changes if c.route.sink == sink.name],
                     [d for d in plan.dead_letters if d.route.sink == sink.name])
        failure: Failure | None = None
        rereads = 0
        while plan.changes or plan.dead_letters:
            batches = _batches(reduce_changes(plan.changes), [self._masked(d) for d in plan.dead_letters])
            try:
                stats = sink.apply(batches)
            except auto.AddedColumnsChangedError as exc:
                # another container added columns: read them, transform the sink's records again (issue 15)
                rereads += 1
                unread = self._read_added_columns(sink.name) if rereads <= MAX_REREADS else None
                if rereads > MAX_REREADS or unread is not None:
                    return unread or _sink_failure(sink, batches, auto.AddedColumnsChangedError(
                        f"{exc} (still so after reading the added columns {MAX_REREADS} times: if the target lacks "
                        "a column the route lists, run cdc-router schema --check, then schema --apply)"))
                plan, failure = self._replan(sink, records, failure)
                continue
            except RejectedChangeError as exc:
                if exc.change is None:
                    return _sink_failure(sink, batches, exc)
                plan, failure = _after_rejection(plan, exc, failure)
                continue
            except SinkError as exc:
                return _sink_failure(sink, batches, exc)
            for batch in batches:
                result.stats[batch.route.name].add(_without_expiries(batch, stats.get(batch.route.name, RouteStats())))
                result.stats[batch.route.name].dead_lettered += len(batch.dead_letters)
                columns = self.transforms[batch.route.name].auto
                if columns is not None and batch.changes:
                    columns.confirm(batch.route)
            break
        return failure

    def _replan(self, sink: Sink, records: list[ChangeRecord], failure: Failure | None) -> tuple[_Plan, Failure | None]:
        """The sink's share of the batch transformed anew (after its added columns were read again)."""
        whole = self._plan(records)
        for transform in self.transforms.values():
            transform.tally.drain()  # counted on the first transform of the batch
        if whole.failure is not None and (failure is None or whole.failure.index < failure.index):
            failure = whole.failure
        end = failure.index if failure is not None else len(records)
        return _Plan([c for c in whole.changes if c.route.sink == sink.name and c.record.index < end],
                     [d for d in whole.dead_letters if d.route.sink == sink.name and d.record.index < end]), failure

    def _masked(self, letter: DeadLetter) -> DeadLetter:
        """The dead letter as it may be stored: masked columns' values masked in the record."""
        record = self.transforms[letter.route.name].masked(letter.record, self._stored_masks[letter.route.name])
        return letter if record is letter.record else DeadLetter(letter.route, record, letter.error)

    def _log(self, result: BatchResult) -> None:
        counts = {name: vars(stats) for name, stats in result.stats.items() if any(vars(stats).values())}
        if result.failure is None:
            logger.info("batch applied", extra={"records": len(result.records), "routes": counts})
            return
        failure = result.failure
        record = result.records[failure.index]
        extra: dict[str, Any] = {"records": len(result.records), "routes": counts, "failed_index": failure.index,
                                 "table": record.table, "sequence_number": record.sequence_number,
                                 "route": failure.route, "error": failure.redacted or failure.reason,
                                 "transient": failure.transient}
        route = self.config.routes.get(failure.route or "")
        if route is not None and route.log_records:  # the route opted in to record contents in its logs
            extra["record"], extra["error"] = self.transforms[route.name].masked(record, self._logged_masks[route.name]).raw, failure.reason
        logger.error("batch stopped at the first failed record", extra=extra)

    def _count_expired(self, result: BatchResult) -> None:
        end = len(result.records) if result.failure is None else result.failure.index
        for record in result.records[:end]:
            if record.is_expiry:
                for route in self.config.routes_for(record.table or ""):
                    result.stats[route.name].expired += 1

    def _count_substitutes(self, result: BatchResult) -> None:
        """Defaults and fallbacks applied, per route and column; a warning (once per container) for a column
        whose attribute no row of the batch had: a misspelled ``from`` looks just like that (issue 12)."""
        for name, transform in self.transforms.items():
            tally = transform.tally.drain()
            stats = result.stats[name]
            stats.defaults += tally.defaults
            stats.fallbacks += tally.fallbacks
            for column in tally.never_present():
                if (name, column) not in self._warned:
                    self._warned.add((name, column))
                    source = transform.route.column(column).source
                    logger.warning("no record of the batch had the attribute a column reads: check its from "
                                   "(warned once per container)",
                                   extra={"route": name, "column": column, "attribute": source, "rows": tally.rows})

    def _count_failed(self, result: BatchResult) -> None:
        if result.failure is None:
            return
        for record in result.records[result.failure.index:]:
            for route in self.config.routes_for(record.table or ""):
                result.stats[route.name].failed += 1


def _after_rejection(plan: _Plan, exc: RejectedChangeError, failure: Failure | None) -> tuple[_Plan, Failure | None]:
    change = exc.change
    assert change is not None
    # The database refused the image of the change's last record (or, for a soft delete that keeps the
    # values of an upsert before it, that upsert's image); the other records merged into the change are
    # not at fault: they stay in the plan, and the next reduce makes the newest one the survivor.
    record = change.values_from or change.record
    reason = f"{record.where}: rejected by the database: {exc}"
    if change.route.on_error == OnError.DEAD_LETTER:
        remaining = [c for c in plan.changes if not (c.record is record and c.route is change.route)]
        return _Plan(remaining, plan.dead_letters + [DeadLetter(change.route, record, reason)]), failure
    cut = Failure(record.index, reason, change.route.name)
    return plan.before(record.index), cut if failure is None or cut.index < failure.index else failure


def _by_route(changes: list[Change]) -> dict[str, list[Change]]:
    grouped: dict[str, list[Change]] = {}
    for change in changes:
        grouped.setdefault(change.route.name, []).append(change)
    return grouped


def _without_expiries(batch: RouteBatch, stats: RouteStats) -> RouteStats:
    """The sink counts every row a REMOVE changed; expiries are counted apart (``expired``), per record."""
    expiries = sum(1 for change in batch.changes if change.record.is_expiry)
    stats.deleted -= min(expiries, stats.deleted)
    return stats


def _batches(changes: list[Change], dead_letters: list[DeadLetter]) -> list[RouteBatch]:
    batches: dict[str, RouteBatch] = {}
    for change in changes:
        batches.setdefault(change.route.name, RouteBatch(change.route)).changes.append(change)
    for letter in dead_letters:
        batches.setdefault(letter.route.name, RouteBatch(letter.route)).dead_letters.append(letter)
    return list(batches.values())


def _sink_failure(sink: Sink, batches: list[RouteBatch], exc: SinkError) -> Failure:
    first = min(b.first_index for b in batches)
    return Failure(first, f"sink {sink.name!r}: {exc}", transient=exc.transient)


def _identifier(records: list[ChangeRecord], index: int) -> str:
    """The SequenceNumber to retry from; a malformed record without one retries from the one before."""
    for record in reversed(records[: index + 1]):
        sequence = record.sequence_number
        if sequence is not None and is_sequence_number(sequence):
            return sequence
    raise InvalidEventError(f"record {index} failed and no record up to it has a SequenceNumber to retry from")
