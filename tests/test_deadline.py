"""The invocation's deadline, as sinks that wait on a remote service see it."""

from __future__ import annotations

import time

from router import deadline


class LambdaContext:
    """The one method of Lambda's context object that the deadline reads."""

    def __init__(self, remaining_ms: int):
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def test_no_deadline_outside_lambda() -> None:
    assert deadline.current() is None
    assert deadline.from_lambda_context(None) is None


def test_deadline_from_the_lambda_context() -> None:
    # GIVEN 30 s left in the invocation WHEN the deadline is taken THEN it is 30 s from now on the monotonic clock
    before = time.monotonic()
    moment = deadline.from_lambda_context(LambdaContext(30_000))
    assert moment is not None and before + 30 <= moment <= time.monotonic() + 30


def test_until_sets_the_deadline_for_the_block_only() -> None:
    with deadline.until(123.0):
        assert deadline.current() == 123.0
        with deadline.until(None):
            assert deadline.current() is None
        assert deadline.current() == 123.0
    assert deadline.current() is None
