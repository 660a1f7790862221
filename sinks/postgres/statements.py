"""SQL for the Postgres sink, composed with ``psycopg.sql`` and returned as data.

One statement applies a route's whole share of a batch: the reduced changes arrive as
one JSON document (``json_to_recordset``: one parameter, exact numerics, every column
type) and data-modifying CTEs upsert, delete and tombstone in a single round trip.
After reduce a key appears once per batch, so the CTEs never touch a row twice.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from psycopg import sql

from router.attrs import dumps_exact
from router.model import DELETE_REASON, DELETED_COLUMN, VERSION_COLUMN, Route
from router.modes import Op
from router.sink import DELETE, Change, Fill
from sinks.sql.dialect import DOCUMENT, ID, NAME, STAMP, TEXT, TIME, VERSION, Dialect
from sinks.sql.fill import guard as fill_guard
from sinks.sql.rows import DEAD_LETTERS, TOMBSTONES, tombstone_key, written_columns

POSTGRES = Dialect(
    column_type=lambda type_name: type_name,  # a route's types are PostgreSQL's
    types={NAME: "text", TEXT: "text", VERSION: "numeric", TIME: "timestamptz", STAMP: "timestamptz DEFAULT now()",
           DOCUMENT: "jsonb", ID: "bigserial"},
    placeholder=sql.Placeholder,
    # how format_type() spells our type names; the others are spelled alike
    catalog_names={"varchar": "character varying", "timestamptz": "timestamp with time zone",
                   "timestamp": "timestamp without time zone"},
)

_APPLY = """\
WITH d AS (
    SELECT * FROM json_to_recordset(%(rows)s::json) AS d({fields}, "v" numeric, "o" text, "t" timestamptz, "k" text, "r" text)
), up AS (
    INSERT INTO {table} AS t ({columns}, {version}{deleted_column})
    SELECT {values}, d."v"{deleted_value} FROM d
    WHERE d."o" = 'u'{not_tombstoned}
    ON CONFLICT ({key}) DO UPDATE SET {assignments}
    WHERE t.{version} < EXCLUDED.{version}
    RETURNING {gone} AS gone
){deletes}
SELECT (SELECT count(*) FILTER (WHERE NOT gone) FROM up),
       (SELECT count(*) FILTER (WHERE gone) FROM up){deleted_count}"""
_NOT_TOMBSTONED = """
      AND NOT EXISTS (SELECT FROM {tombstones} z
                      WHERE z."target" = %(target)s AND z."key" = d."k" AND z."version" >= d."v")"""
_HARD_DELETE = """, del AS (
    DELETE FROM {table} AS t USING d
    WHERE d."o" = 'd'{hard_only} AND {key_match} AND t.{version} < d."v"
    RETURNING 1
), tomb AS (
    INSERT INTO {tombstones} AS z ("target", "key", "version")
    SELECT %(target)s, d."k", d."v" FROM d WHERE d."o" = 'd'{hard_only}
    ON CONFLICT ("target", "key") DO UPDATE SET "version" = EXCLUDED."version", "deleted_at" = now()
    WHERE z."version" < EXCLUDED."version"
)
"""
_SOFT_DELETE = """, {mark} AS (
    INSERT INTO {table} AS t ({key}, {version}, {deleted}{reason_column})
    SELECT {key_values}, d."v", coalesce(d."t", now()){reason_value} FROM d WHERE d."o" = 'd'{soft_only}{mark_guard}
    ON CONFLICT ({key}) DO UPDATE SET {version} = EXCLUDED.{version}, {deleted} = EXCLUDED.{deleted}{reason_set}
    WHERE t.{version} < EXCLUDED.{version}
    RETURNING 1
)
"""
_BY_REASON = """ AND d."r" {} {}"""  # a route whose users' deletes and expiries differ (``Route.mixed_deletes``)


def _field_type(type_name: str) -> str:
    """The type a value has in the JSON document; the INSERT's assignment cast does the rest.

    varchar(n) arrives as text so that a value too long fails instead of being cut.
    json and jsonb arrive as text holding exact JSON (``json`` would turn numbers into floats).
    """
    if type_name.startswith("varchar("):
        return "text" + ("[]" if type_name.endswith("[]") else "")
    return "text" if type_name in ("json", "jsonb") else type_name


def _field(index: int) -> sql.Identifier:
    return sql.Identifier(f"c{index}")


def field_list(columns: Sequence[tuple[str, str]]) -> sql.Composed:
    """The batch document's fields, as ``json_to_recordset`` declares them."""
    return sql.SQL(", ").join(sql.SQL("{} {}").format(_field(i), sql.SQL(_field_type(t))) for i, (_, t) in enumerate(columns))


def value_list(columns: Sequence[tuple[str, str]]) -> sql.Composed:
    """The batch document's fields as the columns' values."""
    return sql.SQL(", ").join(_value(i, t) for i, (_, t) in enumerate(columns))


def _value(index: int, type_name: str) -> sql.Composed:
    if type_name in ("json", "jsonb"):
        return sql.SQL("d.{}::{}").format(_field(index), sql.SQL(type_name))
    return sql.SQL("d.{}").format(_field(index))


_FILL = """\
WITH d AS (
    SELECT * FROM json_to_recordset(%(rows)s::json) AS d({fields}, "v" numeric, "o" text, "t" timestamptz, "k" text)
), filled AS (
    UPDATE {table} AS t SET {assignments}
    FROM d, {versions} AS w
    WHERE d."o" = 'u' AND {key_match} AND {recorded_match} AND {guard}
    RETURNING 1
)
SELECT (SELECT count(*) FROM filled), 0"""


def fill_statement(route: Route, versions: sql.Identifier, fill: Fill) -> sql.Composed:
    """``backfill --columns``: the batch's values of ``fill.columns`` into rows that exist and whose version
    is still the recorded one (``sinks.sql.fill``); returns (rows filled, 0) as ``apply_statement`` returns
    (upserted, deleted). The sink takes the batch's row locks before it (``batch_locks``), as for any write."""
    columns = written_columns(route)
    index = {name: i for i, (name, _) in enumerate(columns)}
    types = dict(columns)

    def match(alias: str) -> sql.Composed:
        return sql.SQL(" AND ").join(sql.SQL("{}.{} = d.{}").format(sql.Identifier(alias), sql.Identifier(k),
                                                                     _field(index[k])) for k in route.key)
    return sql.SQL(_FILL).format(
        fields=field_list(columns), table=sql.Identifier(route.schema, route.table), versions=versions,
        assignments=sql.SQL(", ").join(sql.SQL("{} = {}").format(sql.Identifier(name), _value(index[name], types[name]))
                                       for name in fill.columns),
        key_match=match("t"), recorded_match=match("w"),
        guard=fill_guard(route, sql.Identifier("t"), sql.Identifier("w")))


def apply_statement(route: Route, state_schema: str) -> sql.Composed:
    columns = written_columns(route)
    index = {name: i for i, (name, _) in enumerate(columns)}
    table = sql.Identifier(route.schema, route.table)
    tombstones = sql.Identifier(state_schema, TOMBSTONES)
    version, deleted = sql.Identifier(VERSION_COLUMN), sql.Identifier(DELETED_COLUMN)
    key_fields = [sql.SQL("d.{}").format(_field(index[k])) for k in route.key]
    parts: dict[str, sql.Composable] = dict(
        table=table, tombstones=tombstones, version=version, deleted=deleted,
        fields=field_list(columns), values=value_list(columns),
        columns=sql.SQL(", ").join(sql.Identifier(name) for name, _ in columns),
        key=sql.SQL(", ").join(sql.Identifier(k) for k in route.key),
        key_values=sql.SQL(", ").join(key_fields),
        key_match=sql.SQL(" AND ").join(sql.SQL("t.{} = {}").format(sql.Identifier(k), f)
                                         for k, f in zip(route.key, key_fields)),
    )
    soft, hard, why = route.soft_deletes, route.hard_deletes, route.delete_reason
    reason = sql.Identifier(DELETE_REASON)
    marks = [deleted, reason] if why else [deleted]
    assignments = [sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(name))
                   for name, _ in columns if name not in route.key]
    assignments.append(sql.SQL("{0} = EXCLUDED.{0}").format(version))
    if soft:  # "t" ("r") is NULL for an upsert; a soft delete that keeps the values of an upsert sets it
        assignments += [sql.SQL("{0} = EXCLUDED.{0}").format(mark) for mark in marks]
    not_tombstoned = sql.SQL(_NOT_TOMBSTONED).format(**parts) if hard else sql.SQL("")
    # where users' deletes and expiries differ, each REMOVE goes by its reason, and a mark, like an upsert,
    # is stopped by a newer tombstone (a redelivered REMOVE must not bring back an item deleted since)
    mixed, hard_reason = route.mixed_deletes, sql.Literal(str(route.hard_reason))
    parts.update(
        hard_only=sql.SQL(_BY_REASON).format(sql.SQL("="), hard_reason) if mixed else sql.SQL(""),
        soft_only=sql.SQL(_BY_REASON).format(sql.SQL("<>"), hard_reason) if mixed else sql.SQL(""),
        mark=sql.SQL("mark"), mark_guard=not_tombstoned if mixed else sql.SQL(""),
        reason_column=sql.SQL(", {}").format(reason) if why else sql.SQL(""),
        reason_value=sql.SQL(', d."r"') if why else sql.SQL(""),
        reason_set=sql.SQL(", {0} = EXCLUDED.{0}").format(reason) if why else sql.SQL(""),
    )
    parts.update(
        assignments=sql.SQL(", ").join(assignments),
        deleted_column=sql.SQL("").join(sql.SQL(", {}").format(mark) for mark in marks) if soft else sql.SQL(""),
        deleted_value=sql.SQL(', d."t"' + (', d."r"' if why else "")) if soft else sql.SQL(""),
        gone=sql.SQL("t.{} IS NOT NULL").format(deleted) if soft else sql.SQL("false"),
        not_tombstoned=not_tombstoned,
        deletes=sql.SQL("").join([sql.SQL(_HARD_DELETE).format(**parts)] * hard
                                 + [sql.SQL(_SOFT_DELETE).format(**parts)] * soft),
        deleted_count=sql.SQL("").join([sql.SQL(" + (SELECT count(*) FROM del)")] * hard
                                       + [sql.SQL(" + (SELECT count(*) FROM mark)")] * soft),
    )
    return sql.SQL(_APPLY).format(**parts)


# Writers of the same rows take transaction advisory locks first, in one sorted order, so that they
# cannot deadlock: without them two writers whose upserts and deletes touch overlapping keys in other
# orders deadlock each other (issue 12: 7 in 5 trials on soft-delete and ignore routes), each costing one
# of Lambda's retries. Hard deletes need them besides: a stale upsert whose snapshot predates a concurrent
# delete's tombstone would insert the row again (it finds no tombstone and no row to wait on); the apply
# statement's snapshot, taken after the locks, sees the other writer's commit.
#
# Two levels, so that writers of disjoint keys do not wait on each other (issue 19) and a batch of 10,000
# keys still takes few slots of the server's lock table (max_locks_per_transaction x max_connections):
# - a target with at most KEY_LOCKS_UP_TO keys in the batch locks each key (an int8 lock: the target's
#   crc32 above the key's crc32; two batches of 1,000 keys share one by chance about once in 4,300 pairs),
#   after SHARE locks on the keys' buckets among the target's 64 (int4, int4 locks);
# - a target with more keys takes its buckets EXCLUSIVE, as every batch did before: it waits for the
#   key-level writers of those buckets and they for it.
# Every writer takes buckets before keys, each in ascending order, in one statement each: no cycle.
LOCK_BUCKETS = 64
KEY_LOCKS_UP_TO = 1_000
LOCK_BUCKETS_SQL = sql.SQL(
    "SELECT count(CASE WHEN l.x THEN pg_advisory_xact_lock(l.t, l.b) ELSE pg_advisory_xact_lock_shared(l.t, l.b) END)"
    " FROM unnest(%s::int[], %s::int[], %s::bool[]) AS l(t, b, x)")
LOCK_KEYS_SQL = sql.SQL("SELECT count(pg_advisory_xact_lock(l.k)) FROM unnest(%s::int8[]) AS l(k)")


def _key_hash(key: tuple[Any, ...]) -> int:
    """crc32 because every process must agree (Python's hash() is salted per process) and it costs
    a fraction of a microsecond per key; keys are compared as text, so 1 and Decimal('1') agree."""
    return zlib.crc32((str(key[0]) if len(key) == 1 else "\x1f".join(map(str, key))).encode())


def _target_hash(target: str) -> int:
    return zlib.crc32(target.encode()) - 2**31  # into int4's range


def row_locks(target: str, keys: Iterable[tuple[Any, ...]]) -> set[int]:
    """The key-level advisory locks (int8) that guard ``keys`` of ``target``."""
    table = _target_hash(target) << 32
    return {table | _key_hash(key) for key in keys}


def batch_locks(keys: Mapping[str, Iterable[tuple[Any, ...]]]) -> list[tuple[sql.SQL, tuple[str, ...]]]:
    """The lock statements, with their parameters (array literals: a list of 1,000 ints costs psycopg
    about 1 ms to adapt, the literal 0.1 ms), for the keys a batch writes, by target."""
    buckets: set[tuple[int, int, bool]] = set()
    fine: list[int] = []
    for target, target_keys in keys.items():
        hashes, table = set(map(_key_hash, target_keys)), _target_hash(target)
        exclusive = len(hashes) > KEY_LOCKS_UP_TO
        buckets.update((table, bucket, exclusive) for bucket in {h % LOCK_BUCKETS for h in hashes})
        if not exclusive:
            high = table << 32
            fine.extend(high | h for h in hashes)
    statements: list[tuple[sql.SQL, tuple[str, ...]]] = []
    if buckets:
        tables, numbers, modes = zip(*sorted(buckets))
        statements.append((LOCK_BUCKETS_SQL, (_array(tables), _array(numbers), "{" + ",".join("t" if mode else "f" for mode in modes) + "}")))
    if fine:
        statements.append((LOCK_KEYS_SQL, (_array(sorted(set(fine))),)))
    return statements


def _array(values: Iterable[int]) -> str:
    return "{" + ",".join(map(str, values)) + "}"


def _json_default(value: Any) -> Any:
    if isinstance(value, (Decimal, uuid.UUID)):
        return str(value)  # a JSON string, parsed exactly by the column type's input function
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return "\\x" + value.hex()
    raise TypeError(f"cannot send {type(value).__name__} to PostgreSQL")


class RowsPlan:
    """What ``encode_rows`` needs of a route, worked out once per route instead of once per batch."""

    def __init__(self, route: Route):
        self.route = route
        columns = written_columns(route)
        self.key_fields = tuple((f"c{i}", name) for i, (name, _) in enumerate(columns) if name in route.key)
        self.upsert_document = _upsert_document(columns)
        self.versioned = route.versioned
        self.hard = route.hard_deletes and not route.versioned  # its upserts look up, its deletes
        # write, the tombstone of the key
        self.why = route.delete_reason or route.mixed_deletes  # each delete says why ("r")
        # a history or log delete: its row carries what it has (a log's: the OldImage), the other columns NULL
        self.blank = dict.fromkeys(name for name, _ in columns) if route.versioned else None


def _upsert_document(columns: Sequence[tuple[str, str]]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """``row -> {"c0": value, ...}`` for an upsert, generated once per route from its columns.

    json and jsonb values become their exact JSON text (``dumps_exact``); Decimal, UUID, datetime
    and date values of numeric, uuid, time and date columns become the text ``_json_default`` would
    make of them, so that json.dumps does not call back into Python for each. Everything else is
    left to json.dumps (and ``_json_default``) as it is.
    """
    items = []
    for i, (name, type_name) in enumerate(columns):
        value = f"row[{name!r}]"
        base = type_name.split("(")[0].removesuffix("[]")
        if type_name in ("json", "jsonb"):
            value = f"(None if (v{i} := {value}) is None else dumps_exact(v{i}))"
        elif type_name.endswith("[]") and base in _AS_TEXT:
            value = f"as_texts({value})"
        elif base in _AS_TEXT:
            value = f"(t{i}(v{i}) if (t{i} := TEXTS.get(type(v{i} := {value}))) is not None else v{i})"
        items.append(f"'c{i}': {value}")
    source = "def upsert_document(row):\n    return {" + ", ".join(items) + "}"
    namespace: dict[str, Any] = {"dumps_exact": dumps_exact, "TEXTS": _TEXTS, "as_texts": _as_texts}
    exec(compile(source, "<sinks.postgres.statements.upsert_document>", "exec"), namespace)
    build: Callable[[dict[str, Any]], dict[str, Any]] = namespace["upsert_document"]
    return build


def _as_texts(value: Any) -> Any:
    """An array's Decimal, UUID, datetime and date items as ``_json_default`` would make them."""
    as_text = _TEXTS.get(type(value))
    if as_text is not None:
        return as_text(value)
    if type(value) is list:
        return [_TEXTS.get(type(item), _itself)(item) for item in value]
    return value


_PLANS: dict[int, RowsPlan] = {}


def rows_plan(route: Route) -> RowsPlan:
    """The route's ``RowsPlan``, kept per route object (routes are built once per container)."""
    plan = _PLANS.get(id(route))
    if plan is None or plan.route is not route:
        if len(_PLANS) >= 1024:  # configs built over and over (tests, verify): keep the cache small
            _PLANS.clear()
        plan = _PLANS[id(route)] = RowsPlan(route)
    return plan


_AS_TEXT = ("numeric", "uuid", "timestamptz", "timestamp", "date")
# exactly what _json_default returns for these types (exact types only: subclasses go to _json_default)
_TEXTS: dict[type, Callable[[Any], str]] = {Decimal: str, uuid.UUID: str, dt.datetime: dt.datetime.isoformat,
                                            dt.date: dt.date.isoformat}


def _itself(value: Any) -> Any:
    return value


def encode_rows(route: Route, changes: Sequence[Change]) -> str:
    """The JSON document for ``apply_statement``: one object per change."""
    plan = rows_plan(route)
    upsert_document, hard, versioned, why, blank = plan.upsert_document, plan.hard, plan.versioned, plan.why, plan.blank
    documents = []
    for change in changes:
        row = change.row
        if change.op == DELETE and change.values_from is None and not versioned:
            document = {field: row[name] for field, name in plan.key_fields}
            document["o"], document["t"] = Op.DELETE, change.time
        else:  # a history or log delete may carry values (a log's: its OldImage), absent ones NULL
            document = upsert_document(row if change.op != DELETE or blank is None else {**blank, **row})
            # a soft delete keeping values writes them with its time
            document["o"] = Op.DELETE if change.op == DELETE and change.values_from is None else Op.UPSERT
            if change.values_from is not None:
                document["t"] = change.time or dt.datetime.now(dt.UTC)
        document["v"] = change.version
        if why:
            document["r"] = change.reason
        if versioned:  # history and log rows keep every change's time
            document["t"] = change.time
        if hard:
            document["k"] = tombstone_key(change.key)
        documents.append(document)
    return json.dumps(documents, default=_json_default, separators=(",", ":"))


def dead_letter_statement(state_schema: str) -> sql.Composed:
    return sql.SQL("""\
INSERT INTO {} ("route", "source_table", "target", "sequence_number", "event_id", "error", "record")
SELECT d."route", d."source_table", d."target", d."sequence_number", d."event_id", d."error", d."record"::jsonb
FROM json_to_recordset(%s::json) AS d("route" text, "source_table" text, "target" text, "sequence_number" numeric,
                                      "event_id" text, "error" text, "record" text)
ON CONFLICT ("route", "source_table", "sequence_number") DO NOTHING""").format(sql.Identifier(state_schema, DEAD_LETTERS))
