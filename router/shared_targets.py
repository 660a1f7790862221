"""Routes that write one target table: accepted only when they cannot fight over a row.

Several routes of one source table may share a target (a single-table design split by
``filter``, merged back into one table), under these rules, each needed for convergence:

- one source table: SequenceNumbers of two tables (or two streams) are not comparable, so
  neither the version guard nor a tombstone could order their changes;
- the same key columns read from the same attributes with the same types, and the same
  ``deletes`` and written columns: a row that moves from one route to the other is the same
  row, and no route leaves another route's values behind;
- filters that provably never select the same item (``router.filters.disjoint``): at most
  one route writes a row for any item, and when an item moves between routes, the change
  of the route it left (a delete) never wins over the change of the route it joined
  (``router.reduce`` keeps the upsert of the same record).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from router.filters import disjoint
from router.model import Route, SinkConfig

Report = Callable[[tuple[str, ...], str], None]


def check_shared_targets(routes: dict[str, Route], sinks: Mapping[str, SinkConfig], report: Report) -> None:
    """Routes share a table when their sink tells the names apart no better: on Redshift, which folds
    identifiers to lower case, ``public.T`` and ``public.t`` are one table."""
    first: dict[tuple[str, str, str], list[Route]] = {}
    for route in routes.values():
        sink = sinks.get(route.sink)
        identity = sink.capabilities.identity if sink is not None else str
        sharing = first.setdefault((route.sink, identity(route.schema), identity(route.table)), [])
        for other in sharing:
            problem = _conflict(other, route)
            if problem is not None:
                report(("routes", route.name, problem[0]),
                       f"{route.qualified_table} is also written by route {other.name!r}: {problem[1]}")
                break
        sharing.append(route)


def _conflict(other: Route, route: Route) -> tuple[str, str] | None:
    """(the key of ``route`` at fault, why) when the two routes may fight over a row, else None."""
    if other.source != route.source:
        return "source", (f"its source is DynamoDB table {other.source!r}, and changes of two tables cannot be "
                          "ordered against each other (their SequenceNumbers are not comparable): give each "
                          "source table a target table of its own")
    if other.auto or route.auto:  # each would add columns the other never writes, and leave them behind
        return "columns", ("a route with columns: auto (or auto: true) needs a table of its own: the columns it "
                           "adds would keep their values when a row moves to the other route")
    if other.mode != route.mode:
        return "mode", f"with mode: {other.mode}; routes sharing a table must agree on it"
    if other.key != route.key or other.deletes != route.deletes:
        return "table", (f"with key {list(other.key)} and deletes: {other.deletes}; routes sharing a table must "
                         "agree on both")
    if (other.deletes_for(True), other.delete_reason) != (route.deletes_for(True), route.delete_reason):
        ttl = other.ttl_deletes or f"unset (as deletes: {other.deletes})"  # soft, unset: no _cdc_delete_reason
        return "ttl_deletes", f"with ttl_deletes: {ttl}; routes sharing a table must agree on it"
    if _key_reads(other) != _key_reads(route):
        return "key", ("its key columns read other attributes or types "
                       f"({_show_key(other)} against {_show_key(route)}); routes sharing a table must read the key "
                       "alike, or one item would be two rows")
    if _written(other) != _written(route):
        return "columns", (f"with columns {sorted(_written(other))}; routes sharing a table must write the same "
                           "columns, or a row moving between them would keep the other route's values")
    if other.filter is None or route.filter is None or not disjoint(other.filter, route.filter):
        shown = [r.filter.describe() if r.filter else "every item" for r in (other, route)]
        return "filter", (f"their filters may select the same item ({shown[0]} / {shown[1]}); routes sharing a "
                          "table need filters that never select the same item: equals/in on one attribute with no "
                          "common value, begins_with prefixes that do not overlap, or exists: true against false")
    return None


def _key_reads(route: Route) -> tuple[tuple[tuple[str, ...], str], ...]:
    return tuple((c.path, c.type.name) for c in route.key_columns)


def _show_key(route: Route) -> str:
    return ", ".join(f"{c.name} from {c.source} as {c.type.name}" for c in route.key_columns)


def _written(route: Route) -> set[str]:
    return {c.name for c in route.columns} | ({route.extras} if route.extras else set())
