"""Data API failures sorted where they arise: retried in place, transient, or terminal.

Terminal is the default: a failure that is not known to pass on a retry is reported as
permanent, so that a refused value is dead-lettered (``on_error: dead_letter``) instead of
being retried until the record ages out of the stream.

- Exception types of the Data API (the service model's error shapes,
  https://docs.aws.amazon.com/redshift-data/latest/APIReference/CommonErrors.html and each
  action's Errors): throttling and overload are retried in place with the same ClientToken;
  a lost database connection, a query timeout and ``BatchExecuteStatementException`` ("An
  SQL statement encountered an environmental error while running") are transient.
- A FAILED statement carries Redshift's message. Redshift's numbered errors start
  ``ERROR: <code>``; 1023 (serializable isolation violation, concurrent writers) is rerun as
  a new transaction, as the Redshift guide advises
  (https://docs.aws.amazon.com/redshift/latest/dg/c_serial_isolation-serializable-isolation-troubleshooting.html).
  Every other message, whatever words it contains, is terminal.
- An ABORTED statement was cancelled (by a user, by workload management): transient.
"""

from __future__ import annotations

import re
from enum import StrEnum


class Outcome(StrEnum):
    RETRY = "retry"            # the same call again, after a pause, within the deadline
    TRANSIENT = "transient"    # the batch is reported for Lambda to retry
    TERMINAL = "terminal"      # retrying cannot help: reject the change that caused it


THROTTLED = frozenset({
    "ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded", "ServiceUnavailable",
    "ActiveStatementsExceededException", "ActiveSessionsExceededException", "ActiveWaitingRequestsExceededException",
    "InternalServerException",
})
TRANSIENT_ERRORS = frozenset({
    "DatabaseConnectionException", "QueryTimeoutException", "BatchExecuteStatementException",
    "ExecuteStatementException",
})
RERUN_CODES = frozenset({"1023"})  # serializable isolation violation: rerun the whole transaction
_CODE = re.compile(r"\s*ERROR:\s*(\d+)\b")


def of_exception(code: str) -> Outcome:
    """What to do about a Data API exception, by its type (the error code botocore reports)."""
    if code in THROTTLED:
        return Outcome.RETRY
    return Outcome.TRANSIENT if code in TRANSIENT_ERRORS else Outcome.TERMINAL


def redshift_code(message: str) -> str | None:
    """Redshift's numeric error code at the start of a statement's error, if it has one."""
    match = _CODE.match(message)
    return match.group(1) if match else None


def of_statement(status: str, message: str) -> Outcome:
    """What to do about a FAILED or ABORTED statement."""
    if status == "ABORTED":
        return Outcome.TRANSIENT
    return Outcome.RETRY if redshift_code(message) in RERUN_CODES else Outcome.TERMINAL
