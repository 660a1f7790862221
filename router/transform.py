"""One route's transform: a change record in, a ``Change`` (or nothing) out.

Built once per route from its config; applying it reads the record and never mutates
it. ``None`` means "not for this route" (a filter said no, or ``deletes: ignore``).
A value that cannot be stored raises ``CastError`` naming the column; the pipeline
turns that into the route's ``on_error``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from router import attrs, masking, shortcuts
from router.auto import AutoColumns
from router.casts import from_epoch
from router.errors import CastError, RecordError
from router.model import MISSING, Capabilities, Column, Route
from router.modes import Deletes, Mask, Mode, NewAttribute
from router.needs import RouteNeeds, missing_new_image, view_problem
from router.paths import MISSING_VALUE, lookup
from router.records import NEW_IMAGE, ChangeRecord
from router.shortcuts import SLOW
from router.sink import DELETE, UPSERT, Change
from router.tally import Tally
from router.types import parse_type
from router.versions import version_reader

_EXTRAS_TYPE = parse_type("jsonb")


class RouteTransform:
    def __init__(self, route: Route, read_secret: masking.SecretReader | None = None,
                 capabilities: Capabilities | None = None, *, frozen: bool = False):
        self.route = route
        # columns: auto, and on_new_attribute: dead_letter: the unlisted attributes (router.auto, issue 15)
        self.auto = (AutoColumns(route, capabilities or Capabilities(), frozen=frozen)
                     if route.auto or route.on_new_attribute == NewAttribute.DEAD_LETTER else None)
        self.read_secret = read_secret  # for the HMAC key of masked columns
        self.columns = route.columns
        self.key_columns = route.key_columns
        self.mapped = frozenset(c.path[0] for c in route.columns)
        self.tally = Tally()  # defaults and fallbacks applied, per column (drained by the pipeline per batch)
        parts = [(column, self._parts(column)) for column in route.columns]
        self.readers = tuple((column.name, _reader(column, *part)) for column, part in parts)
        # the row of an upsert, in one function generated from the column plan (router.shortcuts.row_reader)
        self.read_row = shortcuts.row_reader([(column.name, column.path, *part) for column, part in parts])
        self.versioned = route.versioned
        self.version = version_reader(route.version)  # the number the guard compares (route's version:)
        self.filter = route.filter
        # numeric key columns without a scale: N "7" and N "7.0" are one row, so one key (issue 12)
        self.free_scale = tuple(c.name for c in self.key_columns if c.type.base == "numeric" and c.type.scale is None
                                and not c.type.is_array)
        self.needs = RouteNeeds(route)
        # a dead-lettered record comes back (redrive) with its masked values masked already
        self.premasked = tuple((c.name, _premasked_reader(c) if c.mask else read) for c, (_, read)
                               in zip(route.columns, self.readers))
        self.masks = tuple((c, self) for c in route.columns if c.mask is not None)
        self.has_masks = bool(self.masks)

    def _parts(self, column: Column) -> tuple[shortcuts.Shortcut | None, Callable[[dict[str, Any]], Any]]:
        """The column's shortcut (None: it has none), and its general reader."""
        if column.mask is not None:
            return None, _masked_reader(column, self.mask_key)
        tally = self.tally
        return shortcuts.for_column(column), lambda image: _value(column, image, tally)

    def mask_key(self) -> bytes | None:
        source = self.route.mask_key
        return None if source is None else masking.read_key(source, self.read_secret)

    def masked(self, record: ChangeRecord, foreign: Sequence[tuple[Column, RouteTransform]] = ()) -> ChangeRecord:
        """The record as it may be stored (dead letters) or logged: masked columns' values masked.

        ``foreign``: masked columns of other routes of the record's table, each with its route's transform
        (for its key), whose values must not be stored or logged in clear either (``Pipeline``)."""
        masks = [(c, t.mask_key()) for c, t in (*self.masks, *foreign)]
        return masking.masked_record(record, masks) if masks else record

    def reads(self, path: tuple[str, ...]) -> bool:
        """Whether this route's rows take the value at ``path``: a column reads it, or a part of it, or
        all of it (a column of an enclosing map), or extras / auto columns take its top-level attribute."""
        if path[0] not in self.mapped:
            return self.route.extras is not None or self.route.auto
        return any(c.path[:len(path)] == path[:len(c.path)] for c in self.columns)

    def _readers(self, record: ChangeRecord) -> tuple[tuple[str, Callable[[dict[str, Any]], Any]], ...]:
        return self.premasked if self.has_masks and masking.MASKED in record.raw else self.readers

    def __call__(self, record: ChangeRecord) -> Change | None:
        change = self._change(record)
        if change is not None and self.versioned:  # a row per version: reduce keeps every one
            change.key += (change.version,)
        return change

    def _change(self, record: ChangeRecord) -> Change | None:
        needs_old = self.needs.check(record.keys or {}, record.view)
        if record.is_delete:
            return self._delete(record) if self._was_selected(record, needs_old) else None
        image = record.new_image
        if image is None:
            raise self.needs.error(missing_new_image(self.route, record.event_name))
        if self.filter is None or self.filter(image):
            self.tally.rows += 1
            row = self._row(image, record)
            return Change(self.route, UPSERT, self._key(row), row, self.version(record), record)
        if record.event_name == "INSERT" or not self._was_selected(record, needs_old):
            return None  # never this route's item: nothing to write, not even a delete
        return self._delete(record)

    def _was_selected(self, record: ChangeRecord, needs_old: bool) -> bool:
        """Whether the item was this route's before the record: the filter on the OldImage, or on the
        Keys alone when it reads only key attributes (which an item never changes)."""
        if self.filter is None or self.route.deletes_for(record.is_expiry) == Deletes.IGNORE:
            return True
        keys = record.keys or {}
        if not needs_old:
            return self.filter(keys)
        if record.old_image is None:
            raise self.needs.error(view_problem(self.route, record.view or NEW_IMAGE, tuple(keys)) or "")
        return self.filter({**record.old_image, **keys})

    def _delete(self, record: ChangeRecord) -> Change | None:
        if self.route.deletes_for(record.is_expiry) == Deletes.IGNORE:
            return None
        keys = record.keys or {}  # key columns read key attributes only (checked by self.needs)
        if self.route.mode == Mode.LOG and record.old_image is not None:
            return Change(self.route, DELETE, *self._old_row(record, keys), self.version(record), record)
        readers = dict(self._readers(record))
        row = {column.name: readers[column.name](keys) for column in self.key_columns}
        return Change(self.route, DELETE, self._key(row), row, self.version(record), record)

    def _old_row(self, record: ChangeRecord, keys: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """A log's delete row: the item as it was (the OldImage, on NEW_AND_OLD_IMAGES and OLD_IMAGE
        streams), read and masked like an upsert's."""
        row = self._row({**(record.old_image or {}), **keys}, record)
        return self._key(row), row

    def _row(self, image: dict[str, Any], record: ChangeRecord) -> dict[str, Any]:
        """An image's row: the mapped columns, then the auto columns or the extras."""
        if self.has_masks and masking.MASKED in record.raw:
            row = {name: read(image) for name, read in self.premasked}
        else:
            row = self.read_row(image)
        if self.auto is not None:
            extras = self.auto.fill(row, image, record)
            if self.route.extras is not None:
                row[self.route.extras] = self._cast_extras(extras)
        elif self.route.extras is not None:
            row[self.route.extras] = self._extras(image)
        return row

    def _key(self, row: dict[str, Any]) -> tuple[Any, ...]:
        for name in self.free_scale:  # one spelling per number: tombstones and locks compare key texts
            if isinstance(row[name], Decimal):
                row[name] = canonical_number(row[name])
        key = tuple([row[name] for name in self.route.key])
        if None in key:
            missing = [name for name in self.route.key if row[name] is None]
            raise RecordError(f"key column {missing[0]!r} has no value (attribute absent or NULL)")
        return key

    def _extras(self, image: dict[str, Any]) -> dict[str, Any]:
        mapped, extras = self.mapped, {}
        for name, av in image.items():  # the shortcut: plain documents (router.shortcuts.document)
            if name not in mapped:
                value = shortcuts.document(av)
                if value is SLOW or not shortcuts.storable(name):
                    return self._extras_general(image)
                extras[name] = value
        return extras

    def _extras_general(self, image: dict[str, Any]) -> dict[str, Any]:
        return self._cast_extras({name: attrs.to_python(av) for name, av in image.items() if name not in self.mapped})

    def _cast_extras(self, extras: dict[str, Any]) -> dict[str, Any]:
        try:
            return _EXTRAS_TYPE.cast(extras)
        except CastError as exc:
            raise exc.wrap(f"extras column {self.route.extras!r}") from None


def _reader(column: Column, shortcut: shortcuts.Shortcut | None,
            general: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], Any]:
    """``image -> value`` for one column: its shortcut (``router.shortcuts``) where it is sure, else ``general``."""
    if shortcut is None:
        return general
    path = column.path

    def read(image: dict[str, Any]) -> Any:
        value = shortcut(image.get(path[0]) if len(path) == 1 else lookup(image, path))
        return general(image) if value is SLOW else value
    return read


def _masked_reader(column: Column, key: Callable[[], bytes | None]) -> Callable[[dict[str, Any]], Any]:
    """Mask first, then cast the digest: no error message can carry the value."""
    mask = column.mask
    assert mask is not None

    def read(image: dict[str, Any]) -> Any:
        av = lookup(image, column.path)
        if av is MISSING_VALUE or mask == Mask.REDACT:
            return None
        try:
            value = attrs.to_python(av)
        except RecordError as exc:
            raise RecordError(f"column {column.name!r} (from {column.source!r}): {exc.redacted}") from None
        return _cast_masked(column, masking.mask_value(mask, value, key()))
    return read


def _premasked_reader(column: Column) -> Callable[[dict[str, Any]], Any]:
    def read(image: dict[str, Any]) -> Any:
        av = lookup(image, column.path)
        return None if av is MISSING_VALUE else _cast_masked(column, attrs.to_python(av))
    return read


def _cast_masked(column: Column, digest: Any) -> Any:
    try:
        return None if digest is None else column.type.cast(digest)
    except CastError as exc:
        raise exc.wrap(f"column {column.name!r} (from {column.source!r})") from None


def _value(column: Column, image: dict[str, Any], tally: Tally | None = None) -> Any:
    av = lookup(image, column.path)
    if av is MISSING_VALUE:
        if tally is not None:
            tally.absent[column.name] += 1
        if column.default is not MISSING:
            if tally is not None:
                tally.defaults[column.name] += 1
            return column.default
        return _fallback(column, tally)
    try:
        value = attrs.to_python(av)
        if value is not None:
            if column.epoch is not None and isinstance(value, Decimal):
                value = from_epoch(value, column.type.name, column.epoch)
            return column.type.cast(value)
    except CastError as exc:
        if column.fallback is not MISSING:
            return _fallback(column, tally)
        raise exc.wrap(f"column {column.name!r} (from {column.source!r})") from None
    except RecordError as exc:  # a malformed AttributeValue: bad input, not a value to fall back from
        raise exc.wrap(f"column {column.name!r} (from {column.source!r})") from None
    return _fallback(column, tally)


def canonical_number(number: Decimal) -> Decimal:
    """``7.0``, ``7.000`` and ``0.7E+1`` as ``7``; exact at any number of digits (no context rounding)."""
    text = format(number, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return Decimal(0) if text in ("-0", "", "0") else Decimal(text)


def _fallback(column: Column, tally: Tally | None) -> Any:
    """The column's fallback (None without one), counted."""
    if column.fallback is MISSING:
        return None
    if tally is not None:
        tally.fallbacks[column.name] += 1
    return column.fallback
