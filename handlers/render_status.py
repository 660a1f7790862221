"""``cdc-router status`` as one screen: the routes, the local runner's checkpoints, the triggers."""

from __future__ import annotations

import datetime as dt

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from operations.status import RouteStatus, Status


def status_screen(status: Status) -> list[RenderableType]:
    parts: list[RenderableType] = [_routes(status)]
    notes = [f"{route.route}: {route.note}" for route in status.routes if route.note]
    parts += [Text(note, style="yellow") for note in dict.fromkeys(notes)]
    if status.checkpoints:
        parts.append(_checkpoints(status))
    if status.triggers is not None:
        parts.append(_triggers(status))
    if status.queue_depth is not None:
        style = "red" if status.queue_depth else ""
        parts.append(Text(f"failure queue: {status.queue_depth} message(s)"
                          + (" (cdc-router failures list)" if status.queue_depth else ""), style=style))
    return parts


def _routes(status: Status) -> Table:
    table = Table(title=f"routes at {status.now.isoformat(timespec='seconds')}", title_justify="left")
    for column in ("route", "table -> target", "last change applied", "lag", "applied", "rows", "tombstones",
                   "dead letters"):
        table.add_column(column, justify="right" if column in ("rows", "tombstones", "dead letters") else "left",
                         no_wrap=column == "route")
    for route in status.routes:
        letters = _number(route.dead_letters)
        table.add_row(route.route, f"{route.source} -> {route.target}", _change(route),
                      _duration(route.lag), _ago(route.applied_at, status.now),
                      ("~" if route.rows_estimated else "") + _number(route.rows), _number(route.tombstones),
                      Text(letters, style="red") if route.dead_letters else letters)
    return table


def _checkpoints(status: Status) -> Table:
    table = Table(title="local runner (cdc-router run) checkpoints", title_justify="left")
    for column in ("table", "shard", "SequenceNumber", "finished", "saved"):
        table.add_column(column)
    for point in status.checkpoints:
        number = "-" if point.sequence_number is None else str(point.sequence_number)  # an identifier, not a count
        table.add_row(point.table, point.shard_id, number, "yes" if point.finished else "",
                      _ago(point.updated_at, status.now))
    return table


def _triggers(status: Status) -> Table:
    table = Table(title="triggers", title_justify="left")
    for column in ("table", "state", "last processing result", "changed"):
        table.add_column(column)
    for trigger in status.triggers or []:
        ok = trigger.state == "Enabled" and trigger.last_result in ("OK", "No records processed")
        table.add_row(trigger.table, Text(trigger.state, style="" if ok else "red"), trigger.last_result,
                      _ago(trigger.modified, status.now))
    return table


def _change(route: RouteStatus) -> str:
    if route.version is None:
        return "-"
    made = route.changed_at.strftime("%Y-%m-%d %H:%M:%S") if route.changed_at else "?"
    return f"{made}, #{route.version}"


def _number(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _duration(value: dt.timedelta | None) -> str:
    if value is None:
        return "-"
    seconds = value.total_seconds()
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def _ago(when: dt.datetime | None, now: dt.datetime) -> str:
    return "-" if when is None else _duration(now - when) + " ago"
