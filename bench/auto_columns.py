"""``python -m bench.auto_columns``: what adding a column costs a batch (columns: auto, issue 15).

Against the Postgres at DATABASE_URL, in a schema of its own (dropped at the end): for each
batch size, the median wall time of ``Pipeline.process`` over ``--repeat`` batches of upserts
of new items, on three routes with the same five attributes:

- ``listed``: the five columns listed (no auto): the baseline;
- ``auto``: ``columns: auto``, no new attribute (the lock on the target's columns and the guard);
- on another such route (its own table), in turn: a batch that adds no column (``auto, no column
  added``) and one whose first record brings a new attribute (``auto, adds a column``: the ALTER
  TABLE and the record's row, in the batch's transaction). Its table grows a column per pair, so
  the two are compared at the same width.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from operations.assemble import parse_config, pipeline_for
from router.pipeline import Pipeline

CONFIG = """
version: 1
sinks:
  db: {{type: postgres, dsn: "{url}", schema: {schema}, state_schema: {schema}_state}}
routes:
  listed:
    source: Listed
    sink: db
    table: listed
    key: [id]
    columns: {{id: {{}}, a: {{}}, b: {{type: numeric}}, c: {{type: boolean}}, d: {{type: jsonb}}}}
  auto:
    source: Auto
    sink: db
    table: auto
    key: [id]
    columns: auto
  adding:
    source: Adding
    sink: db
    table: adding
    key: [id]
    columns: auto
"""


def record(table: str, sequence: int, item: dict[str, Any]) -> dict[str, Any]:
    return {"eventID": str(sequence), "eventName": "INSERT", "eventSource": "aws:dynamodb",
            "eventSourceARN": f"arn:aws:dynamodb:us-east-1:123456789012:table/{table}/stream/2024-01-01T00:00:00.000",
            "dynamodb": {"Keys": {"id": item["id"]}, "NewImage": item, "SequenceNumber": str(sequence),
                         "SizeBytes": 100, "StreamViewType": "NEW_IMAGE", "ApproximateCreationDateTime": 1.7e9}}


class Batches:
    def __init__(self) -> None:
        self.sequence, self.item, self.attribute = 10**20, 0, 0

    def make(self, table: str, size: int, new_attribute: bool) -> dict[str, Any]:
        records = []
        for index in range(size):
            self.sequence += 100
            self.item += 1
            item = {"id": {"S": f"k{self.item}"}, "a": {"S": "text"}, "b": {"N": "12.5"}, "c": {"BOOL": True},
                    "d": {"M": {"x": {"N": "1"}}}}
            if new_attribute and index == 0:
                self.attribute += 1
                item[f"new_{self.attribute}"] = {"S": "first"}
            records.append(record(table, self.sequence, item))
        return {"Records": records}


def measure(pipeline: Pipeline, batches: Batches, table: str, size: int, new: Sequence[bool],
            repeat: int) -> list[float]:
    """Median ms per batch for each kind in ``new`` (whether the batch brings an attribute), taken in turn."""
    times: list[list[float]] = [[] for _ in new]
    for _ in range(repeat):
        for index, adds in enumerate(new):
            event = batches.make(table, size, adds)
            start = time.perf_counter()
            result = pipeline.process(event)
            times[index].append(time.perf_counter() - start)
            assert result.failure is None, result.failure
            assert result.stats[table.lower()].columns_added == int(adds)
    return [statistics.median(kind) * 1000 for kind in times]


def main(argv: Sequence[str] | None = None, database_url: str | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.auto_columns", description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-sizes", type=lambda t: [int(x) for x in t.split(",")], default=[100, 1_000])
    parser.add_argument("--repeat", type=int, default=15, help="batches per measurement (the median is shown)")
    parser.add_argument("--schema", default="cdc_bench_auto")
    args = parser.parse_args(argv)
    url = database_url or os.environ.get("DATABASE_URL")
    if not url:
        print("python -m bench.auto_columns needs DATABASE_URL=postgresql://...", file=sys.stderr)
        return 2
    config = parse_config(CONFIG.format(url=url, schema=args.schema), "bench/auto_columns", environ={})
    pipeline = pipeline_for(config)
    try:
        for sink in pipeline.sinks.values():
            sink.apply_ddl()
        batches = Batches()
        for table in ("Listed", "Auto", "Adding"):  # warm: connection, prepared statements, the auto route's first columns
            for _ in range(2):
                assert pipeline.process(batches.make(table, 10, False)).failure is None
        print(f"{'batch':>6}  {'listed':>8}  {'auto':>8}  {'auto, no column added':>22}  {'auto, adds a column':>20}"
              f"   (median ms of {args.repeat} batches each)")
        for size in args.batch_sizes:
            [listed] = measure(pipeline, batches, "Listed", size, [False], args.repeat)
            [plain] = measure(pipeline, batches, "Auto", size, [False], args.repeat)
            same, adding = measure(pipeline, batches, "Adding", size, [False, True], args.repeat)
            print(f"{size:>6}  {listed:>8.2f}  {plain:>8.2f}  {same:>22.2f}  {adding:>20.2f}")
    finally:
        pipeline.close()
        with psycopg.connect(url, autocommit=True) as conn:
            for schema in (args.schema, f"{args.schema}_state"):
                conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
