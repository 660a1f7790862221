"""The validated configuration as plain immutable objects, shared by router/ and sinks/."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from router.filters import Filter
from router.modes import (
    DeleteReason,
    Deletes,
    EpochUnit,
    Mask,
    MergeStrategy,
    Mode,
    NewAttribute,
    OnError,
    Unrouted,
    VersionSource,
)
from router.paths import show
from router.types import ColumnType

VERSION_COLUMN = "_cdc_version"
DELETED_COLUMN = "_cdc_deleted_at"
DELETE_REASON = "_cdc_delete_reason"                      # with ttl_deletes: soft: 'ttl' (an expiry) or 'delete'
OP_COLUMN, TIME_COLUMN = "_cdc_op", "_cdc_time"           # mode: history and log: the op; log: the change's time
VALID_FROM, VALID_TO = "_valid_from", "_valid_to"         # mode: history: when a version held
RESERVED_COLUMNS = (VERSION_COLUMN, DELETED_COLUMN, DELETE_REASON, OP_COLUMN, TIME_COLUMN, VALID_FROM, VALID_TO)
MISSING = object()  # "no default" / "no fallback": None is a legitimate value for both


@dataclass(frozen=True)
class Column:
    name: str                      # target column
    path: tuple[str, ...]          # attribute, or a path into nested maps (router.paths)
    type: ColumnType
    default: Any = MISSING         # when the attribute is absent
    fallback: Any = MISSING        # when absent, NULL, or not castable
    mask: Mask | None = None       # hash or drop the value before it goes anywhere
    epoch: EpochUnit | None = None  # the unit of epoch numbers (date and time columns)

    @property
    def source(self) -> str:
        return show(self.path)


@dataclass(frozen=True)
class AddedColumn:
    """A column added to a target for an attribute of ``columns: auto`` (issue 15), as the sink's
    ``auto_columns`` state table records it: every container maps the attribute to this name and type."""

    attribute: str                 # the top-level attribute
    name: str                      # its column (the attribute's name, or a stand-in the sink accepts)
    type: str                      # the route type of its first typed value (router.auto.TYPES)
    new: bool = False              # proposed by this batch: the sink adds it before writing the rows
    by: str | None = None          # the SequenceNumber of the record that brought it (logs; never a value)


@dataclass(frozen=True)
class VersionSpec:
    """A route's ``version:``: where the number the version guard compares comes from."""

    source: VersionSource = VersionSource.SEQUENCE_NUMBER
    attribute: str | None = None   # with VersionSource.ATTRIBUTE


@dataclass(frozen=True)
class MaskKey:
    """Where the HMAC key of ``mask: hmac_sha256`` comes from: a sink's ``mask_secret`` or ``mask_key``.

    ``router.masking`` reads it once per container; the key itself stays out of every repr."""

    secret: str | None = None      # Secrets Manager secret name or ARN
    value: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Route:
    name: str
    source: str                    # DynamoDB table name, as in the eventSourceARN
    sink: str                      # sink name in the config
    schema: str
    table: str
    key: tuple[str, ...]
    columns: tuple[Column, ...]
    extras: str | None = None      # jsonb column for every unmapped attribute
    deletes: Deletes = Deletes.HARD
    on_error: OnError = OnError.FAIL
    filter: Filter | None = None
    log_records: bool = False      # record bodies stay out of logs unless a route opts in
    kinesis: str | None = None     # the Kinesis data stream that carries the source's changes (None: DynamoDB Streams)
    version: VersionSpec = VersionSpec()
    ttl_deletes: Deletes | None = None  # what a TTL expiry does; None: the same as ``deletes``
    mask_key: MaskKey | None = None     # the sink's HMAC key, for columns with mask: hmac_sha256
    mode: Mode = Mode.CURRENT           # history and log: a row per version, keyed by key + _cdc_version
    auto: bool = False                  # columns: auto / auto: true: unlisted attributes become columns
    on_new_attribute: NewAttribute = NewAttribute.IGNORE  # an attribute no column reads
    added: tuple[AddedColumn, ...] = ()  # auto routes, as a batch writes them: the added columns (also in columns)

    def deletes_for(self, expiry: bool) -> Deletes:
        """What a REMOVE does to the row: ``ttl_deletes`` for a TTL expiry, else ``deletes``."""
        return self.ttl_deletes if expiry and self.ttl_deletes is not None else self.deletes

    @property
    def soft_deletes(self) -> bool:
        """Some REMOVEs (users' deletes, TTL expiries or both) mark the row: the table has ``_cdc_deleted_at``."""
        return Deletes.SOFT in (self.deletes, self.ttl_deletes)

    @property
    def delete_reason(self) -> bool:
        """``ttl_deletes: soft``: the table says why a row was deleted (``_cdc_delete_reason``: ttl or delete)."""
        return self.ttl_deletes == Deletes.SOFT

    @property
    def hard_deletes(self) -> bool:
        """Some REMOVEs remove the row: the route keeps tombstones, which its upserts are checked against."""
        return Deletes.HARD in (self.deletes, self.ttl_deletes)

    @property
    def mixed_deletes(self) -> bool:
        """Users' deletes and expiries differ, one removing the row and the other marking it: each REMOVE
        goes by its reason (``hard_reason``), and a newer tombstone stops a mark as it stops an upsert."""
        return {self.deletes, self.ttl_deletes} == {Deletes.HARD, Deletes.SOFT}

    @property
    def hard_reason(self) -> DeleteReason:
        """In a route with ``mixed_deletes``: the reason whose REMOVEs remove the row."""
        return DeleteReason.DELETE if self.deletes == Deletes.HARD else DeleteReason.TTL

    @property
    def versioned(self) -> bool:
        """A row per version (history, log) rather than per item."""
        return self.mode != Mode.CURRENT

    @property
    def target(self) -> tuple[str, str]:
        return (self.schema, self.table)

    @property
    def qualified_table(self) -> str:
        return f"{self.schema}.{self.table}"

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    @property
    def key_columns(self) -> tuple[Column, ...]:
        by_name = {c.name: c for c in self.columns}
        return tuple(by_name[k] for k in self.key)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


@dataclass(frozen=True)
class Capabilities:
    """What differs between databases, declared instead of branched on.

    The defaults describe PostgreSQL; ``router.limits.fit_type`` applies the limits to a
    route's column types when the config is loaded, so a value that does not fit is a cast
    error (fallback / on_error) rather than a database error.
    """

    max_identifier_bytes: int = 63
    merge_strategy: MergeStrategy = MergeStrategy.UPSERT  # upsert: ON CONFLICT; delete-insert: replace whole rows
    max_decimal_precision: int | None = None      # None: numeric of any size
    default_decimal: tuple[int, int] | None = None  # (precision, scale) a bare `numeric` becomes
    max_text_bytes: int | None = None             # longest text or JSON value, in UTF-8 bytes
    folds_identifiers: bool = False               # ASCII letters of names fold to lower case (Redshift)

    def identity(self, name: str) -> str:
        """The name as the database tells names apart: two names with one identity are one object."""
        return name.translate(_ASCII_LOWER) if self.folds_identifiers else name


@dataclass(frozen=True)
class SinkConfig:
    name: str
    type: str
    options: dict[str, Any] = field(default_factory=dict)
    capabilities: Capabilities = field(default_factory=Capabilities)  # of the sink's type
    mask_key: MaskKey | None = None  # mask_secret / mask_key: kept out of ``options``, which sinks pass around


@dataclass(frozen=True)
class Source:
    """What ``sources:`` declares about a DynamoDB table, so that validate can check routes against it."""

    name: str
    key: tuple[str, ...] | None = None   # its key attributes (partition, sort)
    stream: str | None = None            # its stream's StreamViewType


@dataclass(frozen=True)
class Config:
    path: str
    sinks: dict[str, SinkConfig]
    routes: dict[str, Route]
    unrouted: Unrouted = Unrouted.FAIL
    version: int = 1
    unresolved: tuple[str, ...] = ()  # loaded offline: connection options whose ${VAR} is unset (where: why)
    sources: dict[str, Source] = field(default_factory=dict)

    def routes_for(self, source_table: str) -> tuple[Route, ...]:
        return self.routes_by_source.get(source_table, ())

    @cached_property
    def routes_by_source(self) -> dict[str, tuple[Route, ...]]:
        grouped: dict[str, list[Route]] = {}
        for route in self.routes.values():
            grouped.setdefault(route.source, []).append(route)
        return {name: tuple(routes) for name, routes in grouped.items()}
