"""The sink interface and the data it receives.

A sink gets, per batch, one ``RouteBatch`` per route: the reduced changes (at most one
per target key) and the records to dead-letter. ``apply`` writes all of it in one
transaction or raises a ``SinkError``; everything else has a no-op default.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from router.model import AddedColumn, Capabilities, Route, SinkConfig
from router.modes import DeleteReason, Deletes, Fix, Op

if TYPE_CHECKING:
    from router.records import ChangeRecord

UPSERT, DELETE = Op.UPSERT, Op.DELETE  # the two ops of a Change (Op.KEEP is a DELETE with values_from)


@dataclass(slots=True, eq=False)
class Change:
    """The desired state of one target row, produced from one stream record."""

    route: Route
    op: Op                         # UPSERT or DELETE
    key: tuple[Any, ...]
    row: dict[str, Any]            # column -> value; key columns only for a DELETE
    version: int                   # stream SequenceNumber as a number (0: backfill)
    record: ChangeRecord         # the record whose image this is (the last one for its key)
    first: int = -1                # batch index of the earliest record merged into this change
    values_from: ChangeRecord | None = None  # a soft DELETE that carries the values of this upsert record

    @property
    def keeps_values(self) -> bool:
        return self.values_from is not None

    def __post_init__(self) -> None:
        if self.first < 0:
            self.first = self.record.index

    @property
    def time(self) -> dt.datetime | None:
        return self.record.created_at

    @property
    def deletes(self) -> Deletes:
        """What a DELETE does to the row: the route's ``ttl_deletes`` for a TTL expiry, else its ``deletes``."""
        return self.route.deletes_for(self.record.is_expiry)

    @property
    def reason(self) -> str | None:
        """A DELETE's ``_cdc_delete_reason`` (``ttl`` or ``delete``); None for an upsert."""
        if self.op != Op.DELETE:
            return None
        return DeleteReason.TTL if self.record.is_expiry else DeleteReason.DELETE


@dataclass(slots=True, eq=False)
class DeadLetter:
    """A record that can never be applied to ``route``, kept with the reason."""

    route: Route
    record: ChangeRecord
    error: str


@dataclass(frozen=True)
class Fill:
    """``backfill --columns``: write only ``columns`` of rows that exist, and only where a row's version is
    still the one the sink recorded before the items were read (``Sink.record_versions``)."""

    columns: tuple[str, ...]


@dataclass
class RouteBatch:
    route: Route
    changes: list[Change] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    fill: Fill | None = None       # the changes fill these columns of existing rows instead of upserting

    @property
    def first_index(self) -> int:
        """The earliest batch index whose outcome depends on this route's write."""
        indexes = [c.first for c in self.changes] + [d.record.index for d in self.dead_letters]
        return min(indexes) if indexes else -1


@dataclass
class RouteStats:
    upserted: int = 0              # rows inserted or updated
    stale: int = 0                 # upserts skipped: the row or its tombstone was as new or newer
    deleted: int = 0               # rows deleted (hard) or marked deleted (soft) by a user's delete
    expired: int = 0               # TTL expiries received, whatever ttl_deletes did with them
    dead_lettered: int = 0
    failed: int = 0                # records reported back to Lambda for retry
    columns_added: int = 0         # columns added to the target for new attributes (columns: auto)
    defaults: Counter[str] = field(default_factory=Counter)   # column -> rows that took its default
    fallbacks: Counter[str] = field(default_factory=Counter)  # column -> rows that took its fallback

    def add(self, other: RouteStats) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


class SinkError(Exception):
    """The sink could not apply its share of the batch; nothing of it was committed."""

    transient = False


class TransientSinkError(SinkError):
    """Connection loss, timeout, deadlock, overload: retrying the same batch can succeed."""

    transient = True


class RejectedChangeError(SinkError):
    """The database refused one change (a constraint, a value out of range)."""

    def __init__(self, message: str, change: Change | None = None):
        super().__init__(message)
        self.change = change


@dataclass(frozen=True)
class StoredDeadLetter:
    """A row of a sink's dead-letter table: the record as delivered, and why it was set aside."""

    id: int
    route: str
    source_table: str | None
    sequence_number: int | None
    error: str
    record: dict[str, Any]         # the Lambda stream record, as the pipeline received it
    failed_at: dt.datetime


@dataclass(frozen=True)
class Drift:
    """One way a live target table differs from its route, and the statements that fix it."""

    route: str
    table: str                     # schema.table
    problem: str                   # missing table | missing column | type mismatch | missing/different primary key
    column: str | None = None      # | missing index | extra column
    expected: str | None = None
    actual: str | None = None
    fix: tuple[str, ...] = ()
    kind: Fix = Fix.ADDITIVE       # what running ``fix`` does to the data, hence when ``schema --apply`` runs it
    note: str | None = None        # what the fix costs, or (Fix.BY_HAND) what to do instead
    alone: bool = False            # each fix statement outside a transaction block (Redshift's ALTER COLUMN TYPE)


class Sink:
    """Base class: ``apply`` is required; DDL, checks and ``close`` default to nothing."""

    config_schema: ClassVar[dict[str, Any]] = {}
    capabilities: ClassVar[Capabilities] = Capabilities()
    # Options only a connection reads: offline commands (validate, printing DDL, dry runs) load without their ${VAR}s.
    connection_options: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, config: SinkConfig, routes: Sequence[Route] = ()):
        self.config = config
        self.name = config.name
        self.routes = tuple(routes)

    @classmethod
    def route_problems(cls, route: Route, options: Mapping[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
        """What this sink type cannot do with ``route`` under ``options``, checked when the config loads:
        ``(path under the route, reason)`` pairs. None by default."""
        return []

    def apply(self, batches: Sequence[RouteBatch]) -> dict[str, RouteStats]:
        """Write every batch in one transaction; return the counts per route name."""
        raise NotImplementedError

    def added_columns(self, route: Route) -> list[AddedColumn]:
        """The columns added to the route's target for ``columns: auto``, as recorded; a sink that keeps no
        record has none (its rows take any column)."""
        return []

    def ddl(self, route: Route) -> list[str]:
        """Statements that create the route's target table."""
        return []

    def state_ddl(self) -> list[str]:
        """Statements that create the sink's own tables (tombstones, dead letters)."""
        return []

    def grants(self, routes: Sequence[Route]) -> list[str]:
        """The GRANT statements the database user the function writes as needs for ``routes``; none by default."""
        return []

    def apply_ddl(self, routes: Sequence[Route] | None = None) -> None:
        """Run ``state_ddl`` and the ``ddl`` of ``routes`` (default: all of this sink's)."""

    def check_state(self) -> list[Drift]:
        """How the sink's own tables (tombstones, dead letters) differ from what it needs; empty when they match."""
        return []

    def check(self, route: Route) -> list[Drift]:
        """How the route's live target table differs from the route; empty when it matches."""
        raise NotImplementedError(f"sink type {self.config.type!r} cannot check its tables")

    def apply_fixes(self, drifts: Sequence[Drift]) -> None:
        """Run the ``fix`` statements of ``drifts`` (from ``check``/``check_state``), in order."""
        raise NotImplementedError(f"sink type {self.config.type!r} cannot change its tables")

    def record_versions(self, route: Route) -> None:
        """Record the key and version of every row of the route's table (anew), for fills (``RouteBatch.fill``)."""
        raise NotImplementedError(f"sink type {self.config.type!r} cannot fill columns")

    def has_versions(self, route: Route) -> bool:
        """Whether the versions of the route's rows are recorded (``record_versions``, not forgotten since)."""
        raise NotImplementedError(f"sink type {self.config.type!r} cannot fill columns")

    def forget_versions(self, route: Route) -> None:
        """Drop the recorded versions of the route's rows."""
        raise NotImplementedError(f"sink type {self.config.type!r} cannot fill columns")

    def explain(self, batches: Sequence[RouteBatch]) -> list[str]:
        """The statements ``apply`` would run for ``batches``, for dry runs; nothing by default."""
        return []

    def read_text(self, route: Route) -> list[dict[str, str | None]]:
        """Every row of the route's table, bookkeeping columns included, each value as the database
        writes it as text (``cdc-router check-sink`` compares them with what was sent)."""
        raise NotImplementedError(f"sink type {self.config.type!r} cannot read its tables back")

    def drop_schemas(self, schemas: Sequence[str]) -> None:
        """Drop schemas and everything in them (``check-sink``'s scratch schemas)."""
        raise NotImplementedError(f"sink type {self.config.type!r} cannot drop schemas")

    def dead_letters(self, routes: Sequence[str] = (), limit: int | None = None) -> list[StoredDeadLetter]:
        """The dead-lettered records (only these routes' if given), by route and stream order."""
        raise NotImplementedError(f"sink type {self.config.type!r} keeps no dead-letter table")

    def remove_dead_letters(self, ids: Sequence[int]) -> int:
        """Delete dead letters by id (once a retry applied them); return how many went."""
        raise NotImplementedError(f"sink type {self.config.type!r} keeps no dead-letter table")

    def close(self) -> None:
        """Release connections; the sink may be used again afterwards."""

    def __enter__(self) -> Sink:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


SinkTypes = Mapping[str, type[Sink]]
"""Sink classes by the ``type:`` name used in tables.yaml; built by the entry point."""
