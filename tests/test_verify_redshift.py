"""Verify on a Redshift route (issue 16), through the sink's Data API path on the Redshift stand-in: an
equal pair passes; a missing row, an extra row and a changed value are each found, in full and in a
sample; a trailing space is a difference (Redshift's ``=`` ignores it); history and log tables compare
their current versions; the scratch table of expected rows is gone afterwards."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from factories import event, redshift
from moto import mock_aws
from redshift_on_postgres import ONE_ROUTE
from test_verify import Pair, counts, employee

from operations.verify import Difference, Verifier, verify_all
from operations.verify_redshift import RedshiftComparison
from sources.scan import ScanSource

OK = {"batchItemFailures": []}


@pytest.fixture
def warehouse(pg: Any, warehouse_pg: Any, redshift_shims: str,
              write_config: Callable[..., Any]) -> Iterator[Callable[..., Pair]]:
    """A DynamoDB table and its Redshift target (the Employees route, ``sink: warehouse``)."""
    made: list[Pair] = []

    def make(template: str = ONE_ROUTE, **fields: Any) -> Pair:
        fields = {"deletes": "hard", "on_error": "fail", **fields}
        path = write_config(template, pg, sink="warehouse", wschema=warehouse_pg.schema,
                            wstate=warehouse_pg.state_schema, **fields)
        made.append(Pair(pg, path, boto3.client("dynamodb"), "employees", "N", url=redshift_shims))
        return made[-1]

    with mock_aws():
        yield make
    for each in made:
        each.pipeline.close()
    scratch = pg.conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
                              "AND table_name LIKE 'cdc_router_verify_%%'", (warehouse_pg.state_schema,)).fetchall()
    assert scratch == []  # every comparison dropped its table of expected rows


def test_an_equal_pair_has_no_drift(warehouse: Any) -> None:
    employees = warehouse()
    employees.put(*(employee(i) for i in range(1, 121)))
    report = employees.verify()
    assert (report.items, counts(report), report.drift, report.differences.first) == (
        120, (120, 120, 0, 0, 0), False, [])


def test_a_missing_row_an_extra_row_and_a_changed_value_are_found(warehouse: Any) -> None:
    employees = warehouse()
    employees.put(*(employee(i) for i in range(1, 31)))
    employees.sql('DELETE FROM {} WHERE "Id" = %s', 7)                                                    # missing
    employees.sql('INSERT INTO {} ("Id", "Name", "Department", "_cdc_version") VALUES (%s, \'x\', \'Ops\', 5)', 99)
    employees.sql('UPDATE {} SET "Department" = \'Eng\' WHERE "Id" = %s', 12)                            # changed
    employees.sql('UPDATE {} SET "Name" = "Name" || \' \' WHERE "Id" = %s', 13)  # a trailing space: Redshift's = misses it

    report = employees.verify()

    assert counts(report) == (30, 30, 1, 1, 2) and report.drift
    assert report.differences.first == [
        Difference("missing", {"Id": "7"}),
        Difference("different", {"Id": "12"}, ["Department"], {"Department": "Ops"}, {"Department": "Eng"}),
        Difference("different", {"Id": "13"}, ["Name"], {"Name": "name13"}, {"Name": "name13 "}),
        Difference("extra", {"Id": "99"}),
    ]


def test_a_sample_finds_them_too(warehouse: Any) -> None:
    employees = warehouse()
    employees.put(*(employee(i) for i in range(1, 21)))
    employees.sql('DELETE FROM {} WHERE "Id" = %s', 7)
    employees.sql('INSERT INTO {} ("Id", "Name", "Department", "_cdc_version") VALUES (%s, \'x\', \'Ops\', 5)', 99)
    employees.sql('UPDATE {} SET "Department" = \'Eng\' WHERE "Id" = %s', 12)
    report = employees.verify(sample=100)  # more than the table holds: every item, every target row
    d = report.differences
    assert (report.sampled, d.missing, d.extra, d.different, report.drift) == (True, 1, 1, 1, True)
    assert Difference("extra", {"Id": 99}) in d.first


def test_soft_deleted_rows_count_as_absent(warehouse: Any) -> None:
    employees = warehouse(deletes="soft")
    employees.put(employee(1), employee(2))
    employees.dynamodb.delete_item(TableName="Employees", Key={"Id": {"N": "2"}})
    assert employees.pipeline.process(event([employees.stream.remove({"Id": 2})])).response == OK
    assert counts(employees.verify()) == (1, 1, 0, 0, 0)
    employees.sql('UPDATE {} SET "_cdc_deleted_at" = now() WHERE "Id" = %s', 1)
    assert counts(employees.verify()) == (1, 0, 1, 0, 0)


def test_an_auto_routes_added_columns_are_compared(make_both_pipeline: Any, pg: Any, warehouse_pg: Any) -> None:
    from test_auto_columns_sql import KEY, history, sessions

    records, _ = history()  # attributes of every DynamoDB type, added mid-stream
    with mock_aws():
        dynamodb = boto3.client("dynamodb")
        history.__wrapped__()  # type: ignore[attr-defined]  # the same table, in this mock
        pipeline = make_both_pipeline(pg, sessions(pg, redshift(warehouse_pg.state_schema)))
        assert pipeline.process(event(records)).failure is None
        sink, route = pipeline.sinks["target"], pipeline.config.routes["sessions"]

        def verify() -> Any:
            comparison = RedshiftComparison(sink, route)  # type: ignore[arg-type]
            try:
                return verify_all(Verifier(route, comparison, [KEY]), ScanSource(dynamodb, "Sessions", 1), 1)
            finally:
                comparison.close()
        # THEN equal values of every type (SUPER, VARBYTE, DECIMAL, BOOLEAN) compare equal, and a change is found
        first = verify()
        assert (first.drift, first.differences.first) == (False, [])
        pg.conn.execute(f'UPDATE "{pg.schema}"."sessions" SET "n" = 1 WHERE "userid" = \'u1\'')
        report = verify()
        assert (report.drift, report.differences.different, report.differences.first[0].columns) == (True, 1, ["n"])
