"""DynamoDB tables for moto-backed tests, created the way the reference article's are."""

from __future__ import annotations

from typing import Any


def create_employees(dynamodb: Any, stream: bool = True) -> str | None:
    """The Employees table (key Id, a number), with a NEW_IMAGE stream unless ``stream`` is False.

    Returns the stream's ARN.
    """
    extra = {"StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}} if stream else {}
    table = dynamodb.create_table(
        TableName="Employees", BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "Id", "AttributeType": "N"}],
        KeySchema=[{"AttributeName": "Id", "KeyType": "HASH"}], **extra)
    return table["TableDescription"].get("LatestStreamArn")
