"""One retry policy per kind of call, so that no retry loop is stacked on another.

- AWS calls (DynamoDB Scan and Streams, the Redshift Data API) retry inside botocore, as the
  client's ``Config(retries=...)`` says: ``AWS_STANDARD`` (throttling, 5xx and dropped
  connections, exponential backoff with jitter) or ``AWS_ADAPTIVE`` (the same plus a client
  side rate limit, for bulk readers such as a Scan), each a bounded number of attempts. No
  code loops around a botocore call: what botocore gives up on is the caller's error.
  https://boto3.amazonaws.com/v1/documentation/api/latest/guide/retries.html
- Everything else that is worth retrying (a transient database error, a stream batch that
  failed transiently) follows ``RetryPolicy``: a bounded number of tries, exponential pauses,
  and never a pause that would end after the Lambda deadline (``router.deadline``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypedDict, TypeVar

from router import deadline

T = TypeVar("T")


class AwsRetries(TypedDict, total=False):
    """``botocore.config.Config(retries=...)`` (https://botocore.amazonaws.com/v1/documentation/api/latest/reference/config.html)."""

    mode: Literal["legacy", "standard", "adaptive"]
    total_max_attempts: int         # tries in all, the first included
    max_attempts: int               # retries after the first try; botocore rewrites it in place, so unused here


# Tries in all, the first included. Standard mode pauses up to 1, 2, 4 ... s (capped at 20 s) with jitter:
# 3 tries wait at most ~3 s, within what the Redshift transport keeps before the Lambda deadline.
AWS_STANDARD: AwsRetries = {"mode": "standard", "total_max_attempts": 3}
# Bulk readers (a backfill's Scan) run outside Lambda and may wait longer for capacity.
AWS_ADAPTIVE: AwsRetries = {"mode": "adaptive", "total_max_attempts": 8}


@dataclass(frozen=True)
class RetryPolicy:
    """Tries ``attempts`` times in all; pauses ``first_pause``, doubling up to ``max_pause``;
    gives up early rather than pause past the deadline less ``margin`` seconds."""

    attempts: int = 5
    first_pause: float = 0.1
    max_pause: float = 10.0
    margin: float = 3.0
    jitter: float = 0.0    # each pause drawn from [1 - jitter, 1] times itself, so that writers spread out

    def pause(self, failures: int, now: float | None = None, until: float | None = None) -> float | None:
        """Seconds to wait after ``failures`` failed tries before the next, or None: give up."""
        if failures >= self.attempts:
            return None
        pause = min(self.first_pause * 2 ** (failures - 1), self.max_pause) * random.uniform(1 - self.jitter, 1)
        until = deadline.current() if until is None else until
        if until is not None and (time.monotonic() if now is None else now) + pause > until - self.margin:
            return None
        return pause

    def call(self, action: Callable[[], T], retryable: Callable[[Exception], bool],
             sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
             until: float | None = None) -> T:
        """``action()``, tried again after an exception that ``retryable`` accepts, as the policy allows.
        ``until``: the deadline on ``clock`` (default: the Lambda's, ``router.deadline``)."""
        failures = 0
        while True:
            try:
                return action()
            except Exception as exc:
                failures += 1
                pause = self.pause(failures, clock(), until)  # first: ``retryable`` may log that a retry follows
                if pause is None or not retryable(exc):
                    raise
                sleep(pause)
