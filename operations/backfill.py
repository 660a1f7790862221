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

A fill (``backfill --columns``) writes only some columns of rows that exist: the route is cut
to its key and those columns (so the transform, its casts and masks, and ``on_error`` see only
them), and every batch reaches the sink as a ``Fill``, which updates a row only where its
version is still the one the sink recorded before the items were read (``sinks.sql.fill``).
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
from router.modes import NewAttribute, SourceKind
from router.pipeline import Pipeline
from router.records import ChangeRecord
from router.sink import Fill, RouteBatch, RouteStats, Sink
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


def route_pipeline(config: Config, route: Route, fill: Fill | None = None) -> Pipeline:
    """A pipeline that knows only ``route``: a table may feed other routes, and they are not backfilled.
    With ``fill``, the route cut to what the fill writes, and its sink filling instead of upserting."""
    route = route if fill is None else fill_route(route, fill)
    pipeline = pipeline_for(dataclasses.replace(
        config, routes={route.name: route}, sinks={route.sink: config.sinks[route.sink]}))
    if fill is not None:
        pipeline.sinks[route.sink] = FillingSink(pipeline.sinks[route.sink], fill)
    return pipeline


def fill_of(route: Route, names: Sequence[str]) -> Fill:
    """``--columns A,B`` of ``route`` as a ``Fill``, or a BackfillError that says what is wrong and what would do."""
    columns = tuple(dict.fromkeys(name.strip() for name in names if name.strip()))
    written = [column.name for column in route.columns] + ([route.extras] if route.extras else [])
    if not columns:
        raise BackfillError(f"--columns names no column (route {route.name!r} has: {', '.join(written)})")
    if route.versioned:
        raise BackfillError(f"route {route.name!r} keeps a row per version (mode: {route.mode}): --columns fills "
                            "rows of current state, and the past versions of an item cannot be read from its table")
    unknown = [name for name in columns if name not in written]
    if unknown:
        raise BackfillError(f"route {route.name!r} has no column {unknown[0]!r} (its columns: {', '.join(written)})")
    keys = [name for name in columns if name in route.key]
    if keys:
        raise BackfillError(f"column {keys[0]!r} is in the key of route {route.name!r}: the key identifies the rows "
                            "a fill writes, and is never written by one")
    return Fill(columns)


def fill_route(route: Route, fill: Fill) -> Route:
    """The route cut to its key and the filled columns (all of them when the extras column is filled: it holds what
    the others do not map), adding no columns of its own (``columns: auto``)."""
    if route.extras in fill.columns:
        return dataclasses.replace(route, auto=False, on_new_attribute=NewAttribute.IGNORE)
    kept = tuple(column for column in route.columns if column.name in route.key or column.name in fill.columns)
    return dataclasses.replace(route, columns=kept, extras=None, auto=False, on_new_attribute=NewAttribute.IGNORE)


def checkpoint_name(route: Route, fill: Fill | None) -> str:
    """The name a backfill's positions are saved under: a fill's are its own."""
    return route.name if fill is None else f"{route.name} --columns {','.join(fill.columns)}"


class FillingSink(Sink):
    """The route's sink with every batch a fill of ``fill``'s columns: the pipeline knows nothing of fills."""

    def __init__(self, inner: Sink, fill: Fill):
        super().__init__(inner.config, inner.routes)
        self.inner, self.fill = inner, fill

    def apply(self, batches: Sequence[RouteBatch]) -> dict[str, RouteStats]:
        return self.inner.apply([dataclasses.replace(batch, fill=self.fill) for batch in batches])

    def close(self) -> None:
        self.inner.close()


class Backfill:
    """Reads ``source`` into ``route`` through ``pipeline``; ``run`` again after a crash to go on."""

    def __init__(self, pipeline: Pipeline, route: Route, source: Source, checkpoints: Checkpoints, *,
                 key_names: Sequence[str] = (), batch_size: int = 1000, workers: int | None = None,
                 in_flight: int | None = None, on_page: Callable[[PageReport], None] | None = None,
                 fill: Fill | None = None):
        self.pipeline, self.route, self.source, self.checkpoints = pipeline, route, source, checkpoints
        self.name = checkpoint_name(route, fill)  # positions: a fill of some columns keeps its own
        self.key_names, self.batch_size = tuple(key_names), batch_size
        self.workers = workers or len(source.segments)
        self.in_flight = in_flight or 2 * self.workers
        self.on_page = on_page or (lambda report: None)

    def states(self) -> dict[str, SegmentState]:
        """The saved position of every segment; a segmentation other than the source's is an error."""
        saved = self.checkpoints.load(self.name, self.source.name)
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
                self.checkpoints.save(self.name, self.source.name, page.segment, state)
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
