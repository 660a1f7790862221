"""The benchmark's own schema in the target database: tables reset and prefilled with COPY.

Prefilled rows are real route output: a pool of generated items goes through the route's
transform once, the server renders the pool as COPY text, and the prefill repeats those
lines under new keys. A million rows then cost one COPY, not a million transforms.
"""

from __future__ import annotations

import os
import platform
import random
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
from psycopg import sql

from bench.workload import Workload
from router.attrs import dumps_exact
from router.model import VERSION_COLUMN, Config, Route
from router.modes import SourceKind
from router.records import ChangeRecord
from router.transform import RouteTransform
from sinks.postgres import PostgresSink, statements

POOL = 1000                 # distinct prefill rows, repeated under new keys
CHUNK = 20_000              # COPY lines per write


def columns(route: Route) -> list[str]:
    """The columns the route writes, then the version: the order of ``copy_row``."""
    return [name for name, _ in statements.written_columns(route)] + [VERSION_COLUMN]


def copy_row(route: Route, row: dict[str, Any], version: int) -> tuple[Any, ...]:
    """A transformed row as COPY values: json columns as exact JSON text (``json`` would make floats)."""
    json_columns = {name for name, type_name in statements.written_columns(route) if type_name in ("json", "jsonb")}
    values = [dumps_exact(row[name]) if name in json_columns and row[name] is not None else row[name]
              for name, _ in statements.written_columns(route)]
    return (*values, version)


def transformed_rows(route: Route, workload: Workload, count: int, seed: int = 11) -> list[dict[str, Any]]:
    """``count`` rows of generated items, through the route's own transform."""
    rng, transform = random.Random(seed), RouteTransform(route)
    rows = []
    for i in range(1, count + 1):
        record = ChangeRecord(0, {}, workload.source, event_name="INSERT", keys=workload.keys(i),
                              new_image=workload.item(i, rng, 0), sequence_number="1", version=1,
                              source=SourceKind.BACKFILL)  # version 1 whatever the route's version source
        change = transform(record)
        assert change is not None
        rows.append(change.row)
    return rows


class BenchDatabase:
    """An autocommit connection for set-up work, and the schema the benchmark owns."""

    def __init__(self, url: str, config: Config):
        self.url, self.config = url, config
        self.sink_config = next(iter(config.sinks.values()))
        self.state_schema: str = self.sink_config.options["state_schema"]
        self.conn = psycopg.connect(url, autocommit=True)
        self._pool_lines: dict[str, list[str]] = {}

    def create(self) -> None:
        with PostgresSink(self.sink_config, list(self.config.routes.values())) as sink:
            sink.apply_ddl()

    def drop(self) -> None:
        schemas = {self.state_schema} | {route.schema for route in self.config.routes.values()}
        for schema in sorted(schemas):
            self.conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
        self.conn.close()

    def reset(self, route: Route, workload: Workload, prefill: int, *also: sql.Identifier) -> None:
        """Empty the sink's state; fill the route's table, and ``also`` tables shaped like it, with items 1..prefill."""
        state = [sql.Identifier(self.state_schema, name) for name in (statements.TOMBSTONES, statements.DEAD_LETTERS)]
        self.conn.execute(sql.SQL("TRUNCATE {}").format(sql.SQL(", ").join(state)))
        self.fill([table(route), *also], route, workload, prefill)

    def fill(self, targets: Sequence[sql.Identifier], route: Route, workload: Workload, prefill: int) -> None:
        """Empty ``targets`` (tables shaped like the route's) and COPY items 1..prefill into each.

        The state of a table under continuous replication: written since the last checkpoint.
        After a checkpoint, the first change to each page writes the whole page to the WAL;
        a checkpoint between the prefill and the measurement would put that on nearly every
        page a big table's random modifies touch (measured on Employees at 1,000,000 rows: 1,639
        instead of 204 WAL bytes per record), where at sustained rates it is paid once per page
        per checkpoint_timeout. So the checkpoint comes first, then the COPY, then VACUUM ANALYZE
        (visibility map, statistics).
        """
        self.conn.execute(sql.SQL("TRUNCATE {}").format(sql.SQL(", ").join(targets)))
        try:
            self.conn.execute("CHECKPOINT")
        except psycopg.errors.InsufficientPrivilege:
            pass  # not a superuser: the next timed checkpoint may land inside a measurement
        for target in targets:
            if prefill:
                self.copy_lines(target, columns(route), self._prefill_lines(route, workload, prefill))
        for target in targets:
            self.conn.execute(sql.SQL("VACUUM ANALYZE {}").format(target))

    def copy_lines(self, target: sql.Composable, names: Sequence[str], lines: Iterator[str]) -> None:
        query = sql.SQL("COPY {} ({}) FROM STDIN").format(target, sql.SQL(", ").join(map(sql.Identifier, names)))
        with self.conn.cursor() as cursor, cursor.copy(query) as copy:
            chunk: list[str] = []
            for line in lines:
                chunk.append(line)
                if len(chunk) == CHUNK:
                    copy.write("".join(chunk))
                    chunk.clear()
            copy.write("".join(chunk))

    def _prefill_lines(self, route: Route, workload: Workload, count: int) -> Iterator[str]:
        pool = self._pool(route, workload)  # before the COPY starts: the connection does one thing at a time
        return (workload.key_text(i) + pool[i % POOL] for i in range(1, count + 1))

    def _pool(self, route: Route, workload: Workload) -> list[str]:
        """COPY text of POOL transformed rows without their key (``\\t...\\n``), rendered by the server."""
        key_first = len(route.key) == 1 and columns(route)[0] == route.key[0]
        assert key_first, "the benchmark's routes have a one-column key written first"
        if route.name not in self._pool_lines:
            names = columns(route)
            with self.conn.transaction():
                self.conn.execute(sql.SQL("CREATE TEMP TABLE bench_pool ON COMMIT DROP AS TABLE {} WITH NO DATA")
                                  .format(table(route)))
                with self.conn.cursor().copy(sql.SQL("COPY bench_pool ({}) FROM STDIN").format(
                        sql.SQL(", ").join(map(sql.Identifier, names)))) as copy:
                    for row in transformed_rows(route, workload, POOL):
                        copy.write_row(copy_row(route, row, version=1))
                rest = sql.SQL(", ").join(map(sql.Identifier, names[1:]))
                query = sql.SQL("COPY (SELECT {} FROM bench_pool) TO STDOUT").format(rest)
                with self.conn.cursor().copy(query) as copy:
                    text = b"".join(bytes(block) for block in copy).decode()
            self._pool_lines[route.name] = ["\t" + line + "\n" for line in text.split("\n") if line]
        return self._pool_lines[route.name]

    def machine(self) -> dict[str, Any]:
        settings = {name: self.conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()[0]
                    for name in ("server_version", "synchronous_commit", "fsync", "shared_buffers", "max_wal_size")}
        return {"cores": os.cpu_count(), "cpu": _cpu_model(), "python": platform.python_version(),
                "os": platform.platform(), "postgres": settings.pop("server_version"), **settings,
                "postgres_on": "localhost" if self.conn.info.host in ("127.0.0.1", "localhost", "::1") else "remote"}


def table(route: Route) -> sql.Identifier:
    return sql.Identifier(route.schema, route.table)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
