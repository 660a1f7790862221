"""Both SQL sinks converge to the DynamoDB table under Lambda's redelivery, whatever the order.

One config defines an ``aurora`` (Postgres) and a ``warehouse`` (Redshift) sink; each test
runs once per sink by changing nothing but the route's ``sink:`` line. The Redshift sink's
statements run on the test PostgreSQL (see redshift_on_postgres.py). Each case delivers
the same stream history in another schedule and asserts the whole target table.
"""

from __future__ import annotations

from typing import Any

import pytest
from factories import Stream, event
from redshift_on_postgres import BOTH_SINKS, EMPLOYEES_ROUTE, FoldedTarget

# The spine's Employees route, its sink a parameter: the only line that differs between the two runs.
ONE_ROUTE = BOTH_SINKS + EMPLOYEES_ROUTE.replace("sink: aurora", "sink: {sink}")
SINKS = ["aurora", "warehouse"]


def history() -> list[dict[str, Any]]:
    """Eight stream records over three keys: updates, a delete, a re-insert, an INSERT of an existing key."""
    s = Stream("Employees")
    return [
        s.insert({"Id": 1, "empName": "Akua", "empDepartment": "AnyDept"}),   # 0
        s.insert({"Id": 2, "empName": "Bo", "empDepartment": "Ops"}),         # 1
        s.modify({"Id": 1, "empName": "Akua", "empDepartment": "ExDept"}),    # 2
        s.insert({"Id": 3, "empName": "Cy"}),                                 # 3: no department: NA
        s.remove({"Id": 2}),                                                  # 4
        s.insert({"Id": 3, "empName": "Cy", "empDepartment": "Lab"}),         # 5: INSERT of an existing item
        s.insert({"Id": 2, "empName": "Bo", "empDepartment": "Ops2"}),        # 6: re-insert after the delete
        s.remove({"Id": 1}),                                                  # 7
    ]


ALL = list(range(8))
SCHEDULES = {  # batches of record indexes, delivered in this order
    "in order": [ALL],
    "the same batch twice": [ALL, ALL],
    "overlapping batches": [ALL[:5], ALL[3:]],
    "halves replayed out of order": [ALL[4:], ALL[:4], ALL[4:]],
    "one by one, newest first": [[i] for i in reversed(ALL)],
    "MODIFY and INSERT for rows never written": [[5], [2], ALL],
    "a delete, then a replay of the older inserts": [ALL, [0], [1], [0, 1, 3]],
}
LIVE = [{"Id": 2, "Name": "Bo", "Department": "Ops2"}, {"Id": 3, "Name": "Cy", "Department": "Lab"}]


def target(pg: Any, sink: str) -> Any:
    """The Employees table as the route names it (Redshift folds identifiers to lower case)."""
    return pg if sink == "aurora" else FoldedTarget(pg, ["Employees", "Id", "Name", "Department"])


def deliver(pipeline: Any, schedule: str) -> None:
    records = history()
    for batch in SCHEDULES[schedule]:
        assert pipeline.process(event([records[i] for i in batch])).response == {"batchItemFailures": []}


@pytest.mark.parametrize("sink", SINKS)
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_hard_deletes_converge(sink: str, schedule: str, pg: Any, make_both_pipeline: Any) -> None:
    deliver(make_both_pipeline(pg, ONE_ROUTE, sink=sink, deletes="hard"), schedule)
    assert target(pg, sink).rows("Employees", order_by="Id") == LIVE


@pytest.mark.parametrize("sink", SINKS)
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_soft_deletes_converge(sink: str, schedule: str, pg: Any, make_both_pipeline: Any) -> None:
    deliver(make_both_pipeline(pg, ONE_ROUTE, sink=sink, deletes="soft"), schedule)
    rows = target(pg, sink).rows("Employees", order_by="Id", bookkeeping=True)
    assert [{k: r[k] for k in ("Id", "Name", "Department")} for r in rows if r["_cdc_deleted_at"] is None] == LIVE
    assert [r["Id"] for r in rows if r["_cdc_deleted_at"] is not None] == [1]  # kept, marked deleted


@pytest.mark.parametrize("sink", SINKS)
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_ignored_deletes_keep_the_last_upsert(sink: str, schedule: str, pg: Any, make_both_pipeline: Any) -> None:
    deliver(make_both_pipeline(pg, ONE_ROUTE, sink=sink, deletes="ignore"), schedule)
    assert target(pg, sink).rows("Employees", order_by="Id") == [{"Id": 1, "Name": "Akua", "Department": "ExDept"}, *LIVE]


@pytest.mark.parametrize("sink", SINKS)
def test_both_sinks_count_alike(sink: str, pg: Any, make_both_pipeline: Any) -> None:
    pipeline = make_both_pipeline(pg, ONE_ROUTE, sink=sink, deletes="hard")
    records = history()
    # GIVEN the first half applied WHEN the whole history arrives THEN the counts are the guard's
    pipeline.process(event(records[:4]))
    stats = pipeline.process(event(records)).stats["employees"]
    # reduced to 3 changes: Id 1 deleted, Id 2 re-inserted (newer than its row), Id 3 upserted
    assert (stats.upserted, stats.stale, stats.deleted) == (2, 0, 1)
    stats = pipeline.process(event(records[:4])).stats["employees"]
    assert (stats.upserted, stats.stale, stats.deleted) == (0, 3, 0)  # 1 and 2 tombstoned/newer, 3 newer


@pytest.mark.parametrize("sink", SINKS)
def test_poison_record_stops_the_batch_there(sink: str, pg: Any, make_both_pipeline: Any) -> None:
    pipeline = make_both_pipeline(pg, ONE_ROUTE, sink=sink, on_error="fail")
    s = Stream("Employees")
    records = [s.insert({"Id": 1, "empName": "A"}), s.insert({"Id": "x7"}), s.insert({"Id": 3, "empName": "C"})]
    # WHEN a record whose key cannot be cast sits in the middle THEN what is before it is committed
    assert pipeline.process(event(records)).response == {
        "batchItemFailures": [{"itemIdentifier": records[1]["dynamodb"]["SequenceNumber"]}]}
    assert target(pg, sink).rows("Employees") == [{"Id": 1, "Name": "A", "Department": "NA"}]


@pytest.mark.parametrize("sink", SINKS)
def test_poison_record_is_dead_lettered(sink: str, pg: Any, warehouse_pg: Any, make_both_pipeline: Any) -> None:
    pipeline = make_both_pipeline(pg, ONE_ROUTE, sink=sink, on_error="dead_letter")
    s = Stream("Employees")
    records = [s.insert({"Id": 1, "empName": "A"}), s.insert({"Id": "x7"}), s.insert({"Id": 3, "empName": "C"})]
    for _ in range(2):  # the second delivery must not store the letter twice
        assert pipeline.process(event(records)).response == {"batchItemFailures": []}
    assert target(pg, sink).rows("Employees", order_by="Id") == [{"Id": 1, "Name": "A", "Department": "NA"},
                                                   {"Id": 3, "Name": "C", "Department": "NA"}]
    letters = (pg if sink == "aurora" else warehouse_pg).state("dead_letters")
    assert [(d["route"], d["source_table"], str(d["sequence_number"]), d["record"]) for d in letters] == [
        ("employees", "Employees", records[1]["dynamodb"]["SequenceNumber"], records[1])]
    assert "column 'Id' (from 'Id'): 'x7' does not fit bigint" in letters[0]["error"]
