"""Two writers of one warehouse table at once: two shards of one DynamoDB table, or a backfill
beside the stream. Redshift enforces no primary key, so without serialization both can insert
the same key; the sink LOCKs what it writes first, so the second waits for the first."""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
from factories import Stream, event
from redshift_on_postgres import PostgresTransport, duplicate_keys
from test_redshift_sink import DOCS

from router.pipeline import Pipeline
from sinks.redshift.transport import Statement


class PausedBeforeInsert(PostgresTransport):
    """Stops inside its transaction, before the first INSERT into ``table``, until released."""

    def __init__(self, url: str, table: str):
        super().__init__(url)
        self.table, self.inside, self.release = table, threading.Event(), threading.Event()

    def _run(self, conn: psycopg.Connection[Any], statement: Statement, index: int) -> int:
        if statement.sql.startswith(f"INSERT INTO {self.table} ") and not self.inside.is_set():
            self.inside.set()
            self.release.wait(timeout=120)
        return super()._run(conn, statement, index)


def waiting_on_a_lock(url: str) -> bool:
    with psycopg.connect(url) as conn:
        return bool(conn.execute("SELECT count(*) FROM pg_locks WHERE NOT granted").fetchone()[0])  # type: ignore[index]


def test_two_writers_of_one_key_leave_one_row(pg: Any, warehouse_pg: Any, make_both_pipeline: Any) -> None:
    first, second = make_both_pipeline(pg, DOCS), make_both_pipeline(pg, DOCS)  # two Lambda containers
    table = f'"{warehouse_pg.schema}"."docs"'
    paused = PausedBeforeInsert(warehouse_pg.url, table)
    first.sinks["warehouse"].transport = paused
    newer, older = Stream("Docs", key=["id"], start=10**20 + 1000), Stream("Docs", key=["id"])  # first: newer
    results: dict[str, Any] = {}

    def write(name: str, pipeline: Pipeline, record: dict[str, Any]) -> None:
        results[name] = pipeline.process(event([record]))

    # GIVEN the first writer inside its transaction, its stale checks done, about to insert
    one = threading.Thread(target=write, args=("first", first, newer.insert({"id": 1, "body": "newer"})))
    one.start()
    assert paused.inside.wait(timeout=120)
    # WHEN a second writer applies an older change of the same key
    two = threading.Thread(target=write, args=("second", second, older.insert({"id": 1, "body": "older"})))
    two.start()
    while two.is_alive() and not waiting_on_a_lock(warehouse_pg.url):  # it finishes, or waits for the first
        time.sleep(0.05)
    paused.release.set()
    one.join(timeout=120)
    two.join(timeout=120)
    # THEN one row, the newer one; the older change was stale once the first had committed
    assert results["first"].response == results["second"].response == {"batchItemFailures": []}
    assert duplicate_keys(warehouse_pg.url, warehouse_pg.schema, "docs", ["id"]) == []
    assert [(r["id"], r["body"]) for r in warehouse_pg.rows("docs")] == [(1, "newer")]
    assert results["second"].stats["docs"].stale == 1
