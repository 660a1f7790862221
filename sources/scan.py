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
    """A token bucket shared by every segment, paid before each read.

    A read reserves what its page may cost (its ``Limit`` of items, at most one second's
    worth; for capacity units, what the last page cost) and waits while the bucket is in
    debt, so parallel segments queue behind each other instead of all reading first and
    paying afterwards; the answer settles the difference (a short page gives back what it
    did not use). The bucket starts empty and holds at most one second's worth: over a
    run, items/s stay at the limit. ``per_second=None`` never waits.
    """

    def __init__(self, per_second: float | None, unit: str = "items", clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.per_second, self.unit, self.clock, self.sleep = per_second, unit, clock, sleep
        self._tokens = 0.0
        self._last = clock()
        self._last_cost = 1.0  # capacity units: the estimate for the next page
        self._lock = threading.Lock()

    def page_limit(self, page_size: int) -> int:
        """A Scan page's ``Limit``: at most one second's worth of items, so a reservation never overshoots."""
        if self.per_second and self.unit == "items":
            return max(1, min(page_size, int(self.per_second)))
        return page_size

    def acquire(self, limit: int) -> float:
        """Before a read of at most ``limit`` items: reserve its cost, wait until it is paid; return the reservation."""
        if not self.per_second:
            return 0.0
        with self._lock:
            now = self.clock()
            self._tokens = min(self.per_second, self._tokens + (now - self._last) * self.per_second)
            self._last = now
            reserved = float(limit) if self.unit == "items" else self._last_cost
            self._tokens -= reserved
            debt = -self._tokens
        if debt > 0:
            self.sleep(debt / self.per_second)
        return reserved

    def settle(self, reserved: float, page: dict[str, Any], consistent: bool) -> None:
        """After the read: pay what the page cost beyond the reservation, or get back what it did not use."""
        if not self.per_second:
            return
        cost = float(len(page.get("Items", ()))) if self.unit == "items" else _capacity(page, consistent)
        with self._lock:
            self._tokens += reserved - cost
            if self.unit != "items":
                self._last_cost = cost

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
                                   "Limit": self.limiter.page_limit(self.page_size), "ConsistentRead": self.consistent_read,
                                   "ReturnConsumedCapacity": "TOTAL"}
        start = decode_key(position) if position is not None else None
        while True:
            if start is not None:
                request["ExclusiveStartKey"] = start
            reserved = self.limiter.acquire(request["Limit"])
            page = self.dynamodb.scan(**request)
            self.limiter.settle(reserved, page, self.consistent_read)
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
