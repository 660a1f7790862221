"""Convergence under redelivery, on every sink: whatever order and multiplicity Lambda delivers
a stream in, the target ends equal to the DynamoDB table (through the route's transform).

One scenario table and one test body, run once per sink (dlt's ``destinations_configs``
style, see sink_targets.py): the tests' in-memory sink, Postgres, and the Redshift sink with
its statements executed on the test PostgreSQL. A scenario is a stream history, the batches
Lambda delivers (record indexes, in delivery order), the route's modes, and the whole outcome:
each batch's response, the counts where they matter, the whole table and the dead letters.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from unittest.mock import ANY

import boto3
import pytest
from factories import Stream, event, read_stream
from moto import mock_aws
from replica import expected_rows, scan
from sink_targets import Target

from router.model import DELETED_COLUMN, VERSION_COLUMN

Records = list[dict[str, Any]]
T0 = dt.datetime.fromtimestamp(1_700_000_000, dt.UTC)  # a Stream record's ApproximateCreationDateTime
DYNAMODB = "the DynamoDB table's items"  # the expected rows when a history comes from moto


@dataclass(frozen=True)
class Scenario:
    history: Callable[[], Records]
    batches: Callable[[int], list[list[int]]]  # number of records -> record indexes per delivered batch
    rows: list[dict[str, Any]] | str           # the whole table afterwards (see row()), or DYNAMODB
    deletes: str = "hard"
    on_error: str = "fail"
    failed: dict[int, int] = field(default_factory=dict)  # batch -> the record reported to Lambda
    stats: dict[int, tuple[int, int, int]] = field(default_factory=dict)  # batch -> (upserted, stale, deleted)
    dead_letters: dict[int, str] = field(default_factory=dict)  # record -> what its stored error says


def row(id_: int, name: str, department: str, by: int, deleted: dt.datetime | None = None) -> dict[str, Any]:
    """A target row written by record ``by`` of the history; ``deleted``: its soft-delete mark."""
    return {"Id": id_, "Name": name, "Department": department, "by": by, "deleted": deleted}


def fixed(*batches: list[int]) -> Callable[[int], list[list[int]]]:
    return lambda _: list(batches)


# -- the spine's history: eight records over three keys ----------------------------------------

def spine() -> Records:
    """Updates, a delete, a re-insert, an INSERT of an existing key."""
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
SCHEDULES = {
    "in order": [ALL],
    "the same batch twice": [ALL, ALL],
    "overlapping batches": [ALL[:5], ALL[3:]],
    "halves replayed out of order": [ALL[4:], ALL[:4], ALL[4:]],
    "one by one, newest first": [[i] for i in reversed(ALL)],
    "MODIFY and INSERT for rows never written": [[5], [2], ALL],
    "a delete, then a replay of the older inserts": [ALL, [0], [1], [0, 1, 3]],
}
LIVE = [row(2, "Bo", "Ops2", by=6), row(3, "Cy", "Lab", by=5)]
SPINE_END = {
    "hard": LIVE,
    # kept, marked deleted; its values depend on whether its upserts came before the delete
    "soft": [row(1, ANY, ANY, by=7, deleted=T0), *LIVE],
    "ignore": [row(1, "Akua", "ExDept", by=2), *LIVE],            # the last upsert
}


# -- a history made on a moto table (NEW_AND_OLD_IMAGES), read back from its stream ------------

@functools.cache
def dynamodb_history() -> tuple[Records, list[dict[str, Any]]]:
    """Puts, updates (one removing an attribute), deletes and a re-insert over six keys; the stream
    records and the table's items at the end. Made once: every scenario on it only reads it."""
    with mock_aws():
        dynamodb = boto3.client("dynamodb")
        dynamodb.create_table(
            TableName="Employees", BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "Id", "AttributeType": "N"}],
            KeySchema=[{"AttributeName": "Id", "KeyType": "HASH"}],
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
        arn = dynamodb.describe_table(TableName="Employees")["Table"]["LatestStreamArn"]

        def put(i: int, name: str, dept: str) -> None:
            dynamodb.put_item(TableName="Employees",
                              Item={"Id": {"N": str(i)}, "empName": {"S": name}, "empDepartment": {"S": dept}})

        for i in range(1, 6):
            put(i, f"name{i}", "Ops")
        dynamodb.update_item(TableName="Employees", Key={"Id": {"N": "1"}}, UpdateExpression="SET empDepartment = :d",
                             ExpressionAttributeValues={":d": {"S": "Eng"}})
        dynamodb.update_item(TableName="Employees", Key={"Id": {"N": "3"}}, UpdateExpression="REMOVE empDepartment")
        dynamodb.delete_item(TableName="Employees", Key={"Id": {"N": "2"}})
        put(2, "back", "Sales")
        dynamodb.delete_item(TableName="Employees", Key={"Id": {"N": "4"}})
        put(6, "six", "Ops")
        dynamodb.delete_item(TableName="Employees", Key={"Id": {"N": "6"}})
        records = read_stream(boto3.client("dynamodbstreams"), arn, {})
        assert len(records) >= 12
        return records, scan(dynamodb, "Employees")


DELIVERIES: dict[str, Callable[[int], list[list[int]]]] = {
    "once": lambda n: [list(range(n))],
    "same batch twice": lambda n: [list(range(n))] * 2,
    "overlapping batches": lambda n: [list(range(8)), list(range(5, n)), list(range(3, 12))],
    "halves out of order": lambda n: [list(range(n // 2, n)), list(range(n // 2))],
    "the whole batch, then a stale replay of its first half": lambda n: [list(range(n)), list(range(n // 2))],
    "one record per batch, backwards": lambda n: [[i] for i in reversed(range(n))],
    "every suffix (a retry from each record)": lambda n: [list(range(i, n)) for i in range(n)],
}


# -- single cases -------------------------------------------------------------------------------

def insert_over_existing_and_modify_of_missing() -> Records:
    s = Stream("Employees")
    return [s.insert({"Id": 1, "empName": "Ana", "empDepartment": "Ops"}),
            s.insert({"Id": 1, "empName": "Ana", "empDepartment": "Eng"}),  # INSERT over an existing row
            s.modify({"Id": 2, "empName": "Bo", "empDepartment": "Ops"})]   # MODIFY of a row never seen


def insert_then_remove(view: str) -> Callable[[], Records]:
    """An INSERT, then its REMOVE from a stream of view type ``view``."""
    def history() -> Records:
        insert = Stream("Employees").insert({"Id": 1, "empName": "Ana", "empDepartment": "Ops"})
        start = int(insert["dynamodb"]["SequenceNumber"]) + 1
        return [insert, Stream("Employees", view=view, start=start).remove({"Id": 1})]
    return history


def soft_delete_then_reinsert() -> Records:
    s = Stream("Employees")
    return [s.insert({"Id": 1, "empName": "Ana", "empDepartment": "Ops"}),
            s.remove({"Id": 1}, created=1_700_000_500.0),
            s.insert({"Id": 1, "empName": "Ana", "empDepartment": "Eng"})]


def upsert_then_remove() -> Records:
    s = Stream("Employees")
    return [s.insert({"Id": 1, "empName": "Ana", "empDepartment": "Ops"}),
            s.modify({"Id": 1, "empName": "Ana", "empDepartment": "Eng"}), s.remove({"Id": 1})]


def poison() -> Records:
    """A record whose key cannot be cast, between two good ones."""
    s = Stream("Employees")
    return [s.insert({"Id": 1, "empName": "A"}), s.insert({"Id": "x7"}), s.insert({"Id": 3, "empName": "C"})]


SCENARIOS: dict[str, Scenario] = {
    **{f"spine, {deletes} deletes, {schedule}": Scenario(spine, fixed(*batches), SPINE_END[deletes], deletes)
       for schedule, batches in SCHEDULES.items() for deletes in ("hard", "soft", "ignore")},
    **{f"DynamoDB history, {deletes} deletes, {delivery}": Scenario(
        lambda: dynamodb_history()[0], batches, DYNAMODB, deletes)
       for delivery, batches in DELIVERIES.items() for deletes in ("hard", "soft")},
    # GIVEN the first half applied WHEN the whole history arrives THEN the counts are the guard's:
    # reduced to 3 changes (Id 1 deleted, Id 2 re-inserted, newer than its row, Id 3 upserted); then
    # the first half again is stale (1 and 2 tombstoned or newer, 3 newer)
    "spine, the counts of the guard": Scenario(
        spine, fixed(ALL[:4], ALL, ALL[:4]), LIVE, stats={1: (2, 0, 1), 2: (0, 3, 0)}),
    "an INSERT for an existing row and a MODIFY for a missing row": Scenario(
        insert_over_existing_and_modify_of_missing, fixed([0], [1, 2]),
        [row(1, "Ana", "Eng", by=1), row(2, "Bo", "Ops", by=2)]),
    # a hard delete leaves a tombstone: the insert replayed after it (alone, or in one batch) is stale
    **{f"a delete ({view}), then a replayed insert does not resurrect": Scenario(
        insert_then_remove(view), fixed([0], [1], [0], [0, 1, 0], [0]), [], stats={4: (0, 1, 0)})
       for view in ("NEW_IMAGE", "KEYS_ONLY")},
    # the insert and the delete come in one batch: the marked row keeps the inserted values; a stale
    # replay of the insert changes nothing
    "a soft delete keeps the row, marked": Scenario(
        soft_delete_then_reinsert, fixed([0, 1], [0]),
        [row(1, "Ana", "Ops", by=1, deleted=T0 + dt.timedelta(seconds=500))], "soft", stats={1: (0, 1, 0)}),
    "a re-insert clears the soft delete mark": Scenario(
        soft_delete_then_reinsert, fixed([0, 1], [0], [2]), [row(1, "Ana", "Eng", by=2)], "soft"),
    "ignored deletes keep the last upsert": Scenario(
        upsert_then_remove, fixed([0, 1, 2]), [row(1, "Ana", "Eng", by=1)], "ignore"),
    # what is before the poison record is committed; it and what follows are reported back
    "a poison record stops the batch there": Scenario(
        poison, fixed([0, 1, 2]), [row(1, "A", "NA", by=0)], failed={0: 1}),
    # ... or dead-lettered, once although delivered twice, and the stream moves on
    "a poison record is dead-lettered": Scenario(
        poison, fixed([0, 1, 2], [0, 1, 2]), [row(1, "A", "NA", by=0), row(3, "C", "NA", by=2)],
        on_error="dead_letter", dead_letters={1: "column 'Id' (from 'Id'): 'x7' does not fit bigint"}),
}


@pytest.mark.parametrize("name", SCENARIOS)
def test_converges(target: Target, name: str) -> None:
    scenario = SCENARIOS[name]
    records = scenario.history()
    pipeline = target.pipeline(deletes=scenario.deletes, on_error=scenario.on_error)
    # WHEN Lambda delivers the history in these batches
    for number, batch in enumerate(scenario.batches(len(records))):
        result = pipeline.process(event([records[i] for i in batch]))
        failed = [sequence(records[scenario.failed[number]])] if number in scenario.failed else []
        assert result.response == {"batchItemFailures": [{"itemIdentifier": s} for s in failed]}
        if number in scenario.stats:
            stats = result.stats["employees"]
            assert (stats.upserted, stats.stale, stats.deleted) == scenario.stats[number]
    # THEN the target holds exactly the rows of the DynamoDB items, and the records that can never apply
    route = pipeline.config.routes["employees"]
    rows = target.rows(route)
    if scenario.rows == DYNAMODB:
        live = [{k: r[k] for k in ("Id", "Name", "Department")} for r in rows if r[DELETED_COLUMN] is None]
        assert live == expected_rows(route, dynamodb_history()[1])
    else:
        by = {int(sequence(r)): i for i, r in enumerate(records)}
        assert [row(r["Id"], r["Name"], r["Department"], by[r[VERSION_COLUMN]], r[DELETED_COLUMN])
                for r in rows] == scenario.rows
    letters = target.dead_letters()
    assert [(d["route"], d["source_table"], str(d["sequence_number"]), d["record"]) for d in letters] == [
        ("employees", "Employees", sequence(records[i]), records[i]) for i in scenario.dead_letters]
    assert all(error in d["error"] for d, error in zip(letters, scenario.dead_letters.values()))


def sequence(record: dict[str, Any]) -> str:
    return record["dynamodb"]["SequenceNumber"]
