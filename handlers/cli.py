"""The ``cdc-router`` command line: options in, router/ and sinks/ do the work, Rich prints it.

Exit codes and error lines are the same for every subcommand (``handlers.cli_support``).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.rule import Rule
from rich.text import Text

from handlers import cli_backfill, cli_check, cli_deploy, cli_recover, cli_schema  # noqa: F401  (register their subcommands)
from handlers.cli_app import app, command
from handlers.cli_support import console, stop_on_signals
from operations.assemble import load_config, pipeline_for
from operations.runners import build_runners, parse_start, run_all
from operations.shard_runner import StreamError
from operations.stream_runner import START_POSITIONS
from router.errors import InvalidEventError
from router.model import Config
from router.pipeline import Pipeline
from router.sink import Sink

if TYPE_CHECKING:
    from handlers.local_postgres import LocalPostgres


def main() -> None:
    """The console script."""
    app(prog_name="cdc-router")


# -- validate -------------------------------------------------------------------------------


@command
def validate(config: Path | None, debug: bool) -> None:
    """Validate the config and print each route.

    Every problem is reported, one line each, and the exit code is 1.
    """
    from handlers.render import route_table
    from router.needs import notes

    loaded = load_config(config, offline=True)
    for route in loaded.routes.values():
        console.print(route_table(route))
    for note in notes(loaded):  # what the file cannot tell (the table's key, its stream): checked on the records
        console.print(Text(f"note: {note}"))
    console.print(f"{loaded.path} is valid: {len(loaded.routes)} route(s), {len(loaded.sinks)} sink(s)")
    for where in loaded.unresolved:
        console.print(Text(f"note: {where}; commands that connect need it", style="yellow"))


# -- replay ---------------------------------------------------------------------------------


@command
@click.argument("event_file", metavar="EVENT.json", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Print the rows and statements; write nothing.")
def replay(config: Path | None, event_file: Path, dry_run: bool, debug: bool) -> None:
    """Run a saved Lambda event through the pipeline.

    EVENT.json is what a Lambda receives from DynamoDB Streams. Prints what happened per route
    and the batchItemFailures response; exits 1 if a record failed.
    """
    from handlers.render import batch_table, stats_table, stopped_at, substitute_lines
    from operations.dryrun import dry_run_pipeline

    try:
        event = json.loads(event_file.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise InvalidEventError(f"{event_file}: not valid JSON ({exc})") from None
    loaded = load_config(config, offline=dry_run)  # a dry run connects to nothing
    pipeline = dry_run_pipeline(loaded) if dry_run else pipeline_for(loaded)
    try:
        result = pipeline.process(event)
    finally:
        pipeline.close()
    if dry_run:
        for sink in pipeline.sinks.values():
            for batch in getattr(sink, "batches", []):
                console.print(batch_table(batch))
            for statement in getattr(sink, "statements", []):
                click.echo(f"{statement};\n")
    console.print(stats_table(result.stats, "dry run: counted as if the target were empty" if dry_run else None))
    for line in substitute_lines(result.stats):
        console.print(Text(line, style="yellow"))
    if result.failure is not None:
        console.print(Text(stopped_at(result), style="red"))
    click.echo(json.dumps(result.response))
    if result.failure is not None:
        sys.exit(1)


# -- run ------------------------------------------------------------------------------------


@command
@click.option("--endpoint-url", help="DynamoDB, Streams and Kinesis endpoint (DynamoDB Local, a moto server).")
@click.option("--region", help="AWS region [default: from the AWS config].")
@click.option("--from", "start", default="trim_horizon", show_default=True, metavar="|".join(START_POSITIONS) + "|TIME",
              help="Where a shard without a checkpoint starts; a TIME (ISO-8601) for Kinesis data streams only.")
@click.option("--batch-size", type=click.IntRange(1, 1000), default=100, show_default=True,
              help="Records per GetRecords call.")
@click.option("--poll-interval", type=click.FloatRange(0), default=1.0, show_default=True,
              help="Seconds between polls once caught up.")
@click.option("--until-idle", is_flag=True, help="Exit once every shard is caught up.")
def run(config: Path | None, endpoint_url: str | None, region: str | None, start: str, batch_size: int,
        poll_interval: float, until_idle: bool, debug: bool) -> None:
    """Read the tables' streams into the sinks.

    A local stream runner for development and small deployments: shards are read parents
    before children, and the position of each is saved in the sink's state schema after
    every batch, so a restart resumes where it stopped. Ctrl-C stops after the current batch.
    """
    import boto3
    from botocore.config import Config

    from handlers.render import batch_line
    from operations.checkpoints import PostgresCheckpoints
    from router.retry import AWS_STANDARD

    try:
        starting = parse_start(start)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--from'") from None
    loaded = load_config(config)
    pipeline = pipeline_for(loaded)
    try:
        checkpoints = PostgresCheckpoints(_checkpoint_sink(loaded, pipeline))  # type: ignore[arg-type]
        checkpoints.create()
        session: Any = boto3.session.Session(region_name=region)  # clients by a name known at run time
        retries = Config(retries=AWS_STANDARD)
        runners = build_runners(pipeline, lambda name: session.client(name, endpoint_url=endpoint_url, config=retries),
                                checkpoints, starting, on_batch=lambda report: console.print(batch_line(report)),
                                batch_size=batch_size, poll_interval=poll_interval)
        stop = threading.Event()
        console.print(f"reading the streams of {', '.join(sorted({r.source for r in loaded.routes.values()}))}"
                      + ("" if until_idle else " (Ctrl-C stops after the current batch)"))
        with stop_on_signals(stop):
            applied = run_all(runners, stop, until_idle, poll_interval)
        console.print(f"{'stopped' if stop.is_set() else 'caught up'}: {applied} record(s) applied; "
                      f"positions saved in {checkpoints.table.as_string(None)}")
    finally:
        pipeline.close()


def _checkpoint_sink(config: Config, pipeline: Pipeline) -> Sink:
    for name, sink_config in config.sinks.items():
        if sink_config.type == "postgres":
            return pipeline.sinks[name]
    raise StreamError(f"run keeps its stream positions in a postgres sink, and {config.path} has none")


# -- demo -----------------------------------------------------------------------------------


@command
@click.option("--kinesis", is_flag=True, help="Send the changes through a Kinesis data stream (moto), shuffled "
                                               "and duplicated, ordered by approximate_creation_time.")
@click.option("--serve", is_flag=True, help="Instead of the walkthrough, keep DynamoDB (a moto server) running on "
                                             "127.0.0.1 with the config's tables and the demo's items, and print the "
                                             "environment that lets run, backfill, verify and replay reach it.")
@click.option("--port", type=click.IntRange(0, 65535), default=5005, show_default=True,
              help="The port of --serve's moto server (0: any free port).")
def demo(config: Path | None, kinesis: bool, serve: bool, port: int, debug: bool) -> None:
    """Replicate the reference article's put, update and delete locally.

    DynamoDB runs in-process (moto); PostgreSQL is $DATABASE_URL, else a server on
    127.0.0.1:5432, else an embedded one (pip install 'cdc-router[embedded]').
    """
    from handlers.demo import DEMO_SCHEMA, Demo
    from handlers.demo_kinesis import STREAM, KinesisDemo
    from handlers.local_postgres import find_postgres
    from handlers.render import step_renderables

    began = time.monotonic()
    with find_postgres() as postgres:
        console.print(f"PostgreSQL: {postgres.source} ({postgres.shown})")
        if serve:
            return _serve(load_config(config, offline=True), postgres, port)
        loaded = load_config(config, environ={**os.environ, "DATABASE_URL": postgres.url})
        with (KinesisDemo if kinesis else Demo)(loaded, postgres.url) as session:
            console.print(f"DynamoDB: in-process moto; tables {', '.join(session.sources)} with streams; "
                          f"target tables in schema {DEMO_SCHEMA}")
            if kinesis:
                console.print(f"Kinesis: in-process moto; every change put into the data stream {STREAM!r} twice, "
                              "newest first, as Kinesis may deliver them; routes ordered by approximate_creation_time")
            for step in session.steps():
                console.print(Rule(Text(step.title), align="left"), width=min(console.width, 100))
                console.print(*step_renderables(step), sep="\n")
        kept = "" if postgres.temporary else f"; the tables stay in schema {DEMO_SCHEMA} for a look"
    console.print(f"done in {time.monotonic() - began:.1f}s; nothing left running{kept}")


def _serve(config: Config, postgres: LocalPostgres, port: int) -> None:
    from handlers.demo_serve import DemoServer, exports, suggestions

    with DemoServer(config, port) as server:
        console.print(f"DynamoDB: a moto server on {server.endpoint}; tables {', '.join(server.tables)} with streams "
                      f"({server.items} change(s) of the demo in them)")
        console.print("In another shell, in this directory:")
        for line in exports(server.environment(postgres)) + suggestions(config):
            click.echo(f"    {line}")
        console.print("Ctrl-C stops the server; its tables live in memory and go with it.")
        sys.stdout.flush()
        stopped = threading.Event()
        previous = {sig: signal.signal(sig, lambda *_: stopped.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            stopped.wait()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    console.print("stopped: the moto server and its tables are gone")
