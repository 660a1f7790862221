"""The Redshift Data API transport: one BatchExecuteStatement per call, polled to its end.

The Data API is HTTPS with IAM authentication, so the Lambda needs no VPC attachment,
driver or connection pool for the warehouse. BatchExecuteStatement runs its statements
serially as one transaction (at most 40 of them); DescribeStatement reports SUBMITTED,
PICKED, STARTED, then FINISHED, FAILED or ABORTED, with one sub-statement per SQL (its
``Id`` ends in ``:N``) that carries the row count or the error. See
https://docs.aws.amazon.com/redshift-data/latest/APIReference/API_BatchExecuteStatement.html

Failures are sorted by ``failures``. Throttling and dropped connections are retried by
botocore alone, as ``router.retry.AWS_STANDARD`` says (a bounded number of tries; a retried
request keeps its ClientToken, so a submission never runs twice); what is left of them is
transient. A serializable isolation violation (1023) reruns the transaction under a new
token, as ``RERUN`` (the one ``router.retry`` policy) allows; other failures are transient
(the batch is retried by Lambda) or, by default, terminal. Waiting and rerunning are bounded
by the Lambda deadline (``router.deadline``) less a margin, so the batch is reported for
retry before Lambda kills the function. A statement still running
then is cancelled, best effort: if it commits anyway, the retry's version guard makes the
replay a no-op.

A trial (``rollback=True``) appends a statement that always fails, so that Redshift rolls
the transaction back: the trial passed when that last statement is the one that failed.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from router.log import logger
from router.retry import AWS_STANDARD, RetryPolicy
from router.sink import SinkError, TransientSinkError
from sinks.redshift import failures
from sinks.redshift.failures import Outcome
from sinks.redshift.transport import Statement, statement_error
from sinks.sql.sink import QueryResult

POLL_FIRST, POLL_MAX = 0.05, 1.0        # seconds between DescribeStatement calls, doubling up to the max
RERUN = RetryPolicy(attempts=5, first_pause=0.2, max_pause=5.0, margin=0.0, jitter=0.5)  # margin: in ``until``
DEADLINE_MARGIN = 3.0                   # seconds left to the Lambda to report the batch after giving up
ROLLBACK = Statement("SELECT 1 / 0")    # a trial's last statement: its error rolls the transaction back


def request_target(options: dict[str, Any]) -> dict[str, str]:
    """The connection parameters of every request, from the sink's options."""
    target = {"Database": options["database"]}
    for option, parameter in (("workgroup", "WorkgroupName"), ("cluster_identifier", "ClusterIdentifier"),
                              ("secret_arn", "SecretArn"), ("db_user", "DbUser")):
        if options.get(option):
            target[parameter] = options[option]
    return target


class _Rerun(Exception):
    """The transaction failed in a way that running it again can fix (1023)."""

    def __init__(self, error: SinkError):
        self.error = error


class DataApiTransport:
    """Runs statement lists through ``redshift-data``; the boto3 client is made on first use."""

    def __init__(self, target: dict[str, str], *, name: str = "cdc-router", client: Any = None,
                 region: str | None = None, max_wait: float = 900.0, margin: float = DEADLINE_MARGIN,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
                 new_token: Callable[[], str] = lambda: uuid.uuid4().hex):
        self.target, self.name, self.max_wait, self.margin = dict(target), name, max_wait, margin
        self._client, self._region = client, region
        self._sleep, self._clock, self._new_token = sleep, clock, new_token

    @property
    def client(self) -> Any:
        if self._client is None:  # made on first use: building the pipeline needs no AWS region or credentials
            config = Config(retries=AWS_STANDARD, connect_timeout=5, read_timeout=20)
            self._client = boto3.client("redshift-data", region_name=self._region, config=config)
        return self._client

    def execute(self, statements: Sequence[Statement], deadline: float | None = None,
                rollback: bool = False) -> list[int]:
        until = self._until(deadline)
        sent = [*statements, ROLLBACK] if rollback else list(statements)
        tries = 0

        def run() -> list[int]:
            nonlocal tries
            if until <= self._clock():
                raise TransientSinkError("redshift: too close to the Lambda deadline to start a statement; "
                                         "the batch will be retried")
            tries += 1
            return _row_counts(self._run(sent, until, rollback), len(statements))

        def rerun(exc: Exception) -> bool:
            if isinstance(exc, _Rerun):
                logger.warning("redshift data api: rerunning the transaction",
                               extra={"error": str(exc.error)[:300], "attempt": tries})
            return isinstance(exc, _Rerun)

        try:
            return RERUN.call(run, rerun, sleep=self._sleep, clock=self._clock, until=until)
        except _Rerun as failed:
            raise TransientSinkError(f"{failed.error} (still failing at the deadline after {tries} attempt(s); "
                                     "the batch will be retried)") from None

    def query(self, statement: str, params: Mapping[str, Any], deadline: float | None = None) -> QueryResult:
        """One ExecuteStatement (named parameters need it: BatchExecuteStatement takes none), polled to
        its end, then its result pages. https://docs.aws.amazon.com/redshift-data/latest/APIReference/API_ExecuteStatement.html"""
        until = self._until(deadline)
        if until <= self._clock():
            raise TransientSinkError("redshift: too close to the Lambda deadline to start a statement")
        request: dict[str, Any] = {"Sql": statement, "StatementName": self.name, **self.target}
        if params:
            request["Parameters"] = [{"name": name, "value": str(value)} for name, value in params.items()]
        statement_id = self._call("execute_statement", **request)["Id"]
        described = self._poll(statement_id, until, [Statement(statement)], rollback=False)
        rows: list[tuple[Any, ...]] = []
        token: dict[str, str] = {}
        while described.get("HasResultSet"):
            page = self._call("get_statement_result", Id=statement_id, **token)
            rows += [tuple(map(_field_value, record)) for record in page.get("Records", [])]
            if not page.get("NextToken"):
                break
            token = {"NextToken": page["NextToken"]}
        return QueryResult(rows, max(int(described.get("ResultRows") or 0), 0))

    def close(self) -> None:
        """Nothing to release: the client holds no session between calls."""

    def _until(self, deadline: float | None) -> float:
        limit = self._clock() + self.max_wait
        return limit if deadline is None else min(limit, deadline - self.margin)

    def _run(self, statements: Sequence[Statement], until: float, rollback: bool) -> dict[str, Any]:
        """One transaction: submitted under a token of its own, polled to its end."""
        submitted = self._call("batch_execute_statement", Sqls=[s.sql for s in statements],
                               ClientToken=self._new_token(), StatementName=self.name, **self.target)
        return self._poll(submitted["Id"], until, statements, rollback)

    def _poll(self, statement_id: str, until: float, statements: Sequence[Statement], rollback: bool) -> dict[str, Any]:
        """DescribeStatement until the statement ends; cancelled when it would outlast ``until``."""
        delay = POLL_FIRST
        while True:
            if self._clock() + delay > until:
                self._cancel(statement_id)
                raise TransientSinkError(f"redshift: statement {statement_id} had not finished {self.margin:g}s "
                                         "before the Lambda deadline; cancelled, the batch will be retried")
            self._sleep(delay)
            described = self._call("describe_statement", Id=statement_id)
            if described["Status"] == "FINISHED":
                return described
            if described["Status"] in ("FAILED", "ABORTED"):
                return _failed(described, statements, rollback)
            delay = min(delay * 2, POLL_MAX)

    def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        """One Data API call, which botocore has retried as far as ``AWS_STANDARD`` allows."""
        try:
            return getattr(self.client, operation)(**params)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code, message = error.get("Code", "ClientError"), error.get("Message", "")
            raise statement_error(None, f"Data API {operation} refused: {code}: {message}",
                                  transient=failures.of_exception(code) != Outcome.TERMINAL) from None
        except BotoCoreError as exc:  # endpoint unreachable after botocore's retries
            raise TransientSinkError(f"redshift: Data API {operation}: {type(exc).__name__}: {exc}") from None

    def _cancel(self, statement_id: str) -> None:
        try:
            self.client.cancel_statement(Id=statement_id)
        except (ClientError, BotoCoreError) as exc:  # it may have finished meanwhile: the retry is a no-op then
            logger.warning("could not cancel redshift statement", extra={"statement_id": statement_id,
                                                                         "error": type(exc).__name__})


def _field_value(field: dict[str, Any]) -> Any:
    """A value of a result record (``Field``: one of stringValue, longValue, ... or isNull)."""
    if field.get("isNull"):
        return None
    return next((field[kind] for kind in ("stringValue", "longValue", "doubleValue", "booleanValue", "blobValue")
                 if kind in field), None)


def _position(sub: dict[str, Any], default: int) -> int:
    """The 0-based statement index of a sub-statement, from its Id suffix ``:N``."""
    suffix = str(sub.get("Id", "")).rpartition(":")[2]
    return int(suffix) - 1 if suffix.isdigit() else default


def _row_counts(described: dict[str, Any], count: int) -> list[int]:
    counts = [0] * count
    for position, sub in enumerate(described.get("SubStatements") or []):
        index = _position(sub, position)
        if 0 <= index < count:
            counts[index] = max(int(sub.get("ResultRows") or 0), 0)  # -1: not a row-changing statement
    return counts


def _failed(described: dict[str, Any], statements: Sequence[Statement], rollback: bool) -> dict[str, Any]:
    """A trial that failed at its ROLLBACK statement passed; else the error of the statement that failed."""
    status, message, index = described["Status"], described.get("Error") or "", None
    for position, sub in enumerate(described.get("SubStatements") or []):
        if sub.get("Status") in ("FAILED", "ABORTED"):
            index, message = _position(sub, position), sub.get("Error") or message
            break
    if rollback and status == "FAILED" and index == len(statements) - 1:
        return described
    statement = statements[index] if index is not None and 0 <= index < len(statements) else None
    message = message or ("cancelled by a user or by workload management" if status == "ABORTED" else "no message")
    outcome = failures.of_statement(status, message)
    error = statement_error(statement, f"Redshift statement {described['Id']} {status}: {message}",
                            outcome != Outcome.TERMINAL, index)
    if outcome == Outcome.RETRY:
        raise _Rerun(error)
    raise error
