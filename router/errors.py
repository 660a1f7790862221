"""Error types, sorted by who must act on them.

- ``ConfigError``: the operator's ``tables.yaml`` is wrong; the function refuses to start.
- ``InvalidEventError``: the Lambda event is not a batch of stream records at all.
- ``RecordError``: one record cannot be applied (bad value, unknown route); the route's
  ``on_error`` decides between failing the batch there and dead-lettering the record.
- ``SinkError`` and its two kinds (in ``router.sink``) classify database failures.
"""

from __future__ import annotations


class ConfigError(Exception):
    """An invalid configuration file. ``errors`` holds every message, one per problem."""

    def __init__(self, errors: list[str]):
        self.errors = list(errors)
        super().__init__("\n".join(self.errors))


class InvalidEventError(ValueError):
    """The event handed to the handler is not a DynamoDB Streams batch."""


class RecordError(Exception):
    """A single stream record cannot be turned into a change for a route.

    ``redacted`` is the same message without any value from the item: what the logs get,
    since record contents stay out of them unless a route opts in (``log_records``).
    """

    route: str | None = None  # the route whose on_error decided, once known

    def __init__(self, message: str, redacted: str | None = None):
        super().__init__(message)
        self.redacted = message if redacted is None else redacted

    def wrap(self, prefix: str) -> RecordError:
        """The same kind of error, with ``prefix`` (where it happened) before both messages."""
        return type(self)(f"{prefix}: {self}", f"{prefix}: {self.redacted}")


class RouteConfigError(RecordError):
    """A record shows that a route does not fit its source table or stream (key attributes, view type).

    Not the record's fault: every record after it would fail the same way, so the batch stops
    there with the reason, whatever the route's ``on_error``; it is never dead-lettered.
    """


class CastError(RecordError):
    """A value does not fit its column's type."""


class UnroutedRecordError(RecordError):
    """A record's source table has no route in the configuration."""


class SourceMismatchError(RecordError):
    """A record came through another source (DynamoDB Streams or a Kinesis data stream) than its
    table's routes name: a configuration error, never dead-lettered."""


class BackfillError(Exception):
    """A backfill cannot start or go on (its source is unreadable, a check failed); positions saved so far stay valid."""
