"""Convergence under redelivery: whatever order and multiplicity Lambda delivers a stream
in, the Postgres table ends equal to the DynamoDB table (through the route's transform)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
import pytest
from factories import Stream, event, read_stream
from moto import mock_aws
from replica import expected_rows, live_rows, scan


@pytest.fixture
def employees() -> Any:
    """A moto Employees table with a stream, and a function returning its new stream records."""
    with mock_aws():
        dynamodb = boto3.client("dynamodb")
        dynamodb.create_table(
            TableName="Employees", BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "Id", "AttributeType": "N"}],
            KeySchema=[{"AttributeName": "Id", "KeyType": "HASH"}],
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
        arn = dynamodb.describe_table(TableName="Employees")["Table"]["LatestStreamArn"]
        streams, iterators = boto3.client("dynamodbstreams"), {}
        yield dynamodb, lambda: read_stream(streams, arn, iterators)


def history(dynamodb: Any) -> None:
    """Puts, updates (with attribute removal), deletes and a re-insert over a few keys."""
    put = lambda i, name, dept: dynamodb.put_item(  # noqa: E731
        TableName="Employees", Item={"Id": {"N": str(i)}, "empName": {"S": name}, "empDepartment": {"S": dept}})
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


DELIVERIES: dict[str, Callable[[list], list[list]]] = {
    "once": lambda r: [r],
    "same batch twice": lambda r: [r, r],
    "overlapping batches": lambda r: [r[:8], r[5:], r[3:12]],
    "halves out of order": lambda r: [r[len(r) // 2:], r[: len(r) // 2]],
    "the whole batch, then a stale replay of its first half": lambda r: [r, r[: len(r) // 2]],
    "one record per batch, backwards": lambda r: [[x] for x in reversed(r)],
    "every suffix (a retry from each record)": lambda r: [r[i:] for i in range(len(r))],
}


@pytest.mark.parametrize("deletes", ["hard", "soft"])
@pytest.mark.parametrize("delivery", list(DELIVERIES))
def test_replica_equals_dynamodb(employees: Any, pg: Any, make_pipeline: Any, delivery: str, deletes: str) -> None:
    # GIVEN a history of changes on a DynamoDB table
    dynamodb, new_records = employees
    pipeline = make_pipeline(pg, deletes=deletes)
    history(dynamodb)
    records = new_records()
    assert len(records) >= 12
    # WHEN Lambda delivers its stream this way
    for batch in DELIVERIES[delivery](records):
        assert pipeline.process(event(batch)).response == {"batchItemFailures": []}
    # THEN the target holds exactly the DynamoDB items
    route = pipeline.config.routes["employees"]
    assert live_rows(pg, route) == expected_rows(route, scan(dynamodb, "Employees"))


def test_insert_for_existing_row_and_modify_for_missing_row_converge(pg: Any, make_pipeline: Any) -> None:
    pipeline = make_pipeline(pg)
    stream = Stream("Employees")
    first = stream.insert({"Id": 1, "empName": "Ana", "empDepartment": "Ops"})
    again = stream.insert({"Id": 1, "empName": "Ana", "empDepartment": "Eng"})  # INSERT over an existing row
    orphan = stream.modify({"Id": 2, "empName": "Bo", "empDepartment": "Ops"})  # MODIFY of a row never seen
    for batch in ([first], [again, orphan]):
        assert pipeline.process(event(batch)).response == {"batchItemFailures": []}
    assert pg.rows("Employees", order_by="Id") == [
        {"Id": 1, "Name": "Ana", "Department": "Eng"},
        {"Id": 2, "Name": "Bo", "Department": "Ops"},
    ]


@pytest.mark.parametrize("view", ["NEW_IMAGE", "KEYS_ONLY"])
def test_delete_then_replayed_insert_does_not_resurrect(pg: Any, make_pipeline: Any, view: str) -> None:
    pipeline = make_pipeline(pg)
    stream = Stream("Employees", view="NEW_IMAGE")
    insert = stream.insert({"Id": 1, "empName": "Ana", "empDepartment": "Ops"})
    remove = Stream("Employees", view=view, start=int(insert["dynamodb"]["SequenceNumber"]) + 1).remove({"Id": 1})
    for batch in ([insert], [remove], [insert], [insert, remove, insert]):
        assert pipeline.process(event(batch)).response == {"batchItemFailures": []}
    assert pg.rows("Employees") == []
    stats = pipeline.process(event([insert])).stats["employees"]
    assert (stats.upserted, stats.stale) == (0, 1)


def test_soft_delete_keeps_row_marked_and_reinsert_clears_it(pg: Any, make_pipeline: Any) -> None:
    pipeline = make_pipeline(pg, deletes="soft")
    stream = Stream("Employees")
    insert = stream.insert({"Id": 1, "empName": "Ana", "empDepartment": "Ops"})
    remove = stream.remove({"Id": 1}, created=1_700_000_500.0)
    pipeline.process(event([insert, remove]))
    (row,) = pg.rows("Employees", bookkeeping=True)
    assert row["_cdc_deleted_at"].timestamp() == 1_700_000_500.0
    # the insert and the delete came in one batch: the marked row keeps the inserted values
    assert (row["Name"], row["_cdc_version"]) == ("Ana", int(remove["dynamodb"]["SequenceNumber"]))
    pipeline.process(event([insert]))  # a stale replay changes nothing
    assert pg.rows("Employees", bookkeeping=True) == [row]
    pipeline.process(event([stream.insert({"Id": 1, "empName": "Ana", "empDepartment": "Eng"})]))
    (row,) = pg.rows("Employees", bookkeeping=True)
    assert (row["Department"], row["_cdc_deleted_at"]) == ("Eng", None)


def test_ignored_deletes_keep_the_last_upsert(pg: Any, make_pipeline: Any) -> None:
    pipeline = make_pipeline(pg, deletes="ignore")
    stream = Stream("Employees")
    batch = [stream.insert({"Id": 1, "empName": "Ana", "empDepartment": "Ops"}),
             stream.modify({"Id": 1, "empName": "Ana", "empDepartment": "Eng"}), stream.remove({"Id": 1})]
    assert pipeline.process(event(batch)).response == {"batchItemFailures": []}
    assert pg.rows("Employees") == [{"Id": 1, "Name": "Ana", "Department": "Eng"}]
