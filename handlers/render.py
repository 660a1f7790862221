"""Rich renderings for the command line: plain data in, tables and lines out.

Every cell is a ``Text``, never a markup string: values and names such as ``text[]``
or ``[Id]`` must print as they are.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from operations.shard_runner import BatchReport
from router.attrs import dumps_exact
from router.model import MISSING, Route
from router.modes import SourceKind
from router.pipeline import BatchResult
from router.sink import Drift, RouteBatch, RouteStats

if TYPE_CHECKING:
    from handlers.demo import Step

STAT_NAMES = ("upserted", "deleted", "stale", "dead_lettered", "failed")


def value(item: Any) -> Text:
    if item is None or item is MISSING:
        return Text("NULL" if item is None else "", style="dim")
    if isinstance(item, (dict, list, tuple)):
        return Text(dumps_exact(item))
    if isinstance(item, (dt.datetime, dt.date)):
        return Text(item.isoformat())
    if isinstance(item, (bytes, bytearray)):
        return Text("\\x" + bytes(item).hex())
    return Text(str(item))


def _table(title: str | None, headers: Sequence[str]) -> Table:
    table = Table(title=Text(title) if title else None, title_justify="left", show_edge=True)
    for header in headers:
        table.add_column(Text(header), overflow="fold")
    return table


def route_table(route: Route) -> Table:
    title = (f"route {route.name}: DynamoDB {route.source} -> sink {route.sink}, table {route.qualified_table} "
             f"(key {', '.join(route.key)}; deletes {route.deletes}; on_error {route.on_error})")
    table = _table(title, ["column", "from", "type", "default", "fallback"])
    for column in route.columns:
        table.add_row(Text(column.name), Text(column.source), Text(column.type.name),
                      value(column.default), value(column.fallback))
    if route.auto:  # issue 15: the rest are added as their attributes appear (or kept apart, per on_new_attribute)
        table.add_row(Text("(added)"), Text(f"every other attribute (on_new_attribute: {route.on_new_attribute})"),
                      Text("from its DynamoDB type"), Text(""), Text(""))
    if route.extras:
        other = "values no added column can hold" if route.auto else "every other attribute"
        table.add_row(Text(route.extras), Text(f"({other})"), Text("jsonb"), Text(""), Text(""))
    return table


def substitutes(counts: Mapping[str, int]) -> str:
    """``Name 3, Dept 1``: how many rows took a column's default or fallback."""
    return ", ".join(f"{column} {count}" for column, count in sorted(counts.items()))


def substitute_lines(stats: Mapping[str, RouteStats]) -> list[str]:
    """``route employees: fallbacks applied: Department 2`` per route that took any (issue 12: a misspelled
    ``from`` with a fallback replicates the fallback forever, and everything else looks fine)."""
    return [f"route {route}: {kind} applied: {substitutes(counts)}" for route, stats in stats.items()
            for kind, counts in (("defaults", stats.defaults), ("fallbacks", stats.fallbacks)) if counts]


def stats_table(stats: Mapping[str, RouteStats], title: str | None = None) -> Table:
    table = _table(title, ["route", *(name.replace("_", "-") for name in STAT_NAMES)])
    for name, counts in stats.items():
        table.add_row(Text(name), *(Text(str(getattr(counts, stat))) for stat in STAT_NAMES))
    return table


def drift_table(drifts: Iterable[Drift], title: str = "schema drift") -> Table:
    names = ("route", "table", "problem", "column", "expected", "actual", "kind")
    table = _table(title, [*names[:-1], "fix"])
    for drift in drifts:
        table.add_row(*(value(getattr(drift, name)) if getattr(drift, name) is not None else Text("")
                        for name in names))
    return table


def rows_table(title: str, rows: Sequence[Mapping[str, Any]], max_columns: int = 6) -> Table | Text:
    """A table's rows; a wide table (more than ``max_columns``) is shown one row at a time, column by column."""
    if not rows:
        return Text(f"{title}: (no rows)")
    if len(rows[0]) <= max_columns:
        table = _table(title, list(rows[0]))
        for row in rows:
            table.add_row(*(value(item) for item in row.values()))
        return table
    table = _table(title, ["column", *(f"row {number}" for number in range(1, len(rows) + 1))])
    for name in rows[0]:
        table.add_row(Text(name), *(value(row[name]) for row in rows))
    return table


def batch_table(batch: RouteBatch) -> Table:
    """A dry run's view of one route's share of the batch: each reduced change, then dead letters."""
    columns = [c.name for c in batch.route.columns] + ([batch.route.extras] if batch.route.extras else [])
    table = _table(f"route {batch.route.name} -> {batch.route.qualified_table}", ["op", "version", *columns])
    for change in batch.changes:
        table.add_row(Text(change.op.name.lower()), Text(str(change.version)),
                      *(value(change.row[name]) if name in change.row else Text("") for name in columns))
    for letter in batch.dead_letters:
        table.add_row(Text("dead letter"), Text(str(letter.record.version)), Text(letter.error))
    return table


def route_counts(stats: Mapping[str, RouteStats]) -> str:
    """``employees upserted 2, deleted 1; orders stale 1``: the routes that did something."""
    return "; ".join(
        f"{route} " + ", ".join(f"{name.replace('_', '-')} {getattr(counts, name)}"
                                for name in STAT_NAMES if getattr(counts, name))
        for route, counts in stats.items() if any(getattr(counts, n) for n in STAT_NAMES))


def batch_line(report: BatchReport) -> Text:
    """``Employees shardId-...: 3 records (SequenceNumber a..b): employees upserted 2, deleted 1``"""
    records = report.result.records  # parsed: DynamoDB Streams or Kinesis alike
    first, last = records[0].sequence_number, records[-1].sequence_number
    label = "Kinesis sequenceNumber" if records[0].source == SourceKind.KINESIS else "SequenceNumber"
    counts = route_counts(report.result.stats)
    numbers = first if first == last else f"{first}..{last}"
    line = Text(f"{report.table} {report.shard_id}: {len(records)} record{'s' if len(records) != 1 else ''} "
                f"({label} {numbers}): {counts or 'nothing to write'}")
    if report.result.failure is not None:
        line.append(f" -- {stopped_at(report.result)}",
                    style="red")
    return line


def stopped_at(result: BatchResult) -> str:
    """Where a batch stopped and why, naming the record once (the reason may already start with it)."""
    failure = result.failure
    assert failure is not None
    where = result.records[failure.index].where
    line = f"stopped at {where}: {failure.reason.removeprefix(where + ': ')}"
    after = len(result.records) - failure.index - 1
    return line + (f"; it and the {after} record(s) after it are reported back for retry" if after else "")


def step_renderables(step: Step) -> list[RenderableType]:
    """A demo step: the DynamoDB commands, what the stream runner applied, then the tables."""
    return ([cast(RenderableType, Text(f"$ aws dynamodb {line}", style="bold")) for line in step.commands]
            + [batch_line(report) for report in step.reports]
            + [rows_table(table, rows) for table, rows in step.tables.items()])
