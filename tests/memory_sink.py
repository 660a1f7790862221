"""An in-memory sink with the SQL sinks' semantics and failure injection, for tests only.

Rows live in ``tables[(schema, table)][key]``; the guard, tombstones, soft deletes and
dead letters (stored once per route and record) follow the same rules as the SQL, so
pipeline behaviour can be tested without a database, and the convergence scenarios run
it beside the real sinks (test_convergence.py). Failures are injected with ``fail_next``
(any ``SinkError``, before anything is written) and ``reject`` (a predicate on changes,
raised as ``RejectedChangeError``).

It is no product sink type: tests load configs with ``SINK_TYPES`` below (the product's
registry plus ``memory``), through ``parse`` and ``pipeline_of``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from factories import as_yaml

from operations.assemble import build_sinks, parse_config, pipeline_for
from router.model import DELETED_COLUMN, VERSION_COLUMN, Config, Route, SinkConfig
from router.modes import Deletes
from router.pipeline import Pipeline
from router.sink import DELETE, Change, RejectedChangeError, RouteBatch, RouteStats, Sink, SinkError, SinkTypes
from sinks.registry import SINK_TYPES as PRODUCT_SINK_TYPES

Key = tuple[Any, ...]


class MemorySink(Sink):
    config_schema: ClassVar[dict[str, Any]] = {}

    def __init__(self, config: SinkConfig, routes: Sequence[Route] = ()):
        super().__init__(config, routes)
        self.tables: dict[tuple[str, str], dict[Key, dict[str, Any]]] = {}
        self.tombstones: dict[tuple[tuple[str, str], Key], int] = {}
        self.dead_letters: list[dict[str, Any]] = []  # type: ignore[assignment]  # the stored letters, not the query
        self.applied_batches = 0
        self._failures: list[SinkError] = []
        self._reject: Callable[[Change], bool] | None = None

    def fail_next(self, error: SinkError, times: int = 1) -> None:
        self._failures.extend([error] * times)

    def reject(self, predicate: Callable[[Change], bool] | None) -> None:
        self._reject = predicate

    def rows(self, route: Route) -> dict[Key, dict[str, Any]]:
        return self.tables.get(route.target, {})

    def apply(self, batches: Sequence[RouteBatch]) -> dict[str, RouteStats]:
        if self._failures:
            raise self._failures.pop(0)
        tables, tombstones = copy.deepcopy(self.tables), dict(self.tombstones)
        stats = {}
        for batch in batches:
            stats[batch.route.name] = _apply_batch(batch, tables, tombstones, self._reject)
        self.tables, self.tombstones = tables, tombstones
        stored = {(d["route"], d["sequence_number"]) for d in self.dead_letters}
        self.dead_letters.extend(
            {"route": d.route.name, "source_table": d.record.table, "sequence_number": d.record.sequence_number,
             "error": d.error, "record": d.record.raw}
            for batch in batches for d in batch.dead_letters
            if (d.route.name, d.record.sequence_number) not in stored  # a redelivery stores nothing twice
        )
        self.applied_batches += 1
        return stats


def _apply_batch(batch: RouteBatch, tables: dict, tombstones: dict, reject: Callable[[Change], bool] | None) -> RouteStats:
    route, stats = batch.route, RouteStats()
    table = tables.setdefault(route.target, {})
    for change in batch.changes:
        if reject is not None and reject(change):
            raise RejectedChangeError("rejected by the memory sink's test predicate", change)
        row = table.get(change.key)
        newer = row is None or row[VERSION_COLUMN] < change.version
        if change.op == DELETE:
            stats.deleted += _delete(route, change, table, tombstones, newer)
        elif newer and tombstones.get((route.target, change.key), -1) < change.version:
            table[change.key] = {**(row or {}), **change.row, VERSION_COLUMN: change.version}
            if route.soft_deletes:
                table[change.key][DELETED_COLUMN] = None
            stats.upserted += 1
        else:
            stats.stale += 1
    return stats


def _delete(route: Route, change: Change, table: dict, tombstones: dict, newer: bool) -> int:
    if change.deletes == Deletes.SOFT:  # ttl_deletes: soft beside deletes: hard: a tombstone stops a mark too
        if not newer or tombstones.get((route.target, change.key), -1) >= change.version:
            return 0
        table[change.key] = {**table.get(change.key, {}), **change.row, VERSION_COLUMN: change.version,
                             DELETED_COLUMN: change.time or "now"}
        return 1
    slot = (route.target, change.key)
    tombstones[slot] = max(tombstones.get(slot, -1), change.version)
    if change.key in table and newer:
        del table[change.key]
        return 1
    return 0


# The product's sink types and the memory sink: what the tests load configs with.
SINK_TYPES: SinkTypes = {**PRODUCT_SINK_TYPES, "memory": MemorySink}


def parse(config: dict[str, Any] | str, path: str = "test.yaml") -> Config:
    """A config (``factories.tables``, or YAML text) validated with the tests' sink types."""
    text = config if isinstance(config, str) else as_yaml(config)
    return parse_config(text, path, environ={}, sink_types=SINK_TYPES)


def pipeline_of(config: dict[str, Any] | str | Config) -> Pipeline:
    """The pipeline of a config, its memory sinks included."""
    loaded = config if isinstance(config, Config) else parse(config)
    return pipeline_for(loaded, build_sinks(loaded, SINK_TYPES))
