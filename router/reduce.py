"""Keep one change per target row per batch: the newest, in stream order.

Set-based writes cannot touch a row twice in one statement, and only the last state
of a row matters. Keys are per (sink, target table), not per route, because two routes
may write the same table. The survivor remembers the earliest record merged into it
(``first``) so that a failure is reported where the batch must be retried from.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from router.modes import Deletes
from router.sink import DELETE, UPSERT, Change


def reduce_changes(changes: Iterable[Change]) -> list[Change]:
    """The survivors, as new ``Change`` objects: the inputs are left as they were, so that the
    pipeline can take a refused record out and reduce the rest again."""
    latest: dict[tuple[Any, ...], Change] = {}
    for change in changes:
        route = change.route
        slot = (route.sink, route.schema, route.table, change.key)
        previous = latest.get(slot)
        if previous is None:
            latest[slot] = change
        elif change.record is previous.record and change.op == DELETE:
            # routes sharing a table (disjoint filters): the route an item left must not delete the row
            # that the route it moved to writes from the same record
            latest[slot] = replace(previous, first=min(change.first, previous.first))
        elif change.version >= previous.version:
            latest[slot] = _merge(previous, change)
        else:  # older than what we hold (only across shards or tables): keep the newer one
            latest[slot] = replace(previous, first=min(change.first, previous.first))
    return list(latest.values())


def _merge(previous: Change, change: Change) -> Change:
    first = min(change.first, previous.first)
    if change.op == DELETE and change.deletes == Deletes.SOFT and previous.op == UPSERT:
        # a soft-deleted row keeps its last values: the upsert must not vanish with the batch
        return replace(change, first=first, row={**previous.row, **change.row}, values_from=previous.record)
    if change.op == DELETE and change.deletes == Deletes.SOFT and previous.keeps_values:
        return replace(change, first=first, row={**previous.row, **change.row}, values_from=previous.values_from)
    return replace(change, first=first)
