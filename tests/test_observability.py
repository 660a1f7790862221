"""What the handler tells CloudWatch: EMF metrics read back from stdout as CloudWatch Logs would
read them, and the JSON log lines with their correlation keys and (only if asked) record bodies."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from aws_lambda_powertools.metrics.provider import cold_start
from conftest import EMPLOYEES
from factories import Stream, event, postgres, route, tables

from router.log import logger
from router.records import TTL_IDENTITY

LOGGING_EMPLOYEES = EMPLOYEES.replace("    on_error: {on_error}\n", "    on_error: {on_error}\n    log_records: {log_records}\n")


@contextmanager
def captured_logs(level: str | None = None) -> Iterator[io.StringIO]:
    """The logger's JSON lines while the block runs (at ``level`` if given; the tests' own is WARNING)."""
    logs, handler, before = io.StringIO(), logger.registered_handler, logger.log_level
    previous = handler.setStream(logs)
    if level is not None:
        logger.setLevel(level)
    try:
        yield logs
    finally:
        handler.setStream(previous)
        logger.setLevel(before)


def emf(captured: str) -> list[dict[str, Any]]:
    """The EMF documents among stdout's lines (the JSON logs are there too)."""
    documents = [json.loads(line) for line in captured.splitlines() if line.startswith("{")]
    return [d for d in documents if "_aws" in d]


def with_id_not_a_bigint(record: dict[str, Any]) -> dict[str, Any]:
    """The record with Id 1.5: a cast error on the key column, which has no fallback."""
    record["dynamodb"]["Keys"] = {"Id": {"N": "1.5"}}
    record["dynamodb"]["NewImage"]["Id"] = {"N": "1.5"}
    return record


def metric_names(document: dict[str, Any]) -> dict[str, str]:
    [directive] = document["_aws"]["CloudWatchMetrics"]
    return {metric["Name"]: metric["Unit"] for metric in directive["Metrics"]}


def test_a_batch_with_applied_stale_deleted_and_dead_lettered_records(
        pg: Any, lambda_handler: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    module = lambda_handler(pg, on_error="dead_letter")
    monkeypatch.setattr(cold_start, "is_cold_start", True)
    stream, now = Stream("Employees"), time.time()
    # GIVEN rows 1, 2 and 3 (a first invocation: the cold start)
    module.handler(event([stream.insert({"Id": n, "empName": f"E{n}"}, sequence=1000 + n) for n in (1, 2, 3)]),
                   None)
    first = emf(capsys.readouterr().out)

    # WHEN a batch brings a stale change of 1, a delete of 2, a new 4, and an Id that is no bigint
    records = [stream.modify({"Id": 1, "empName": "old"}, sequence=900, created=now - 5),
               stream.remove({"Id": 2}, sequence=1300, created=now - 2),
               stream.insert({"Id": 4, "empName": "E4"}, sequence=1400, created=now - 1),
               with_id_not_a_bigint(stream.insert({"Id": 5, "empName": "E5"}, sequence=1500, created=now - 1))]
    assert module.handler(event(records), None) == {"batchItemFailures": []}
    second = emf(capsys.readouterr().out)

    # THEN one document for the route, with service and route as dimensions
    [route] = [d for d in second if "route" in d and "column" not in d]
    assert route["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "CdcRouter"
    assert route["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["route", "service"]]
    assert (route["route"], route["service"]) == ("employees", "cdc-router")
    assert metric_names(route) == {"RecordsApplied": "Count", "RecordsStale": "Count", "RecordsDeleted": "Count",
                                   "RecordsExpired": "Count", "RecordsDeadLettered": "Count", "RecordsFailed": "Count",
                                   "ReplicationLagMs": "Milliseconds"}
    assert {name: route[name] for name in metric_names(route) if name != "ReplicationLagMs"} == {
        "RecordsApplied": [1.0], "RecordsStale": [1.0], "RecordsDeleted": [1.0], "RecordsExpired": [0.0],
        "RecordsDeadLettered": [1.0],
        "RecordsFailed": [0.0]}
    # AND per column, how many rows took its fallback (no record has empDepartment: its NA; issue 12)
    [fallbacks] = [d for d in second if "column" in d]
    assert fallbacks["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["route", "column", "service"]]
    assert (fallbacks["column"], fallbacks["FallbacksApplied"]) == ("Department", [2.0])
    # the oldest record of the batch was created 5 s before it was sent (one time.time() later)
    [lag] = route["ReplicationLagMs"]
    assert 5000 <= lag < 5000 + (time.time() - now) * 1000 + 1
    # and the batch size, for the function as a whole; the cold start only on the first invocation
    [batch] = [d for d in second if "BatchRecords" in d]
    assert (batch["BatchRecords"], batch["_aws"]["CloudWatchMetrics"][0]["Dimensions"]) == ([4.0], [["service"]])
    assert not any("ColdStart" in d for d in second)
    [cold] = [d for d in first if "ColdStart" in d]
    assert cold["ColdStart"] == [1.0] and cold["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [
        ["function_name", "service"]]
    [applied] = [d for d in first if "route" in d and "column" not in d]
    assert applied["RecordsApplied"] == [3.0]
    assert pg.rows("Employees", order_by="Id") == [{"Id": 1, "Name": "E1", "Department": "NA"},
                                                   {"Id": 3, "Name": "E3", "Department": "NA"},
                                                   {"Id": 4, "Name": "E4", "Department": "NA"}]


def test_a_failed_batch_counts_its_failed_records(pg: Any, lambda_handler: Any,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    module = lambda_handler(pg, on_error="fail")
    stream = Stream("Employees")
    bad = with_id_not_a_bigint(stream.insert({"Id": 7}, sequence=2000))
    response = module.handler(event([stream.insert({"Id": 6}, sequence=1900), bad,
                                     stream.insert({"Id": 8}, sequence=2100)]), None)
    assert response == {"batchItemFailures": [{"itemIdentifier": "2000"}]}
    [route] = [d for d in emf(capsys.readouterr().out) if "route" in d and "column" not in d]
    assert (route["RecordsApplied"], route["RecordsFailed"]) == ([1.0], [2.0])


@pytest.mark.parametrize("log_records", [False, True])
def test_an_error_log_carries_the_batch_keys_and_the_record_only_if_the_route_opts_in(
        pg: Any, lambda_handler: Any, log_records: bool) -> None:
    module = lambda_handler(pg, template=LOGGING_EMPLOYEES, log_records=str(log_records).lower())
    stream = Stream("Employees")
    bad = with_id_not_a_bigint(stream.insert({"Id": 7, "empName": "Private Person"}, sequence=2000))
    with captured_logs() as logs:
        assert module.handler(event([bad]), None) == {"batchItemFailures": [{"itemIdentifier": "2000"}]}
    [error] = [line for line in map(json.loads, logs.getvalue().splitlines()) if line["level"] == "ERROR"]
    assert (error["route"], error["stream"], error["sequence_numbers"]) == ("employees", stream.arn, "2000-2000")
    assert ("Private Person" in logs.getvalue()) is log_records


def test_a_record_whose_dynamodb_is_not_an_object_still_gets_a_clear_failure(pg: Any, lambda_handler: Any) -> None:
    # GIVEN a batch whose second record has "dynamodb": true (found by the bad-input fuzz test:
    # the log keys were read before the parser could report the record)
    module = lambda_handler(pg)
    stream = Stream("Employees")
    good, bad = stream.insert({"Id": 1, "empName": "a", "empDepartment": "b"}), stream.insert({"Id": 2})
    bad["dynamodb"] = True
    # WHEN handled THEN the good record is written and the bad one reported (the one before it,
    # since it has no SequenceNumber of its own), not an AttributeError from the logging
    response = module.handler(event([good, bad]), None)
    assert response == {"batchItemFailures": [{"itemIdentifier": good["dynamodb"]["SequenceNumber"]}]}
    assert [r["Id"] for r in pg.rows("Employees")] == [1]


@pytest.mark.parametrize("log_records", [False, True])
def test_a_value_that_does_not_fit_stays_out_of_the_logs_unless_the_route_opts_in(
        pg: Any, lambda_handler: Any, log_records: bool) -> None:
    # GIVEN a key value that does not fit its column: the cast error quotes it
    module = lambda_handler(pg, template=LOGGING_EMPLOYEES, log_records=str(log_records).lower())
    record = Stream("Employees").insert({"Id": 7, "empName": "n"}, sequence=2000)
    record["dynamodb"]["Keys"]["Id"] = record["dynamodb"]["NewImage"]["Id"] = {"S": "SSN 078-05-1120"}
    with captured_logs() as logs:
        module.handler(event([record]), None)
    # THEN the log names the column and the type, and shows the value only if the route opted in
    [error] = [line for line in map(json.loads, logs.getvalue().splitlines()) if line["level"] == "ERROR"]
    assert "column 'Id' (from 'Id'): " in error["error"] and "does not fit bigint: not a number" in error["error"]
    assert ("078-05-1120" in logs.getvalue()) is log_records


def test_an_expiry_is_counted_apart_from_a_user_delete(pg: Any, lambda_handler: Any,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN rows 1 and 2 (deletes: hard, ttl_deletes by default the same)
    module = lambda_handler(pg)
    stream = Stream("Employees")
    module.handler(event([stream.insert({"Id": n, "empName": f"E{n}"}) for n in (1, 2)]), None)
    capsys.readouterr()
    # WHEN DynamoDB's TTL process expires 1 and a user deletes 2
    expiry = {**stream.remove({"Id": 1}), "userIdentity": dict(TTL_IDENTITY)}
    assert module.handler(event([expiry, stream.remove({"Id": 2})]), None) == {"batchItemFailures": []}
    # THEN the document counts one of each: the expiry is no user delete
    [document] = [d for d in emf(capsys.readouterr().out) if "route" in d and "column" not in d]
    assert (document["RecordsExpired"], document["RecordsDeleted"]) == ([1.0], [1.0])
    assert pg.rows("Employees") == []


def test_a_batch_that_adds_a_column_logs_it_and_counts_it(pg: Any, lambda_handler: Any,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a route with columns: auto
    config = tables({"sessions": route(f"{pg.schema}.sessions", source="Sessions", key=("userId",), columns="auto")},
                    {"aurora": postgres(pg.state_schema)})
    module = lambda_handler(pg, template=config)
    stream = Stream("Sessions", key=("userId",))
    with captured_logs("INFO") as logs:  # the tests' level is WARNING; Lambda's (template.yaml) is INFO
        # WHEN a batch brings an attribute (twice: added once), and a later batch none
        first = [stream.insert({"userId": "u1", "device": "Private Phone"}, sequence=3000),
                 stream.insert({"userId": "u2", "device": "Other Phone"}, sequence=3100)]
        assert module.handler(event(first), None) == {"batchItemFailures": []}
        added = emf(capsys.readouterr().out)
        assert module.handler(event([stream.modify({"userId": "u1", "device": "x"}, sequence=3200)]),
                              None) == {"batchItemFailures": []}
        later = emf(capsys.readouterr().out)
    # THEN one log line names the route, column, type, table and the record that brought it, not its value
    lines = [line for line in map(json.loads, logs.getvalue().splitlines()) if line["message"] == "column added"]
    assert [(line["route"], line["column"], line["type"], line["table"], line["sequence_number"]) for line in lines] == [
        ("sessions", "device", "text", f"{pg.schema}.sessions", "3000")]
    assert "Private Phone" not in logs.getvalue() and "Other Phone" not in logs.getvalue()
    # AND the route's document counts it; the next batch's counts none
    [document] = [d for d in added if "route" in d and "column" not in d]
    assert document["ColumnsAdded"] == [1.0] and ("ColumnsAdded", "Count") in metric_names(document).items()
    [document] = [d for d in later if "route" in d and "column" not in d]
    assert document["ColumnsAdded"] == [0.0]
