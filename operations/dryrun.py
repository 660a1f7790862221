"""A stand-in for a real sink during ``cdc-router replay --dry-run``: writes nothing anywhere.

It keeps every batch the pipeline hands it and the statements the real sink would run
for it (``Sink.explain``), and counts as the memory sink does, i.e. as if the target
were empty: stale counts need the live rows, which a dry run does not read.
"""

from __future__ import annotations

from collections.abc import Sequence

from operations.assemble import build_sinks, pipeline_for
from router.model import Config
from router.pipeline import Pipeline
from router.sink import RouteBatch, RouteStats, Sink
from sinks.memory import MemorySink


class DryRunSink(MemorySink):
    def __init__(self, real: Sink):
        super().__init__(real.config, real.routes)
        self.real = real
        self.batches: list[RouteBatch] = []
        self.statements: list[str] = []

    def apply(self, batches: Sequence[RouteBatch]) -> dict[str, RouteStats]:
        self.batches.extend(batches)
        self.statements.extend(self.real.explain(batches))
        return super().apply(batches)


def dry_run_pipeline(config: Config) -> Pipeline:
    """The pipeline of ``config`` with every sink replaced by a ``DryRunSink`` (no connection is made)."""
    return pipeline_for(config, {name: DryRunSink(sink) for name, sink in build_sinks(config).items()})
