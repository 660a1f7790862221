"""``cdc-router run``: the DynamoDB Streams runner and the Kinesis runner side by side.

Each routed table is read through the source its routes name: its DynamoDB stream
(``operations.stream_runner``) or, with ``kinesis:``, the Kinesis data stream
(``operations.kinesis_runner``). Both keep their positions in the same checkpoint table.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import Any, Protocol

from operations.kinesis_runner import KinesisRunner
from operations.shard_runner import BatchReport, Checkpoints, StreamError
from operations.stream_runner import START_POSITIONS, StreamRunner
from router.pipeline import Pipeline


class Runner(Protocol):
    def run(self, stop: threading.Event | None = None, until_idle: bool = False) -> int: ...


def parse_start(text: str) -> str | dt.datetime:
    """``trim_horizon``, ``latest``, or an ISO-8601 time (UTC unless it says otherwise)."""
    if text.lower() in START_POSITIONS:
        return text.lower()
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"invalid start {text!r} (allowed: {', '.join(START_POSITIONS)}, or an ISO-8601 time "
                         "such as 2025-03-01T12:00:00Z)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def build_runners(pipeline: Pipeline, client: Callable[[str], Any], checkpoints: Checkpoints,
                  start: str | dt.datetime, on_batch: Callable[[BatchReport], None], **options: Any) -> list[Runner]:
    """One runner per kind of source the config reads; ``client(name)`` makes a boto3 client."""
    routes = pipeline.config.routes.values()
    runners: list[Runner] = []
    if any(route.kinesis is None for route in routes):
        if isinstance(start, dt.datetime):
            raise StreamError("--from TIME applies to Kinesis data streams only: DynamoDB Streams start at "
                              "trim_horizon or latest (routes without kinesis: read them)")
        runners.append(StreamRunner(pipeline, client("dynamodbstreams"), client("dynamodb"), checkpoints,
                                    start=start, on_batch=on_batch, **options))
    if any(route.kinesis is not None for route in routes):
        runners.append(KinesisRunner(pipeline, client("kinesis"), checkpoints, start=start, on_batch=on_batch,
                                     **options))
    return runners


def run_all(runners: list[Runner], stop: threading.Event, until_idle: bool, poll_interval: float) -> int:
    """Read every runner's streams in turn until ``stop``, or until all are caught up with ``until_idle``."""
    if len(runners) == 1:
        return runners[0].run(stop, until_idle=until_idle)
    applied = 0
    while not stop.is_set():
        before = applied
        for runner in runners:
            applied += runner.run(stop, until_idle=True)
        if applied == before:
            if until_idle:
                break
            stop.wait(poll_interval)
    return applied
