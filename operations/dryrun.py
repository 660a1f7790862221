"""A stand-in for a real sink during ``cdc-router replay --dry-run``: writes nothing anywhere.

It keeps every batch the pipeline hands it and the statements the real sink would run
for it (``Sink.explain``), and counts as if the target were empty: stale counts need the
live rows, which a dry run does not read. So every upsert counts as written, a soft
delete as a row marked, and a hard delete as nothing (an empty table has no row to delete).
"""

from __future__ import annotations

from collections.abc import Sequence

from operations.assemble import build_sinks, pipeline_for
from router.model import Config
from router.modes import Op
from router.pipeline import Pipeline
from router.sink import RouteBatch, RouteStats, Sink


class DryRunSink(Sink):
    def __init__(self, real: Sink):
        super().__init__(real.config, real.routes)
        self.real = real
        self.batches: list[RouteBatch] = []
        self.statements: list[str] = []

    def apply(self, batches: Sequence[RouteBatch]) -> dict[str, RouteStats]:
        self.batches.extend(batches)
        self.statements.extend(self.real.explain(batches))
        return {batch.route.name: _count(batch) for batch in batches}


def _count(batch: RouteBatch) -> RouteStats:
    upserts = sum(change.op is Op.UPSERT for change in batch.changes)
    deletes = len(batch.changes) - upserts
    return RouteStats(upserted=upserts, deleted=deletes if batch.route.soft_deletes else 0)


def dry_run_pipeline(config: Config) -> Pipeline:
    """The pipeline of ``config`` with every sink replaced by a ``DryRunSink`` (no connection is made)."""
    return pipeline_for(config, {name: DryRunSink(sink) for name, sink in build_sinks(config).items()})
