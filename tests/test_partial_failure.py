"""Stop at the first failure: records before it committed, it reported; or, under
on_error: dead_letter, the record kept with its reason and the batch completed."""

from __future__ import annotations

from typing import Any

import pytest
from factories import Stream, event
from psycopg import sql


def batch_with_poison() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Four records; the third has an Id that is not a number (no fallback on key columns)."""
    stream = Stream("Employees")
    records = [
        stream.insert({"Id": 1, "empName": "Ana", "empDepartment": "Ops"}),
        stream.insert({"Id": 2, "empName": "Bo", "empDepartment": "Eng"}),
        stream.insert({"Id": 3, "empName": "Cy", "empDepartment": "Ops"}),
        stream.insert({"Id": 4, "empName": "Di", "empDepartment": "Eng"}),
    ]
    poison = records[2]
    poison["dynamodb"]["NewImage"]["Id"] = poison["dynamodb"]["Keys"]["Id"] = {"S": "three"}
    return records, poison


def test_poison_record_under_fail_commits_what_came_before(pg: Any, make_pipeline: Any) -> None:
    pipeline = make_pipeline(pg, on_error="fail")
    records, poison = batch_with_poison()
    # WHEN the batch is handled THEN the poison record is reported and the two before it are committed
    result = pipeline.process(event(records))
    assert result.response == {"batchItemFailures": [{"itemIdentifier": poison["dynamodb"]["SequenceNumber"]}]}
    assert "'three' does not fit bigint" in result.failure.reason
    assert pg.rows("Employees", order_by="Id") == [
        {"Id": 1, "Name": "Ana", "Department": "Ops"}, {"Id": 2, "Name": "Bo", "Department": "Eng"}]
    # WHEN Lambda retries from the reported record THEN it fails there again, without writing
    retry = pipeline.process(event(records[2:]))
    assert retry.response == result.response
    assert len(pg.rows("Employees")) == 2
    assert pg.state("dead_letters") == []


def test_poison_record_under_dead_letter_is_kept_and_the_batch_completes(pg: Any, make_pipeline: Any) -> None:
    pipeline = make_pipeline(pg, on_error="dead_letter")
    records, poison = batch_with_poison()
    result = pipeline.process(event(records))
    assert result.response == {"batchItemFailures": []}
    assert [r["Id"] for r in pg.rows("Employees", order_by="Id")] == [1, 2, 4]
    (letter,) = pg.state("dead_letters")
    assert letter["route"] == "employees" and letter["source_table"] == "Employees"
    assert letter["sequence_number"] == int(poison["dynamodb"]["SequenceNumber"])
    assert letter["record"] == poison
    assert "column 'Id' (from 'Id'): 'three' does not fit bigint: not a number" in letter["error"]
    # a redelivery of the same batch neither duplicates the dead letter nor changes the rows
    pipeline.process(event(records))
    assert len(pg.state("dead_letters")) == 1
    assert result.stats["employees"].dead_lettered == 1


@pytest.mark.parametrize("on_error", ["fail", "dead_letter"])
def test_row_rejected_by_a_database_constraint(pg: Any, make_pipeline: Any, on_error: str) -> None:
    # GIVEN a CHECK constraint on the target that one record violates
    pipeline = make_pipeline(pg, on_error=on_error)
    pg.conn.execute(sql.SQL("ALTER TABLE {} ADD CHECK ({} <> 'Banned')").format(
        sql.Identifier(pg.schema, "Employees"), sql.Identifier("Department")))
    stream = Stream("Employees")
    records = [stream.insert({"Id": i, "empName": f"n{i}", "empDepartment": "Banned" if i == 3 else "Ops"})
               for i in range(1, 6)]
    result = pipeline.process(event(records))
    ids = [r["Id"] for r in pg.rows("Employees", order_by="Id")]
    if on_error == "fail":
        # THEN everything before it is committed and it is reported
        assert result.response == {"batchItemFailures": [{"itemIdentifier": records[2]["dynamodb"]["SequenceNumber"]}]}
        assert ids == [1, 2]
        assert "CheckViolation" in result.failure.reason
    else:
        # THEN it is dead-lettered and the rest of the batch is written
        assert result.response == {"batchItemFailures": []}
        assert ids == [1, 2, 4, 5]
        (letter,) = pg.state("dead_letters")
        assert letter["record"] == records[2] and "check constraint" in letter["error"]


def test_unreachable_database_reports_the_first_record(pg: Any, make_pipeline: Any, monkeypatch: Any) -> None:
    pipeline = make_pipeline(pg)
    monkeypatch.setitem(pipeline.sinks["aurora"].config.options, "dsn",
                        "postgresql://cdc:s3cr3t-pw@127.0.0.1:1/nowhere")
    pipeline.sinks["aurora"].close()
    stream = Stream("Employees")
    records = [stream.insert({"Id": i, "empName": "x", "empDepartment": "y"}) for i in range(3)]
    result = pipeline.process(event(records))
    assert result.response == {"batchItemFailures": [{"itemIdentifier": records[0]["dynamodb"]["SequenceNumber"]}]}
    assert result.failure.transient
    assert "s3cr3t-pw" not in result.failure.reason
    assert pg.rows("Employees") == []


def test_unrouted_table_fails_visibly(pg: Any, make_pipeline: Any) -> None:
    pipeline = make_pipeline(pg)
    ok = Stream("Employees").insert({"Id": 1, "empName": "Ana", "empDepartment": "Ops"})
    stranger = Stream("Payroll").insert({"Id": 1})
    result = pipeline.process(event([ok, stranger]))
    assert result.response == {"batchItemFailures": [{"itemIdentifier": stranger["dynamodb"]["SequenceNumber"]}]}
    assert "no route for DynamoDB table 'Payroll' in " in result.failure.reason
    assert pipeline.config.path in result.failure.reason
    assert [r["Id"] for r in pg.rows("Employees")] == [1]
