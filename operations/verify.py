"""Verify: does a route's target hold what its DynamoDB table says it should?

Items are read from DynamoDB (all of them, or a random sample of Scan segments), turned
into rows by the route's own transform (as backfill records, so filters and casts apply
exactly as for replication) and handed to the sink's ``Comparison`` in chunks, which
finds the keys missing on either side and the rows whose columns differ. Items the
transform refuses are counted apart: under ``on_error: dead_letter`` they are expected to
be absent; under ``fail`` they are drift. A sample finds extra target rows by looking a
sample of target keys up in DynamoDB, where the target key maps back to the table's key.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from operations.assemble import read_secret
from operations.backfill import insert_record
from router import auto
from router.attrs import to_python
from router.errors import RecordError
from router.model import AddedColumn, Capabilities, Route
from router.modes import OnError
from router.reduce import reduce_changes
from router.sink import Change
from router.transform import RouteTransform
from sources.pages import PageReader, Source
from sources.scan import sample_items

_KEY_TYPES = {"S": ("text", "varchar"), "N": ("smallint", "integer", "bigint", "numeric"), "B": ("bytea",)}


@dataclass
class Difference:
    kind: str                              # missing | extra | different | cannot transform
    key: dict[str, Any]
    columns: list[str] = field(default_factory=list)  # the columns that differ
    source: dict[str, Any] = field(default_factory=dict)
    target: dict[str, Any] = field(default_factory=dict)


@dataclass
class Differences:
    source_rows: int                       # rows the route should hold (of the items read)
    target_rows: int                       # live rows in the target (an estimate for a sample)
    missing: int = 0
    extra: int = 0
    different: int = 0
    first: list[Difference] = field(default_factory=list)


class Comparison(Protocol):
    """The sink's side: ``operations.verify_postgres.PostgresComparison`` and
    ``operations.verify_redshift.RedshiftComparison``."""

    added: Sequence[AddedColumn]  # an auto route's added columns, as the sink records them (compared too)
    capabilities: Capabilities    # the sink's: its types (a bare numeric on Redshift) shape the expected values

    def load(self, changes: Sequence[Change]) -> None: ...

    def differences(self, show: int, sampled: bool) -> Differences: ...

    def sample_keys(self, count: int) -> list[dict[str, Any]]: ...

    def close(self) -> None: ...


@dataclass
class VerifyReport:
    route: Route
    sampled: bool
    items: int                             # DynamoDB items read
    differences: Differences
    refused: int = 0                       # items the transform refused
    note: str | None = None                # what the comparison could not look at
    defaults: Counter[str] = field(default_factory=Counter)   # column -> rows that took its default
    fallbacks: Counter[str] = field(default_factory=Counter)  # column -> rows that took its fallback
    set_aside: int = 0                     # of the refused: dead-lettered whatever on_error (on_new_attribute)

    @property
    def drift(self) -> bool:
        found = self.differences.missing + self.differences.extra + self.differences.different
        return found > 0 or (self.refused > self.set_aside and self.route.on_error == OnError.FAIL)


class Verifier:
    """Feed it items with ``add``; ``report`` compares. ``key_names``: the table's key attributes."""

    def __init__(self, route: Route, comparison: Comparison, key_names: Sequence[str], show: int = 10):
        self.route, self.comparison, self.key_names, self.show = route, comparison, tuple(key_names), show
        # masked columns compare as digests; values take the sink's types, as the pipeline's transform gives them
        self.transform = RouteTransform(route, read_secret, comparison.capabilities, frozen=True)
        if self.transform.auto is not None:  # an attribute without a column in the target is drift (issue 15)
            self.transform.auto.load(comparison.added)
        self.items = 0
        self.refused: list[Difference] = []
        self.refused_count = 0
        self.set_aside = 0  # refused items that replication dead-letters whatever on_error: expected absent
        self.defaults: Counter[str] = Counter()
        self.fallbacks: Counter[str] = Counter()

    def add(self, items: Iterable[dict[str, Any]]) -> None:
        changes = []
        for item in items:
            self.items += 1
            record = insert_record(self.items, self.route.source, self.key_names, item)
            try:
                change = self.transform(record)
            except RecordError as exc:
                self.refused_count += 1
                self.set_aside += isinstance(exc, auto.NewAttributeError)
                if len(self.refused) < self.show:
                    key = {name: to_python(av) for name, av in (record.keys or {}).items()}
                    self.refused.append(Difference("cannot transform", key, source={"error": str(exc)}))
                continue
            if change is not None:
                changes.append(change)
        if self.transform.auto is not None:
            auto.finish(self.transform.auto, changes)
        tally = self.transform.tally.drain()
        self.defaults += tally.defaults
        self.fallbacks += tally.fallbacks
        self.comparison.load(reduce_changes(changes))

    def report(self, sampled: bool = False, extras: list[Difference] | None = None,
               note: str | None = None) -> VerifyReport:
        differences = self.comparison.differences(self.show, sampled)
        extras = extras or []
        differences.extra += len(extras)
        differences.first = (differences.first + extras + self.refused)[: self.show]
        return VerifyReport(self.route, sampled, self.items, differences, self.refused_count, note,
                            self.defaults, self.fallbacks, self.set_aside)

    def keys_of(self, items: Iterable[dict[str, Any]]) -> set[tuple[Any, ...]]:
        """The target keys these items map to (items the route skips or refuses map to none)."""
        keys = set()
        for item in items:
            try:
                change = self.transform(insert_record(0, self.route.source, self.key_names, item))
            except RecordError:
                continue
            if change is not None:
                keys.add(change.key)
        self.transform.tally.drain()  # counted by add, not here
        return keys


def verify_all(verifier: Verifier, source: Source, workers: int,
               on_page: Callable[[int], None] = lambda items: None) -> VerifyReport:
    """Compare every item of ``source``, ``workers`` segments read at once; ``on_page`` gets each page's size."""
    with PageReader(source, dict.fromkeys(source.segments), workers, 2 * workers) as reader:
        for page in reader:
            verifier.add(page.items)
            on_page(len(page.items))
    return verifier.report()


def verify_sample(verifier: Verifier, dynamodb: Any, table: dict[str, Any], sample: int, rng: random.Random,
                  **scan_options: Any) -> VerifyReport:
    """Compare about ``sample`` random items, then look ``sample`` random target rows up in DynamoDB."""
    verifier.add(sample_items(dynamodb, table["TableName"], sample, table.get("ItemCount") or 0, rng, **scan_options))
    mapping, note = table_key(verifier.route, table)
    extras = []
    if mapping is not None:
        extras = sampled_extras(dynamodb, table, verifier, verifier.comparison.sample_keys(sample), mapping)
    return verifier.report(sampled=True, extras=extras, note=note)


def table_key(route: Route, table: dict[str, Any]) -> tuple[dict[str, tuple[str, str]] | None, str | None]:
    """How a target key maps back to the DynamoDB key: ``{attribute: (column, type)}``, or why it does not.

    Only a key column that copies a key attribute as it is (text for S, a number for N,
    bytea for B) can be looked up.
    """
    types = {d["AttributeName"]: d["AttributeType"] for d in table.get("AttributeDefinitions", [])}
    by_path = {column.path: column for column in route.key_columns}
    mapping = {}
    for element in table.get("KeySchema", []):
        name = element["AttributeName"]
        column = by_path.get((name,))
        if column is None or column.type.is_array or column.type.base not in _KEY_TYPES.get(types.get(name, ""), ()):
            return None, (f"extra rows were not sampled: the table's key attribute {name!r} is not copied as it is "
                          "into a key column of the route (run verify without --sample to find them)")
        mapping[name] = (column.name, types[name])
    return mapping, None


def sampled_extras(dynamodb: Any, table: dict[str, Any], verifier: Verifier, rows: list[dict[str, Any]],
                   mapping: dict[str, tuple[str, str]]) -> list[Difference]:
    """The sampled target rows whose key has no item in DynamoDB (or one the route does not map there)."""
    keys = [{name: {kind: str(row[column]) if kind == "N" else row[column]} for name, (column, kind) in mapping.items()}
            for row in rows]
    found: list[dict[str, Any]] = []
    for start in range(0, len(keys), 100):  # BatchGetItem's limit
        request = {table["TableName"]: {"Keys": keys[start:start + 100], "ConsistentRead": True}}
        while request:
            answer = dynamodb.batch_get_item(RequestItems=request)
            found += answer.get("Responses", {}).get(table["TableName"], [])
            request = answer.get("UnprocessedKeys") or {}
    present = verifier.keys_of(found)
    key = verifier.route.key
    return [Difference("extra", row) for row in rows if tuple(row[name] for name in key) not in present]
