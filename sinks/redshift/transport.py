"""How the Redshift sink's statements reach a database: the transport interface.

A transport runs a list of statements as one transaction, in a session of its own (so a
temporary table lives exactly as long as the call), and returns each statement's row count.
It raises ``SinkError`` (``TransientSinkError`` when retrying can succeed) naming the
route of the statement that failed. ``data_api.DataApiTransport`` is the production one;
the test suite runs the same statement lists on PostgreSQL through a psycopg transport.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from router.sink import SinkError, TransientSinkError

MAX_STATEMENTS = 40           # statements per BatchExecuteStatement call (the API's SqlList limit)
MAX_STATEMENT_BYTES = 100_000  # the Data API refuses a query string larger than 100 KB


@dataclass(frozen=True)
class Statement:
    sql: str
    route: str | None = None       # the route whose rows it writes (None: the sink's own tables)
    counts: str | None = None      # "upserted" / "deleted": its row count adds to the route's stats


class Transport(Protocol):
    def execute(self, statements: Sequence[Statement], deadline: float | None = None) -> list[int]:
        """Run ``statements`` in one transaction; their row counts. ``deadline``: ``time.monotonic()``."""

    def close(self) -> None:
        """Release clients or connections."""


def statement_error(statement: Statement | None, message: str, transient: bool = False) -> SinkError:
    """The error for a failed statement, naming what it was writing."""
    if statement is None:
        where = "redshift"
    elif statement.route:
        where = f"route {statement.route!r}"
    else:
        where = "the sink's state tables"
    return (TransientSinkError if transient else SinkError)(f"{where}: {message}")
