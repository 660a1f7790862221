"""How long the current invocation may still run, for the sinks that wait on a remote service.

The Lambda handler sets the deadline from its context; a sink that polls (Redshift's Data
API) reads ``current()`` and stops waiting before Lambda kills the function, so that the
batch is reported for retry instead of timing out silently. Sinks that do not wait ignore
it, so no sink interface changes. Outside Lambda (tests, the command line) there is no
deadline unless one is set with ``until``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

_deadline: ContextVar[float | None] = ContextVar("cdc_router_deadline", default=None)


def current() -> float | None:
    """The deadline on the ``time.monotonic()`` clock, or None."""
    return _deadline.get()


@contextmanager
def until(deadline: float | None) -> Iterator[None]:
    """Run the block with ``deadline`` (a ``time.monotonic()`` value) as the current deadline."""
    token = _deadline.set(deadline)
    try:
        yield
    finally:
        _deadline.reset(token)


def from_lambda_context(context: Any) -> float | None:
    """The invocation's end from ``context.get_remaining_time_in_millis()``; None without a context."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    return None if remaining is None else time.monotonic() + remaining() / 1000
