"""The hand-over rule on the real Postgres: a backfilled item (an INSERT of version 0 through the
normal upsert) is written only where the target has no row and no tombstone for its key, so it
never overwrites what the stream wrote and never brings a deleted item back."""

from __future__ import annotations

from typing import Any

import pytest
from factories import Stream, event, wire

from operations.backfill import insert_record

ALICE, BOB = {"Id": 1, "empName": "alice", "empDepartment": "Ops"}, {"Id": 1, "empName": "bob", "empDepartment": "Eng"}


def backfill(pipeline: Any, *items: dict[str, Any]) -> Any:
    records = [insert_record(i, "Employees", ["Id"], wire(item)) for i, item in enumerate(items)]
    return pipeline.process_records(records)


def row(item: dict[str, Any]) -> dict[str, Any]:
    return {"Id": item["Id"], "Name": item["empName"], "Department": item["empDepartment"]}


# (deletes, the stream's records before the backfill writes ALICE, the target's rows afterwards)
CASES = [
    # an empty target: the backfill fills it in, at version 0
    ("hard", [], [row(ALICE)]),
    # the stream wrote the key first (the item changed after the scan read it): the stream's row stays
    ("hard", [("insert", BOB)], [row(BOB)]),
    # deleted after the scan read it: the tombstone keeps it deleted
    ("hard", [("insert", BOB), ("remove", BOB)], []),
    # a delete of a key the target never held still leaves a tombstone
    ("hard", [("remove", BOB)], []),
    # soft deletes: the deleted row stays deleted, with the stream's values
    ("soft", [("insert", BOB), ("remove", BOB)], [{**row(BOB), "deleted": True}]),
    ("soft", [("remove", BOB)], [{"Id": 1, "Name": None, "Department": None, "deleted": True}]),
    # deletes: ignore keeps the row the stream wrote, deleted or not
    ("ignore", [("insert", BOB), ("remove", BOB)], [row(BOB)]),
]


@pytest.mark.parametrize("deletes, before, expected", CASES)
def test_a_backfilled_item_never_beats_the_stream(pg: Any, make_pipeline: Any, deletes: str,
                                                  before: list[tuple[str, dict[str, Any]]],
                                                  expected: list[dict[str, Any]]) -> None:
    pipeline, stream = make_pipeline(pg, deletes=deletes), Stream("Employees")
    records = [stream.insert(item) if op == "insert" else stream.remove({"Id": item["Id"]}) for op, item in before]
    if records:
        assert pipeline.process(event(records)).failure is None

    result = backfill(pipeline, ALICE)

    assert result.failure is None
    rows = pg.rows("Employees", bookkeeping=True)
    if deletes == "soft":
        for found in rows:
            found["deleted"] = found.pop("_cdc_deleted_at") is not None
    assert [{k: v for k, v in r.items() if k != "_cdc_version"} for r in rows] == expected
    assert result.stats["employees"].upserted == (1 if not before else 0)
    assert result.stats["employees"].stale == (0 if not before else 1)


def test_a_backfilled_row_is_replaced_by_the_stream_and_never_by_another_backfill(pg: Any, make_pipeline: Any) -> None:
    pipeline, stream = make_pipeline(pg), Stream("Employees")
    backfill(pipeline, ALICE)
    # a replayed page (or an export older than the scan) does not touch the row
    assert backfill(pipeline, BOB).stats["employees"].stale == 1
    assert pg.rows("Employees") == [row(ALICE)]
    # any stream change is newer than version 0: an update, then a delete
    pipeline.process(event([stream.modify(BOB)]))
    assert pg.rows("Employees") == [row(BOB)]
    pipeline.process(event([stream.remove({"Id": 1})]))
    backfill(pipeline, ALICE)
    assert pg.rows("Employees") == []


def test_backfilled_items_that_fail_are_dead_lettered_one_by_one(pg: Any, make_pipeline: Any) -> None:
    pipeline = make_pipeline(pg, on_error="dead_letter")
    # Ids too large for bigint: cast errors on the key column, which has no fallback
    result = backfill(pipeline, {**ALICE, "Id": 10**20}, {**ALICE, "Id": 10**21}, {**ALICE, "Id": 2})
    assert result.failure is None and result.stats["employees"].dead_lettered == 2
    letters = pg.state("dead_letters")
    # no SequenceNumber: each is kept (the unique key on it is NULL), with the item it could not write
    assert [(d["sequence_number"], d["record"]["dynamodb"]["NewImage"]["Id"]) for d in letters] == [
        (None, {"N": str(10**20)}), (None, {"N": str(10**21)})]
    assert letters[0]["record"]["eventSource"] == "cdc-router:backfill"
    assert [r["Id"] for r in pg.rows("Employees")] == [2]
