"""A parallel Scan of a DynamoDB table as a page source, gentle with the table's capacity.

Each segment (``Segment``/``TotalSegments``) is a slice of the key space read with its own
``ExclusiveStartKey``; a page's position is its ``LastEvaluatedKey``. Reads share one
``RateLimiter``: a fraction of the table's provisioned read capacity (measured with
``ReturnConsumedCapacity``), or a number of items per second for on-demand tables.
Throttling is retried by botocore alone: the client that reads is made with ``SCAN_RETRIES``
(adaptive mode: backoff with jitter and a client-side rate limit, a bounded number of tries);
nothing here retries on top of it (``router.retry``).
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Scan.html#Scan.ParallelScan
"""

from __future__ import annotations

import base64
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from router.retry import AWS_ADAPTIVE
from sources.pages import Page

SCAN_RETRIES = AWS_ADAPTIVE  # the ``Config(retries=...)`` of the DynamoDB client a Scan reads with
MAX_SEGMENTS = 1_000_000  # DynamoDB's limit for TotalSegments


class RateLimiter:
    """A token bucket paid after the fact: a read waits until the reads before it are paid for.

    The cost of a Scan page is only known from its answer (consumed capacity, items), so
    each read spends what it cost and the next one waits while the bucket is in debt.
    ``per_second=None`` never waits.
    """

    def __init__(self, per_second: float | None, unit: str = "items", clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.per_second, self.unit, self.clock, self.sleep = per_second, unit, clock, sleep
        self._tokens = per_second or 0.0  # one second's worth may go at once
        self._last = clock()
        self._lock = threading.Lock()

    def wait(self) -> None:
        while self.per_second:
            with self._lock:
                now = self.clock()
                self._tokens = min(self.per_second, self._tokens + (now - self._last) * self.per_second)
                self._last = now
                debt = -self._tokens
            if debt <= 0:
                return
            self.sleep(debt / self.per_second)

    def spend(self, page: dict[str, Any], consistent: bool) -> None:
        if not self.per_second:
            return
        with self._lock:
            self._tokens -= len(page.get("Items", ())) if self.unit == "items" else _capacity(page, consistent)

    def describe(self) -> str:
        return "no read limit" if not self.per_second else f"at most {self.per_second:g} {self.unit}/s"


def read_limiter(table: dict[str, Any], rate: float, items_per_second: float | None, **kw: Any) -> RateLimiter:
    """The limit for a table (a ``DescribeTable`` answer): items/s if given, else ``rate`` of its capacity."""
    if items_per_second:
        return RateLimiter(items_per_second, "items", **kw)
    capacity = (table.get("ProvisionedThroughput") or {}).get("ReadCapacityUnits") or 0
    on_demand = (table.get("BillingModeSummary") or {}).get("BillingMode") == "PAY_PER_REQUEST"
    if on_demand or not capacity:
        return RateLimiter(None, **kw)  # nothing to take a fraction of: --items-per-second limits these
    return RateLimiter(rate * capacity, "read capacity units", **kw)


def _capacity(page: dict[str, Any], consistent: bool) -> float:
    consumed = (page.get("ConsumedCapacity") or {}).get("CapacityUnits")
    if consumed is not None:
        return float(consumed)
    # Not reported (some emulators): 4 KB per unit, half a unit for an eventually consistent read.
    size = sum(len(repr(item)) for item in page.get("Items", ()))
    return max(size / 4096, 1) * (1 if consistent else 0.5)


class ScanSource:
    """``segments`` Scan segments of ``table``; their names (``"3/8"``) carry the total."""

    def __init__(self, dynamodb: Any, table: str, segments: int = 4, *, consistent_read: bool = False,
                 page_size: int = 1000, limiter: RateLimiter | None = None, estimated_items: int | None = None):
        if not 1 <= segments <= MAX_SEGMENTS:
            raise ValueError(f"segments must be between 1 and {MAX_SEGMENTS}, not {segments}")
        self.dynamodb, self.table = dynamodb, table
        self.name = f"scan {table}"
        self.segments = tuple(f"{index}/{segments}" for index in range(segments))
        self.estimated_items = estimated_items
        self.consistent_read, self.page_size = consistent_read, page_size
        self.limiter = limiter or RateLimiter(None)

    def read(self, segment: str, position: Any) -> Iterator[Page]:
        index, total = (int(part) for part in segment.split("/"))
        request: dict[str, Any] = {"TableName": self.table, "Segment": index, "TotalSegments": total,
                                   "Limit": self.page_size, "ConsistentRead": self.consistent_read,
                                   "ReturnConsumedCapacity": "TOTAL"}
        start = decode_key(position) if position is not None else None
        while True:
            if start is not None:
                request["ExclusiveStartKey"] = start
            self.limiter.wait()
            page = self.dynamodb.scan(**request)
            self.limiter.spend(page, self.consistent_read)
            start = page.get("LastEvaluatedKey")
            yield Page(segment, page.get("Items", []), encode_key(start), finished=start is None)
            if start is None:
                return


def encode_key(key: dict[str, Any] | None) -> dict[str, Any] | None:
    """A ``LastEvaluatedKey`` as JSON: binary key values (bytes from boto3) as base64 text."""
    if key is None:
        return None
    return {name: {"B": base64.b64encode(av["B"]).decode("ascii")} if isinstance(av.get("B"), bytes) else av
            for name, av in key.items()}


def decode_key(key: dict[str, Any]) -> dict[str, Any]:
    return {name: {"B": base64.b64decode(av["B"])} if "B" in av else av for name, av in key.items()}


def sample_items(dynamodb: Any, table: str, sample: int, estimated_items: int, rng: random.Random,
                 **options: Any) -> list[dict[str, Any]]:
    """About ``sample`` items drawn at random, reading whole Scan segments in a random order.

    A segment is a slice of the hashed key space, so whole random segments are a random
    sample at the cost of reading little more than the sample: each holds about a tenth of it.
    """
    total = max(1, min(MAX_SEGMENTS, estimated_items // max(sample // 10, 100)))
    source = ScanSource(dynamodb, table, total, **options)
    items: list[dict[str, Any]] = []
    for index in rng.sample(range(total), total):
        for page in source.read(f"{index}/{total}", None):
            items.extend(page.items)
        if len(items) >= sample:
            break
    return rng.sample(items, min(sample, len(items)))
