"""The Redshift sink's queries through the Data API, against botocore's Stubber: dead letters
listed and removed, and the drift check's catalog reads. Each is one ExecuteStatement with
named parameters (BatchExecuteStatement takes none), polled, then its result pages; the
values come back as the Data API types them (DECIMAL and TIMESTAMPTZ as strings)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from botocore.stub import ANY
from test_redshift_data_api import NOW, STATEMENT_ID, TARGET, Warehouse

from router.modes import Fix
from router.sink import Drift, StoredDeadLetter

SUBMITTED = {"Id": STATEMENT_ID, "CreatedAt": NOW, "Database": "dev", "WorkgroupName": "analytics"}
LIST = ('SELECT "id", "route", "source_table", "sequence_number", "error", JSON_SERIALIZE("record"), "failed_at" '
        'FROM "cdc_router"."dead_letters" WHERE "route" IN (:r0, :r1) '
        'ORDER BY "route", "sequence_number" NULLS LAST, "id" LIMIT 10')
COLUMNS_WHERE = "WHERE lower(table_schema) = lower(:schema) AND lower(table_name) = lower(:table)"
RECORD = '{"eventID":"e1","dynamodb":{"ApproximateCreationDateTime":1700000000.5,"SequenceNumber":"100"}}'


def _query(warehouse: Warehouse, sql: Any, parameters: dict[str, str], *pages: list[list[dict[str, Any]]],
           rows: int = 0) -> None:
    """One ExecuteStatement, a FINISHED describe, and ``pages`` of result records."""
    warehouse.stubber.add_response("execute_statement", SUBMITTED, {
        "Sql": sql, "StatementName": "cdc-router:warehouse", **TARGET,
        "Parameters": [{"name": name, "value": value} for name, value in parameters.items()]})
    warehouse.describes("FINISHED", HasResultSet=bool(pages), ResultRows=rows)
    for number, records in enumerate(pages):
        response: dict[str, Any] = {"Records": records}
        if number < len(pages) - 1:
            response["NextToken"] = f"page-{number + 2}"
        expected = {"Id": STATEMENT_ID} | ({"NextToken": f"page-{number + 1}"} if number else {})
        warehouse.stubber.add_response("get_statement_result", response, expected)


def _text(*values: Any) -> list[dict[str, Any]]:
    return [{"isNull": True} if v is None else {"longValue": v} if isinstance(v, int) else {"stringValue": v}
            for v in values]


def test_dead_letters_are_listed_through_execute_statement_page_by_page() -> None:
    warehouse = Warehouse()
    _query(warehouse, LIST, {"r0": "employees", "r1": "other"},
           [_text(7, "employees", "Employees", "100000000000000000000", "does not fit", RECORD,
                  "2024-01-02 03:04:05.5+00")],
           [_text(9, "employees", None, None, "no sequence number", "{}", "2024-01-02 03:04:06+00")])
    with warehouse.stubber:
        letters = warehouse.pipeline.sinks["warehouse"].dead_letters(["employees", "other"], limit=10)
    warehouse.stubber.assert_no_pending_responses()
    at = dt.datetime(2024, 1, 2, 3, 4, 5, 500000, tzinfo=dt.UTC)
    assert letters == [
        StoredDeadLetter(7, "employees", "Employees", 10**20, "does not fit",
                         {"eventID": "e1", "dynamodb": {"ApproximateCreationDateTime": 1700000000.5,
                                                        "SequenceNumber": "100"}}, at),
        StoredDeadLetter(9, "employees", None, None, "no sequence number", {}, at.replace(second=6, microsecond=0)),
    ]


def test_dead_letters_are_removed_by_id_and_counted() -> None:
    warehouse = Warehouse()
    _query(warehouse, 'DELETE FROM "cdc_router"."dead_letters" WHERE "id" IN (:i0, :i1)', {"i0": "7", "i1": "9"},
           rows=2)
    with warehouse.stubber:
        assert warehouse.pipeline.sinks["warehouse"].remove_dead_letters([7, 9]) == 2
    warehouse.stubber.assert_no_pending_responses()


def _catalog(warehouse: Warehouse, name: tuple[Any, ...]) -> None:
    """information_schema as Redshift answers for public.Employees: names folded to lower case."""
    where = {"schema": "public", "table": "Employees"}
    _query(warehouse, ANY, where, [_text("id", "bigint", None, 64, 0), _text("name", *name),
                                   _text("department", "character varying", 40, None, None),
                                   _text("_cdc_version", "numeric", None, 38, 0)])


def test_a_matching_redshift_table_has_no_drift() -> None:
    warehouse = Warehouse()
    _catalog(warehouse, ("character varying", 80, None, None))
    sink = warehouse.pipeline.sinks["warehouse"]
    with warehouse.stubber:
        assert sink.check(sink.routes[0]) == []
    warehouse.stubber.assert_no_pending_responses()


def test_a_redshift_column_of_another_type_is_drift_with_its_fix() -> None:
    warehouse = Warehouse()
    _catalog(warehouse, ("character varying", 20, None, None))  # varchar(20) counted in bytes: 5 characters
    sink = warehouse.pipeline.sinks["warehouse"]
    with warehouse.stubber:
        drifts = sink.check(sink.routes[0])
    # a VARCHAR's length: destructive, run alone (Redshift alters a column type outside a transaction block only)
    assert drifts == [Drift("employees", "public.Employees", "type mismatch", "Name", "VARCHAR(80)", "VARCHAR(20)",
                            ('ALTER TABLE "public"."Employees" ALTER COLUMN "Name" TYPE VARCHAR(80)',),
                            Fix.DESTRUCTIVE, drifts[0].note, alone=True)]
