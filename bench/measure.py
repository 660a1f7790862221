"""Measured in-process or in a fresh one: handler throughput and the cold start; the sink with the
database taken out, for the Python side (``bench.python_side``)."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from router.sink import DELETE, RouteBatch, RouteStats
from sinks.postgres import PostgresSink

ROOT = Path(__file__).resolve().parent.parent
Handler = Callable[[dict[str, Any], Any], Any]


class LambdaContext:
    aws_request_id = "bench"


def run_handler(handler: Handler, payloads: Sequence[str], expect_response: bool = True,
                budget: float | None = None, after: Callable[[str], None] | None = None) -> tuple[int, float]:
    """``(records, seconds)`` for handling the events in order; stops after ``budget`` seconds if given.

    Events are kept as the JSON text Lambda receives and decoded just before each call,
    outside the timing: the handler then sees young objects, as in Lambda, instead of a
    heap of every batch of the run for the garbage collector to walk. ``after`` runs after
    each batch, outside the timing. cdc-router must answer every batch with no failures:
    a benchmark of failed batches measures nothing.
    """
    records, elapsed, context = 0, 0.0, LambdaContext()
    for payload in payloads:
        event = json.loads(payload)
        start = time.perf_counter()
        response = handler(event, context)
        elapsed += time.perf_counter() - start
        if expect_response and response != {"batchItemFailures": []}:
            raise RuntimeError(f"the handler reported failures: {response}")
        records += len(event["Records"])
        if after is not None:
            after(payload)
        if budget is not None and elapsed >= budget:
            break
    return records, elapsed


class DrySink(PostgresSink):
    """The Postgres sink with the database taken out: statements and parameters are built, nothing is sent."""

    def _apply(self, batches: Sequence[RouteBatch]) -> dict[str, RouteStats]:
        stats = {}
        for batch in batches:
            if batch.changes:
                self._params(batch.route, batch.changes)
            upserts = sum(1 for change in batch.changes if change.op != DELETE)
            stats[batch.route.name] = RouteStats(upserted=upserts, deleted=len(batch.changes) - upserts)
        letters = [letter for batch in batches for letter in batch.dead_letters]
        if letters:
            self._encode_dead_letters(letters)
        return stats


_COLD_START = """\
import time
start = time.perf_counter()
import handlers.lambda_handler
print(time.perf_counter() - start)
"""


def cold_start(env: dict[str, str], runs: int = 7) -> dict[str, float]:
    """Milliseconds to import the handler module and build its configuration, in fresh processes."""
    env = {**os.environ, **env}
    subprocess.run([sys.executable, "-c", _COLD_START], env=env, cwd=ROOT, check=True, capture_output=True)  # .pyc
    samples = []
    for _ in range(runs):
        done = subprocess.run([sys.executable, "-c", _COLD_START], env=env, cwd=ROOT, check=True,
                              capture_output=True, text=True)
        samples.append(float(done.stdout.strip().splitlines()[-1]) * 1000)
    return {"median_ms": statistics.median(samples), "min_ms": min(samples), "max_ms": max(samples),
            "runs": runs}


def quiet(logger: Any) -> None:
    """Send a Powertools logger's output to /dev/null: still formatted and written, not shown."""
    logger.registered_handler.setStream(open(os.devnull, "w"))

