"""``cdc-router backfill`` and ``cdc-router verify``: options in, router/ and sinks/ do the work.

Registered on ``handlers.cli.app`` (imported there with one line).
"""

from __future__ import annotations

import datetime as dt
import functools
import random
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeRemainingColumn
from rich.text import Text

from handlers.cli_app import command
from handlers.cli_support import console, error
from operations.assemble import load_config
from operations.backfill import Backfill, BackfillError, FillingSink, SegmentState, fill_of, route_pipeline
from router.model import Config, Route
from router.pipeline import Pipeline
from router.sink import Fill
from sinks.postgres.sink import PostgresSink

if TYPE_CHECKING:
    from operations.verify import Comparison


def _scan_options(segments: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """ROUTE and the Scan's options; ``segments`` is the help of --segments."""
    return functools.partial(_add_scan_options, segments=segments)


def _add_scan_options(function: Callable[..., Any], segments: str) -> Callable[..., Any]:
    options = [
        click.option("--segments", type=click.IntRange(1, 1000), default=4, show_default=True, help=segments),
        click.option("--rate", type=click.FloatRange(0, 1, min_open=True), default=0.5, show_default=True,
                     help="Fraction of a provisioned table's read capacity to use."),
        click.option("--items-per-second", type=click.FloatRange(0, min_open=True),
                     help="Read at most this many items per second (for on-demand tables; overrides --rate)."),
        click.option("--consistent-read", is_flag=True, help="Strongly consistent Scan reads (twice the capacity)."),
        click.option("--endpoint-url", help="DynamoDB and Streams endpoint (DynamoDB Local, a moto server)."),
        click.option("--region", help="AWS region [default: from the AWS config]."),
    ]
    for option in reversed(options):
        function = option(function)
    return click.argument("route_name", metavar="ROUTE")(function)


class _Aws:
    """The clients of one command, and the source table's description."""

    def __init__(self, region: str | None, endpoint_url: str | None, table_name: str):
        import boto3
        from botocore.config import Config

        from operations.handover import source_table
        from router.retry import AWS_STANDARD
        from sources.scan import SCAN_RETRIES

        self.session = boto3.session.Session(region_name=region)
        # botocore alone retries (router.retry): adaptive for the Scan's reads, standard for the rest
        self.dynamodb = self.session.client("dynamodb", endpoint_url=endpoint_url, config=Config(retries=SCAN_RETRIES))
        self.streams = self.session.client("dynamodbstreams", endpoint_url=endpoint_url,
                                           config=Config(retries=AWS_STANDARD))
        self.table = source_table(self.dynamodb, table_name)

    @property
    def key_names(self) -> list[str]:
        return [element["AttributeName"] for element in self.table["KeySchema"]]


def _route(config: Config, name: str) -> Route:
    if name not in config.routes:
        raise click.BadParameter(f"unknown route {name!r} (routes: {', '.join(config.routes)})", param_hint="ROUTE")
    return config.routes[name]


def _postgres(pipeline: Pipeline, route: Route, what: str) -> PostgresSink:
    sink = pipeline.sinks[route.sink]
    sink = sink.inner if isinstance(sink, FillingSink) else sink
    if not isinstance(sink, PostgresSink):
        raise BackfillError(f"{what}, and route {route.name!r} writes to sink {route.sink!r} of type "
                            f"{sink.config.type}")
    return sink


def _comparison(pipeline: Pipeline, route: Route) -> Comparison:
    """Where verify compares: in the sink's database (Postgres: a temporary table; Redshift: a scratch table
    of the state schema, through the Data API)."""
    from operations.verify_postgres import PostgresComparison
    from operations.verify_redshift import RedshiftComparison
    from sinks.redshift import RedshiftSink

    sink = pipeline.sinks[route.sink]
    if isinstance(sink, RedshiftSink):
        return RedshiftComparison(sink, route)
    return PostgresComparison(_postgres(pipeline, route, "verify compares in a postgres or redshift sink"), route)


@contextmanager
def _one_line() -> Iterator[None]:
    """Refusals of the hand-over rules and broken exports: one line and exit code 1."""
    try:
        yield
    except BackfillError as exc:
        error(f"error: {exc}")
        sys.exit(1)


class _Speed(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:,.0f} items/s" if task.speed else "- items/s", style="progress.data.speed")


@contextmanager
def _progress(title: str, total: int | None, done: int) -> Iterator[Callable[[int], None]]:
    """A Rich progress bar with items/s and time left; yields the function that advances it by n items."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), _Speed(), TimeRemainingColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(title, total=max(total, done) if total else None, completed=done)

        def advance(items: int) -> None:
            current = progress.tasks[0]  # the estimate (ItemCount is refreshed every six hours) may be short
            grown = None if current.total is None else max(current.total, current.completed + items)
            progress.update(task, advance=items, total=grown)

        yield advance


# -- backfill -------------------------------------------------------------------------------


@command
@_scan_options("Parallel Scan segments (with --from-export: data files read at once).")
@click.option("--from-export", "export", metavar="PATH",
              help="Read a DynamoDB export to S3 (DYNAMODB_JSON) instead of scanning: a directory or s3://bucket/prefix.")
@click.option("--batch-size", type=click.IntRange(1, 10000), default=1000, show_default=True,
              help="Items per Scan page and per transaction.")
@click.option("--restart", is_flag=True, help="Forget the saved positions of this backfill and start again.")
@click.option("--columns", metavar="A,B", help="Fill only these columns of the rows that exist (columns added to the "
                                               "route after its table was replicated), never over a newer stream write.")
def backfill(config: Path | None, route_name: str, segments: int, rate: float, items_per_second: float | None,
             consistent_read: bool, endpoint_url: str | None, region: str | None, export: str | None,
             batch_size: int, restart: bool, columns: str | None, debug: bool) -> None:
    """Write the items of ROUTE's source table into its target.

    Reads the table with a parallel Scan (or an export to S3), through the route's transforms
    and sink like stream records, but with version 0: a row is written only where the target
    has no row and no tombstone for its key, so nothing the stream wrote is overwritten and no
    deleted item comes back. Needs the table's stream enabled and its trigger deployed from
    TRIM_HORIZON first. Positions are saved per segment: after a crash, run it again to go on.

    --columns A,B fills only those columns of rows that exist, where a row's version is still
    the one recorded before the items were read: no row is made, none comes back, and nothing
    the stream wrote since is overwritten (see the README's Backfill section).
    """
    loaded = load_config(config)
    route = _route(loaded, route_name)
    with _one_line():
        fill = fill_of(route, columns.split(",")) if columns is not None else None
        aws = _Aws(region, endpoint_url, route.source)
        source, warnings = _source(aws, loaded, route, export, segments, rate, items_per_second, consistent_read,
                                   batch_size)
        for warning in warnings:
            console.print(Text(f"warning: {warning}", style="yellow"))
        pipeline = route_pipeline(loaded, route, fill)
        try:
            _backfill(pipeline, route, source, aws, segments, batch_size, restart, fill)
        finally:
            pipeline.close()


def _source(aws: _Aws, config: Config, route: Route, export: str | None, segments: int, rate: float,
            items_per_second: float | None, consistent_read: bool, batch_size: int) -> tuple[Any, list[str]]:
    from operations.handover import export_warnings, kinesis_warnings, stream_warnings
    from sources.export import ExportSource
    from sources.scan import ScanSource, read_limiter

    warnings = (kinesis_warnings(aws.table, route.kinesis) if route.kinesis is not None
                else stream_warnings(aws.streams, aws.table))
    if export is None:
        limiter = read_limiter(aws.table, rate, items_per_second)
        console.print(f"scanning {route.source} in {segments} segment(s), {limiter.describe()}")
        return ScanSource(aws.dynamodb, route.source, segments, consistent_read=consistent_read, page_size=batch_size,
                          limiter=limiter, estimated_items=aws.table.get("ItemCount")), warnings
    source = ExportSource(export, aws.session.client("s3") if export.startswith("s3://") else None, batch_size)
    if source.table != route.source:
        raise BackfillError(f"export {export} is of table {source.table!r}, and route {route.name!r} reads "
                            f"{route.source!r}")
    retention = config.sinks[route.sink].options.get("tombstone_retention_hours") if route.hard_deletes else None
    console.print(f"reading export {source.name} ({len(source.segments)} data file(s), taken "
                  f"{source.export_time:%Y-%m-%d %H:%M:%S}Z)")
    return source, warnings + export_warnings(aws.table, source.export_time, retention)


def _backfill(pipeline: Pipeline, route: Route, source: Any, aws: _Aws, segments: int, batch_size: int,
              restart: bool, fill: Fill | None = None) -> None:
    from operations.backfill_checkpoints import PostgresBackfillCheckpoints

    sink = _postgres(pipeline, route, "backfill keeps its positions in a postgres sink")
    checkpoints = PostgresBackfillCheckpoints(sink)
    checkpoints.create()
    runner = Backfill(pipeline, route, source, checkpoints, key_names=aws.key_names, batch_size=batch_size,
                      workers=segments, fill=fill)
    if restart:
        checkpoints.clear(runner.name, source.name)
    states = runner.states()
    resumed = sum(state.items for state in states.values())
    if states and all(state.finished for state in states.values()):  # said before a progress bar would be drawn full
        console.print(f"nothing to do: this backfill finished earlier ({resumed} items); --restart runs it again")
        return
    if fill is not None:
        _versions(sink, checkpoints, runner, any(state.items for state in states.values()) and not restart, source)
    began = time.monotonic()
    with _progress(f"backfill {route.name}", source.estimated_items, resumed) as advance:
        runner.on_page = lambda report: advance(report.items)
        result = runner.run()
    seconds = time.monotonic() - began
    stats = result.stats
    written = (f"{stats.upserted} filled, {stats.stale} not filled (no such row, deleted, or written by the stream "
               "since the versions were recorded)" if fill is not None else
               f"{stats.upserted} written, {stats.stale} already in the target or deleted since")
    console.print(f"{result.items} item(s) read in {seconds:.1f}s ({result.items / max(seconds, 1e-9):,.0f} items/s)"
                  + (f", resumed after {result.resumed}" if result.resumed else "") + f": {written}, "
                  f"{stats.dead_lettered} dead-lettered; positions in {checkpoints.table.as_string(None)}")
    if fill is not None:
        sink.forget_versions(route)
        checkpoints.clear(runner.name, VERSIONS)


VERSIONS = "versions"  # the checkpoints' source under which a fill saves when it recorded the rows' versions


def _versions(sink: PostgresSink, checkpoints: Any, runner: Backfill, resuming: bool, source: Any) -> None:
    """Record the versions of the route's rows before any item is read (a fill writes only where they still
    hold), or keep those of the fill this run resumes. An export shows the items as they were at its export
    time, so it must have been taken after the versions were recorded."""
    route, exported = runner.route, getattr(source, "export_time", None)
    saved = checkpoints.load(runner.name, VERSIONS).get(VERSIONS)
    recorded = dt.datetime.fromisoformat(saved.position["at"]) if saved and saved.position else None
    kept = recorded is not None and sink.has_versions(route)
    if kept and recorded is not None and (resuming if exported is None else exported > recorded):
        return
    if not kept or exported is None:
        sink.record_versions(route)
        recorded = dt.datetime.now(dt.UTC)  # after the commit: every version recorded is at least this old
        checkpoints.save(runner.name, VERSIONS, VERSIONS, SegmentState({"at": recorded.isoformat()}, 0, True))
        console.print(f"recorded the version of every row of {route.qualified_table} at {recorded:%Y-%m-%d %H:%M:%S}Z "
                      f"(in {sink.versions_table(route).as_string(None)})")
    if exported is not None and recorded is not None and exported <= recorded:
        raise BackfillError(f"export {source.name} shows the items as they were at {exported:%Y-%m-%d %H:%M:%S}Z, "
                            f"before the versions of the rows were recorded ({recorded:%Y-%m-%d %H:%M:%S}Z): a fill "
                            "from it could write older values over newer ones. Export the table again (its export "
                            "time after that) and run this command with the new export")


# -- verify ---------------------------------------------------------------------------------


@command
@_scan_options("Parallel Scan segments (without --sample).")
@click.option("--sample", type=click.IntRange(1), metavar="N",
              help="Compare N random items, and look N random target rows up in DynamoDB, instead of everything.")
@click.option("--show", type=click.IntRange(1, 1000), default=10, show_default=True,
              help="How many differences to print.")
def verify(config: Path | None, route_name: str, segments: int, rate: float, items_per_second: float | None,
           consistent_read: bool, endpoint_url: str | None, region: str | None, sample: int | None, show: int,
           debug: bool) -> None:
    """Compare ROUTE's target table with its DynamoDB table; exit 1 on drift.

    Every item goes through the route's transforms, and the rows they should make are
    compared in the database with the live target rows (soft-deleted rows count as absent):
    counts, keys missing on either side, and values that differ per column. Prints a summary
    and the first differences. Python holds one page of items at a time; the comparison
    runs in the database. --sample N reads about N items from random Scan segments instead.
    """
    from handlers.render_verify import report_renderables
    from operations.verify import Verifier, verify_all, verify_sample
    from sources.scan import ScanSource, read_limiter

    loaded = load_config(config)
    route = _route(loaded, route_name)
    with _one_line():
        aws = _Aws(region, endpoint_url, route.source)
        options: dict[str, Any] = {"consistent_read": consistent_read,
                                   "limiter": read_limiter(aws.table, rate, items_per_second)}
        pipeline = route_pipeline(loaded, route)
        comparison: Comparison | None = None
        try:
            if pipeline.sinks[route.sink].check(route):
                raise BackfillError(f"the table of route {route.name!r} differs from the route: see "
                                    "cdc-router schema --check")
            comparison = _comparison(pipeline, route)
            verifier = Verifier(route, comparison, aws.key_names, show)
            if sample:
                report = verify_sample(verifier, aws.dynamodb, aws.table, sample, random.Random(), **options)
            else:
                source = ScanSource(aws.dynamodb, route.source, segments, **options)
                with _progress(f"verify {route.name}", aws.table.get("ItemCount"), 0) as advance:
                    report = verify_all(verifier, source, segments, advance)
        finally:
            if comparison is not None:
                comparison.close()  # drops its table (Redshift: a real one, in the state schema)
            pipeline.close()
    console.print(*report_renderables(report), sep="\n")
    if report.drift:
        sys.exit(1)
