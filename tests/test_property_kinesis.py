"""Property: Kinesis Data Streams deliver a table's changes out of order and more than once;
with either version source (approximate_creation_time, at millisecond or microsecond
precision; an application attribute, a number or ISO-8601 text) and a backfill of the
table at any moment, the target ends equal to the DynamoDB table, for every ``deletes``
mode, on Postgres and on the Redshift sink (its statements run on Postgres).

Examples: CDC_PROPERTY_EXAMPLES schedules (default 100, for CI).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from conftest import PgTarget
from factories import event
from hypothesis import HealthCheck, given, settings
from hypothesis import event as statistic
from hypothesis import strategies as st
from kinesis_factories import KinesisStream, Table
from psycopg import sql
from redshift_on_postgres import BOTH_SINKS, FoldedTarget
from replica import expected_rows

from operations.backfill import insert_record

EXAMPLES = int(os.environ.get("CDC_PROPERTY_EXAMPLES") or 100)
ROUTE = BOTH_SINKS + """\
  employees:
    source: Employees
    kinesis: changes
    version: {version}
    sink: {sink}
    table: {target}.{table}
    key: [Id]
    columns:
      Id:   {{from: Id, type: bigint}}
      Name: {{from: empName, type: varchar(20), fallback: NA}}
      City: {{from: address.city, type: text}}
    extras: attributes
    deletes: {deletes}
"""
VERSIONS = {  # mode -> (version:, ApproximateCreationDateTime unit in microseconds)
    "time_ms": ("approximate_creation_time", 1000),
    "time_us": ("approximate_creation_time", 1),
    "attr_number": ("{attribute: rev}", 1000),
    "attr_iso": ("{attribute: updatedAt}", 1000),
}
MODES = [(version, deletes, sink) for version in VERSIONS for deletes in ("hard", "soft", "ignore")
         for sink in ("aurora", "warehouse")]
START = dt.datetime(2025, 3, 1, tzinfo=dt.UTC)
START_US = (START - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)

VALUES = {"empName": st.text("aö' ", max_size=22), "address": st.fixed_dictionaries({"city": st.sampled_from(["Köln", "Oslo"])}),
          "level": st.integers(-3, 3)}
KEYS = st.integers(1, 3)
ATTRIBUTES = st.fixed_dictionaries({}, optional=VALUES)
OPERATION = st.one_of(st.tuples(st.just("put"), KEYS, ATTRIBUTES), st.tuples(st.just("update"), KEYS, ATTRIBUTES),
                      st.tuples(st.just("delete"), KEYS))
HISTORY = st.integers(1, 25).flatmap(lambda n: st.lists(OPERATION, min_size=n, max_size=n))


@dataclass
class History:
    table: Table
    changes: list[dict[str, Any]]
    versions: list[int]                            # each change's version under the mode
    snapshots: list[list[dict[str, Any]]]          # the table's items after each operation (what a Scan may see)
    last_upsert: dict[int, tuple[dict[str, Any], int]]  # key -> (item, version) of its last write


def write_history(operations: list[tuple], version_mode: str, steps: list[int]) -> History:
    """Apply the operations to a model table; every write sets ``rev`` and ``updatedAt``, which only grow."""
    table, unit = Table(), VERSIONS[version_mode][1]
    versions, snapshots, last_upsert = [], [], {}
    clock = 0
    for (kind, key, *rest), step in zip(operations, steps):
        clock += step  # strictly increasing: at millisecond precision, no two changes share a millisecond
        created = (START_US + clock * unit) // unit  # as delivered: milliseconds or microseconds
        stamp = {"rev": clock, "updatedAt": (START + dt.timedelta(microseconds=clock * unit)).isoformat()}
        if kind == "delete":
            change = table.delete({"Id": key}, created)
        elif kind == "put":
            change = table.put({"Id": key, **rest[0], **stamp}, created)
        else:
            change = table.update({"Id": key}, {**rest[0], **stamp}, created)
        if change is not None:
            versions.append(version_of(version_mode, change))
            if change["eventName"] != "REMOVE":
                last_upsert[key] = (change["dynamodb"]["NewImage"], versions[-1])
        snapshots.append([dict(item) for item in table.items.values()])
    return History(table, table.changes, versions, snapshots, last_upsert)


def version_of(mode: str, change: dict[str, Any]) -> int:
    """The oracle: a change's version as the README defines it for each ``version:``."""
    body, delete = change["dynamodb"], change["eventName"] == "REMOVE"
    if mode.startswith("time"):
        return body["ApproximateCreationDateTime"] * VERSIONS[mode][1]
    image = body["OldImage"] if delete else body["NewImage"]
    if mode == "attr_number":
        return int(image["rev"]["N"]) * 10 + delete
    moment = dt.datetime.fromisoformat(image["updatedAt"]["S"]) - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return moment // dt.timedelta(microseconds=1) * 10 + delete


@dataclass
class Mode:
    pipeline: Any
    target: Any        # a PgTarget, or the warehouse's read through FoldedTarget
    table: str

    @property
    def route(self) -> Any:
        return self.pipeline.config.routes["employees"]

    def reset(self, others: list[PgTarget]) -> None:
        self.target.conn.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(self.target.schema, self.table)))
        for pg in others:
            pg.conn.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(pg.state_schema, "tombstones")))


@pytest.fixture
def modes(pg: PgTarget, warehouse_pg: PgTarget, make_both_pipeline: Any) -> Iterator[dict[tuple[str, str, str], Mode]]:
    built = {}
    for version, deletes, sink in MODES:
        table = f"e_{version}_{deletes}_{sink}"
        # Redshift folds identifiers to lower case: read the warehouse's rows back as the route names them
        target = pg if sink == "aurora" else FoldedTarget(warehouse_pg, [table, "Id", "Name", "City"])
        pipeline = make_both_pipeline(pg, ROUTE, version=VERSIONS[version][0], sink=sink, deletes=deletes,
                                      table=table, target=target.schema)
        built[(version, deletes, sink)] = Mode(pipeline, target, table)
    yield built


def expected(mode: Mode, deletes: str, history: History) -> tuple[list[dict], dict[int, int]]:
    """(live rows, version of every row) the target must hold."""
    items = [{**item} for item in history.table.items.values()]
    live_keys = {item["Id"] for item in items}
    last: dict[int, int] = {}
    for change, version in zip(history.changes, history.versions):
        last[int(change["dynamodb"]["Keys"]["Id"]["N"])] = version
    if deletes == "ignore":
        wire_items = [history.last_upsert[key][0] for key in history.last_upsert]
        return expected_rows(mode.route, wire_items), {key: v for key, (_, v) in history.last_upsert.items()}
    from factories import wire
    rows = expected_rows(mode.route, [wire(item) for item in items])
    versions = last if deletes == "soft" else {key: v for key, v in last.items() if key in live_keys}
    return rows, versions


def target_state(mode: Mode) -> tuple[list[dict], dict[int, Decimal], set[int]]:
    rows = mode.target.rows(mode.table, bookkeeping=True)
    live = [{k: v for k, v in r.items() if not k.startswith("_cdc_")} for r in rows if not r.get("_cdc_deleted_at")]
    deleted = {r["Id"] for r in rows if r.get("_cdc_deleted_at")}
    return sorted(live, key=lambda r: r["Id"]), {r["Id"]: r["_cdc_version"] for r in rows}, deleted


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mode=st.sampled_from(MODES), operations=HISTORY, data=st.data())
def test_kinesis_schedules_converge(modes: dict, pg: PgTarget, warehouse_pg: PgTarget, mode: tuple[str, str, str],
                                    operations: list[tuple], data: st.DataObject) -> None:
    version_mode, deletes, _ = mode
    harness = modes[mode]
    harness.reset([pg, warehouse_pg])
    # GIVEN a history of writes on a table streamed to Kinesis
    steps = data.draw(st.lists(st.integers(1, 3), min_size=len(operations), max_size=len(operations)))
    history = write_history(operations, version_mode, steps)
    count = len(history.changes)
    # WHEN Kinesis delivers its changes shuffled and duplicated, in batches, and a backfill runs at some moment
    copies = data.draw(st.lists(st.integers(0, max(count - 1, 0)), max_size=count)) if count else []
    schedule = data.draw(st.permutations(list(range(count)) + copies))
    sizes = data.draw(st.lists(st.integers(1, 6), min_size=len(schedule), max_size=len(schedule)))
    backfill = data.draw(st.none() | st.tuples(st.integers(0, len(operations) - 1), st.integers(0, len(schedule))))
    stream, position, batches = KinesisStream(), 0, 0
    while position <= len(schedule):
        if backfill is not None and backfill[1] == position:
            _backfill(harness, history.snapshots[backfill[0]])
        if position == len(schedule):
            break
        batch = schedule[position:position + sizes[batches]]
        response = harness.pipeline.process(event(stream.puts(history.changes[i] for i in batch))).response
        assert response == {"batchItemFailures": []}
        position, batches = position + len(batch), batches + 1
    statistic(f"{count // 10 * 10}+ changes, {len(copies)} duplicates, backfill: {backfill is not None}")
    # THEN the target equals the table and every row carries its key's last version
    rows, versions = expected(harness, deletes, history)
    live, stored, soft_deleted = target_state(harness)
    assert live == rows
    assert stored == versions
    assert soft_deleted == ({k for k in versions if k not in {r["Id"] for r in live}} if deletes == "soft" else set())


def _backfill(mode: Mode, items: list[dict[str, Any]]) -> None:
    from factories import wire
    records = [insert_record(i, "Employees", ["Id"], wire(item)) for i, item in enumerate(items)]
    assert mode.pipeline.process_records(records).failure is None
