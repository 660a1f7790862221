"""Concurrent writers of one hard-delete table: 1, 2 and 4 processes, as Lambda invocations on
different shards are, each applying its own batches through its own pipeline and connection.

- ``disjoint``: each writer owns the keys ``k % writers == w``: no writer should ever wait on another.
- ``overlapping``: every writer draws from one hot range of ``10 x batch`` keys, with versions
  interleaved across writers as one clock would order them; they may wait on each other, but the
  table must end as the newest change of every key says (compared key by key).

While they run, a sampler reads ``pg_stat_activity`` joined with ``pg_locks`` every 10 ms and
counts writer samples waiting on a lock (``wait_event_type = 'Lock'``), by lock type. A batch that
fails transiently (a deadlock, a serialization failure) is retried from the reported record, as
Lambda does, and counted. ``python -m bench.concurrency`` runs this section alone.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from bench.workload import WORKLOADS, Workload, employee

ROUTE = "employees"  # deletes: hard
APP = "cdc-bench-writer"
SAMPLE_EVERY = 0.010
_SAMPLE = """\
SELECT a.pid, l.locktype FROM pg_stat_activity a LEFT JOIN pg_locks l ON l.pid = a.pid AND NOT l.granted
WHERE a.application_name LIKE %s AND a.state = 'active' AND a.wait_event_type = 'Lock'"""
_ACTIVE = "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE %s AND state = 'active'"


@dataclass
class Run:
    """One measurement: ``writers`` processes, disjoint or overlapping keys."""

    keys: str
    writers: int
    records: int
    seconds: float
    samples: int = 0                  # sampler rounds
    active: int = 0                   # writer samples in a statement
    waiting: int = 0                  # of those, waiting on a lock
    lock_types: dict[str, int] = field(default_factory=dict)
    retries: int = 0                  # batches retried after a transient failure (deadlock, 40001)
    mismatches: int | None = None     # keys whose row differs from their newest change (None: not checked)

    @property
    def rate(self) -> float:
        return self.records / self.seconds

    @property
    def waiting_share(self) -> float:
        return self.waiting / self.active if self.active else 0.0


def plans(workload: Workload, writers: int, batches: int, batch: int, prefill: int, overlap: bool,
          seed: int = 5) -> list[list[dict[str, Any]]]:
    """Per writer, its events: 95% upserts, 5% removes, versions from one clock across writers."""
    rng, sequence = random.Random(seed), 4_000_000_000_000_000_000_000
    hot = 10 * batch
    out: list[list[dict[str, Any]]] = [[] for _ in range(writers)]
    for _ in range(batches):
        for w in range(writers):
            records = []
            for _ in range(batch):
                sequence += rng.randint(1, 1000)
                key = (rng.randrange(hot) + 1 if overlap else
                       rng.randrange(max(prefill, hot) // writers) * writers + w + 1)
                body: dict[str, Any] = {"ApproximateCreationDateTime": 1_714_000_000, "Keys": workload.keys(key),
                                        "SequenceNumber": str(sequence), "StreamViewType": "NEW_IMAGE", "SizeBytes": 100}
                name = "REMOVE" if rng.random() < 0.05 else "MODIFY"
                if name == "MODIFY":
                    body["NewImage"] = employee(key, rng, 1)
                records.append({"eventID": f"{sequence % 16**32:032x}", "eventName": name, "eventVersion": "1.1",
                                "eventSource": "aws:dynamodb", "awsRegion": "us-east-1", "dynamodb": body,
                                "eventSourceARN": workload.arn})
            out[w].append({"Records": records})
    return out


def expected(plan: Sequence[Sequence[dict[str, Any]]]) -> dict[int, int | None]:
    """Per key touched, the version of its row at the end (None: no row)."""
    newest: dict[int, tuple[int, bool]] = {}
    for events in plan:
        for event in events:
            for record in event["Records"]:
                key, version = int(record["dynamodb"]["Keys"]["Id"]["N"]), int(record["dynamodb"]["SequenceNumber"])
                if key not in newest or newest[key][0] < version:
                    newest[key] = (version, record["eventName"] == "REMOVE")
    return {key: None if removed else version for key, (version, removed) in newest.items()}


def _writer(config_path: str, env: dict[str, str], app: str, payloads: list[str], barrier: Any, queue: Any) -> None:
    """One writer process: a pipeline of its own, then its batches in order, retried as Lambda would."""
    os.environ.update(env)
    from bench.measure import quiet
    from operations.assemble import load_config, pipeline_for
    from router.log import logger
    quiet(logger)
    config = load_config(config_path)
    for sink in config.sinks.values():
        sink.options["application_name"] = app
    pipeline = pipeline_for(config)
    pipeline.process({"Records": []})
    retries = 0
    barrier.wait(60)
    start = time.perf_counter()
    for payload in payloads:
        event = json.loads(payload)
        for _ in range(100):
            result = pipeline.process(event)
            if result.failure is None:
                break
            if not result.failure.transient:
                raise RuntimeError(result.failure.reason)
            retries += 1
            first = result.response["batchItemFailures"][0]["itemIdentifier"]
            records = event["Records"]
            event = {"Records": records[[r["dynamodb"]["SequenceNumber"] for r in records].index(first):]}
        else:
            raise RuntimeError("a batch still failing after 100 tries")
    queue.put((time.perf_counter() - start, retries))
    for sink in pipeline.sinks.values():
        sink.close()


class Sampler(threading.Thread):
    """Polls the writers' sessions until stopped: how often one waits on a lock, and on which kind."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.conn = psycopg.connect(url, autocommit=True)
        self.stop, self.samples, self.active, self.waiting = threading.Event(), 0, 0, 0
        self.types: Counter[str] = Counter()

    def run(self) -> None:
        pattern = APP + "%"
        while not self.stop.wait(SAMPLE_EVERY):
            waits = self.conn.execute(_SAMPLE, (pattern,)).fetchall()
            active = self.conn.execute(_ACTIVE, (pattern,)).fetchone()
            self.samples += 1
            self.active += int(active[0]) if active else 0
            self.waiting += len({pid for pid, _ in waits})
            self.types.update(kind or "(released)" for _, kind in waits)

    def finish(self) -> None:
        self.stop.set()
        self.join()
        self.conn.close()


def measure(url: str, db: Any, route: Any, config_path: str, env: dict[str, str], writers: int, overlap: bool,
            batches: int, batch: int, prefill: int) -> Run:
    """Reset the table to ``prefill`` rows, run the writers at once, check the table against the plan."""
    workload = WORKLOADS[ROUTE]
    plan = plans(workload, writers, batches, batch, prefill, overlap)
    db.reset(route, workload, prefill)
    context = multiprocessing.get_context("spawn")
    barrier, queue = context.Barrier(writers + 1), context.Queue()
    processes = [context.Process(target=_writer, args=(config_path, env, f"{APP}-{w}",
                                                      [json.dumps(e) for e in plan[w]], barrier, queue))
                 for w in range(writers)]
    for process in processes:
        process.start()
    sampler = Sampler(url)
    barrier.wait(120)
    start = time.perf_counter()
    sampler.start()
    results = [queue.get(timeout=1800) for _ in processes]
    seconds = time.perf_counter() - start
    sampler.finish()
    for process in processes:
        process.join(60)
        if process.exitcode:
            raise RuntimeError(f"a writer process exited with {process.exitcode}")
    records = sum(len(e["Records"]) for events in plan for e in events)
    run = Run("overlapping" if overlap else "disjoint", writers, records, seconds, sampler.samples,
              sampler.active, sampler.waiting, dict(sampler.types), sum(r for _, r in results))
    run.mismatches = mismatches(db.conn, route, expected(plan))
    return run


def mismatches(conn: psycopg.Connection[Any], route: Any, want: dict[int, int | None]) -> int:
    """Keys whose row (or its absence) differs from the newest change the writers were given."""
    table = sql.Identifier(route.schema, route.table)
    rows = dict(conn.execute(sql.SQL('SELECT "Id", "_cdc_version"::numeric FROM {} WHERE "Id" = ANY(%s)').format(table),
                             (list(want),)).fetchall())
    return sum(1 for key, version in want.items() if (None if rows.get(key) is None else int(rows[key])) != version)


def section(url: str, db: Any, config: Any, config_path: str, env: dict[str, str], writers: Sequence[int],
            batches: int, batch: int, prefill: int, log: Any = None) -> list[Run]:
    route = config.routes[ROUTE]
    runs = []
    for overlap in (False, True):
        for count in writers:
            if log:
                log(f"concurrency: {count} writer(s), {'overlapping' if overlap else 'disjoint'} keys")
            runs.append(measure(url, db, route, config_path, env, count, overlap, batches, batch, prefill))
    return runs


def table(runs: Sequence[Run], batch: int, batches: int, prefill: int) -> str:
    lines = [f"Concurrent writers of one hard-delete table ({ROUTE}; {batches} batches of {batch:,} per writer, "
             f"table of {prefill:,} rows; processes, one connection each)",
             f"{'keys':<12} {'writers':>7} | {'records/s':>9} {'x one':>6} | {'lock waits':>10} {'of active':>9} "
             f"{'by lock type':<28} | {'retries':>7} {'converged':>9}",
             "-" * 100]
    single = {r.keys: r.rate for r in runs if r.writers == 1}
    for r in runs:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(r.lock_types.items())) or "-"
        base = single.get(r.keys)
        lines.append(f"{r.keys:<12} {r.writers:>7} | {r.rate:>9,.0f} {(r.rate / base if base else 0):>5.2f}x | "
                     f"{r.waiting:>10,} {r.waiting_share:>9.0%} {kinds:<28} | {r.retries:>7} "
                     f"{'yes' if r.mismatches == 0 else f'NO ({r.mismatches})':>9}")
    lines.append(f"lock waits: writer samples (every {SAMPLE_EVERY * 1000:.0f} ms) in a statement waiting on a lock "
                 "(pg_stat_activity.wait_event_type = 'Lock', the type from pg_locks); of active: their share.")
    return "\n".join(lines)


def document(runs: Sequence[Run]) -> list[dict[str, Any]]:
    return [{**asdict(r), "records_per_second": r.rate, "waiting_share": r.waiting_share} for r in runs]


def targets(runs: Sequence[Run]) -> list[dict[str, Any]]:
    """Issue 19: with disjoint keys no writer waits on another's locks; with overlapping keys the table converges."""
    found = []
    for r in runs:
        if r.keys == "disjoint" and r.writers > 1:
            found.append({"target": f"disjoint keys, {r.writers} writers: writer samples waiting on a lock",
                          "value": r.waiting, "goal": "0", "met": r.waiting == 0})
        if r.keys == "overlapping" and r.writers > 1:
            found.append({"target": f"overlapping keys, {r.writers} writers: keys not converged",
                          "value": r.mismatches, "goal": "0", "met": r.mismatches == 0})
    return found


def main(argv: Sequence[str] | None = None) -> int:
    sizes = lambda text: [int(x) for x in text.split(",")]  # noqa: E731
    parser = argparse.ArgumentParser(prog="python -m bench.concurrency", description=__doc__.split("\n\n")[0])
    parser.add_argument("--writers", type=sizes, default=[1, 2, 4])
    parser.add_argument("--batches", type=int, default=30, help="batches per writer")
    parser.add_argument("--batch-size", type=int, default=1_000)
    parser.add_argument("--prefill", type=int, default=100_000)
    parser.add_argument("--schema", default="cdc_bench_conc")
    parser.add_argument("--json", type=Path, help="where to write the results")
    args = parser.parse_args(argv)
    url = os.environ.get("DATABASE_URL")
    if not url:
        print("python -m bench.concurrency needs DATABASE_URL=postgresql://...", file=sys.stderr)
        return 2
    from bench.__main__ import CONFIG
    env = {"CDC_BENCH_SCHEMA": args.schema, "CDC_ROUTER_CONFIG": str(CONFIG)}
    os.environ.update(env)
    from bench.db import BenchDatabase
    from operations.assemble import load_config

    config = load_config(str(CONFIG))
    db = BenchDatabase(url, config)
    db.create()
    try:
        load = os.getloadavg()
        runs = section(url, db, config, str(CONFIG), env, args.writers, args.batches, args.batch_size, args.prefill,
                       log=lambda m: print(f"... {m}", file=sys.stderr, flush=True))
        print(table(runs, args.batch_size, args.batches, args.prefill))
        print(f"load average (1 min) {load[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end")
        if args.json:
            args.json.write_text(json.dumps(document(runs), indent=2) + "\n")
    finally:
        db.drop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
