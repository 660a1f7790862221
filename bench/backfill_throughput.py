"""Backfill throughput: items/s from a local DynamoDB export into the local PostgreSQL.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test .venv/bin/python bench/backfill_throughput.py
    ... --items 20000 --quick     (a smaller run)

Builds an export in the real DYNAMODB_JSON layout (tests/exports.py) for the shipped
config's two routes, the flat ``employees`` and the nested ``orders`` (uuid, maps, a list,
a set, timestamps, extras), and backfills each into a scratch schema through the same
objects ``cdc-router backfill --from-export`` uses: the export reader, the route's pipeline
(transform, version-0 guarded upserts) and the positions saved in Postgres after every page.
Reading the export's gzip and JSON is included; the stream checks the command makes first
are not. Each route's tables are dropped afterwards.

``employees --columns`` then fills one column of the rows the backfill wrote, from the same export,
as ``backfill --columns Department`` does (the versions recorded first, then a guarded UPDATE of
the rows whose version is unchanged): items/s of the fill, the recording of the versions included.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from exports import write_export  # noqa: E402
from factories import wire  # noqa: E402

from operations.assemble import load_config  # noqa: E402
from operations.backfill import Backfill, fill_of, route_pipeline  # noqa: E402
from operations.backfill_checkpoints import PostgresBackfillCheckpoints  # noqa: E402
from router.log import logger  # noqa: E402
from sources.export import ExportSource  # noqa: E402

SCHEMA, STATE = "cdc_bench_backfill", "cdc_bench_backfill_state"


def employee(i: int) -> dict[str, Any]:
    return {"Id": i, "empName": f"employee {i}", "empDepartment": ("Ops", "Eng", "Sales")[i % 3]}


def order(i: int) -> dict[str, Any]:
    return {"orderId": str(uuid.UUID(int=i)), "customer": {"id": i % 5000, "name": f"customer {i % 5000}",
                                                           "address": {"city": ("Lyon", "Oslo", "Lima")[i % 3]}},
            "status": "shipped", "total": Decimal(i % 100000) / 100,
            "items": [{"sku": f"sku-{i % 97}", "qty": 1 + i % 3, "price": Decimal("9.99")}],
            "tags": {"gift", f"t{i % 7}"}, "createdAt": "2024-05-01T12:00:00Z", "updatedAt": 1714564800000 + i,
            "channel": "web"}


def measure(route_name: str, make: Callable[[int], dict[str, Any]], count: int, workers: int,
            fill: str | None = None) -> tuple[float, float | None]:
    """Items/s of the backfill into an empty table, and (``fill``: a column) of filling that column after it."""
    drop_schemas()  # a fresh target: no rows, no positions left by an interrupted run
    config = load_config(ROOT / "config" / "tables.yaml", environ={**os.environ})
    # the shipped config reads a secret: the bench writes to DATABASE_URL
    sinks = {name: dataclasses.replace(sink, options={**{k: v for k, v in sink.options.items() if k != "secret"},
                                                      "dsn": os.environ["DATABASE_URL"], "state_schema": STATE})
             for name, sink in config.sinks.items()}
    config = dataclasses.replace(config, sinks=sinks)
    route = dataclasses.replace(config.routes[route_name], schema=SCHEMA)
    with tempfile.TemporaryDirectory() as folder:
        write_export(Path(folder), route.source, [wire(make(i)) for i in range(1, count + 1)], files=8)
        source = ExportSource(folder)
        pipeline = route_pipeline(config, route)
        try:
            pipeline.sinks[route.sink].apply_ddl()
            checkpoints = PostgresBackfillCheckpoints(pipeline.sinks[route.sink])  # type: ignore[arg-type]
            checkpoints.create()
            began = time.perf_counter()
            result = Backfill(pipeline, route, source, checkpoints, workers=workers, key_names=_keys(route)).run()
            seconds = time.perf_counter() - began
            assert result.items == result.stats.upserted == count, result
            filled = None if fill is None else count / _fill(config, route, source, checkpoints, fill, workers)
        finally:
            pipeline.close()
    return count / seconds, filled


def _keys(route: Any) -> list[str]:
    """The table's key attributes: the attributes the route's key columns read."""
    return [column.path[0] for column in route.key_columns]


def _fill(config: Any, route: Any, source: Any, checkpoints: Any, column: str, workers: int) -> float:
    """Seconds to record the versions and fill ``column`` of every row from ``source``."""
    fill = fill_of(route, [column])
    pipeline = route_pipeline(config, route, fill)
    try:
        began = time.perf_counter()
        pipeline.sinks[route.sink].inner.record_versions(route)  # type: ignore[attr-defined]
        result = Backfill(pipeline, route, source, checkpoints, workers=workers, key_names=_keys(route),
                          fill=fill).run()
        seconds = time.perf_counter() - began
    finally:
        pipeline.close()
    assert result.items == result.stats.upserted, result
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000, help="items per route [100000]")
    parser.add_argument("--workers", type=int, default=2, help="data files read at once [2]")
    parser.add_argument("--repeat", type=int, default=3, help="runs per route; the median is shown [3]")
    parser.add_argument("--quick", action="store_true", help="10000 items per route, one run")
    args = parser.parse_args()
    count, repeat = (10_000, 1) if args.quick else (args.items, args.repeat)
    os.environ.setdefault("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    logger.setLevel("WARNING")  # a line per batch otherwise
    try:
        for route_name, make, fill in (("employees", employee, "Department"), ("orders", order, None)):
            runs = [measure(route_name, make, count, args.workers, fill) for _ in range(repeat)]
            for label, rates in ((route_name, sorted(r for r, _ in runs)),
                                 (f"{route_name} --columns {fill}", sorted(f for _, f in runs if f is not None))):
                if rates:
                    print(f"{label:32} {count:>8} items  median {rates[len(rates) // 2]:>9,.0f} items/s  "
                          f"(runs: {', '.join(f'{rate:,.0f}' for rate in rates)})")
    finally:
        drop_schemas()


def drop_schemas() -> None:
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        for schema in (SCHEMA, STATE):
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


if __name__ == "__main__":
    main()
