"""Issue 19: does the Postgres sink gain by sending a route's batch by COPY into a staging table?

``python -m bench.copy_stage`` (DATABASE_URL: a scratch database). The handler runs the bench's events
end to end; batch by batch it alternates the sink's ``_apply`` between the shipped one (the batch as one
JSON document read by ``json_to_recordset``) and a COPY variant: the same statement reading a temporary
staging table (per connection and route, ``ON COMMIT DELETE ROWS``) filled by COPY in the same
transaction. After each batch the staged COPY upsert ceiling (``bench.ceiling``) writes the same rows.
Database time of either variant: from BEGIN to COMMIT's answer, its rows already encoded (JSON text, or
COPY data: written by psycopg's ``write_row`` into the staging table and read back with COPY TO, before
the clock starts, as ``bench.ceiling`` renders its rows). COPY cannot ride a pipeline (libpq), so the COPY
variant takes two round trips more: BEGIN, the COPY, then the pipeline of the rest.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types import TypeInfo

from bench.server import _TimedConnection
from router.attrs import dumps_exact
from router.model import Route
from router.modes import Op
from router.sink import DELETE, Change, RouteBatch, RouteStats
from sinks.postgres import PostgresSink, statements, versions
from sinks.sql.rows import route_stats, tombstone_key, written_columns

ROOT = Path(__file__).resolve().parent.parent


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.copy_stage")
    parser.add_argument("--routes", type=lambda t: t.split(","), default=["employees", "wide"])
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--prefill", type=int, default=100_000)
    parser.add_argument("--batches", type=int, default=20, help="per route; the variants take turns")
    parser.add_argument("--format", choices=["text", "binary"], default="binary")
    parser.add_argument("--analyze", choices=["never", "once", "every"], default="never",
                        help="ANALYZE the staging table after its COPY: never, in each connection's first batch, always")
    parser.add_argument("--schema", default="copy_stage_bench")
    args = parser.parse_args(argv)
    url = os.environ.get("DATABASE_URL")
    if not url:
        print("needs DATABASE_URL", file=sys.stderr)
        return 2
    os.environ.update(CDC_BENCH_SCHEMA=args.schema, CDC_ROUTER_CONFIG=str(ROOT / "bench" / "tables.yaml"))
    run(url, args)
    return 0


def run(url: str, args: argparse.Namespace) -> None:
    import handlers.lambda_handler as lambda_handler
    from bench import ceiling
    from bench.db import BenchDatabase
    from bench.measure import LambdaContext, quiet
    from bench.workload import WORKLOADS, events
    from operations.assemble import load_config
    from router.log import logger

    quiet(logger)
    config = load_config(os.environ["CDC_ROUTER_CONFIG"])
    db = BenchDatabase(url, config)
    db.create()
    load = [os.getloadavg()]
    try:
        out(f"batch {args.batch:,}, prefill {args.prefill:,}, {args.batches} batches per route, COPY {args.format}")
        out(f"{'route':<10} {'variant':<6} | {'ms/batch':>8} {'db us/rec':>9} {'e2e rec/s':>9} | "
            f"{'staged db us/rec':>16} {'db ratio':>8} {'of staged':>9}")
        for name in args.routes:
            route, workload = config.routes[name], WORKLOADS[name]
            sink = lambda_handler.pipeline.sinks[route.sink]
            assert isinstance(sink, PostgresSink)
            variant = CopyVariant(sink, args.format == "binary", args.analyze)
            ceilings = ceiling.Ceilings(url, route)
            totals = {k: {"records": 0, "e2e": 0.0, "db": 0.0, "staged": 0.0} for k in ("json", "copy")}
            try:
                db.reset(route, workload, args.prefill, ceilings.staged_table)
                payloads = [json.dumps(e) for e in events(workload, args.batch, args.batches + 2, args.prefill)]
                for i, payload in enumerate(payloads):
                    kind = "copy" if i % 2 else "json"
                    variant.install(kind == "copy")
                    event = json.loads(payload)
                    before_db = variant.seconds
                    start = time.perf_counter()
                    response = lambda_handler.handler(event, LambdaContext())
                    elapsed = time.perf_counter() - start
                    assert response == {"batchItemFailures": []}, response
                    staged_before = ceilings.staged_seconds
                    ceilings.after(payload)
                    if i == 1:  # the tombstones' statistics, as autovacuum keeps them (the reset emptied the table)
                        db.conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(db.state_schema, "tombstones")))
                    if i < 2:
                        continue  # warm-up: connections, prepared statements, the staging table
                    t = totals[kind]
                    t["records"] += len(event["Records"])
                    t["e2e"] += elapsed
                    t["db"] += variant.seconds - before_db
                    t["staged"] += ceilings.staged_seconds - staged_before
            finally:
                variant.install(False)
                ceilings.close()
            for kind, t in totals.items():
                n = t["records"]
                batches = n / args.batch
                db_us, staged_us = t["db"] / n * 1e6, t["staged"] / n * 1e6
                rate, staged_rate = n / t["e2e"], n / t["staged"]
                out(f"{name:<10} {kind:<6} | {t['db'] / batches * 1000:>8.1f} {db_us:>9.1f} {rate:>9,.0f} | "
                    f"{staged_us:>16.1f} {db_us / staged_us:>8.2f} {rate / staged_rate:>9.0%}")
            encoded, copied = variant.python_us(sink.connection())
            out(f"{name:<10} Python side, CPU us/record: JSON document {encoded:.1f}, COPY rows formatted {copied:.1f}")
            variant.close()
            load.append(os.getloadavg())
        out("load average (1, 5, 15 min): " + "; ".join(", ".join(f"{x:.2f}" for x in avg) for avg in load))
    finally:
        lambda_handler.pipeline.close()
        db.drop()


def out(line: str) -> None:
    print(line, file=sys.stderr, flush=True)  # stdout carries the handler's metrics


class CopyVariant:
    """The sink's ``_apply`` with each route's rows sent by COPY into a staging table; times both variants."""

    def __init__(self, sink: PostgresSink, binary: bool, analyze: str):
        self.sink, self.binary, self.analyze, self.seconds = sink, binary, analyze, 0.0
        self._json_apply = PostgresSink._apply.__get__(sink)
        self._staged: set[tuple[int, str]] = set()
        self.samples: list[Sequence[RouteBatch]] = []
        self._plans: dict[str, StagePlan] = {}
        self._render: psycopg.Connection[Any] | None = None  # formats COPY data before the clock

    def install(self, copy: bool) -> None:
        self.sink._apply = self._copy_apply if copy else self._timed_json_apply  # type: ignore[method-assign]

    def _timed_json_apply(self, batches: Sequence[RouteBatch]) -> dict[str, RouteStats]:
        connection = self.sink.connection
        clock = self

        def timed() -> Any:
            return _TimedConnection(connection(), clock)  # type: ignore[arg-type]
        self.sink.connection = timed  # type: ignore[method-assign]
        try:
            return self._json_apply(batches)
        finally:
            del self.sink.connection

    def _plan(self, route: Route) -> StagePlan:
        if route.name not in self._plans:
            self._plans[route.name] = StagePlan(self.sink, route, self.binary)
        return self._plans[route.name]

    def _copy_apply(self, batches: Sequence[RouteBatch]) -> dict[str, RouteStats]:
        sink = self.sink
        assert not any(b.dead_letters for b in batches) and all(b.fill is None and not b.route.added for b in batches)
        conn = sink.connection()
        self.samples.append(batches)
        work, first = [], set()
        for batch in (b for b in batches if b.changes):
            plan = self._plan(batch.route)
            if self._create(conn, plan):
                first.add(plan.route.name)
            work.append((batch, plan, self.copy_data(conn, plan, batch.changes)))
        keys: dict[str, list[tuple[Any, ...]]] = {}
        for batch in batches:
            if not batch.route.versioned:
                keys.setdefault(sink._targets[batch.route.name], []).extend(c.key for c in batch.changes)
        locks = statements.batch_locks(keys)
        start = time.perf_counter()
        conn.execute("BEGIN")
        with conn.cursor() as cursor:
            for _, plan, data in work:
                with cursor.copy(plan.copy) as copy:
                    copy.write(data)
        with conn.pipeline():
            for _, plan, _ in work:
                if self.analyze == "every" or (self.analyze == "once" and plan.route.name in first):
                    conn.execute(plan.analyze)
            for lock, lock_params in locks:
                conn.execute(lock, lock_params)
            cursors = [(batch, conn.execute(plan.apply, {"target": sink._targets[batch.route.name]}, prepare=True))
                       for batch, plan, _ in work]
            conn.execute("COMMIT")
        self.seconds += time.perf_counter() - start
        stats = {}
        for batch, cursor in cursors:
            upserted, deleted = cursor.fetchone() or (0, 0)
            stats[batch.route.name] = route_stats(batch.changes, upserted, deleted)
        return stats

    def copy_data(self, conn: Any, plan: StagePlan, changes: Sequence[Change]) -> bytes:
        """The changes as COPY data: ``write_row`` (psycopg's C formatter with psycopg[binary]) into a
        staging table of a connection of its own, then COPY TO reads the data back; emptied at commit."""
        if self._render is None:
            self._render = psycopg.connect(os.environ["DATABASE_URL"], autocommit=True)
        render = self._render
        self._create(render, plan)
        with render.transaction(), render.cursor() as cursor:
            with cursor.copy(plan.copy) as copy:
                if self.binary:
                    copy.set_types(plan.oids(conn))
                for row in plan.rows(changes):
                    copy.write_row(row)
            with cursor.copy(plan.copy_out) as copy:
                return b"".join(bytes(block) for block in copy)

    def close(self) -> None:
        if self._render is not None:
            self._render.close()

    def _create(self, conn: Any, plan: StagePlan) -> bool:
        """The connection's staging table for the route; True when this call created it."""
        if (id(conn.pgconn), plan.route.name) in self._staged:
            return False
        conn.execute(plan.create)
        self._staged.add((id(conn.pgconn), plan.route.name))
        return True

    def python_us(self, conn: Any) -> tuple[float, float]:
        """CPU us per change of the sampled batches (this process only): the JSON document, and the COPY rows
        formatted (``copy_data``: includes reading the data back, so a little above the formatting alone)."""
        changes = [(b.route, b.changes) for batches in self.samples for b in batches if b.changes]
        n = sum(len(c) for _, c in changes)
        start = time.process_time()
        for route, c in changes:
            statements.encode_rows(route, c)
        encoded = time.process_time() - start
        start = time.process_time()
        for route, c in changes:
            self.copy_data(conn, self._plan(route), c)
        copied = time.process_time() - start
        return encoded / n * 1e6, copied / n * 1e6


class StagePlan:
    """One route's staging table, its COPY, its apply statement reading the table, and its rows as tuples."""

    def __init__(self, sink: PostgresSink, route: Route, binary: bool):
        self.route = route
        columns = written_columns(route)
        stage = f"cdc_stage_{route.name}"
        self.types = [statements._field_type(t) for _, t in columns] + ["numeric", "text", "timestamptz", "text", "text"]
        names = [f"c{i}" for i in range(len(columns))] + ["v", "o", "t", "k", "r"]
        self.create = sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {} ({}) ON COMMIT DELETE ROWS").format(
            sql.Identifier(stage), sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(t))
                                                      for n, t in zip(names, self.types)))
        self.analyze = sql.SQL("ANALYZE pg_temp.{}").format(sql.Identifier(stage))
        self.copy = sql.SQL("COPY {} ({}) FROM STDIN{}").format(
            sql.Identifier(stage), sql.SQL(", ").join(map(sql.Identifier, names)),
            sql.SQL(" (FORMAT BINARY)" if binary else ""))
        self.copy_out = sql.SQL("COPY {} ({}) TO STDOUT{}").format(
            sql.Identifier(stage), sql.SQL(", ").join(map(sql.Identifier, names)),
            sql.SQL(" (FORMAT BINARY)" if binary else ""))
        text = (versions.apply_statement(route) if route.versioned
                else statements.apply_statement(route, sink.state_schema)).as_string(None)
        self.apply, found = re.subn(r"SELECT \* FROM json_to_recordset\(%\(rows\)s::json\) AS d\([^\n]*\)\n",
                                    f'SELECT * FROM pg_temp."{stage}"\n', text)
        assert found == 1, text
        self._json = {i for i, (_, t) in enumerate(columns) if t in ("json", "jsonb")}
        self._names = [n for n, _ in columns]
        self._rows_plan = statements.rows_plan(route)
        self._key_fields = [(int(field[1:]), name) for field, name in self._rows_plan.key_fields]
        self._oids: list[int] | None = None

    def oids(self, conn: Any) -> list[int]:
        if self._oids is None:
            self._oids = []
            for t in self.types:
                base = re.sub(r"\(.*\)", "", t)
                info = TypeInfo.fetch(conn, base.removesuffix("[]"))
                assert info is not None, t
                self._oids.append(info.array_oid if base.endswith("[]") else info.oid)
        return self._oids

    def rows(self, changes: Sequence[Change]) -> list[list[Any]]:
        """``statements.encode_rows``'s objects as lists in the staging table's order, values left to psycopg."""
        plan, names, json_fields, width = self._rows_plan, self._names, self._json, len(self._names)
        out = []
        for change in changes:
            row = change.row
            if change.op == DELETE and change.values_from is None and not plan.versioned:
                values: list[Any] = [None] * width
                for i, name in self._key_fields:
                    values[i] = row[name]
                op, time_ = Op.DELETE.value, change.time
            else:  # a history or log delete may carry values (a log's: its OldImage), absent ones NULL
                if change.op == DELETE and plan.blank is not None:
                    row = {**plan.blank, **row}
                values = [row[name] for name in names]
                for i in json_fields:
                    if values[i] is not None:
                        values[i] = dumps_exact(values[i])
                op = (Op.DELETE if change.op == DELETE and change.values_from is None else Op.UPSERT).value
                time_ = (change.time or dt.datetime.now(dt.UTC)) if change.values_from is not None else None
            if plan.versioned:
                time_ = change.time
            values += (change.version, op, time_, tombstone_key(change.key) if plan.hard else None,
                       change.reason if plan.why else None)
            out.append(values)
        return out


if __name__ == "__main__":
    sys.exit(main())
