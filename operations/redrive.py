"""Retry dead-lettered records through the current config, after the config or the target was fixed.

Each dead letter is run as a one-record batch through the same ``Pipeline`` the Lambda uses,
restricted to the route that dead-lettered it, so the version guard decides as it always
does: a record older than the row (or its tombstone) is a no-op, never a step back. The
route runs with ``on_error: fail`` here, so a record that still fails stays where it is
with the reason, instead of being dead-lettered again. A dead letter is removed only
after its batch committed; a crash in between retries it once more, harmlessly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from router.modes import OnError, Unrouted
from router.pipeline import Pipeline
from router.sink import RouteStats, Sink, StoredDeadLetter


@dataclass
class Outcome:
    letter: StoredDeadLetter
    sink: str
    applied: bool
    stats: RouteStats | None = None  # what the retry did (upserted, stale, deleted) when applied
    reason: str | None = None        # why it still fails
    transient: bool = False          # the database failed, not the record


def stored(pipeline: Pipeline, routes: Sequence[str] = (),
           limit: int | None = None) -> Iterator[tuple[Sink, StoredDeadLetter]]:
    """Every dead letter of ``routes`` (all when empty) in every sink that keeps them."""
    for sink in pipeline.sinks.values():
        try:
            letters = sink.dead_letters(routes, limit)
        except NotImplementedError:
            continue  # a sink type without a dead-letter table
        for letter in letters:
            yield sink, letter


def retry(pipeline: Pipeline, routes: Sequence[str] = ()) -> list[Outcome]:
    """Re-apply the dead letters of ``routes`` (all when empty); remove the ones that succeed.

    Stops early when the database itself fails (a transient error): every later retry
    would fail the same way.
    """
    outcomes = []
    strict: dict[str, Pipeline] = {}  # one per route, built on first use: a pipeline builds every transform
    for sink, letter in list(stored(pipeline, routes)):
        outcome = _retry_one(pipeline, strict, sink, letter)
        outcomes.append(outcome)
        if outcome.applied:
            sink.remove_dead_letters([letter.id])
        elif outcome.transient:
            break
    return outcomes


def _retry_one(pipeline: Pipeline, strict: dict[str, Pipeline], sink: Sink, letter: StoredDeadLetter) -> Outcome:
    route = pipeline.config.routes.get(letter.route)
    if route is None:
        return Outcome(letter, sink.name, False, reason=f"route {letter.route!r} is no longer in "
                                                          f"{pipeline.config.path}")
    if route.name not in strict:
        alone = dataclasses.replace(pipeline.config, routes={route.name: dataclasses.replace(route, on_error=OnError.FAIL)},
                                    unrouted=Unrouted.FAIL)
        strict[route.name] = Pipeline(alone, pipeline.sinks, pipeline.parse, pipeline.read_secret)
    result = strict[route.name].process({"Records": [letter.record]})
    if result.failure is None:
        return Outcome(letter, sink.name, True, stats=result.stats[route.name])
    return Outcome(letter, sink.name, False, reason=result.failure.reason, transient=result.failure.transient)
