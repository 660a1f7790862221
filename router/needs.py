"""What a route needs from its source table and stream, checked on every record's Keys and view type.

tables.yaml does not always say what the table's key attributes are or which images its stream
carries (``sources:`` may declare them, and validate then checks them up front); the records do.
A record that shows the route cannot be applied correctly (key columns read from non-key
attributes, a stream without the images the route needs) is a ``RouteConfigError``: the batch
stops there with the reason, and no record is ever dead-lettered for it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from router.errors import RouteConfigError
from router.filters import attributes, conditions, pinned
from router.model import Config, Route, Source
from router.modes import Deletes
from router.records import KEYS_ONLY, NEW_AND_OLD, NEW_IMAGE, OLD_IMAGE

Report = Callable[[tuple[str, ...], str], None]


def key_problem(route: Route, key_attributes: tuple[str, ...] | frozenset[str]) -> str | None:
    """Why the route's key cannot identify the table's items, or None."""
    read = [c.path[0] for c in route.key_columns]
    foreign = [name for name in read if name not in key_attributes]
    if foreign:
        return (f"key column(s) read non-key attribute(s) {', '.join(map(repr, foreign))} of DynamoDB table "
                f"{route.source!r} (its key attributes: {', '.join(sorted(key_attributes))}): key columns must be "
                "read from the table's key attributes, which an item never changes")
    fixed = pinned(route.filter) if route.filter is not None else {}
    unread = [name for name in sorted(key_attributes) if name not in read and name not in fixed]
    if unread:
        return (f"key attribute(s) {', '.join(map(repr, unread))} of DynamoDB table {route.source!r} are read by no "
                "key column, so several items would share one row: add a key column from each, or select one "
                "value of it with the filter (equals)")
    return None


def needs_old_image(route: Route, key_attributes: tuple[str, ...] | frozenset[str]) -> bool:
    """Whether a MODIFY or REMOVE needs the OldImage to know if the item was the route's."""
    if route.filter is None or route.deletes_for(False) == route.deletes_for(True) == Deletes.IGNORE:
        return False
    return not all(len(c.path) == 1 and c.path[0] in key_attributes for c in conditions(route.filter))


def view_problem(route: Route, view: str, key_attributes: tuple[str, ...] | frozenset[str]) -> str | None:
    """Why a stream of this view type cannot feed the route, or None (the NewImage is checked per record)."""
    if view in (NEW_IMAGE, KEYS_ONLY) and needs_old_image(route, key_attributes):
        assert route.filter is not None
        return (f"the stream of DynamoDB table {route.source!r} is {view}, but the route's filter reads "
                f"{', '.join(sorted(attributes(route.filter)))} (not key attributes): without the OldImage a MODIFY "
                "or REMOVE cannot tell whether the item was the route's. Enable the stream as "
                f"{NEW_AND_OLD} (or set deletes: ignore)")
    return None


def missing_new_image(route: Route, event_name: str | None) -> str:
    return (f"{event_name} record without NewImage: the stream of DynamoDB table {route.source!r} must be "
            f"{NEW_AND_OLD} (or {NEW_IMAGE} where no route's filter needs the OldImage), not KEYS_ONLY or OLD_IMAGE")


class RouteNeeds:
    """The checks for one route, cached per set of key attribute names (one per source table)."""

    def __init__(self, route: Route):
        self.route = route
        self._keys: dict[tuple[tuple[str, ...], str | None], tuple[str | None, bool]] = {}

    def check(self, keys: dict[str, Any], view: str | None) -> bool:
        """Raise ``RouteConfigError`` if the record shows a problem; return whether the OldImage is needed."""
        names = tuple(keys)
        known = self._keys.get((names, view))
        if known is None:
            problem = key_problem(self.route, names) or (view_problem(self.route, view, names) if view is not None
                                                         else None)
            known = self._keys[(names, view)] = (problem, needs_old_image(self.route, names))
        if known[0] is not None:
            raise self.error(known[0])
        return known[1]

    def error(self, problem: str) -> RouteConfigError:
        return RouteConfigError(f"route {self.route.name!r} does not fit its source: {problem}")


def check_declared(routes: dict[str, Route], sources: dict[str, Source], report: Report) -> None:
    """validate's checks of each route against what ``sources:`` declares about its table."""
    refused: set[str] = set()
    for route in routes.values():
        source = sources.get(route.source)
        if source is None:
            continue
        key = source.key if source.key is not None else tuple(c.path[0] for c in route.key_columns)
        problem = key_problem(route, key) if source.key is not None else None
        if problem is not None:
            report(("routes", route.name, "key"), problem)
        if source.stream in (KEYS_ONLY, OLD_IMAGE) and source.name not in refused:
            refused.add(source.name)
            report(("sources", source.name, "stream"),
                   f"a {source.stream} stream carries no NewImage, which every route needs: enable the stream of "
                   f"{source.name} as {NEW_AND_OLD} (or {NEW_IMAGE} where no route's filter needs the OldImage)")
        problem = view_problem(route, source.stream, key) if source.stream else None
        if problem is not None:
            report(("routes", route.name, "filter"), problem)


def notes(config: Config) -> list[str]:
    """What validate cannot know from tables.yaml alone, per route: checked on the records instead."""
    lines = []
    for route in config.routes.values():
        source = config.sources.get(route.source, Source(route.source))
        read = ", ".join(c.path[0] for c in route.key_columns)
        if source.key is None:
            lines.append(f"route {route.name}: key read from {read}, which must be the key attributes of DynamoDB "
                         f"table {route.source} (declare them under sources: to check now; otherwise the first "
                         "record whose Keys differ stops the batch)")
        key = source.key or tuple(c.path[0] for c in route.key_columns)
        if source.stream is None and needs_old_image(route, key):
            assert route.filter is not None
            lines.append(f"route {route.name}: its filter reads {', '.join(sorted(attributes(route.filter)))}, "
                         f"so the stream of {route.source} must be {NEW_AND_OLD}: on a {NEW_IMAGE} stream a MODIFY "
                         "or REMOVE cannot tell whether the item was this route's, and the batch stops there "
                         f"(declare the stream under sources: to check now)")
    return lines
