"""``columns: auto`` and ``on_new_attribute`` (issue 15): the attributes no listed column reads.

A route with ``auto`` writes every top-level attribute to a column named as the attribute,
typed from its DynamoDB type (``TYPES``). The columns added so far are recorded by the sink
(its ``auto_columns`` state table); ``AutoColumns`` holds one route's record in one container,
plus the columns the current batch proposes, and turns an image's unlisted attributes into
values of those columns. The transform calls ``fill`` for every upsert; the pipeline hands
the sink the route with every added column (``route()``), and the sink adds the new ones in
the batch's transaction before it writes the rows.

A value of a DynamoDB type other than its column's (or one the column cannot hold, such as
a number beyond Redshift's DECIMAL(38,9)) goes to the route's ``extras`` column, or else is
a cast error handled by ``on_error``. A NULL attribute adds no column: the column comes with
the attribute's first typed value.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from typing import Any

from router import attrs
from router.errors import CastError, RecordError
from router.limits import fit_type
from router.model import RESERVED_COLUMNS, AddedColumn, Capabilities, Column, Route
from router.modes import NewAttribute
from router.records import ChangeRecord
from router.sink import UPSERT, Change, TransientSinkError
from router.types import ColumnType, parse_type

# The column type each DynamoDB type becomes (M and L share jsonb: a list and a map are one kind of column).
TYPES = {"S": "text", "N": "numeric", "BOOL": "boolean", "B": "bytea", "M": "jsonb", "L": "jsonb",
         "SS": "text[]", "NS": "numeric[]", "BS": "bytea[]"}
SUFFIX_HEX = 8  # hex digits of the attribute's SHA-256 that make a stand-in name unique


class NewAttributeError(RecordError):
    """A record brings an attribute that a route with ``on_new_attribute: dead_letter`` has no column for:
    dead-lettered whatever the route's ``on_error`` (the route asked for exactly that)."""

    dead_letter = True


class AddedColumnsChangedError(TransientSinkError):
    """Another container added columns to the target since this one read their record: the batch was
    rolled back; the pipeline reads the record again and transforms the batch anew."""


def column_name(attribute: str, taken: set[str], capabilities: Capabilities) -> str:
    """The attribute's own name when the sink takes it as a column name and no other column has it (as
    the sink tells names apart), else a stand-in: the name cut to fit, ``_`` and the first hex digits of
    the name's SHA-256 (``_2``, ``_3``... after them while that is taken too). Deterministic for a given
    set of taken names; the sink records the result, so that every container maps the attribute alike."""
    limit = capabilities.max_identifier_bytes
    if _acceptable(attribute, limit) and capabilities.identity(attribute) not in taken:
        return attribute
    digest = hashlib.sha256(attribute.encode("utf-8", "surrogatepass")).hexdigest()[:SUFFIX_HEX]
    stem = "".join(char for char in attribute if char.isprintable() and not 0xD800 <= ord(char) <= 0xDFFF)
    for number in range(1, len(taken) + 2):
        suffix = f"_{digest}" + (f"_{number}" if number > 1 else "")
        candidate = _clip(stem, limit - len(suffix)) + suffix
        if capabilities.identity(candidate) not in taken:
            return candidate
    raise AssertionError("unreachable: one of len(taken) + 1 distinct names is free")


def _acceptable(name: str, limit: int) -> bool:
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:  # an unpaired surrogate
        return False
    return 0 < size <= limit and name.isprintable()


def _clip(text: str, limit: int) -> str:
    """The longest prefix of ``text`` of at most ``limit`` UTF-8 bytes."""
    return text.encode("utf-8")[:limit].decode("utf-8", "ignore")


class AutoColumns:
    """One route's added columns in one container: those the sink recorded, and those this batch proposes."""

    def __init__(self, route: Route, capabilities: Capabilities, *, frozen: bool = False):
        self.base, self.capabilities = route, capabilities
        self.frozen = frozen  # verify: an attribute without a column is drift, not a column to add
        self.listed = frozenset(c.path[0] for c in route.columns)
        self.loaded = False
        self.known: dict[str, AddedColumn] = {}
        self.pending: dict[str, AddedColumn] = {}
        self._types: dict[str, ColumnType] = {}  # column name -> its fitted type
        self._route: Route | None = None

    def load(self, recorded: Sequence[AddedColumn]) -> None:
        """The sink's record of the target's added columns; proposals of an earlier attempt are dropped."""
        self.known = {column.attribute: dataclasses.replace(column, new=False, by=None) for column in recorded}
        self.loaded = True
        self._reset()

    def begin(self) -> None:
        """A new batch (or a new attempt at one): nothing proposed yet. The route stays the same object
        while its columns do (the sinks keep their statements and row plans per route)."""
        if self.pending:
            self._reset()

    def confirm(self, route: Route) -> None:
        """The sink committed ``route`` (the batch's): its columns are recorded now."""
        if any(column.new for column in route.added):
            self.known = {c.attribute: dataclasses.replace(c, new=False, by=None) for c in route.added}
            self._reset()

    def _reset(self) -> None:
        self.pending = {}
        self._route = None
        self._types = {c.name: fit_type(parse_type(c.type), self.capabilities) for c in self.known.values()}

    def route(self) -> Route:
        """The route with every added column, known and proposed, as the sink writes it."""
        if self._route is None:
            added = (*self.known.values(), *self.pending.values())
            columns = tuple(Column(c.name, (c.attribute,), self._types[c.name]) for c in added)
            self._route = dataclasses.replace(self.base, columns=self.base.columns + columns, added=added)
        return self._route

    def fill(self, row: dict[str, Any], image: dict[str, Any], record: ChangeRecord) -> dict[str, Any]:
        """Set the added columns' values in ``row``; return the attributes that go to ``extras``."""
        extras: dict[str, Any] = {}
        for attribute, av in image.items():
            if attribute in self.listed:
                continue
            tag = next(iter(av)) if type(av) is dict and len(av) == 1 else None
            tag = None if tag == "NULL" else tag
            column = self.known.get(attribute) or self.pending.get(attribute)
            if column is None:
                column = self._unknown(attribute, tag, av, record, extras)
                if column is None:
                    continue
            value = _value(attribute, av)
            if value is None:
                row[column.name] = None
            elif TYPES.get(str(tag)) != column.type:
                self._mismatch(attribute, value, f"a {tag} value does not fit its column {column.name!r} "
                                                 f"({column.type})", extras)
            else:
                try:
                    row[column.name] = self._types[column.name].cast(value)
                except CastError as exc:
                    self._mismatch(attribute, value, f"column {column.name!r}: {exc.redacted}", extras)
        return extras

    def _unknown(self, attribute: str, tag: Any, av: Any, record: ChangeRecord,
                 extras: dict[str, Any]) -> AddedColumn | None:
        policy = self.base.on_new_attribute
        if policy == NewAttribute.EXTRAS:
            extras[attribute] = _value(attribute, av)
        elif policy == NewAttribute.DEAD_LETTER:
            raise NewAttributeError(f"attribute {attribute!r} has no column (on_new_attribute: dead_letter)")
        elif policy == NewAttribute.ADD_COLUMN and tag:  # a NULL adds no column: its type is not known yet
            if self.frozen:
                raise RecordError(f"attribute {attribute!r} has no column in the target")
            return self._propose(attribute, str(tag), record)
        return None

    def _propose(self, attribute: str, tag: str, record: ChangeRecord) -> AddedColumn:
        names = [*RESERVED_COLUMNS, *(c.name for c in self.route().columns), *filter(None, [self.base.extras])]
        taken = {self.capabilities.identity(name) for name in names}
        type_name = TYPES[tag]
        column = AddedColumn(attribute, column_name(attribute, taken, self.capabilities), type_name, new=True,
                             by=record.sequence_number)
        self._types[column.name] = fit_type(parse_type(type_name), self.capabilities)
        self.pending[attribute] = column
        self._route = None
        return column

    def _mismatch(self, attribute: str, value: Any, why: str, extras: dict[str, Any]) -> None:
        """A value its column cannot hold: into extras, or a cast error for ``on_error`` (no value in the message)."""
        if self.base.extras is not None:
            extras[attribute] = value
            return
        message = f"attribute {attribute!r}: {why}"
        raise CastError(message, message)

    def complete(self, row: dict[str, Any]) -> None:
        """An upsert's row, transformed before later records of the batch proposed columns: NULL in those
        (the item has no such attribute), so that every row of the batch writes every column."""
        for column in self.pending.values():
            row.setdefault(column.name, None)
        for column in self.known.values():
            row.setdefault(column.name, None)


def _value(attribute: str, av: Any) -> Any:
    try:
        return attrs.to_python(av)
    except RecordError as exc:
        raise exc.wrap(f"attribute {attribute!r}") from None


def with_added(route: Route, recorded: Sequence[AddedColumn], capabilities: Capabilities) -> Route:
    """``route`` with the added columns a sink recorded for it (verify, schema --check)."""
    columns = AutoColumns(route, capabilities)
    columns.load(recorded)
    return columns.route()


def finish(auto: AutoColumns, changes: Sequence[Change]) -> None:
    """The batch's changes of one auto route, once every record is transformed: each on the route with
    every added column (one ``Route`` for the whole batch), each upsert with a value for every column."""
    route = auto.route()
    for change in changes:
        change.route = route
        if change.op == UPSERT:
            auto.complete(change.row)
