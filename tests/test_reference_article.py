"""The reference article's walkthrough, end to end: moto DynamoDB with a stream -> the
Lambda handler -> the real Postgres, asserting the whole target table after each step."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from factories import event, read_stream
from moto import mock_aws


@pytest.fixture
def employees_table() -> Any:
    with mock_aws():
        dynamodb = boto3.client("dynamodb")
        dynamodb.create_table(
            TableName="Employees",
            AttributeDefinitions=[{"AttributeName": "Id", "AttributeType": "N"}],
            KeySchema=[{"AttributeName": "Id", "KeyType": "HASH"}],
            ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 5},
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
        )
        yield dynamodb, boto3.client("dynamodbstreams")


def test_put_update_delete_replicate(employees_table: Any, pg: Any, lambda_handler: Any) -> None:
    dynamodb, streams = employees_table
    arn = dynamodb.describe_table(TableName="Employees")["Table"]["LatestStreamArn"]
    module = lambda_handler(pg)
    iterators: dict[str, str] = {}

    def deliver() -> dict[str, Any]:
        records = read_stream(streams, arn, iterators)
        assert records, "the DynamoDB change produced no stream record"
        return module.handler(event(records), None)

    # GIVEN the article's put-item WHEN its stream batch is handled THEN the row exists
    dynamodb.put_item(TableName="Employees", Item={
        "Id": {"N": "2001"}, "empDepartment": {"S": "AnyDept"}, "empName": {"S": "Akua"}})
    assert deliver() == {"batchItemFailures": []}
    assert pg.rows("Employees") == [{"Id": 2001, "Name": "Akua", "Department": "AnyDept"}]

    # WHEN the article's update-item runs THEN the department changes
    dynamodb.update_item(TableName="Employees", Key={"Id": {"N": "2001"}},
                         UpdateExpression="SET empDepartment = :newval",
                         ExpressionAttributeValues={":newval": {"S": "ExDept"}})
    assert deliver() == {"batchItemFailures": []}
    assert pg.rows("Employees") == [{"Id": 2001, "Name": "Akua", "Department": "ExDept"}]

    # WHEN the article's delete-item runs THEN the table is empty and a tombstone guards the key
    dynamodb.delete_item(TableName="Employees", Key={"Id": {"N": "2001"}})
    assert deliver() == {"batchItemFailures": []}
    assert pg.rows("Employees") == []
    assert [t["key"] for t in pg.state("tombstones")] == ['["2001"]']
