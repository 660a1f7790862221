"""The benchmark's sequence: set up the schema, measure every cell, the Python side and the
cold start, print and write the results, drop the schema."""

from __future__ import annotations

import argparse
import json
import os
import sys

from psycopg import sql

import handlers.lambda_handler as lambda_handler
from bench import ceiling, concurrency, python_side, report, server
from bench.db import BenchDatabase
from bench.measure import cold_start, quiet, run_handler
from bench.reference import ReferenceHandler, create_table_sql
from bench.workload import WORKLOADS, events
from operations.assemble import load_config
from router.log import logger
from sinks.postgres import PostgresSink

REFERENCE_TABLE = "reference_employees"


class Bench:
    def __init__(self, url: str, args: argparse.Namespace):
        self.url, self.args = url, args
        quiet(logger)  # the handler still formats its log lines; they just go nowhere
        self.config = load_config(os.environ["CDC_ROUTER_CONFIG"])
        self.db = BenchDatabase(url, self.config)
        self.db.create()
        self.handler = lambda_handler.handler
        self.reference: ReferenceHandler | None = None
        self.cells: list[report.Cell] = []

    def run(self) -> None:
        args, workload_stats, load_before = self.args, {}, os.getloadavg()
        for name in args.routes:
            for prefill in args.prefill:
                for batch in args.batch_sizes:
                    payloads = self._payloads(name, batch, prefill)
                    workload_stats.setdefault(name, report.workload_stats(payloads))
                    self._log(f"{name}: batch {batch:,}, prefill {prefill:,}")
                    self.cells.append(self.cell(name, batch, prefill, payloads))
        python = self.python_costs()
        writers = concurrency.section(self.url, self.db, self.config, os.environ["CDC_ROUTER_CONFIG"],
                                      {"CDC_BENCH_SCHEMA": args.schema, "CDC_ROUTER_CONFIG": os.environ["CDC_ROUTER_CONFIG"]},
                                      args.writers, args.writer_batches, args.writer_batch, args.writer_prefill, self._log)
        self._log("cold start")
        cold = cold_start({"CDC_BENCH_SCHEMA": args.schema, "CDC_ROUTER_CONFIG": os.environ["CDC_ROUTER_CONFIG"]},
                          runs=3 if args.quick else 7)
        machine = {**self.db.machine(), "load_average": {"start": load_before, "end": os.getloadavg()}}
        print(report.table(machine, self.cells, python, cold))
        print("\n" + server.table(self.cells))
        if writers:
            print("\n" + concurrency.table(writers, args.writer_batch, args.writer_batches, args.writer_prefill))
        settings = {k: (str(v) if k == "json" else v) for k, v in vars(args).items()}
        document = report.document(machine, settings, workload_stats, self.cells, python, cold)
        document["concurrency"] = concurrency.document(writers)
        document["targets"] += concurrency.targets(writers)
        print("\n" + report.describe_targets(document["targets"]))
        args.json.write_text(json.dumps(document, indent=2, default=str) + "\n")
        print(f"\nwritten: {args.json}")

    def _payloads(self, name: str, batch: int, prefill: int) -> list[str]:
        """The cell's events as the JSON text Lambda receives (see ``run_handler``)."""
        count = max(3, -(-self.args.records // batch))
        return [json.dumps(event) for event in events(WORKLOADS[name], batch, count, prefill)]

    def cell(self, name: str, batch: int, prefill: int, payloads: list[str]) -> report.Cell:
        """The handler, with the ceilings batch by batch in turn; then the per-record comparison."""
        route, workload = self.config.routes[name], WORKLOADS[name]
        ceilings = ceiling.Ceilings(self.url, route)
        try:
            self.db.reset(route, workload, prefill, ceilings.staged_table)
            with server.ServerClock(self._sink(route.sink)) as clock:
                records, seconds = run_handler(self.handler, payloads, after=ceilings.after)
        finally:
            ceilings.close()
        cell = report.Cell(name, batch, prefill, records, router=records / seconds,
                           copy=records / ceilings.copy_seconds, staged=records / ceilings.staged_seconds,
                           router_db_us=server.us_per_record(clock.seconds, records),
                           staged_db_us=server.us_per_record(ceilings.staged_seconds, records))
        if name == "employees":
            cell.reference_records, seconds = self._reference(payloads, prefill)
            cell.reference = cell.reference_records / seconds
        return cell

    @staticmethod
    def _sink(name: str) -> PostgresSink:
        sink = lambda_handler.pipeline.sinks[name]
        assert isinstance(sink, PostgresSink)
        return sink

    def _reference(self, payloads: list[str], prefill: int) -> tuple[int, float]:
        route = self.config.routes["employees"]
        target = sql.Identifier(route.schema, REFERENCE_TABLE)
        if self.reference is None:
            self.db.conn.execute(create_table_sql(route.schema, REFERENCE_TABLE))
            self.reference = ReferenceHandler(self.url, route.schema, REFERENCE_TABLE)
        self.db.fill([target], route, WORKLOADS["employees"], prefill)
        return run_handler(self.reference, payloads, expect_response=False, budget=self.args.reference_budget)

    def python_costs(self) -> list[python_side.PythonCost]:
        """CPU microseconds per record with the database taken out, at the largest batch size up to 1,000."""
        batch = max([b for b in self.args.batch_sizes if b <= 1_000] or self.args.batch_sizes)
        result = []
        for name in self.args.routes:
            self._log(f"{name}: Python side")
            payloads = self._payloads(name, batch, 0)
            result.append(python_side.measure(self.config, name, payloads, passes=1 if self.args.quick else 5))
        return result

    def close(self) -> None:
        lambda_handler.pipeline.close()
        self.db.drop()

    @staticmethod
    def _log(message: str) -> None:
        print(f"... {message}", file=sys.stderr, flush=True)

