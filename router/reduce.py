"""Keep one change per target row per batch: the newest, in stream order.

Set-based writes cannot touch a row twice in one statement, and only the last state
of a row matters. Keys are per (sink, target table), not per route, because two routes
may write the same table. The survivor remembers the earliest record merged into it
(``first``) so that a failure is reported where the batch must be retried from.
"""

from __future__ import annotations

from typing import Any, Iterable

from sinks.base import DELETE, UPSERT, Change


def reduce_changes(changes: Iterable[Change]) -> list[Change]:
    latest: dict[tuple[Any, ...], Change] = {}
    for change in changes:
        route = change.route
        slot = (route.sink, route.schema, route.table, change.key)
        previous = latest.get(slot)
        if previous is None:
            latest[slot] = change
        elif change.version >= previous.version:
            change.first = min(change.first, previous.first)
            if change.op == DELETE and previous.op == UPSERT and route.deletes == "soft":
                # a soft-deleted row keeps its last values: the upsert must not vanish with the batch
                change.row, change.keeps_values = {**previous.row, **change.row}, True
            latest[slot] = change
        else:  # older than what we hold (only across shards or tables): keep the newer one
            previous.first = min(change.first, previous.first)
    return list(latest.values())
