"""One retry policy per kind of call, and a bounded number of calls for each.

AWS calls retry inside botocore only: a throttled request is answered by a ``before-send``
handler (botocore's event hook, the one moto uses), which counts what actually went out.
Before this, a throttled Scan made about 90 calls (8 retries here of 10 attempts inside botocore).
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.exceptions import ClientError

from router.retry import AWS_STANDARD, RetryPolicy
from router.sink import TransientSinkError
from sinks.redshift.data_api import DataApiTransport
from sinks.redshift.transport import Statement
from sources.scan import SCAN_RETRIES, ScanSource


class _Body:
    def __init__(self, body: bytes):
        self.body = body

    def stream(self, **_: Any) -> Any:
        yield self.body


class Throttled:
    """Answers every ``operation`` request of ``client`` with a throttling error; keeps the requests."""

    def __init__(self, client: Any, operation: str, code: str):
        self.requests: list[Any] = []
        self.code = code
        client.meta.events.register(f"before-send.{client.meta.service_model.service_id.hyphenize()}.{operation}",
                                    self)

    def __call__(self, request: Any, **_: Any) -> AWSResponse:
        self.requests.append(request)
        return self.response(request, self.code)

    @staticmethod
    def response(request: Any, code: str) -> AWSResponse:
        """What the service answers when it throttles a request (a JSON-protocol error)."""
        body = json.dumps({"__type": code, "message": "Rate exceeded"}).encode()
        return AWSResponse(request.url, 400, {"x-amzn-requestid": "r", "content-type": "application/x-amz-json-1.0"},
                           _Body(body))


def test_a_throttled_scan_makes_as_many_calls_as_its_client_allows_and_no_more() -> None:
    # the backfill's client allows SCAN_RETRIES' 8 tries; 3 here keep botocore's backoff short
    assert SCAN_RETRIES == {"mode": "adaptive", "total_max_attempts": 8}
    dynamodb = boto3.client("dynamodb", region_name="us-east-1",
                            config=Config(retries={"mode": "adaptive", "total_max_attempts": 3}))
    throttled = Throttled(dynamodb, "Scan", "ProvisionedThroughputExceededException")
    with pytest.raises(ClientError) as failed:
        list(ScanSource(dynamodb, "Employees", 1).read("0/1", None))
    assert failed.value.response["Error"]["Code"] == "ProvisionedThroughputExceededException"
    assert len(throttled.requests) == 3  # was 9 tries of botocore's 10 (DynamoDB's legacy default): 90


def test_a_throttled_data_api_call_makes_a_bounded_number_of_calls_with_one_token() -> None:
    transport = DataApiTransport({"WorkgroupName": "analytics", "Database": "dev"}, region="us-east-1",
                                 new_token=lambda: "token-1")
    throttled = Throttled(transport.client, "BatchExecuteStatement", "ThrottlingException")
    with pytest.raises(TransientSinkError) as failed:
        transport.execute([Statement("SELECT 1")])
    assert "ThrottlingException" in str(failed.value)
    assert len(throttled.requests) == AWS_STANDARD["total_max_attempts"]
    # the same ClientToken every time: a submission that did reach Redshift is not run twice
    assert {json.loads(request.body)["ClientToken"] for request in throttled.requests} == {"token-1"}


@pytest.mark.parametrize("policy, failures, now, until, pause", [
    # doubling from the first pause
    (RetryPolicy(attempts=5, first_pause=0.1), 1, 0.0, None, 0.1),
    (RetryPolicy(attempts=5, first_pause=0.1), 3, 0.0, None, 0.4),
    # capped
    (RetryPolicy(attempts=20, first_pause=0.1, max_pause=1.0), 10, 0.0, None, 1.0),
    # every attempt used: give up
    (RetryPolicy(attempts=3), 3, 0.0, None, None),
    # a pause that would end within the margin before the deadline: give up now
    (RetryPolicy(attempts=5, first_pause=1.0, margin=3.0), 2, 100.0, 104.5, None),
    (RetryPolicy(attempts=5, first_pause=1.0, margin=3.0), 1, 100.0, 104.5, 1.0),
    # no pause at all (a reconnect)
    (RetryPolicy(attempts=2, first_pause=0.0), 1, 0.0, None, 0.0),
])
def test_the_policy_pauses(policy: RetryPolicy, failures: int, now: float, until: float | None,
                           pause: float | None) -> None:
    assert policy.pause(failures, now, until) == pause


def test_call_retries_what_is_retryable_and_no_more_than_the_policy_allows() -> None:
    calls, sleeps = [], []

    def flaky() -> str:
        calls.append(1)
        raise TransientSinkError("connection reset")

    with pytest.raises(TransientSinkError):
        RetryPolicy(attempts=3, first_pause=0.5).call(flaky, lambda exc: exc.transient, sleep=sleeps.append)
    assert (len(calls), sleeps) == (3, [0.5, 1.0])
    calls.clear()
    with pytest.raises(ValueError):
        RetryPolicy(attempts=3).call(lambda: calls.append(1) or int("x"), lambda exc: False, sleep=sleeps.append)
    assert len(calls) == 1
