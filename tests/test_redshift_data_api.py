"""The Data API transport, request by request, against botocore's Stubber.

The Stubber checks each request's parameters against the ones expected (and both against
the service model) and answers with the given response; time is a fake clock, so polling
and backoff are asserted without waiting. The SQL itself is proven on PostgreSQL elsewhere.
"""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber
from factories import Stream, as_yaml, event, route, tables

from operations.assemble import parse_config, pipeline_for
from router import deadline
from sinks.redshift import RedshiftSink
from sinks.redshift.data_api import DataApiTransport, request_target
from sinks.redshift.transport import FailedStatementError, Statement

SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:warehouse-AbCdEf"
SERVERLESS_WITH_SECRET = {"workgroup": "analytics", "secret_arn": SECRET_ARN}


def warehouse_config(connection: dict[str, str] = SERVERLESS_WITH_SECRET) -> dict[str, Any]:
    """The Employees route on a Redshift sink that connects as ``connection`` says."""
    sink = {"type": "redshift", **connection, "database": "dev"}
    return tables({"employees": route("public.Employees", sink="warehouse")}, {"warehouse": sink})


NOW = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
STATEMENT_ID = str(uuid.UUID(int=1))
TARGET = {"WorkgroupName": "analytics", "Database": "dev",
          "SecretArn": SECRET_ARN}
SUBMIT = {"Sqls": ANY, "ClientToken": "token-1", "StatementName": "cdc-router:warehouse", **TARGET}
SUBMITTED = {"Id": STATEMENT_ID, "CreatedAt": NOW, "Database": "dev", "WorkgroupName": "analytics"}
# One insert and one delete of the Employees route, hard deletes: the statements of one BatchExecuteStatement.
STATEMENTS = [
    'LOCK "cdc_router"."tombstones", "public"."Employees"',  # the shared tables it writes, first, sorted
    'CREATE TEMP TABLE "_cdc_stage_0" ("c0" BIGINT, "c1" VARCHAR(80), "c2" VARCHAR(40), '
    '"v" DECIMAL(38,0) NOT NULL, "o" CHAR(1) NOT NULL, "t" TIMESTAMPTZ, "k" VARCHAR(65535))',
    'INSERT INTO "_cdc_stage_0" VALUES '
    "(2001, 'Akua', 'AnyDept', 100000000000000000000, 'u', '2023-11-14 22:13:20+00:00', '[\"2001\"]'), "
    "(7, NULL, NULL, 100000000000000000100, 'd', '2023-11-14 22:13:20+00:00', '[\"7\"]')",
    'DELETE FROM "_cdc_stage_0" USING "public"."Employees" WHERE "Employees"."Id" = "_cdc_stage_0"."c0" '
    'AND "Employees"."_cdc_version" >= "_cdc_stage_0"."v"',
    'DELETE FROM "_cdc_stage_0" USING "cdc_router"."tombstones" WHERE "tombstones"."target" = \'"public"."employees"\' '
    'AND "tombstones"."key" = "_cdc_stage_0"."k" AND "tombstones"."version" >= "_cdc_stage_0"."v"',
    'DELETE FROM "public"."Employees" USING "_cdc_stage_0" WHERE "Employees"."Id" = "_cdc_stage_0"."c0" '
    "AND \"_cdc_stage_0\".\"o\" = 'd'",
    'DELETE FROM "public"."Employees" USING "_cdc_stage_0" WHERE "Employees"."Id" = "_cdc_stage_0"."c0" '
    "AND \"_cdc_stage_0\".\"o\" IN ('u', 'k')",
    'INSERT INTO "public"."Employees" ("Id", "Name", "Department", "_cdc_version") SELECT "_cdc_stage_0"."c0", '
    '"_cdc_stage_0"."c1", "_cdc_stage_0"."c2", "_cdc_stage_0"."v" FROM "_cdc_stage_0" WHERE "_cdc_stage_0"."o" = \'u\'',
    'DELETE FROM "cdc_router"."tombstones" USING "_cdc_stage_0" WHERE "tombstones"."target" = \'"public"."employees"\' '
    "AND \"tombstones\".\"key\" = \"_cdc_stage_0\".\"k\" AND \"_cdc_stage_0\".\"o\" = 'd'",
    'INSERT INTO "cdc_router"."tombstones" ("target", "key", "version", "deleted_at") SELECT \'"public"."employees"\', '
    '"_cdc_stage_0"."k", "_cdc_stage_0"."v", \'2024-01-02 03:04:05+00:00\' FROM "_cdc_stage_0" '
    "WHERE \"_cdc_stage_0\".\"o\" = 'd'",
    'DELETE FROM "cdc_router"."tombstones" WHERE "deleted_at" < \'2023-12-31 03:04:05+00:00\'',
]


class FakeTime:
    """A monotonic clock that moves only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now, self.sleeps = 1000.0, []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Warehouse:
    """A pipeline whose Redshift sink talks to a stubbed ``redshift-data`` client."""

    def __init__(self, connection: dict[str, str] = SERVERLESS_WITH_SECRET):
        config = parse_config(as_yaml(warehouse_config(connection)), "tables.yaml")
        options = config.sinks["warehouse"].options
        self.client = boto3.client("redshift-data", region_name="us-east-1")
        self.stubber, self.time = Stubber(self.client), FakeTime()
        tokens = itertools.count(1)  # one ClientToken per transaction: token-1, token-2, ...
        self.transport = DataApiTransport(request_target(options), name="cdc-router:warehouse", client=self.client,
                                          sleep=self.time.sleep, clock=self.time.monotonic, new_token=lambda: f"token-{next(tokens)}")
        sink = RedshiftSink(config.sinks["warehouse"], list(config.routes.values()), self.transport, now=lambda: NOW)
        self.pipeline = pipeline_for(config, {"warehouse": sink})
        stream = Stream("Employees")
        self.records = [stream.insert({"Id": 2001, "empName": "Akua", "empDepartment": "AnyDept"}),
                        stream.remove({"Id": 7})]

    def describes(self, *statuses: str, **final: Any) -> None:
        for status in statuses:
            response = {"Id": STATEMENT_ID, "Status": status, **(final if status == statuses[-1] else {})}
            self.stubber.add_response("describe_statement", response, {"Id": STATEMENT_ID})

    def trial_passes(self, statements: int = len(STATEMENTS)) -> None:
        """The route's changes tried alone (rolled back: its last statement, SELECT 1 / 0, is the one that
        fails): they pass, so the refusal is not narrowed to one change."""
        self.stubber.add_response("batch_execute_statement", SUBMITTED,
                                  {**SUBMIT, "Sqls": ANY, "ClientToken": ANY})
        failed = {"Id": f"{STATEMENT_ID}:{statements}", "Status": "FAILED", "Error": "ERROR: division by zero"}
        self.describes("FAILED", Error=failed["Error"], SubStatements=[failed])

    def process(self, remaining: float | None = None) -> Any:
        with self.stubber, deadline.until(None if remaining is None else self.time.now + remaining):
            result = self.pipeline.process(event(self.records))
        self.stubber.assert_no_pending_responses()
        return result


def sub_statements(failed: int | None = None, status: str = "FAILED", error: str = "") -> list[dict[str, Any]]:
    """Sub-statement 8 (the INSERT of new rows) wrote one row; or statement ``failed`` (1-based) failed."""
    subs = []
    for number in range(1, len(STATEMENTS) + 1):
        sub = {"Id": f"{STATEMENT_ID}:{number}", "Status": "FINISHED", "ResultRows": 1 if number == 8 else 0}
        if failed is not None and number >= failed:
            sub = {"Id": f"{STATEMENT_ID}:{number}", "Status": status if number == failed else "ABORTED"}
            if number == failed and error:
                sub["Error"] = error
        subs.append(sub)
    return subs


def test_a_batch_is_one_batch_execute_statement_polled_to_the_end() -> None:
    warehouse = Warehouse()
    warehouse.stubber.add_response("batch_execute_statement", SUBMITTED, {**SUBMIT, "Sqls": STATEMENTS})
    warehouse.describes("SUBMITTED", "STARTED", "FINISHED", SubStatements=sub_statements())
    result = warehouse.process(remaining=60)
    assert result.response == {"batchItemFailures": []}
    stats = result.stats["employees"]
    assert (stats.upserted, stats.stale, stats.deleted) == (1, 0, 0)  # from the sub-statements' ResultRows
    assert warehouse.time.sleeps == [0.05, 0.1, 0.2]  # polls back off, doubling


def test_a_failed_statement_names_the_route_and_carries_redshifts_message() -> None:
    warehouse = Warehouse()
    warehouse.stubber.add_response("batch_execute_statement", SUBMITTED, SUBMIT)
    message = "ERROR: value too long for type character varying(80)"
    warehouse.describes("STARTED", "FAILED", Error=message, SubStatements=sub_statements(7, error=message))
    warehouse.trial_passes()  # 9 statements of the route and the trial's LOCK, without the purge: + SELECT 1 / 0
    result = warehouse.process(remaining=60)
    # the whole batch is reported from its first record: nothing of it was committed
    assert result.response == {"batchItemFailures": [{"itemIdentifier": str(10**20)}]}
    assert result.failure.reason == (f"sink 'warehouse': route 'employees': Redshift statement {STATEMENT_ID} "
                                     f"FAILED: {message}")
    assert result.failure.transient is False


CONFLICT = "ERROR: 1023 DETAIL: Serializable isolation violation on table - 123, transactions forming the cycle"


def test_a_concurrent_writer_conflict_is_rerun_as_a_new_transaction() -> None:
    warehouse = Warehouse()
    # GIVEN a transaction that Redshift cancels for a serializable isolation violation (1023)
    warehouse.stubber.add_response("batch_execute_statement", SUBMITTED, SUBMIT)
    warehouse.describes("FAILED", Error=CONFLICT, SubStatements=sub_statements(5, error=CONFLICT))
    # THEN it is submitted again, under a new ClientToken (the first one ran), and commits
    warehouse.stubber.add_response("batch_execute_statement", SUBMITTED, {**SUBMIT, "ClientToken": "token-2"})
    warehouse.describes("FINISHED", SubStatements=sub_statements())
    result = warehouse.process(remaining=60)
    assert result.response == {"batchItemFailures": []} and result.stats["employees"].upserted == 1
    poll, backoff, poll_again = warehouse.time.sleeps
    assert poll == poll_again == 0.05 and 0.1 <= backoff <= 0.2  # backed off, with jitter


def test_a_conflict_until_the_deadline_is_transient() -> None:
    warehouse = Warehouse()
    for token in ("token-1", "token-2"):
        warehouse.stubber.add_response("batch_execute_statement", SUBMITTED, {**SUBMIT, "ClientToken": token})
        warehouse.describes("FAILED", Error=CONFLICT, SubStatements=sub_statements(5, error=CONFLICT))
    # GIVEN 3.38 s left, 0.38 s to spend: one rerun fits (0.05 + 0.1-0.2 + 0.05), a second pause of 0.2-0.4 s
    # never does (the pauses are drawn from [0.5, 1] times 0.2 s, then 0.4 s)
    result = warehouse.process(remaining=3.38)
    assert result.failure.transient is True and CONFLICT in result.failure.reason
    assert "still failing at the deadline after 2 attempt(s)" in result.failure.reason


@pytest.mark.parametrize("message", [
    # words that once matched a pattern of "transient" messages; each is a refusal that no retry changes
    'ERROR: column "connection_id" is of type integer but expression is of type character varying',
    'ERROR: null value in column "timeout_s" violates not-null constraint',
    'ERROR: invalid input syntax for type integer: "try again later"',
    "ERROR: Value too long for character type",
])
def test_a_refusal_is_terminal_whatever_its_words(message: str) -> None:
    warehouse = Warehouse()
    warehouse.stubber.add_response("batch_execute_statement", SUBMITTED, SUBMIT)
    warehouse.describes("FAILED", Error=message, SubStatements=sub_statements(2, error=message))
    warehouse.trial_passes()
    result = warehouse.process(remaining=60)
    assert result.failure.transient is False and message in result.failure.reason


def test_an_environmental_error_is_transient_and_not_rerun_in_place() -> None:
    warehouse = Warehouse()
    warehouse.stubber.add_client_error("batch_execute_statement", "BatchExecuteStatementException",
                                       "An SQL statement encountered an environmental error", 400,
                                       expected_params=SUBMIT)
    result = warehouse.process(remaining=60)
    assert result.failure.transient is True and "BatchExecuteStatementException" in result.failure.reason


def test_an_aborted_statement_is_transient_and_names_the_route() -> None:
    warehouse = Warehouse()
    warehouse.stubber.add_response("batch_execute_statement", SUBMITTED, SUBMIT)
    warehouse.describes("PICKED", "ABORTED", SubStatements=sub_statements(3, status="ABORTED"))
    result = warehouse.process(remaining=60)
    assert result.failure.reason == (f"sink 'warehouse': route 'employees': Redshift statement {STATEMENT_ID} ABORTED: "
                                     "cancelled by a user or by workload management")
    assert result.failure.transient is True


def test_a_statement_still_running_near_the_deadline_is_cancelled() -> None:
    warehouse = Warehouse()
    warehouse.stubber.add_response("batch_execute_statement", SUBMITTED, SUBMIT)
    warehouse.describes("STARTED", "STARTED")
    warehouse.stubber.add_response("cancel_statement", {"Status": True}, {"Id": STATEMENT_ID})
    # GIVEN 3.3 s left: the transport keeps 3 s to report the batch, so it may wait 0.3 s
    result = warehouse.process(remaining=3.3)
    assert warehouse.time.sleeps == [0.05, 0.1]  # the next poll (0.2 s) would pass the 0.3 s
    assert result.failure.transient is True
    assert "had not finished 3s before the Lambda deadline; cancelled" in result.failure.reason
    assert result.response == {"batchItemFailures": [{"itemIdentifier": str(10**20)}]}


def test_nothing_is_started_too_close_to_the_deadline() -> None:
    warehouse = Warehouse()  # no response queued: any request would fail the test
    result = warehouse.process(remaining=2.5)
    assert result.failure.transient is True and "too close to the Lambda deadline" in result.failure.reason


@pytest.mark.parametrize("code", ["ThrottlingException", "ActiveStatementsExceededException"])
def test_throttling_left_after_botocores_retries_fails_the_batch_for_retry(code: str) -> None:
    # botocore retried it already (router.retry.AWS_STANDARD; counted in test_retry.py): no loop on top here
    warehouse = Warehouse()
    warehouse.stubber.add_client_error("batch_execute_statement", code, "Rate exceeded", 400, expected_params=SUBMIT)
    result = warehouse.process(remaining=60)
    assert result.failure.transient is True
    assert f"Data API batch_execute_statement refused: {code}: Rate exceeded" in result.failure.reason
    assert warehouse.time.sleeps == []


def test_a_refused_request_is_not_retried() -> None:
    warehouse = Warehouse()
    warehouse.stubber.add_client_error("batch_execute_statement", "ValidationException",
                                       "Cannot process query string larger than 100kB", 400, expected_params=SUBMIT)
    result = warehouse.process()
    assert result.failure.reason == ("sink 'warehouse': redshift: Data API batch_execute_statement refused: "
                                     "ValidationException: Cannot process query string larger than 100kB")
    assert result.failure.transient is False


@pytest.mark.parametrize("options, target", [
    # provisioned cluster, temporary credentials for a database user
    ({"cluster_identifier": "reporting", "db_user": "loader"},
     {"ClusterIdentifier": "reporting", "DbUser": "loader", "Database": "dev"}),
    # provisioned cluster, the caller's IAM identity
    ({"cluster_identifier": "reporting"}, {"ClusterIdentifier": "reporting", "Database": "dev"}),
    # Serverless, the caller's IAM identity
    ({"workgroup": "analytics"}, {"WorkgroupName": "analytics", "Database": "dev"}),
])
def test_each_way_to_connect_sends_its_parameters(options: dict[str, str], target: dict[str, str]) -> None:
    warehouse = Warehouse(options)
    warehouse.stubber.add_response("batch_execute_statement", SUBMITTED,
                                   {"Sqls": ANY, "ClientToken": "token-1", "StatementName": "cdc-router:warehouse",
                                    **target})
    warehouse.describes("FINISHED", SubStatements=sub_statements())
    assert warehouse.process().response == {"batchItemFailures": []}


def test_a_trial_runs_the_statements_and_rolls_them_back() -> None:
    warehouse = Warehouse()
    trial = [Statement('INSERT INTO "t" VALUES (1)', "r"), Statement('INSERT INTO "t" VALUES (2)', "r")]
    sqls = [s.sql for s in trial] + ["SELECT 1 / 0"]  # a last statement that always fails: Redshift rolls back
    for failed in (3, 2):
        warehouse.stubber.add_response("batch_execute_statement", SUBMITTED, {**SUBMIT, "Sqls": sqls, "ClientToken": ANY})
        subs = [{"Id": f"{STATEMENT_ID}:{n}", "Status": "FINISHED", "ResultRows": 1} for n in range(1, failed)]
        subs += [{"Id": f"{STATEMENT_ID}:{failed}", "Status": "FAILED", "Error": "ERROR: boom"}]
        warehouse.describes("FAILED", Error="ERROR: boom", SubStatements=subs)
    with warehouse.stubber:
        # WHEN only the rollback statement failed THEN the trial passed, and nothing was kept
        assert warehouse.transport.execute(trial, rollback=True) == [1, 1]
        # WHEN a statement of the trial failed THEN its error says which
        with pytest.raises(FailedStatementError) as failed:
            warehouse.transport.execute(trial, rollback=True)
    assert (failed.value.index, failed.value.statement) == (1, trial[1])
    assert str(failed.value) == f"route 'r': Redshift statement {STATEMENT_ID} FAILED: ERROR: boom"
