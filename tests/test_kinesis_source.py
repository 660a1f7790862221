"""Kinesis Data Streams for DynamoDB through the Lambda handler: the event as the developer
guide shows it, malformed data as per-record errors, and a record that came through the
other source than its routes name as a configuration error that names both."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import pytest
from conftest import EMPLOYEES, PgTarget
from factories import Stream, event, load_event
from kinesis_factories import KinesisStream, change_data, kinesis_arn

from operations import redrive
from router.log import logger
from sources.kinesis import lambda_record
from sources.lambda_events import parse_event

# the spine's Employees route, fed by the Kinesis data stream 'changes'
KINESIS_EMPLOYEES = EMPLOYEES.replace("    sink: aurora\n", "    kinesis: changes\n    version: {version}\n    sink: aurora\n")
SEQUENCES = [r["kinesis"]["sequenceNumber"] for r in load_event("kinesis_employees_changes.json")["Records"]]


def employee(id_: int, name: str, department: str, created: int, event_name: str = "INSERT") -> dict[str, Any]:
    image = {"Id": {"N": str(id_)}, "empName": {"S": name}, "empDepartment": {"S": department}}
    return change_data("Employees", event_name, {"Id": {"N": str(id_)}}, image, None, created)


def test_developer_guide_event_replicates_through_the_handler(pg: PgTarget, lambda_handler: Any) -> None:
    # GIVEN the handler on a Kinesis route, and an event as the guide shows it: the MODIFY delivered
    # before the INSERT it follows, then a REMOVE of an item never seen
    module = lambda_handler(pg, KINESIS_EMPLOYEES, version="approximate_creation_time")
    # WHEN Lambda invokes it
    response = module.handler(load_event("kinesis_employees_changes.json"), None)
    # THEN the newest state wins whatever the order, and the delete leaves a tombstone
    assert response == {"batchItemFailures": []}
    assert pg.rows("Employees", bookkeeping=True) == [
        {"Id": 1, "Name": "Akua Mansa", "Department": "ExDept", "_cdc_version": 1732957421377000}]
    assert [(row["key"], row["version"]) for row in pg.state("tombstones")] == [('["2"]', 1732957425002000)]


def test_replaying_the_event_in_any_order_changes_nothing(pg: PgTarget, make_pipeline: Any) -> None:
    pipeline = make_pipeline(pg, KINESIS_EMPLOYEES, version="approximate_creation_time")
    records = load_event("kinesis_employees_changes.json")["Records"]
    for batch in ([records[1]], records, list(reversed(records)), [records[0], records[0]]):
        assert pipeline.process(event(batch)).response == {"batchItemFailures": []}
    assert pg.rows("Employees") == [{"Id": 1, "Name": "Akua Mansa", "Department": "ExDept"}]


def _record(data: bytes | str, sequence: str = "49600000000000000000000000000000000000000000000000000001") -> dict:
    payload = data if isinstance(data, bytes) else data.encode()
    return lambda_record(payload, kinesis_arn(), sequence, "pk")


def _raw_data(record: dict[str, Any], text: str) -> dict[str, Any]:
    return {**record, "kinesis": {**record["kinesis"], "data": text}}


GOOD = json.dumps(employee(1, "Akua", "Ops", 1732957420604)).encode()
MALFORMED = [  # (kinesis.data as delivered, the reason given)
    ("not base64 at all!", "kinesis.data is not base64"),
    (base64.b64encode(b"{not json").decode(), "kinesis.data is not JSON"),
    (base64.b64encode(b"\xff\xfe").decode(), "kinesis.data is not JSON"),
    (base64.b64encode(b'{"hello": "world"}').decode(), "kinesis.data is not a DynamoDB change record"),
    (base64.b64encode(b"[1, 2]").decode(), "kinesis.data is not a DynamoDB change record"),
    (base64.b64encode(json.dumps({**employee(1, "A", "B", 1), "recordFormat": "application/x-ion"}).encode()).decode(),
     "unsupported recordFormat 'application/x-ion'"),
    (base64.b64encode(json.dumps({**employee(1, "A", "B", 1), "eventName": "PUT"}).encode()).decode(),
     "unknown eventName 'PUT'"),
]


@pytest.mark.parametrize("data, reason", MALFORMED)
def test_malformed_data_is_a_record_error_reported_at_its_sequence_number(
        data: str, reason: str, pg: PgTarget, make_pipeline: Any) -> None:
    # GIVEN a good record, then a malformed one, then a good one
    pipeline = make_pipeline(pg, KINESIS_EMPLOYEES, version="approximate_creation_time")
    good = _record(GOOD, SEQUENCES[0])
    bad = _raw_data(_record(GOOD, SEQUENCES[1]), data)
    later = _record(json.dumps(employee(2, "Bo", "Ops", 1732957420999)).encode(), SEQUENCES[2])
    # WHEN the batch is processed
    result = pipeline.process(event([good, bad, later]))
    # THEN the first is committed, and Lambda retries from the malformed one's sequenceNumber, told why
    assert result.response == {"batchItemFailures": [{"itemIdentifier": SEQUENCES[1]}]}
    assert result.failure is not None and reason in result.failure.reason
    assert pg.rows("Employees") == [{"Id": 1, "Name": "Akua", "Department": "Ops"}]


def test_creation_time_in_milliseconds_or_microseconds_is_one_scale() -> None:
    ms, us = (_record(json.dumps(employee(1, "A", "B", created)).encode()) for created in (1732957420604, 1732957420604123))
    parsed = parse_event(event([ms, us]))
    assert [r.created_us for r in parsed] == [1732957420604000, 1732957420604123]
    assert [r.error for r in parsed] == [None, None]


def test_a_kinesis_record_for_a_dynamodb_streams_route_fails_the_batch_naming_both(
        pg: PgTarget, make_pipeline: Any) -> None:
    # GIVEN Employees routed through its DynamoDB stream (no kinesis:)
    pipeline = make_pipeline(pg)
    # WHEN a Kinesis record of Employees arrives
    result = pipeline.process(event(KinesisStream().puts([employee(1, "Akua", "Ops", 1732957420604)])))
    # THEN the batch stops there, and the reason names the Kinesis stream and the route's source
    assert result.response["batchItemFailures"]
    assert result.failure is not None
    assert "Kinesis data stream 'changes'" in result.failure.reason and "route 'employees'" in result.failure.reason
    assert "DynamoDB stream" in result.failure.reason
    assert pg.rows("Employees") == []


def test_a_dynamodb_streams_record_for_a_kinesis_route_fails_the_batch_naming_both(
        pg: PgTarget, make_pipeline: Any) -> None:
    pipeline = make_pipeline(pg, KINESIS_EMPLOYEES, version="approximate_creation_time")
    record = Stream("Employees").insert({"Id": 1, "empName": "Akua", "empDepartment": "Ops"})
    result = pipeline.process(event([record]))
    assert result.response == {"batchItemFailures": [{"itemIdentifier": record["dynamodb"]["SequenceNumber"]}]}
    assert result.failure is not None
    assert "its DynamoDB stream" in result.failure.reason and "kinesis: changes" in result.failure.reason
    assert pg.rows("Employees") == []


def test_a_record_from_another_kinesis_stream_names_both_streams(pg: PgTarget, make_pipeline: Any) -> None:
    pipeline = make_pipeline(pg, KINESIS_EMPLOYEES, version="approximate_creation_time")
    result = pipeline.process(event(KinesisStream("audit").puts([employee(1, "Akua", "Ops", 1732957420604)])))
    assert result.failure is not None
    assert "'audit'" in result.failure.reason and "'changes'" in result.failure.reason


def test_a_failed_kinesis_batch_logs_its_routes_stream_and_sequence_numbers(pg: PgTarget, lambda_handler: Any) -> None:
    # GIVEN the handler on a Kinesis route, and a batch whose second record is not base64
    module = lambda_handler(pg, KINESIS_EMPLOYEES, version="approximate_creation_time")
    records = load_event("kinesis_employees_changes.json")["Records"]
    records[1] = _raw_data(records[1], "%%%")
    logs, handler = io.StringIO(), logger.registered_handler
    previous = handler.setStream(logs)
    try:
        # WHEN Lambda invokes it
        assert module.handler(event(records), None) == {"batchItemFailures": [{"itemIdentifier": SEQUENCES[1]}]}
    finally:
        handler.setStream(previous)
    # THEN the error log names the stream, the batch's first-last sequenceNumbers and the reason
    [error] = [line for line in map(json.loads, logs.getvalue().splitlines()) if line["level"] == "ERROR"]
    assert error["stream"] == kinesis_arn()
    assert error["sequence_numbers"] == f"{SEQUENCES[0]}-{SEQUENCES[2]}"
    assert "kinesis.data is not base64" in error["error"]


def test_a_kinesis_record_is_dead_lettered_as_delivered_and_retried_through_its_parser(
        pg: PgTarget, make_pipeline: Any) -> None:
    # GIVEN a dead_letter Kinesis route and a record whose Id is not a bigint
    pipeline = make_pipeline(pg, KINESIS_EMPLOYEES, version="approximate_creation_time", on_error="dead_letter")
    bad = employee(1, "Akua", "Ops", 1732957420604)
    bad["dynamodb"]["Keys"]["Id"] = bad["dynamodb"]["NewImage"]["Id"] = {"N": "1.5"}
    record = _record(json.dumps(bad).encode(), SEQUENCES[0])
    # WHEN it is processed THEN it is kept aside with its Kinesis sequenceNumber and the record as delivered
    assert pipeline.process(event([record])).response == {"batchItemFailures": []}
    [letter] = pg.state("dead_letters")
    assert (int(letter["sequence_number"]), letter["record"]) == (int(SEQUENCES[0]), record)
    # AND a retry parses it as a Kinesis record again: it still fails for its value, not for its shape
    [outcome] = redrive.retry(pipeline)
    assert not outcome.applied and outcome.reason is not None and "'Id'" in outcome.reason
