"""Concurrent batches on one target table with overlapping keys (two shards, a redelivery beside a
retry, a backfill beside the stream), applied at the same time by separate pipelines (separate
connections, as two Lambda invocations would be). No deadlock left unhandled, no lost update.
(Two *source tables* into one target are refused by validate: their versions are not comparable.)"""

from __future__ import annotations

import random
import threading
import uuid
from typing import Any

import psycopg
import pytest
from conftest import EMPLOYEES
from factories import Stream, event
from pgfaults import RowLock, wait_until_blocked
from psycopg import sql

# The Employees route, each pipeline with an application_name of its own.
TWO_ROUTES = EMPLOYEES.replace("    state_schema: {state}\n", "    state_schema: {state}\n    application_name: {app}\n")


def pipelines(pg: Any, make_pipeline: Any, deletes: str) -> tuple[Any, Any]:
    """Two pipelines on the same config: two containers, two connections."""
    apps = [f"cdc-conc-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    return tuple(make_pipeline(pg, template=TWO_ROUTES, deletes=deletes, app=app) for app in apps)


def test_stale_upsert_racing_a_hard_delete_does_not_resurrect_the_row(pg: Any, make_pipeline: Any) -> None:
    # GIVEN row 1 at version 100, and a third session holding its row lock so both writers queue behind it
    deleter, upserter = pipelines(pg, make_pipeline, "hard")
    employees, payroll = Stream("Employees", start=100), Stream("Employees", start=200)
    assert deleter.process(event([employees.insert({"Id": 1, "empName": "a", "empDepartment": "x"})])).response == {
        "batchItemFailures": []}
    remove = Stream("Employees", start=300).remove({"Id": 1})           # version 300
    stale = payroll.insert({"Id": 1, "empName": "stale", "empDepartment": "y"})  # version 200: older
    lock = RowLock(pg.url, pg.schema, "Employees", "Id", 1)
    results: dict[str, Any] = {}
    threads = [threading.Thread(target=lambda: results.update(delete=deleter.process(event([remove]))))]
    threads.append(threading.Thread(target=lambda: results.update(upsert=upserter.process(event([stale])))))
    try:
        # WHEN the delete queues first, then the stale upsert, and the lock is released
        threads[0].start()
        wait_until_blocked(pg.conn, deleter.sinks["aurora"].config.options["application_name"])
        threads[1].start()
        wait_until_blocked(pg.conn, upserter.sinks["aurora"].config.options["application_name"])
    finally:
        lock.release()
    for thread in threads:
        thread.join(30)
    # THEN the newer change (the delete) wins, as it would applied one after the other
    assert [r.response for r in results.values()] == [{"batchItemFailures": []}] * 2
    assert pg.rows("Employees") == []


def histories(rounds: int, keys: int, per_batch: int, seed: int) -> list[tuple[list, list]]:
    """Per round, one batch for each source table over the same keys, with versions interleaved across
    the two (as if one clock ordered every change): the newest change of a key is the one to keep."""
    rng, version = random.Random(seed), 10**20
    streams = {"Employees": Stream("Employees"), "Payroll": Stream("Employees")}  # two writers of one table
    plan = []
    for _ in range(rounds):
        batches: dict[str, list] = {"Employees": [], "Payroll": []}
        for _ in range(2 * per_batch):
            version += 100
            table, key = rng.choice(list(batches)), rng.randint(1, keys)
            stream = streams[table]
            record = (stream.remove({"Id": key}, sequence=version) if rng.random() < 0.3 else
                      stream.insert({"Id": key, "empName": f"{table[0]}{version % 10**8}", "empDepartment": "x"},
                                    sequence=version))
            batches[table].append(record)
        plan.append((batches["Employees"], batches["Payroll"]))
    return plan


def deliver(pipeline: Any, batch: list, outcomes: list[str]) -> None:
    """As Lambda does: retry from the reported record until the batch is through."""
    for _ in range(50):
        result = pipeline.process(event(batch))
        if result.failure is None:
            return
        assert result.failure.transient, result.failure.reason  # a deadlock is transient: retried
        outcomes.append(result.failure.reason)
        batch = batch[[r["dynamodb"]["SequenceNumber"] for r in batch].index(
            result.response["batchItemFailures"][0]["itemIdentifier"]):]
    raise AssertionError(f"batch still failing after 50 retries: {outcomes[-1]}")


@pytest.mark.parametrize("deletes", ["hard", "soft", "ignore"])
def test_two_routes_writing_one_table_at_once_lose_no_update(pg: Any, make_pipeline: Any, deletes: str) -> None:
    # GIVEN two pipelines (two containers, two connections) whose routes feed one table with overlapping keys
    first, second = pipelines(pg, make_pipeline, deletes)
    plan = histories(rounds=30, keys=12, per_batch=40, seed=8)
    barrier, retried = threading.Barrier(2), []

    def run(pipeline: Any, side: int) -> None:
        for batches in plan:
            barrier.wait(10)  # both batches of a round start together
            deliver(pipeline, batches[side], retried)

    threads = [threading.Thread(target=run, args=(p, i)) for i, p in enumerate((first, second))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(thread.is_alive() for thread in threads)
    # THEN every key holds its newest change, whichever side wrote it and whatever retries it took
    newest: dict[int, dict] = {}
    for record in sorted((r for batches in plan for side in batches for r in side),
                         key=lambda r: int(r["dynamodb"]["SequenceNumber"])):
        newest[int(record["dynamodb"]["Keys"]["Id"]["N"])] = record
    rows = {r["Id"]: r for r in pg.rows("Employees", bookkeeping=True)}
    for key, record in newest.items():
        if record["eventName"] == "REMOVE" and deletes != "ignore":
            assert key not in rows or rows[key]["_cdc_deleted_at"] is not None
        elif record["eventName"] == "REMOVE":
            continue  # ignored: the row keeps an older upsert
        else:
            assert rows[key]["Name"] == record["dynamodb"]["NewImage"]["empName"]["S"]
        if key in rows:
            assert rows[key]["_cdc_version"] == int(record["dynamodb"]["SequenceNumber"])
    assert all(key in newest for key in rows)
    # AND no writer ever deadlocked the other: rows are locked in one order by every route (issue 12, finding 10)
    assert retried == []


# Writer B gives up on a lock after 20 s: if it queued behind writer A, it fails instead of hanging.
BOUNDED = TWO_ROUTES.replace("    application_name: {app}\n", "    application_name: {app}\n    lock_timeout_ms: 20000\n")


def blocked_writer(pg: Any, make_pipeline: Any) -> tuple[Any, Any, Stream]:
    """Writers A and B, and rows 1..1000 written by A (version 100 on)."""
    apps = [f"cdc-conc-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    a, b = (make_pipeline(pg, template=template, deletes="hard", app=app)
            for template, app in zip((TWO_ROUTES, BOUNDED), apps))
    stream = Stream("Employees", start=100)
    seed = [stream.insert({"Id": k, "empName": f"v{k}", "empDepartment": "x"}) for k in range(1, 1001)]
    assert a.process(event(seed)).response == {"batchItemFailures": []}
    return a, b, stream


def waiting(pg: Any, app: str) -> list[str]:
    """The lock types a writer's backend waits on now."""
    rows = pg.conn.execute("SELECT l.locktype FROM pg_stat_activity s JOIN pg_locks l ON l.pid = s.pid AND NOT l.granted "
                           "WHERE s.application_name = %s", (app,)).fetchall()
    return [r["locktype"] for r in rows]


def test_writers_of_disjoint_keys_of_a_hard_delete_table_do_not_wait_on_each_other(pg: Any, make_pipeline: Any) -> None:
    # GIVEN writer A mid-batch on the odd keys 1..999 (held up by a row lock on key 1, its locks taken)
    a, b, stream = blocked_writer(pg, make_pipeline)
    app_a = a.sinks["aurora"].config.options["application_name"]
    odd = [stream.modify({"Id": k, "empName": f"a{k}", "empDepartment": "x"}) for k in range(1, 1000, 2)]
    lock = RowLock(pg.url, pg.schema, "Employees", "Id", 1)
    results: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: results.update(a=a.process(event(odd))))
    try:
        thread.start()
        wait_until_blocked(pg.conn, app_a)
        # WHEN writer B applies a batch of the even keys, upserts and deletes, while A's transaction is open
        even = [stream.remove({"Id": k}) if k % 10 == 0 else
                stream.modify({"Id": k, "empName": f"b{k}", "empDepartment": "y"}) for k in range(2, 1001, 2)]
        done = b.process(event(even))
        # THEN B completes without waiting for A, which is still waiting on the row lock alone
        assert done.response == {"batchItemFailures": []}, done.failure
        assert waiting(pg, app_a) == ["transactionid"]
    finally:
        lock.release()
    thread.join(30)
    assert results["a"].response == {"batchItemFailures": []}
    rows = {r["Id"]: r["Name"] for r in pg.rows("Employees")}
    assert rows == {k: ("a" if k % 2 else "b") + str(k) for k in range(1, 1001) if k % 10}


def test_writers_of_overlapping_keys_wait_for_each_other_and_converge(pg: Any, make_pipeline: Any) -> None:
    # GIVEN writer A mid-batch on keys 1..500 (held up by a row lock on key 1, its locks taken)
    a, b, stream = blocked_writer(pg, make_pipeline)
    apps = [p.sinks["aurora"].config.options["application_name"] for p in (a, b)]
    older = Stream("Employees", start=50_000)  # B's changes are older than A's, which come later on the clock
    b_batch = [older.remove({"Id": 2}), older.insert({"Id": 3000, "empName": "b3000", "empDepartment": "y"}),
               older.modify({"Id": 400, "empName": "b400", "empDepartment": "y"})]
    a_batch = [Stream("Employees", start=90_000).modify({"Id": k, "empName": f"a{k}", "empDepartment": "x"})
               for k in range(1, 501)]
    lock = RowLock(pg.url, pg.schema, "Employees", "Id", 1)
    results: dict[str, Any] = {}
    threads = [threading.Thread(target=lambda: results.update(a=a.process(event(a_batch)))),
               threading.Thread(target=lambda: results.update(b=b.process(event(b_batch))))]
    try:
        threads[0].start()
        wait_until_blocked(pg.conn, apps[0])
        # WHEN writer B applies a batch sharing keys 2 and 400 with A's
        threads[1].start()
        wait_until_blocked(pg.conn, apps[1])
        # THEN B waits for A's key locks (not on a row: it has not touched one yet)
        assert waiting(pg, apps[1]) == ["advisory"]
    finally:
        lock.release()
    for thread in threads:
        thread.join(30)
    assert [r.response for r in results.values()] == [{"batchItemFailures": []}] * 2
    # AND the table holds the newest change of every key: A's upserts, B's new key 3000
    rows = {r["Id"]: r["Name"] for r in pg.rows("Employees")}
    assert rows == {**{k: f"v{k}" for k in range(501, 1001)}, **{k: f"a{k}" for k in range(1, 501)}, 3000: "b3000"}


def test_a_writer_does_not_queue_behind_another_holding_the_routes_progress_row(pg: Any, make_pipeline: Any) -> None:
    # GIVEN the route's progress row held by another writer's open transaction
    a, b, stream = blocked_writer(pg, make_pipeline)
    progress = sql.Identifier(pg.state_schema, "route_progress")
    holder = psycopg.connect(pg.url)
    before = holder.execute(sql.SQL('SELECT "version" FROM {} WHERE "route" = %s FOR UPDATE').format(progress),
                            ("employees",)).fetchone()
    try:
        # WHEN writer B applies a batch
        done = b.process(event([stream.modify({"Id": 7, "empName": "b7", "empDepartment": "y"})]))
        # THEN it completes (its lock_timeout would fail it had it waited) and leaves the row to the holder
        assert done.response == {"batchItemFailures": []}, done.failure
    finally:
        holder.rollback()
        holder.close()
    assert {r["Id"]: r["Name"] for r in pg.rows("Employees")}[7] == "b7"
    assert pg.conn.execute(sql.SQL('SELECT "version" FROM {}').format(progress)).fetchone()["version"] == before[0]
    # AND its next batch records its progress again
    last = stream.modify({"Id": 8, "empName": "b8", "empDepartment": "y"})
    assert b.process(event([last])).response == {"batchItemFailures": []}
    assert pg.conn.execute(sql.SQL('SELECT "version" FROM {}').format(progress)).fetchone()["version"] == int(
        last["dynamodb"]["SequenceNumber"])
