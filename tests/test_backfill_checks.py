"""What the backfill checks before it writes (a stream to hand over to, records that do not expire
first, an export not older than the stream), and how it paces its reads."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from operations.backfill import BackfillError
from operations.handover import export_warnings, source_table, stream_warnings
from sources.scan import RateLimiter, read_limiter

UTC = dt.UTC


@pytest.fixture
def aws() -> Iterator[tuple[Any, Any]]:
    with mock_aws():
        yield boto3.client("dynamodb"), boto3.client("dynamodbstreams")


def create(dynamodb: Any, stream: str | None = "NEW_IMAGE", **options: Any) -> dict[str, Any]:
    if stream:
        options["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream}
    options.setdefault("BillingMode", "PAY_PER_REQUEST")
    dynamodb.create_table(TableName="Employees", AttributeDefinitions=[{"AttributeName": "Id", "AttributeType": "N"}],
                          KeySchema=[{"AttributeName": "Id", "KeyType": "HASH"}], **options)
    return source_table(dynamodb, "Employees")


@pytest.mark.parametrize("stream, refusal", [
    (None, "DynamoDB table 'Employees' has no stream, so nothing would carry the changes made during and after the "
           "backfill: enable one (StreamViewType NEW_IMAGE or NEW_AND_OLD_IMAGES), deploy the trigger from "
           "TRIM_HORIZON, then backfill"),
    ("KEYS_ONLY", "the stream of DynamoDB table 'Employees' has StreamViewType KEYS_ONLY: the trigger needs "
                  "NEW_IMAGE or NEW_AND_OLD_IMAGES"),
])
def test_a_table_without_a_usable_stream_is_refused(aws: Any, stream: str | None, refusal: str) -> None:
    dynamodb, streams = aws
    with pytest.raises(BackfillError) as refused:
        stream_warnings(streams, create(dynamodb, stream))
    assert str(refused.value) == refusal


def test_a_missing_table_is_one_line(aws: Any) -> None:
    with pytest.raises(BackfillError, match="DynamoDB table 'Nope' \\(the route's source\\) does not exist"):
        source_table(aws[0], "Nope")


@pytest.mark.parametrize("hours_later, warned", [(0, False), (19, False), (21, True), (30, True)])
def test_a_warning_when_the_oldest_stream_record_nears_its_expiry(aws: Any, hours_later: int, warned: bool) -> None:
    dynamodb, streams = aws
    table = create(dynamodb)
    dynamodb.put_item(TableName="Employees", Item={"Id": {"N": "1"}})
    now = dt.datetime.now(UTC) + dt.timedelta(hours=hours_later)
    warnings = stream_warnings(streams, table, now=now)
    assert bool(warnings) is warned
    if warned:
        assert warnings[0].startswith(f"the oldest record on the stream of Employees is {hours_later:.1f} hours old "
                                      "and records are kept 24.0 hours: make sure the trigger is reading")


def test_an_empty_stream_warns_of_nothing(aws: Any) -> None:
    dynamodb, streams = aws
    assert stream_warnings(streams, create(dynamodb), now=dt.datetime.now(UTC) + dt.timedelta(days=3)) == []


STREAM_ENABLED = dt.datetime(2024, 1, 1, tzinfo=UTC)
TABLE = {"TableName": "Employees", "LatestStreamLabel": "2024-01-01T00:00:00.000"}


@pytest.mark.parametrize("export_hours, now_hours, retention, outcome", [
    # an export taken an hour after the stream was enabled, read an hour later: fine
    (1, 2, 48, None),
    # taken before the stream existed: changes in between are in neither
    (-1, 2, 48, "refused: the stream of Employees was enabled at 2024-01-01 00:00:00Z, after the export's point in "
                "time (2023-12-31 23:00:00Z)"),
    # 22 hours old: the trigger must have read a day of records
    (1, 23, 48, "warned: the export is 22.0 hours old"),
    # older than the tombstones: a delete since the export would be forgotten
    (1, 51, 48, "refused: the export is 50.0 hours old and tombstones are kept 48 hours"),
    # a route without tombstones (soft or ignore): only the warning
    (1, 51, None, "warned: the export is 50.0 hours old"),
])
def test_an_export_must_be_newer_than_the_stream_and_its_deletes_remembered(
        export_hours: int, now_hours: int, retention: int | None, outcome: str | None) -> None:
    hours = lambda n: STREAM_ENABLED + dt.timedelta(hours=n)  # noqa: E731
    try:
        warnings = export_warnings(TABLE, hours(export_hours), retention, now=hours(now_hours))
        got = f"warned: {warnings[0]}" if warnings else None
    except BackfillError as exc:
        got = f"refused: {exc}"
    assert (got or "").startswith(outcome or "") and bool(got) == bool(outcome)


class Clock:
    def __init__(self) -> None:
        self.now, self.slept = 0.0, list[float]()

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 3))
        self.now += seconds


def test_the_rate_limiter_is_paid_before_each_read_and_settled_after() -> None:
    clock = Clock()
    limiter = RateLimiter(10, clock=lambda: clock.now, sleep=clock.sleep)
    assert limiter.page_limit(1000) == 10  # a page is at most a second's worth
    reserved = limiter.acquire(10)  # the bucket starts empty: a second to pay for 10 items
    assert (reserved, clock.slept) == (10, [1.0])
    limiter.settle(reserved, {"Items": [{}] * 5}, consistent=False)  # a short page gives back 5
    limiter.acquire(10)  # 5 in hand, 5 to wait for
    assert clock.slept == [1.0, 0.5]


@pytest.mark.parametrize("per_second, segments, items", [
    (500, 4, 20_000),   # issue 18: 500 read at 670/s when the limiter was paid after each page, per segment
    (1000, 8, 30_000),
    (7, 2, 100),
])
def test_parallel_segments_share_one_bucket_and_read_at_the_limit(per_second: int, segments: int, items: int) -> None:
    # GIVEN segments taking turns (as threads would) with full pages and one shared limiter, on a fake clock
    clock = Clock()
    limiter = RateLimiter(per_second, clock=lambda: clock.now, sleep=clock.sleep)
    limit, read, reads = limiter.page_limit(1000), 0, []
    while read < items:
        for _ in range(segments):
            reserved = limiter.acquire(limit)
            reads.append((clock.now, limit))
            limiter.settle(reserved, {"Items": [{}] * limit}, consistent=False)
            read += limit
    # THEN over the run, and over every window of ten seconds, items/s never exceed the limit
    assert read / clock.now <= per_second
    assert read / clock.now > per_second * 0.99
    for start, _ in reads:
        in_window = sum(n for at, n in reads if start <= at < start + 10)
        assert in_window <= per_second * 10 + limit


@pytest.mark.parametrize("table, rate, items_per_second, expected", [
    ({"ProvisionedThroughput": {"ReadCapacityUnits": 100}}, 0.25, None, "at most 25 read capacity units/s"),
    ({"ProvisionedThroughput": {"ReadCapacityUnits": 100}}, 0.25, 40, "at most 40 items/s"),
    ({"BillingModeSummary": {"BillingMode": "PAY_PER_REQUEST"}}, 0.5, None, "no read limit"),
    ({"BillingModeSummary": {"BillingMode": "PAY_PER_REQUEST"}}, 0.5, 500, "at most 500 items/s"),
])
def test_the_read_limit_is_a_fraction_of_capacity_or_items_per_second(table: dict[str, Any], rate: float,
                                                                      items_per_second: float | None,
                                                                      expected: str) -> None:
    assert read_limiter(table, rate, items_per_second).describe() == expected


def test_provisioned_capacity_is_measured_from_consumed_capacity() -> None:
    clock = Clock()
    limiter = read_limiter({"ProvisionedThroughput": {"ReadCapacityUnits": 8}}, 0.5, None,
                           clock=lambda: clock.now, sleep=clock.sleep)
    reserved = limiter.acquire(1000)  # 4 units/s; the first estimate is one unit: a quarter of a second
    limiter.settle(reserved, {"Items": [{}], "ConsumedCapacity": {"CapacityUnits": 12.0}}, consistent=True)
    limiter.acquire(1000)  # 11 more were spent; the next page is estimated at the last one's 12: 23 to wait for
    assert clock.slept == [0.25, 5.75]
