"""The Lambda handler: wiring, config once per container, credentials from Secrets Manager."""

from __future__ import annotations

import json
from typing import Any

import boto3
import psycopg
import pytest
from factories import Stream, event, load_event, postgres, route, tables
from moto import mock_aws
from pgfaults import SERIALIZATION_FAILURE, FaultTrigger

from router.errors import InvalidEventError


def test_saved_event_replicates_and_the_pipeline_is_built_once(pg: Any, lambda_handler: Any) -> None:
    module = lambda_handler(pg)
    pipeline = module.pipeline
    response = module.handler(load_event("employees_put_update_delete_2001.json"), None)
    assert response == {"batchItemFailures": []}
    module.handler(load_event("employees_put_2001.json"), None)  # a stale redelivery
    assert module.pipeline is pipeline
    assert pg.rows("Employees") == []


@pytest.mark.parametrize("bad_event", [
    None,                                   # no event at all
    [],                                     # a list, not an object
    {"Records": "nope"},                    # Records is not a list
    {"Messages": []},                       # some other event source's shape
])
def test_an_event_that_is_not_a_stream_batch_raises_a_clear_error(pg: Any, lambda_handler: Any, bad_event: Any) -> None:
    module = lambda_handler(pg)
    with pytest.raises(InvalidEventError, match="not a DynamoDB Streams or Kinesis event"):
        module.handler(bad_event, None)


def test_credentials_come_from_secrets_manager(pg: Any, lambda_handler: Any, database_url: str) -> None:
    info = psycopg.conninfo.conninfo_to_dict(database_url)
    secret = {"engine": "postgres", "host": info.get("host", "127.0.0.1"), "port": int(info.get("port", 5432)),
              "username": info.get("user", "postgres"), "password": info.get("password", ""),
              "dbname": info.get("dbname")}
    with mock_aws():
        boto3.client("secretsmanager").create_secret(Name="dev/rds", SecretString=json.dumps(secret))
        config = tables({"employees": route(f"{pg.schema}.Employees")},
                        {"aurora": postgres(pg.state_schema, secret="dev/rds")})
        module = lambda_handler(pg, template=config)
        assert module.handler(load_event("employees_put_2001.json"), None) == {"batchItemFailures": []}
    assert pg.rows("Employees") == [{"Id": 2001, "Name": "Akua", "Department": "AnyDept"}]


def test_a_batch_the_database_cannot_take_at_all_raises_so_that_the_errors_alarm_fires(
        pg: Any, lambda_handler: Any, capsys: pytest.CaptureFixture[str]) -> None:
    module = lambda_handler(pg)
    stream = Stream("Employees")
    records = [stream.insert({"Id": 1, "empName": "Ann"}), stream.insert({"Id": 2, "empName": "Bo"})]
    faults = FaultTrigger(pg.conn, pg.schema, "Employees", "Id")
    # GIVEN a database that fails the batch's first statement for a reason that may pass
    faults.arm(1, SERIALIZATION_FAILURE)
    # WHEN the batch arrives, THEN the handler raises (Lambda counts an error and retries the whole batch)
    with pytest.raises(module.BatchNotAppliedError, match=r"SerializationFailure \[40001\]"):
        module.handler(event(records), None)
    # and the route's metrics were written all the same
    documents = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    [route] = [d for d in documents if "route" in d and "_aws" in d and "column" not in d]  # not the per-column counts
    assert route["RecordsFailed"] == [2.0]
    # WHEN the database is back, THEN the retried batch applies
    faults.clear()
    assert module.handler(event(records), None) == {"batchItemFailures": []}
    assert [r["Id"] for r in pg.rows("Employees", order_by="Id")] == [1, 2]
