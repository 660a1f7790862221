"""What every SQL sink writes alike: the columns of a route, the names of the state tables, the
tombstone key of a target row, the dead-letter row, and how a batch's counts become stats.

The Postgres and Redshift sinks compose different statements from these pieces; keeping
the pieces here is what makes the two write the same rows, tombstones and dead letters.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from psycopg import sql

from router.attrs import dumps_exact
from router.model import Route
from router.records import is_sequence_number
from router.sink import DELETE, Change, DeadLetter, RouteStats

TOMBSTONES, DEAD_LETTERS = "tombstones", "dead_letters"
AUTO_COLUMNS = "auto_columns"  # the columns added for columns: auto, per target (issue 15)


def written_columns(route: Route) -> list[tuple[str, str]]:
    """``(column name, SQL type)`` of every column a route writes, extras included."""
    columns = [(c.name, c.type.name) for c in route.columns]
    return columns + ([(route.extras, "jsonb")] if route.extras else [])


def target_name(route: Route, identity: Callable[[str], str] = str) -> str:
    """The target as one unambiguous string: the ``target`` of its tombstones and dead letters, with
    names as the database tells them apart (``identity``: Redshift folds them to lower case)."""
    return sql.Identifier(identity(route.schema), identity(route.table)).as_string(None)


def tombstone_key(key: Sequence[Any]) -> str:
    """A target row's key as its tombstones store it, on every SQL sink: a JSON array of texts.

    Text, not an array column, because Redshift has none. Each value is spelled as PostgreSQL
    prints it (plain digits, ``true``, times in UTC), so that the text[] keys the Postgres sink
    kept before are converted to the same text by ``array_to_json``.
    """
    if len(key) == 1 and type(key[0]) is int:  # the commonest key: its digits need no escaping
        return f'["{key[0]}"]'
    # what json.dumps(texts, ensure_ascii=False, separators=(",", ":")) writes, at a third of the cost
    return "[" + ",".join([_encode_text(_key_text(value)) for value in key]) + "]"


_encode_text = json.encoder.encode_basestring  # JSON string, non-ASCII kept (json.dumps' ensure_ascii=False)


def _key_text(value: Any) -> str:
    kind = type(value)
    if kind is int or kind is str:  # the commonest keys first; format(Decimal(n), "f") is str(n) for an int
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, Decimal)):
        return format(Decimal(value), "f")
    if isinstance(value, dt.datetime):  # as PostgreSQL prints it with TimeZone=UTC (the Postgres sink's setting)
        moment = value.astimezone(dt.UTC) if value.tzinfo else value
        fraction = f".{moment.microsecond:06d}".rstrip("0") if moment.microsecond else ""
        return moment.strftime("%Y-%m-%d %H:%M:%S") + fraction + ("+00" if value.tzinfo else "")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return "\\x" + bytes(value).hex()
    return str(value)


def route_stats(changes: Sequence[Change], upserted: int, deleted: int) -> RouteStats:
    """Counts as the guard reports them: an upsert that wrote nothing was stale."""
    upserts = sum(1 for change in changes if change.op != DELETE)
    return RouteStats(upserted=upserted, stale=upserts - upserted, deleted=deleted)


def dead_letter_row(letter: DeadLetter, target: str) -> dict[str, Any]:
    """One dead-letter row; ``record`` is JSON text that both databases accept."""
    record = letter.record
    return {
        "route": letter.route.name, "source_table": record.table, "target": target,
        "sequence_number": record.sequence_number if is_sequence_number(record.sequence_number) else None,
        "event_id": None if record.event_id is None else _storable(str(record.event_id)),
        "error": _storable(letter.error), "record": storable_json(record.raw),
    }


def storable_json(value: Any) -> str:
    """JSON text a database will accept as a document: NUL and unpaired surrogates kept as escape text.

    Escaped string by string: replacing in the JSON text also hit a literal backslash followed by
    'u0000', and turned unpaired surrogates into JSON escapes that jsonb refuses as well.
    """
    try:
        return dumps_exact(_storable(value))
    except RecursionError:  # nested deeper than Python can walk: keep the record's identity, not its body
        return dumps_exact({"unstorable": "record nested too deeply to store"})


def _storable(value: Any) -> Any:
    if isinstance(value, str):
        if "\x00" in value or not value.isascii():
            value = value.replace("\x00", "\\u0000").encode("utf-8", "backslashreplace").decode("utf-8")
        return value
    if isinstance(value, dict):
        return {_storable(str(k)): _storable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_storable(v) for v in value]
    return value
