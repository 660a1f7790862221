"""How the Redshift sink's statements reach a database: the transport interface.

A transport runs a list of statements as one transaction, in a session of its own (so a
temporary table lives exactly as long as the call), and returns each statement's row count.
It raises ``TransientSinkError`` when retrying the batch can succeed, ``FailedStatementError``
(naming the statement, and its position in the call) when the database refused a statement,
and ``SinkError`` for any other terminal failure. A trial (``rollback=True``) runs the same way
and then rolls everything back: it tells whether the statements would pass, writing nothing.
``query`` runs one statement with named parameters (listing dead letters, reading the catalog)
and returns its rows. ``data_api.DataApiTransport`` is the production one;
the test suite runs the same statement lists on PostgreSQL through a psycopg transport.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from router.sink import SinkError, TransientSinkError
from sinks.sql.sink import QueryResult

MAX_STATEMENTS = 40           # statements per BatchExecuteStatement call (the API's SqlList limit)
MAX_STATEMENT_BYTES = 100_000  # the Data API refuses a query string larger than 100 KB


@dataclass(frozen=True)
class Statement:
    sql: str
    route: str | None = None       # the route whose rows it writes (None: the sink's own tables)
    counts: str | None = None      # "upserted" / "deleted": its row count adds to the route's stats
    writes: tuple[tuple[str, str], ...] = ()  # (schema, table) of the shared tables it writes: locked first


class Transport(Protocol):
    def execute(self, statements: Sequence[Statement], deadline: float | None = None,
                rollback: bool = False) -> list[int]:
        """Run ``statements`` in one transaction; their row counts. ``deadline``: ``time.monotonic()``.
        ``rollback``: a trial, rolled back whatever happens."""

    def query(self, statement: str, params: Mapping[str, Any], deadline: float | None = None) -> QueryResult:
        """Run one statement whose ``:name`` placeholders take ``params``; its rows and row count."""

    def close(self) -> None:
        """Release clients or connections."""


class FailedStatementError(SinkError):
    """The database refused statement ``index`` of the call; retrying the same statements cannot help."""

    def __init__(self, message: str, statement: Statement | None = None, index: int | None = None):
        super().__init__(message)
        self.statement, self.index = statement, index


def statement_error(statement: Statement | None, message: str, transient: bool = False,
                    index: int | None = None) -> SinkError:
    """The error for a failed statement, naming what it was writing."""
    if statement is None:
        where = "redshift"
    elif statement.route:
        where = f"route {statement.route!r}"
    else:
        where = "the sink's state tables"
    if transient:
        return TransientSinkError(f"{where}: {message}")
    if "does not exist" in message and ("relation" in message or "schema" in message):  # never created (issue 12)
        message += " (create the missing tables with: cdc-router schema --apply)"
    return FailedStatementError(f"{where}: {message}", statement, index)
