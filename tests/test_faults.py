"""Faults in the real Postgres: a connection killed mid-batch, a server restart, a lock held
until lock_timeout, a statement_timeout, constraints that refuse a row.

For each: the batch is one transaction (nothing of it half-applied), the response names
the right first failed record, the next invocation reconnects and completes, transient
failures are retried and never dead-lettered, refused rows are dead-lettered when the
route asks for it.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from conftest import EMPLOYEES
from factories import Stream, event
from pgfaults import SERIALIZATION_FAILURE, SLEEP, FaultTrigger, RowLock, sink_pids, terminate, wait_until_blocked
from psycopg import sql

from router import deadline

# The shared Employees route, its sink with an application_name of its own (to find its backends) and options.
ROUTE = EMPLOYEES.replace("    state_schema: {state}\n", "    state_schema: {state}\n    application_name: {app}\n{options}")


@pytest.fixture
def target(pg: Any, make_pipeline: Any) -> Callable[..., Any]:
    """A pipeline with its own application_name (to find its backends) and three committed rows."""

    def build(on_error: str = "fail", options: str = "") -> Any:
        app = f"cdc-faults-{uuid.uuid4().hex[:8]}"
        pipeline = make_pipeline(pg, template=ROUTE, on_error=on_error, app=app, options=options)
        pipeline.app, pipeline.stream = app, Stream("Employees")
        seed = [pipeline.stream.insert({"Id": i, "empName": f"n{i}", "empDepartment": "Ops"}) for i in (1, 2, 3)]
        assert pipeline.process(event(seed)).response == {"batchItemFailures": []}
        return pipeline

    return build


def changes(pipeline: Any) -> list[dict[str, Any]]:
    """A batch that touches row 2 (the one the faults aim at) between two other changes."""
    stream = pipeline.stream
    return [stream.modify({"Id": 1, "empName": "n1", "empDepartment": "Eng"}),
            stream.modify({"Id": 2, "empName": "n2", "empDepartment": "Eng"}),
            stream.insert({"Id": 4, "empName": "n4", "empDepartment": "Eng"})]


def departments(pg: Any) -> dict[int, str]:
    return {row["Id"]: row["Department"] for row in pg.rows("Employees")}


BEFORE = {1: "Ops", 2: "Ops", 3: "Ops"}
AFTER = {1: "Eng", 2: "Eng", 3: "Ops", 4: "Eng"}


def assert_transient_then_retried(pg: Any, pipeline: Any, records: list, result: Any, fix: Callable[[], None]) -> None:
    """THEN nothing was applied, the first record is reported, nothing is dead-lettered;
    once the fault is gone, Lambda's retry from the reported record completes the batch."""
    assert result.response == {"batchItemFailures": [{"itemIdentifier": records[0]["dynamodb"]["SequenceNumber"]}]}
    assert result.failure.transient
    assert departments(pg) == BEFORE
    assert pg.state("dead_letters") == []
    fix()
    assert pipeline.process(event(records)).response == {"batchItemFailures": []}
    assert departments(pg) == AFTER


@pytest.mark.parametrize("on_error", ["fail", "dead_letter"])
def test_connection_killed_mid_batch_rolls_back_and_the_retry_completes(pg: Any, target: Any, on_error: str) -> None:
    # GIVEN row 2 locked by another session, so the batch's statement blocks in the middle of the batch
    pipeline = target(on_error)
    records = changes(pipeline)
    lock = RowLock(pg.url, pg.schema, "Employees", "Id", 2)
    outcome: list[Any] = []
    worker = threading.Thread(target=lambda: outcome.append(pipeline.process(event(records))))
    try:
        worker.start()
        # WHEN its backend is terminated, and the backend of the sink's one reconnect attempt too
        first = wait_until_blocked(pg.conn, pipeline.app)
        terminate(pg.conn, [first])
        second = wait_until_blocked(pg.conn, pipeline.app, exclude=(first,))
        terminate(pg.conn, [second])
        worker.join(30)
    finally:
        lock.release()
    assert not worker.is_alive()
    assert_transient_then_retried(pg, pipeline, records, outcome[0], fix=lambda: None)


@pytest.mark.parametrize("on_error", ["fail", "dead_letter"])
def test_server_restart_between_invocations_reconnects(pg: Any, target: Any, on_error: str) -> None:
    # The shared test server cannot be restarted; a restart looks to the client like this:
    # every backend of the sink terminated while the container is idle.
    pipeline = target(on_error)
    for department in ("Eng", "Ops", "Eng"):
        pids = sink_pids(pg.conn, pipeline.app)
        assert pids
        terminate(pg.conn, pids)
        records = [pipeline.stream.modify({"Id": i, "empName": f"n{i}", "empDepartment": department}) for i in (1, 2)]
        result = pipeline.process(event(records))
        assert result.response == {"batchItemFailures": []}
        assert departments(pg) == {1: department, 2: department, 3: "Ops"}
        assert not set(sink_pids(pg.conn, pipeline.app)) & set(pids)
    assert pg.state("dead_letters") == []


def test_a_lost_connection_is_not_retried_in_place_near_the_lambda_deadline(pg: Any, target: Any) -> None:
    # router.retry: the sink's one reconnect is not tried when fewer than 3 s of the invocation are left
    pipeline = target("fail")
    terminate(pg.conn, sink_pids(pg.conn, pipeline.app))
    records = [pipeline.stream.modify({"Id": i, "empName": f"n{i}", "empDepartment": "Legal"}) for i in (1, 2)]
    with deadline.until(time.monotonic() + 2.0):
        result = pipeline.process(event(records))
    assert result.failure is not None and result.failure.transient and departments(pg)[1] != "Legal"
    # the next invocation reconnects and applies the batch
    assert pipeline.process(event(records)).response == {"batchItemFailures": []}
    assert departments(pg)[1] == departments(pg)[2] == "Legal"


@pytest.mark.parametrize("on_error", ["fail", "dead_letter"])
def test_lock_held_until_lock_timeout_is_transient(pg: Any, target: Any, on_error: str) -> None:
    # GIVEN another session holding row 2 longer than the sink's lock_timeout
    pipeline = target(on_error, options="    lock_timeout_ms: 200\n")
    records = changes(pipeline)
    lock = RowLock(pg.url, pg.schema, "Employees", "Id", 2)
    try:
        result = pipeline.process(event(records))
    finally:
        assert_transient_then_retried(pg, pipeline, records, result, fix=lock.release)
    assert "LockNotAvailable [55P03]" in result.failure.reason


@pytest.mark.parametrize("on_error", ["fail", "dead_letter"])
def test_statement_timeout_is_transient(pg: Any, target: Any, on_error: str) -> None:
    # GIVEN a trigger that makes writing row 2 slower than the sink's statement_timeout
    pipeline = target(on_error, options="    statement_timeout_ms: 200\n")
    faults = FaultTrigger(pg.conn, pg.schema, "Employees", "Id")
    faults.arm(2, SLEEP)
    records = changes(pipeline)
    result = pipeline.process(event(records))
    assert_transient_then_retried(pg, pipeline, records, result, fix=faults.clear)
    assert "QueryCanceled [57014]" in result.failure.reason


@pytest.mark.parametrize("on_error", ["fail", "dead_letter"])
def test_unique_constraint_refuses_a_row(pg: Any, target: Any, on_error: str) -> None:
    # GIVEN a unique index on Name, and a batch whose third record takes row 1's name
    pipeline = target(on_error)
    pg.conn.execute(sql.SQL("CREATE UNIQUE INDEX ON {} ({})").format(sql.Identifier(pg.schema, "Employees"),
                                                                     sql.Identifier("Name")))
    stream = pipeline.stream
    records = [stream.modify({"Id": 2, "empName": "n2", "empDepartment": "Eng"}),
               stream.insert({"Id": 4, "empName": "n4", "empDepartment": "Eng"}),
               stream.insert({"Id": 5, "empName": "n1", "empDepartment": "Eng"}),
               stream.insert({"Id": 6, "empName": "n6", "empDepartment": "Eng"})]
    result = pipeline.process(event(records))
    if on_error == "fail":
        # THEN the records before it are committed, it is reported, nothing after it is written
        assert result.response == {"batchItemFailures": [{"itemIdentifier": records[2]["dynamodb"]["SequenceNumber"]}]}
        assert not result.failure.transient and "UniqueViolation [23505]" in result.failure.reason
        assert departments(pg) == {1: "Ops", 2: "Eng", 3: "Ops", 4: "Eng"}
        assert pg.state("dead_letters") == []
    else:
        # THEN it is dead-lettered with the reason, and the rest of the batch is written
        assert result.response == {"batchItemFailures": []}
        assert departments(pg) == {1: "Ops", 2: "Eng", 3: "Ops", 4: "Eng", 6: "Eng"}
        (letter,) = pg.state("dead_letters")
        assert letter["record"] == records[2] and "UniqueViolation [23505]" in letter["error"]


def refuse_banned(pg: Any) -> None:
    pg.conn.execute(sql.SQL("ALTER TABLE {} ADD CHECK ({} <> 'Banned')").format(
        sql.Identifier(pg.schema, "Employees"), sql.Identifier("Department")))


def refused_after_a_storable_change(pg: Any, pipeline: Any) -> list[dict[str, Any]]:
    """A CHECK constraint refusing 'Banned'; row 2 changes twice in the batch, the second time to 'Banned'."""
    refuse_banned(pg)
    stream = pipeline.stream
    return [stream.modify({"Id": 2, "empName": "n2", "empDepartment": "Eng"}),
            stream.insert({"Id": 4, "empName": "n4", "empDepartment": "Eng"}),
            stream.modify({"Id": 2, "empName": "n2", "empDepartment": "Banned"}),
            stream.insert({"Id": 5, "empName": "n5", "empDepartment": "Eng"})]


def test_refused_record_is_dead_lettered_without_losing_the_earlier_change_of_its_row(pg: Any, target: Any) -> None:
    # Found by the property test: the refused change's whole row was dropped from the batch, so row 2's
    # first (storable) change was neither written nor dead-lettered.
    pipeline = target("dead_letter")
    records = refused_after_a_storable_change(pg, pipeline)
    assert pipeline.process(event(records)).response == {"batchItemFailures": []}
    assert departments(pg) == {1: "Ops", 2: "Eng", 3: "Ops", 4: "Eng", 5: "Eng"}
    (letter,) = pg.state("dead_letters")
    assert letter["record"] == records[2]


def test_refused_record_is_the_one_reported_not_the_first_change_of_its_row(pg: Any, target: Any) -> None:
    # The batch used to be cut at row 2's first change: records before the refused one were not
    # committed, and Lambda was told to retry from a record that does not fail.
    pipeline = target("fail")
    records = refused_after_a_storable_change(pg, pipeline)
    result = pipeline.process(event(records))
    assert result.response == {"batchItemFailures": [{"itemIdentifier": records[2]["dynamodb"]["SequenceNumber"]}]}
    assert departments(pg) == {1: "Ops", 2: "Eng", 3: "Ops", 4: "Eng"}


def test_transient_error_while_finding_the_refused_row_is_reported_transient(pg: Any, target: Any) -> None:
    # Found by the property test: the row-by-row replay that finds the refused change hit a transient
    # error on an earlier row, and the batch was reported as a terminal failure with no change named.
    pipeline = target("dead_letter")
    refuse_banned(pg)
    stream = pipeline.stream
    records = [stream.remove({"Id": 3}),  # the batch statement upserts first: the CHECK fails before this delete
               stream.modify({"Id": 2, "empName": "n2", "empDepartment": "Banned"}),
               stream.insert({"Id": 4, "empName": "n4", "empDepartment": "Eng"})]
    faults = FaultTrigger(pg.conn, pg.schema, "Employees", "Id")
    faults.arm(3, SERIALIZATION_FAILURE)  # ... but the replay, in stream order, meets it first
    result = pipeline.process(event(records))
    assert result.failure.transient and "SerializationFailure [40001]" in result.failure.reason
    assert result.response == {"batchItemFailures": [{"itemIdentifier": records[0]["dynamodb"]["SequenceNumber"]}]}
    assert departments(pg) == BEFORE and pg.state("dead_letters") == []
    # WHEN the transient fault is gone THEN Lambda's retry dead-letters the refused record and writes the rest
    faults.clear()
    assert pipeline.process(event(records)).response == {"batchItemFailures": []}
    assert departments(pg) == {1: "Ops", 2: "Ops", 4: "Eng"}
    assert [letter["record"] for letter in pg.state("dead_letters")] == [records[1]]
