"""What the SQL sinks share: the columns a route writes, the names of the state tables, the
tombstone key of a target, the dead-letter row, and how a batch's counts become stats.

The Postgres and Redshift sinks compose different statements from these pieces; keeping
the pieces here is what makes the two write the same rows, tombstones and dead letters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import sql

from router.attrs import dumps_exact
from router.model import Route
from router.records import is_sequence_number
from router.sink import DELETE, Change, DeadLetter, RouteStats

TOMBSTONES, DEAD_LETTERS = "tombstones", "dead_letters"
PURGE_EVERY = 3600.0  # seconds between tombstone purges, per container


def written_columns(route: Route) -> list[tuple[str, str]]:
    """``(column name, SQL type)`` of every column a route writes, extras included."""
    columns = [(c.name, c.type.name) for c in route.columns]
    return columns + ([(route.extras, "jsonb")] if route.extras else [])


def target_name(route: Route) -> str:
    """The target as one unambiguous string: the key of its tombstones."""
    return sql.Identifier(route.schema, route.table).as_string(None)


def create_schema(schema: str) -> sql.Composed:
    return sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema))


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
