"""Backfill: the items a table held before its stream, written through a route like stream records.

Each item becomes a synthetic INSERT record of version 0 and goes through the route's
own pipeline (transform, ``on_error``, dead letters, the sink's guarded upsert). Version
0 is the hand-over rule: the guard writes it only where the target has no row and no
tombstone for the key, because a row written by the stream is at least as new as the
scanned item (the stream was enabled before the scan started), and a tombstone means the
item was deleted after it was read. Replaying a page is a no-op for the same reason.

The position of every segment is saved in the target database after its page commits,
so a rerun continues where a crash stopped (at most one page per segment is written
twice, harmlessly).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from operations.assemble import pipeline_for
from router.attrs import dumps_exact, to_python
from router.errors import BackfillError
from router.model import Config, Route
from router.modes import SourceKind
from router.pipeline import Pipeline
from router.records import ChangeRecord
from router.sink import RouteStats
from sources.pages import Page, PageReader, Source

BACKFILL = "cdc-router:backfill"  # eventSource of the synthetic records, as kept in dead letters


@dataclass
class SegmentState:
    position: Any = None           # JSON-able; None: not started
    items: int = 0                 # items read and written so far
    finished: bool = False


class Checkpoints(Protocol):
    """Where the positions live; ``operations.backfill_checkpoints`` is the real one."""

    def load(self, route: str, source: str) -> dict[str, SegmentState]: ...

    def save(self, route: str, source: str, segment: str, state: SegmentState) -> None: ...

    def clear(self, route: str, source: str) -> None: ...


@dataclass
class PageReport:
    """One page written, for progress bars and tests."""

    segment: str
    items: int
    stats: RouteStats
    done: int                      # items read so far, resumed segments included
    total: int | None              # the source's estimate


@dataclass
class BackfillResult:
    resumed: int = 0               # items done by earlier runs
    items: int = 0                 # items read by this run
    stats: RouteStats = field(default_factory=RouteStats)
    pages: int = 0


def insert_record(index: int, table: str, key_names: Sequence[str], item: dict[str, Any]) -> ChangeRecord:
    """An item as a stream INSERT of version 0, with no SequenceNumber (dead letters keep it NULL)."""
    keys = {name: item[name] for name in key_names if name in item}
    raw = {"eventName": "INSERT", "eventSource": BACKFILL, "dynamodb": {"Keys": keys, "NewImage": item}}
    return ChangeRecord(index, raw, table, event_name="INSERT", keys=keys, new_image=item, version=0,
                        source=SourceKind.BACKFILL)


def route_pipeline(config: Config, route: Route) -> Pipeline:
    """A pipeline that knows only ``route``: a table may feed other routes, and they are not backfilled."""
    return pipeline_for(dataclasses.replace(
        config, routes={route.name: route}, sinks={route.sink: config.sinks[route.sink]}))


class Backfill:
    """Reads ``source`` into ``route`` through ``pipeline``; ``run`` again after a crash to go on."""

    def __init__(self, pipeline: Pipeline, route: Route, source: Source, checkpoints: Checkpoints, *,
                 key_names: Sequence[str] = (), batch_size: int = 1000, workers: int | None = None,
                 in_flight: int | None = None, on_page: Callable[[PageReport], None] | None = None):
        self.pipeline, self.route, self.source, self.checkpoints = pipeline, route, source, checkpoints
        self.key_names, self.batch_size = tuple(key_names), batch_size
        self.workers = workers or len(source.segments)
        self.in_flight = in_flight or 2 * self.workers
        self.on_page = on_page or (lambda report: None)

    def states(self) -> dict[str, SegmentState]:
        """The saved position of every segment; a segmentation other than the source's is an error."""
        saved = self.checkpoints.load(self.route.name, self.source.name)
        foreign = sorted(set(saved) - set(self.source.segments))
        if foreign:
            raise BackfillError(
                f"an unfinished backfill of route {self.route.name!r} from {self.source.name} has other segments "
                f"({', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''}): rerun it with the same "
                "segmentation, or start again with --restart")
        return {segment: saved.get(segment, SegmentState()) for segment in self.source.segments}

    def run(self) -> BackfillResult:
        states = self.states()
        result = BackfillResult(resumed=sum(state.items for state in states.values()))
        pending = {segment: state.position for segment, state in states.items() if not state.finished}
        if not pending:
            return result
        with PageReader(self.source, pending, self.workers, self.in_flight) as reader:
            for page in reader:
                stats = self._write(page)
                state = states[page.segment]
                state.items += len(page.items)
                state.position, state.finished = page.position, page.finished
                self.checkpoints.save(self.route.name, self.source.name, page.segment, state)
                result.items, result.pages = result.items + len(page.items), result.pages + 1
                result.stats.add(stats)
                self.on_page(PageReport(page.segment, len(page.items), stats, result.resumed + result.items,
                                        self.source.estimated_items))
        return result

    def _write(self, page: Page) -> RouteStats:
        stats = RouteStats()
        for start in range(0, len(page.items), self.batch_size):
            chunk = page.items[start:start + self.batch_size]
            records = [insert_record(i, self.source.table, self.key_names, item) for i, item in enumerate(chunk)]
            outcome = self.pipeline.process_records(records)
            stats.add(outcome.stats.get(self.route.name, RouteStats()))
            if outcome.failure is not None:
                failed = records[outcome.failure.index]
                reason = outcome.failure.reason.removeprefix(f"{failed.where}: ")  # its SequenceNumber is None
                raise BackfillError(f"segment {page.segment}, item {_key_text(failed)}: {reason} "
                                    "(positions saved: a rerun starts this segment again at this page)")
        return stats


def _key_text(record: ChangeRecord) -> str:
    return dumps_exact({name: to_python(av) for name, av in (record.keys or {}).items()})
