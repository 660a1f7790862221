"""Verify against moto's DynamoDB and a real Postgres: an equal pair passes; a missing row, an
extra row and a changed value are each found, in full and in a sample; soft-deleted rows are
absent; values of every kind compare equal after the same casts."""

from __future__ import annotations

import dataclasses
import random
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import boto3
import pytest
from conftest import EMPLOYEES
from factories import Stream, event, wire
from moto import mock_aws
from psycopg import sql
from redshift_on_postgres import fold_identifiers, on_postgres
from test_postgres_sink import ORDERS as ALL_TYPES

from operations.assemble import load_config
from operations.backfill import route_pipeline
from operations.handover import source_table
from operations.verify import Comparison, Difference, Verifier, VerifyReport, verify_all, verify_sample
from operations.verify_postgres import PostgresComparison
from operations.verify_redshift import RedshiftComparison
from sinks.redshift import RedshiftSink
from sources.scan import ScanSource


class Pair:
    """A DynamoDB table and its target, filled alike through the route (as the stream would)."""

    def __init__(self, pg: Any, config_path: Any, dynamodb: Any, route: str, key_type: str, url: str | None = None):
        self.pg, self.dynamodb = pg, dynamodb
        config = load_config(config_path)
        self.route = config.routes[route]
        self.pipeline = route_pipeline(config, self.route)
        self.sink = self.pipeline.sinks[self.route.sink]
        self.warehouse = isinstance(self.sink, RedshiftSink)
        if self.warehouse:  # the Redshift sink's statements, on the test PostgreSQL (url: with the stand-in's shims)
            assert url is not None
            on_postgres(self.pipeline, url)
        else:
            self.sink.apply_ddl()
        key = self.route.key_columns[0].path[0]
        dynamodb.create_table(TableName=self.route.source, BillingMode="PAY_PER_REQUEST",
                              AttributeDefinitions=[{"AttributeName": key, "AttributeType": key_type}],
                              KeySchema=[{"AttributeName": key, "KeyType": "HASH"}])
        self.table = source_table(dynamodb, self.route.source)
        self.stream = Stream(self.route.source, key=[key])

    def put(self, *items: dict[str, Any], replicate: bool = True) -> None:
        for item in items:
            self.dynamodb.put_item(TableName=self.route.source, Item=wire(item))
        if replicate:
            assert self.pipeline.process(event([self.stream.insert(item) for item in items])).failure is None

    def sql(self, statement: str, *params: Any) -> None:
        """``statement`` on the route's table (``{}``); on the warehouse, quoted names folded to lower case."""
        table = sql.Identifier(self.route.schema, self.route.table.lower() if self.warehouse else self.route.table)
        self.pg.conn.execute(sql.SQL(fold_identifiers(statement) if self.warehouse else statement).format(table),
                             params)

    def verify(self, sample: int | None = None, show: int = 10) -> VerifyReport:
        comparison: Comparison = (RedshiftComparison(self.sink, self.route) if isinstance(self.sink, RedshiftSink)
                                  else PostgresComparison(self.sink, self.route))  # type: ignore[arg-type]
        verifier = Verifier(self.route, comparison, [e["AttributeName"] for e in self.table["KeySchema"]], show)
        try:
            if sample is None:
                return verify_all(verifier, ScanSource(self.dynamodb, self.route.source, 3, page_size=40), 3)
            table = source_table(self.dynamodb, self.route.source)  # ItemCount as it is now
            return verify_sample(verifier, self.dynamodb, table, sample, random.Random(1))
        finally:
            comparison.close()


@pytest.fixture
def pair(pg: Any, write_config: Callable[..., Any]) -> Iterator[Callable[..., Pair]]:
    made: list[Pair] = []

    def make(template: str = EMPLOYEES, route: str = "employees", key_type: str = "N", **fields: Any) -> Pair:
        fields.setdefault("deletes", "hard")
        fields.setdefault("on_error", "fail")
        made.append(Pair(pg, write_config(template, pg, **fields), boto3.client("dynamodb"), route, key_type))
        return made[-1]

    with mock_aws():
        yield make
    for each in made:
        each.pipeline.close()


def employee(i: int, name: str | None = None) -> dict[str, Any]:
    return {"Id": i, "empName": name or f"name{i}", "empDepartment": "Ops"}


def counts(report: VerifyReport) -> tuple[int, int, int, int, int]:
    d = report.differences
    return d.source_rows, d.target_rows, d.missing, d.extra, d.different


def test_an_equal_pair_has_no_drift(pair: Any) -> None:
    employees = pair()
    employees.put(*(employee(i) for i in range(1, 201)))
    report = employees.verify()
    assert (report.items, counts(report), report.drift, report.differences.first) == (
        200, (200, 200, 0, 0, 0), False, [])


def test_a_missing_row_an_extra_row_and_a_changed_value_are_found(pair: Any) -> None:
    employees = pair()
    employees.put(*(employee(i) for i in range(1, 51)))
    employees.sql("DELETE FROM {} WHERE \"Id\" = %s", 7)                                   # missing
    employees.sql("INSERT INTO {} VALUES (%s, 'ghost', 'Ops', 5)", 99)                     # extra
    employees.sql("UPDATE {} SET \"Department\" = 'Eng' WHERE \"Id\" = %s", 12)           # changed

    report = employees.verify()

    assert counts(report) == (50, 50, 1, 1, 1) and report.drift
    assert report.differences.first == [
        Difference("missing", {"Id": "7"}),
        Difference("different", {"Id": "12"}, ["Department"], {"Department": "Ops"}, {"Department": "Eng"}),
        Difference("extra", {"Id": "99"}),
    ]


def test_a_sample_finds_them_too(pair: Any) -> None:
    employees = pair()
    employees.put(*(employee(i) for i in range(1, 31)))
    assert not employees.verify(sample=30).drift
    employees.sql("DELETE FROM {} WHERE \"Id\" = %s", 7)
    employees.sql("INSERT INTO {} VALUES (%s, 'ghost', 'Ops', 5)", 99)
    employees.sql("UPDATE {} SET \"Name\" = 'changed' WHERE \"Id\" = %s", 12)

    # a sample as large as the table holds every item and every row
    report = employees.verify(sample=40)

    d = report.differences
    assert (report.sampled, d.missing, d.extra, d.different, report.drift) == (True, 1, 1, 1, True)
    assert Difference("extra", {"Id": 99}) in d.first


def test_soft_deleted_rows_count_as_absent(pair: Any) -> None:
    employees = pair(deletes="soft")
    employees.put(employee(1), employee(2))
    # deleted in DynamoDB and soft-deleted in the target: equal
    employees.dynamodb.delete_item(TableName="Employees", Key={"Id": {"N": "2"}})
    employees.pipeline.process(event([employees.stream.remove({"Id": 2})]))
    assert counts(employees.verify()) == (1, 1, 0, 0, 0)
    # soft-deleted in the target while DynamoDB still has it: missing
    employees.sql("UPDATE {} SET \"_cdc_deleted_at\" = now() WHERE \"Id\" = %s", 1)
    assert counts(employees.verify()) == (1, 0, 1, 0, 0)


def test_rows_marked_by_an_expiry_count_as_absent(pair: Any) -> None:
    employees = pair(EMPLOYEES + "    ttl_deletes: soft\n")  # deletes: hard; expiries marked, with the reason
    employees.put(employee(1), employee(2))
    employees.dynamodb.delete_item(TableName="Employees", Key={"Id": {"N": "2"}})
    expiry = {**employees.stream.remove({"Id": 2}), "userIdentity": {"type": "Service",
                                                                      "principalId": "dynamodb.amazonaws.com"}}
    assert employees.pipeline.process(event([expiry])).failure is None
    assert counts(employees.verify()) == (1, 1, 0, 0, 0)


def test_items_the_transform_refuses_are_drift_under_on_error_fail(pair: Any) -> None:
    employees = pair()
    employees.put(employee(1))
    employees.put({"Id": 10**20, "empName": "too big"}, replicate=False)  # does not fit bigint
    report = employees.verify()
    assert report.refused == 1 and report.drift
    assert report.differences.first == [Difference("cannot transform", {"Id": Decimal(10**20)}, source={
        "error": "column 'Id' (from 'Id'): Decimal('100000000000000000000') does not fit bigint: out of range"})]
    # under on_error: dead_letter the item is expected in the dead letters, not in the target
    employees.route = dataclasses.replace(employees.route, on_error="dead_letter")
    assert not employees.verify().drift


# every column type of the sink's round-trip test, and a json (not jsonb) and a real column
ORDERS = ALL_TYPES.replace("      due:", "      ratio:    {{type: real}}\n      document: {{type: json}}\n      due:")


def test_values_of_every_kind_compare_equal_after_the_same_casts(pair: Any) -> None:
    orders = pair(ORDERS, route="orders", key_type="S")
    order = {"orderId": str(uuid.uuid4()), "customer": {"id": 7, "name": "Zoë", "address": {"city": "Köln"}},
             "total": Decimal("12.5"), "items": [{"sku": "a", "qty": Decimal("1.0")}], "tags": {"x", "y"},
             "scores": [Decimal("1.10"), 2], "photo": b"\x00\xff", "paid": True, "createdAt": "2024-02-29T12:00:00Z",
             "updatedAt": 1_700_000_000_123, "due": "2024-03-01", "ratio": Decimal("0.1"),
             "document": {"b": 1, "a": [Decimal("2.50")]}, "note": "kept in extras"}
    orders.put(order)
    assert counts(orders.verify()) == (1, 1, 0, 0, 0)
    # and a changed json document is seen as one
    orders.sql("UPDATE {} SET \"document\" = %s", '{"a": [2.5], "b": 2}')
    assert [d.columns for d in orders.verify().differences.first] == [["document"]]
    # a uuid key is not looked up in DynamoDB: the sample says so instead of guessing
    assert "not copied as it is" in (orders.verify(sample=5).note or "")
