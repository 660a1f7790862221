"""``cdc-router check-sink SINK``: a pilot's self-test of one sink against its real database.

In two scratch schemas of its own it creates a table with every column type, writes edge
values through the sink's own statements (a pipeline, as a Lambda batch would: stage,
guard, delete and insert, tombstones, soft deletes, dead letters), reads every row back,
compares each value with what was sent, and drops the schemas. Each statement form passes
or fails on its own, with the columns that came back different.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import yaml
from boto3.dynamodb.types import TypeSerializer

from operations.assemble import build_sinks, parse_config, pipeline_for
from router.attrs import dumps_exact
from router.model import Config, Route
from router.pipeline import Pipeline
from router.sink import Sink
from router.types import ColumnType

SOURCE, SOFT_SOURCE = "CdcRouterCheck", "CdcRouterCheckSoft"
BLOB_BYTES = 48_000  # the largest VARBYTE a 100 KB Data API statement carries as hex, with room to spare
COLUMNS = {  # column: type (the route's contract), one of each kind the sinks store differently
    "k": "varchar(20)", "t": "text", "u": "uuid", "n38": "numeric(38,0)", "n": "numeric", "d19": "numeric(19,2)",
    "i": "bigint", "f": "double precision", "b": "boolean", "day": "date", "ts": "timestamp", "tz": "timestamptz",
    "tz0": "timestamptz", "j": "jsonb", "tags": "text[]", "bin": "bytea",
}
EDGE = {
    "k": "edge", "t": "it's a \\ back'slash '' \"dq\" \\n é 😀 \t end  ", "u": str(uuid.UUID(int=7)),
    "n38": Decimal("9" * 38), "n": Decimal("-12345678901234567890123456789.123456789"),
    "d19": Decimal("99999999999999999.99"), "i": 9223372036854775807, "f": Decimal("-1.5E-120"), "b": True,
    "day": "2024-02-29", "ts": "2024-01-01T12:00:00.123456", "tz": "2024-01-01T12:00:00+02:00",
    "tz0": "2024-06-30T23:59:59.999999+00:00",
    "j": {"big": Decimal("-" + "9" * 38), "precise": Decimal("0.1234567890123456789"), "s": "x' \\", "l": [1, None]},
    "tags": {"b", "a'\\"}, "extra": "kept in the extras column",
}
FORMS: list[tuple[str, list[str]]] = [  # the round trip of the first row, by the columns each form carries
    ("string literals: quotes, backslashes, emoji, trailing spaces (VARCHAR)", ["t", "u"]),
    ("38-digit DECIMALs; numeric(19,2) at its largest", ["n38", "n", "d19"]),
    ("BIGINT, DOUBLE PRECISION, BOOLEAN, DATE", ["i", "f", "b", "day"]),
    ("TIMESTAMP; TIMESTAMPTZ at +02:00 and +00:00", ["ts", "tz", "tz0"]),
    ("SUPER through JSON_PARSE: 38-digit and 19-decimal numbers, arrays", ["j", "tags", "more"]),
]

MakeSink = Callable[[Config, str], Sink]
FROM_HEX_FORM = f"VARBYTE of {BLOB_BYTES} bytes through FROM_HEX"
SPACES_FORM = "VARCHAR keys that differ by trailing spaces stay two rows"


@dataclass(frozen=True)
class FormResult:
    form: str
    passed: bool
    detail: str = ""


class _Check:
    """The scratch config, its pipeline, and the records it sends (sequence numbers in order)."""

    def __init__(self, config: Config, sink_name: str, make_sink: MakeSink):
        suffix = uuid.uuid4().hex[:8]
        self.schemas = [f"cdc_check_{suffix}", f"cdc_check_{suffix}_state"]
        self.config = parse_config(_scratch_config(config, sink_name, *self.schemas), "check-sink")
        self.sink = make_sink(self.config, sink_name)
        self.pipeline: Pipeline = pipeline_for(self.config, {sink_name: self.sink})
        self.route, self.soft = self.config.routes["every_type"], self.config.routes["soft"]
        self.sequence = 10**20

    def send(self, *records: tuple[str, str, dict[str, Any]]) -> Any:
        """Records of (source, INSERT/MODIFY/REMOVE, item), applied as one batch that must not fail."""
        result = self.pipeline.process({"Records": [self._record(*record) for record in records]})
        if result.failure is not None:
            raise AssertionError(result.failure.reason)
        return result

    def rows(self, route: Route) -> dict[str, dict[str, Any]]:
        """The route's table by key, each value parsed from the text the database gave."""
        types = {c.name: c.type for c in route.columns}
        read = [{name: _parse(types.get(name), text) for name, text in row.items()} for row in self.sink.read_text(route)]
        if len({row["k"] for row in read}) != len(read):
            raise AssertionError(f"duplicate rows for one key: {sorted(row['k'] for row in read)}")
        return {row["k"]: row for row in read}

    def _record(self, source: str, name: str, item: dict[str, Any]) -> dict[str, Any]:
        self.sequence += 100
        image = {k: TypeSerializer().serialize(v) for k, v in item.items()}
        body: dict[str, Any] = {"Keys": {"k": image["k"]}, "SequenceNumber": str(self.sequence),
                                "ApproximateCreationDateTime": 1700000000, "StreamViewType": "NEW_AND_OLD_IMAGES"}
        body["OldImage" if name == "REMOVE" else "NewImage"] = image
        return {"eventID": uuid.uuid4().hex, "eventName": name, "eventSource": "aws:dynamodb", "dynamodb": body,
                "eventSourceARN": f"arn:aws:dynamodb:us-east-1:000000000000:table/{source}/stream/check"}


def check_sink(config: Config, sink_name: str, make_sink: MakeSink | None = None) -> list[FormResult]:
    """Run every form against sink ``sink_name`` of ``config``; the scratch schemas are always dropped.
    ``make_sink(scratch config, name)`` builds the sink (default: as the function would)."""
    check = _Check(config, sink_name, make_sink or (lambda scratch, name: build_sinks(scratch)[name]))
    results: list[FormResult] = []
    try:
        _run(results, "CREATE SCHEMA, CREATE TABLE (the sink's DDL)", lambda: check.sink.apply_ddl())
        if results[-1].passed:
            for form, step in _steps(check):
                results += _forms(step) if form == "" else [_attempt(form, step)]
    finally:
        _run(results, "DROP SCHEMA ... CASCADE (the scratch schemas)", lambda: check.sink.drop_schemas(check.schemas))
        check.pipeline.close()
    return results


def _steps(check: _Check) -> list[tuple[str, Callable[[], Any]]]:
    edge, spaced = {**EDGE}, {"k": "edge ", "t": "the key with a trailing space"}
    blob = {"k": "blob", "bin": bytes(range(256)) * (BLOB_BYTES // 256) + b"\x00\xff" * (BLOB_BYTES % 256 // 2)}

    def first_batch() -> list[FormResult]:
        check.send((SOURCE, "INSERT", edge), (SOURCE, "INSERT", spaced), (SOURCE, "INSERT", blob),
                   (SOURCE, "INSERT", {"k": "poison", "i": "not a number"}))
        rows = check.rows(check.route)
        sent = {c.name: c.type.cast(edge[c.name]) for c in check.route.columns if c.name in edge}
        sent["tags"], sent["more"] = sorted(sent["tags"]), {"extra": edge["extra"]}  # a set: order is not kept
        return [_compare(form, columns, rows.get("edge", {}), sent) for form, columns in FORMS] + [
            _compare(FROM_HEX_FORM, ["bin"], rows.get("blob", {}), blob),
            _compare(SPACES_FORM, ["t"], rows.get("edge ", {}), spaced),
        ]

    def stale_replay() -> None:
        check.sequence -= 1000  # older than everything applied
        result = check.send((SOURCE, "MODIFY", {**edge, "t": "stale"}))
        check.sequence += 2000
        _expect(result.stats["every_type"].stale == 1 and check.rows(check.route)["edge"]["t"] == edge["t"],
                "the stale upsert was written")

    def newer_update() -> None:
        check.send((SOURCE, "MODIFY", {**spaced, "t": "updated"}))
        rows = check.rows(check.route)
        _expect(rows["edge "]["t"] == "updated" and rows["edge"]["t"] == edge["t"], f"got {_short(rows)}")

    def hard_delete() -> None:
        check.send((SOURCE, "REMOVE", {"k": "edge"}))
        check.sequence -= 1000
        check.send((SOURCE, "INSERT", edge))  # a replay older than the delete: its tombstone keeps it out
        check.sequence += 2000
        _expect(set(check.rows(check.route)) == {"edge ", "blob"}, "the deleted row came back")

    def soft_delete() -> None:
        check.send((SOFT_SOURCE, "INSERT", {"k": "s", "t": "kept"}), (SOFT_SOURCE, "REMOVE", {"k": "gone"}))
        check.send((SOFT_SOURCE, "REMOVE", {"k": "s", "t": "kept"}))
        rows = check.rows(check.soft)
        _expect(rows["s"]["t"] == "kept" and rows["s"]["_cdc_deleted_at"] is not None
                and rows["gone"]["_cdc_deleted_at"] is not None, f"got {_short(rows)}")

    def dead_letter() -> None:
        letters = check.sink.dead_letters(["every_type"])
        _expect([letter.record["dynamodb"]["NewImage"]["k"]["S"] for letter in letters] == ["poison"],
                f"{len(letters)} letters")

    return [
        ("", first_batch),
        ("stale upsert skipped: DELETE ... USING the target (the version guard)", stale_replay),
        ("newer upsert: DELETE ... USING, then INSERT ... SELECT", newer_update),
        ("hard delete: schema-qualified DELETE ... USING, tombstones guard a replay", hard_delete),
        ("soft delete: UPDATE ... FROM, INSERT ... LEFT JOIN", soft_delete),
        ("dead letter: JSON_PARSE of the stream record", dead_letter),
    ]


def _forms(step: Callable[[], list[FormResult]]) -> list[FormResult]:
    """The forms of the first batch, each failed with the batch's error if it failed."""
    try:
        return step()
    except Exception as exc:  # one result per form, all with the reason
        forms = [form for form, _ in FORMS] + [FROM_HEX_FORM, SPACES_FORM]
        return [FormResult(form, False, _short(exc)) for form in forms]


def _attempt(form: str, step: Callable[[], Any]) -> FormResult:
    try:
        step()
    except Exception as exc:  # a form's failure is its result; the next form still runs
        return FormResult(form, False, _short(exc))
    return FormResult(form, True)


def _run(results: list[FormResult], form: str, step: Callable[[], Any]) -> None:
    results.append(_attempt(form, step))


def _compare(form: str, columns: list[str], row: dict[str, Any], sent: dict[str, Any]) -> FormResult:
    if not row:
        return FormResult(form, False, "the row was not written")
    different = [f"{name}: sent {_short(_comparable(sent.get(name)))}, read {_short(row.get(name))}"
                 for name in columns if _comparable(sent.get(name)) != row.get(name)]
    return FormResult(form, not different, "; ".join(different))


def _expect(condition: bool, problem: str) -> None:
    if not condition:
        raise AssertionError(problem)


def _comparable(value: Any) -> Any:
    """A sent value in the form ``_parse`` gives the value read back."""
    if isinstance(value, (dict, list)):
        return json.loads(dumps_exact(value), parse_float=Decimal, parse_int=Decimal)
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
        return Decimal(value)
    return str(value) if isinstance(value, uuid.UUID) else value


def _parse(column_type: ColumnType | None, text: str | None) -> Any:
    """A value read back as text, as the Python value of the route's type."""
    if text is None or column_type is None:
        return json.loads(text, parse_float=Decimal, parse_int=Decimal) if text and text[:1] in "{[" else text
    if column_type.is_array or column_type.is_json:
        value = json.loads(text, parse_float=Decimal, parse_int=Decimal)
        return sorted(value) if column_type.is_array else value
    parsers: dict[str, Callable[[str], Any]] = {
        "smallint": Decimal, "integer": Decimal, "bigint": Decimal, "numeric": Decimal,
        "real": lambda t: Decimal(repr(float(t))), "double precision": lambda t: Decimal(repr(float(t))),
        "boolean": lambda t: t.lower() in ("true", "t"), "date": dt.date.fromisoformat,
        "timestamp": dt.datetime.fromisoformat, "timestamptz": dt.datetime.fromisoformat,
        "bytea": lambda t: bytes.fromhex(t.removeprefix("\\x")),
    }
    return parsers.get(column_type.base, str)(text)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 160 else text[:157] + "..."


def _scratch_config(config: Config, sink_name: str, schema: str, state_schema: str) -> str:
    """tables.yaml for the check: the sink as configured (its values expanded), two scratch routes."""
    sink = config.sinks[sink_name]
    options = {k: v for k, v in sink.options.items() if k not in ("schema", "state_schema")}
    columns = {name: {"type": type_name} for name, type_name in COLUMNS.items()}
    routes = {
        "every_type": {"source": SOURCE, "sink": sink_name, "table": f"{schema}.every_type", "key": ["k"],
                       "columns": columns, "extras": "more", "deletes": "hard", "on_error": "dead_letter"},
        "soft": {"source": SOFT_SOURCE, "sink": sink_name, "table": f"{schema}.soft", "key": ["k"],
                 "columns": {"k": {"type": "varchar(20)"}, "t": {"type": "text"}}, "deletes": "soft"},
    }
    return yaml.safe_dump({"version": 1, "routes": routes, "sinks": {sink_name: {
        "type": sink.type, **options, "state_schema": state_schema}}}, sort_keys=False)
