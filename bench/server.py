"""Database time per record: the handler's transactions against the staged COPY upsert's, on the same batches.

This machine's PostgreSQL does not load ``pg_stat_statements`` (nor can CI rely on it), so the
statements are timed client-side: for cdc-router, the sink's one round trip per batch (its pipeline:
BEGIN, the key locks, the apply statement, progress, COMMIT) from the first statement sent to the
server's last answer; the rows' JSON is encoded before it starts. For the staged COPY upsert, its
COPY into the staging table, the INSERT .. ON CONFLICT and the COMMIT (``bench.ceiling``). Both
include the time the rows take to travel to the server, over the loopback here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sinks.postgres import PostgresSink


class ServerClock:
    """Times every pipeline of one Postgres sink's connection while it is installed (``with clock:``)."""

    def __init__(self, sink: PostgresSink):
        self.sink, self.seconds = sink, 0.0
        self._connection: Callable[[], Any] = sink.connection

    def __enter__(self) -> ServerClock:
        connection = self._connection

        def timed() -> Any:
            return _TimedConnection(connection(), self)
        self.sink.connection = timed  # type: ignore[method-assign]  # wrapped on this instance only
        return self

    def __exit__(self, *exc: object) -> None:
        delattr(self.sink, "connection")


class _TimedConnection:
    """A psycopg connection whose ``pipeline()`` adds its duration to a ``ServerClock``."""

    def __init__(self, conn: Any, clock: ServerClock):
        self._conn, self._clock = conn, clock

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    @contextmanager
    def pipeline(self) -> Iterator[Any]:
        start = time.perf_counter()
        try:
            with self._conn.pipeline() as pipeline:
                yield pipeline
        finally:
            self._clock.seconds += time.perf_counter() - start


def us_per_record(seconds: float | None, records: int) -> float | None:
    return None if seconds is None or not records else seconds / records * 1e6


def table(cells: Sequence[Any]) -> str:
    """Per measured cell: database us per record of cdc-router and of the staged COPY upsert, and their ratio."""
    lines = ["Database time per record, us (client-side, each transaction from its first statement to COMMIT's answer):",
             f"{'route':<10} {'batch':>6} {'prefill':>9} | {'cdc-router':>10} {'staged upsert':>13} | {'ratio':>5}",
             "-" * 64]
    for c in cells:
        if c.router_db_us is not None and c.staged_db_us is not None:
            lines.append(f"{c.route:<10} {c.batch:>6,} {c.prefill:>9,} | {c.router_db_us:>10.1f} {c.staged_db_us:>13.1f} | "
                         f"{c.db_ratio:>5.2f}")
    return "\n".join(lines)
