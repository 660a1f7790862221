"""mode: history and mode: log (issue 16): a row per version, idempotent and order-proof.

The property: for any history of writes on moto's DynamoDB and any Lambda delivery of its stream
(batch sizes, duplicates, lost responses, bisection, redeliveries of records already applied;
``lambda_esm``), a history table equals the history the stream produced (one row per record,
each valid until the next version's time, the last one open) and a log table holds each change
once. Examples: CDC_PROPERTY_EXAMPLES (default 100, as the convergence property).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import EMPLOYEES
from factories import Stream, event, read_stream, wire
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lambda_esm import Shard, Step
from psycopg import sql
from redshift_on_postgres import ONE_ROUTE, target
from test_property_convergence import EXAMPLES, HISTORY, STEP, apply_history, dynamodb, fresh_table  # noqa: F401
from test_verify import counts, pair  # noqa: F401
from test_verify_redshift import warehouse  # noqa: F401

from operations.backfill import insert_record
from router.model import Route
from sources.lambda_events import parse_event

ROUTE = EMPLOYEES + "    mode: {mode}\n"        # the spine's Employees route, on Postgres
BOTH = ONE_ROUTE + "    mode: {mode}\n"        # the same on either sink: sink: {sink}
SINKS = ["aurora", "warehouse"]
OK = {"batchItemFailures": []}
T0 = 1_700_000_000.0


def at(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(T0 + seconds, dt.UTC)


def table(pg: Any, sink: str = "aurora") -> list[dict[str, Any]]:
    """The Employees table by key and version (with the names the route gives, also on the warehouse)."""
    return sorted(target(pg, sink).rows("Employees", bookkeeping=True), key=lambda r: (r["Id"], r["_cdc_version"]))


def versions(rows: list[dict[str, Any]], *names: str) -> list[tuple[Any, ...]]:
    return [tuple(row[name] for name in names) for row in rows]


# -- history -----------------------------------------------------------------------------------


def ana(stream: Stream) -> list[dict[str, Any]]:
    """Three versions of Id 1 at T0, T0+10, T0+20, then its delete at T0+30."""
    return [stream.insert({"Id": 1, "empName": "Ana", "empDepartment": "Ops"}, sequence=100, created=T0),
            stream.modify({"Id": 1, "empName": "Ana", "empDepartment": "Eng"}, sequence=200, created=T0 + 10),
            stream.modify({"Id": 1, "empName": "Ana B", "empDepartment": "Eng"}, sequence=300, created=T0 + 20),
            stream.remove({"Id": 1}, sequence=400, created=T0 + 30)]


FULL_HISTORY = [(100, "u", "Ops", at(0), at(10)), (200, "u", "Eng", at(10), at(20)),
                (300, "u", "Eng", at(20), at(30)), (400, "d", None, at(30), None)]


@pytest.mark.parametrize("batches", [
    [[0, 1, 2, 3]],                    # in order, one batch
    [[0, 1, 2, 3], [0, 1, 2, 3]],      # the same batch twice: nothing changes
    [[0, 2], [3], [1]],                # a late change: inserted in its place, its neighbours adjusted
    [[3], [2], [1], [0]],              # newest first
    [[2, 3], [0, 1, 2], [1]],          # overlapping redeliveries
])
@pytest.mark.parametrize("sink", SINKS)
def test_history_holds_each_version_once_with_its_validity(sink: str, batches: list[list[int]], pg: Any,
                                                            make_both_pipeline: Any) -> None:
    pipeline = make_both_pipeline(pg, BOTH, sink=sink, mode="history")
    records = ana(Stream("Employees"))
    for batch in batches:
        assert pipeline.process(event([records[i] for i in batch])).response == OK
    rows = table(pg, sink)
    assert versions(rows, "_cdc_version", "_cdc_op", "Department", "_valid_from", "_valid_to") == FULL_HISTORY
    assert [r["Name"] for r in rows] == ["Ana", "Ana", "Ana B", None]


@pytest.mark.parametrize("sink", SINKS)
def test_a_late_version_between_two_others_splits_their_validity(sink: str, pg: Any, make_both_pipeline: Any) -> None:
    pipeline = make_both_pipeline(pg, BOTH, sink=sink, mode="history")
    records = ana(Stream("Employees"))
    assert pipeline.process(event([records[0], records[2]])).response == OK
    assert versions(table(pg, sink), "_cdc_version", "_valid_to") == [(100, at(20)), (300, None)]
    result = pipeline.process(event([records[1]]))
    assert (result.response, result.stats["employees"].upserted) == (OK, 1)
    assert versions(table(pg, sink), "_cdc_version", "_valid_from", "_valid_to") == [
        (100, at(0), at(10)), (200, at(10), at(20)), (300, at(20), None)]


def test_history_ignores_deletes_when_the_route_does(pg: Any, make_pipeline: Any) -> None:
    pipeline = make_pipeline(pg, ROUTE, mode="history", deletes="ignore")
    assert pipeline.process(event(ana(Stream("Employees")))).response == OK
    assert versions(table(pg), "_cdc_version", "_valid_to") == [(100, at(10)), (200, at(20)), (300, None)]


# -- backfill --------------------------------------------------------------------------------------


def scanned(pipeline: Any, department: str) -> None:
    """Id 1 as a backfill's Scan read it: version 0, no time of its own (the write's is taken)."""
    item = wire({"Id": 1, "empName": "Ana", "empDepartment": department})
    assert pipeline.process_records([insert_record(0, "Employees", ["Id"], item)]).failure is None


@pytest.mark.parametrize("backfill_first", [True, False])
@pytest.mark.parametrize("sink", SINKS)
def test_a_backfilled_item_holds_until_the_streams_first_change_of_it(sink: str, backfill_first: bool, pg: Any,
                                                                       make_both_pipeline: Any) -> None:
    pipeline = make_both_pipeline(pg, BOTH, sink=sink, mode="history")
    stream, later = Stream("Employees"), dt.datetime.now(dt.UTC).timestamp() + 3600
    # GIVEN an item scanned now, and changed by the stream an hour later, delivered before or after the scan
    changes = [stream.modify({"Id": 1, "empName": "Ana", "empDepartment": "Eng"}, sequence=100, created=later),
               stream.modify({"Id": 1, "empName": "Ana", "empDepartment": "Ops"}, sequence=200, created=later + 10)]
    written = dt.datetime.now(dt.UTC)
    if backfill_first:
        scanned(pipeline, "Ops")
    assert pipeline.process(event(changes)).response == OK
    if not backfill_first:
        scanned(pipeline, "Ops")
        scanned(pipeline, "Ops")  # a second backfill changes nothing
    # THEN the scanned state is version 0, valid from its write until the first change
    rows = table(pg, sink)
    assert versions(rows, "_cdc_version", "Department", "_valid_to") == [
        (0, "Ops", ts(later)), (100, "Eng", ts(later + 10)), (200, "Ops", None)]
    assert written - dt.timedelta(seconds=5) <= rows[0]["_valid_from"] <= written + dt.timedelta(seconds=60)


@pytest.mark.parametrize("backfill_first", [True, False])
@pytest.mark.parametrize("sink", SINKS)
def test_a_backfill_after_the_streams_changes_is_valid_for_no_time(sink: str, backfill_first: bool, pg: Any,
                                                                    make_both_pipeline: Any) -> None:
    pipeline = make_both_pipeline(pg, BOTH, sink=sink, mode="history")
    records = ana(Stream("Employees"))[:3]  # changed at T0..T0+20, long before the scan
    if backfill_first:
        scanned(pipeline, "Eng")
    for record in reversed(records):  # newest first: the chain is rebuilt at each arrival
        assert pipeline.process(event([record])).response == OK
    if not backfill_first:
        scanned(pipeline, "Eng")
    # THEN version 0 comes before the first change and holds for no time: the chain stays ordered and unbroken
    assert versions(table(pg, sink), "_cdc_version", "_valid_from", "_valid_to") == [
        (0, at(0), at(0)), (100, at(0), at(10)), (200, at(10), at(20)), (300, at(20), None)]


@settings(max_examples=min(EXAMPLES, 40), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(order=st.permutations(range(4)), cuts=st.sets(st.integers(1, 3)), backfill_at=st.integers(0, 4),
       again=st.lists(st.integers(0, 3), max_size=3))
def test_a_backfill_anywhere_in_any_delivery_keeps_the_chain(both: dict[str, Any], order: list[int], cuts: set[int],
                                                             backfill_at: int, again: list[int]) -> None:
    pipeline, pg = both["history"]
    name = "Employees" if pipeline.config.routes["employees"].sink == "aurora" else "employees"  # folded
    pg.conn.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(pg.schema, name)))
    records = ana(Stream("Employees"))
    # GIVEN the stream's records in any order and batching, some delivered again, and a backfill between any two
    bounds = [0, *sorted(cuts), 4]
    batches = [[records[i] for i in order[a:b]] for a, b in zip(bounds, bounds[1:]) if a < b]
    batches += [[records[i]] for i in again]
    for index, batch in enumerate([*batches, []]):
        if index == min(backfill_at, len(batches)):
            scanned(pipeline, "Eng")
        if batch:
            assert pipeline.process(event(batch)).response == OK
    # THEN the same table whatever the schedule: the scanned version first, valid for no time
    assert versions(table(pg), "_cdc_version", "_valid_from", "_valid_to") == [(0, at(0), at(0))] + [
        (v, start, end) for v, _, _, start, end in FULL_HISTORY]


def ts(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


# -- log -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("sink", SINKS)
def test_log_holds_each_change_once(sink: str, pg: Any, make_both_pipeline: Any) -> None:
    pipeline = make_both_pipeline(pg, BOTH, sink=sink, mode="log")
    records = ana(Stream("Employees"))
    first = pipeline.process(event(records[2:]))
    again = pipeline.process(event(records))  # a redelivery, with the earlier changes
    assert (first.stats["employees"].upserted, first.stats["employees"].deleted) == (1, 1)
    assert (again.stats["employees"].upserted, again.stats["employees"].stale) == (2, 1)
    assert versions(table(pg, sink), "_cdc_version", "_cdc_op", "Department", "_cdc_time") == [
        (100, "u", "Ops", at(0)), (200, "u", "Eng", at(10)), (300, "u", "Eng", at(20)), (400, "d", None, at(30))]


@pytest.mark.parametrize(("view", "carried"), [
    ("NEW_AND_OLD_IMAGES", ("Ana B", "Eng")),  # the OldImage: the item as it was deleted
    ("OLD_IMAGE", ("Ana B", "Eng")),
    ("NEW_IMAGE", (None, None)),                # no OldImage on the stream: the key alone
    ("KEYS_ONLY", (None, None)),
])
@pytest.mark.parametrize("sink", SINKS)
def test_a_log_delete_carries_the_items_last_values(sink: str, view: str, carried: tuple[Any, Any], pg: Any,
                                                    make_both_pipeline: Any) -> None:
    pipeline = make_both_pipeline(pg, BOTH, sink=sink, mode="log")
    stream = Stream("Employees", view=view)
    stream.modify({"Id": 1, "empName": "Ana B", "empDepartment": "Eng"})  # the stream knows the item
    assert pipeline.process(event([stream.remove({"Id": 1}, sequence=400)])).response == OK
    assert versions(table(pg, sink), "_cdc_version", "_cdc_op", "Name", "Department") == [(400, "d", *carried)]


def test_schema_creates_the_versioned_table_and_its_index(pg: Any, make_pipeline: Any) -> None:
    for mode, index in (("history", "Employees_current"), ("log", "Employees_time")):
        pg.conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(pg.schema, "Employees")))
        make_pipeline(pg, ROUTE, mode=mode)
        key = pg.conn.execute("""SELECT array_agg(a.attname::text ORDER BY k.n) AS key FROM pg_index i
            CROSS JOIN unnest(i.indkey) WITH ORDINALITY k(attnum, n)
            JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
            WHERE i.indrelid = %s::regclass AND i.indisprimary""", (f'"{pg.schema}"."Employees"',)).fetchone()["key"]
        indexes = pg.conn.execute("SELECT indexname FROM pg_indexes WHERE schemaname = %s", (pg.schema,)).fetchall()
        assert key == ["Id", "_cdc_version"]
        assert index in {r["indexname"] for r in indexes}


# -- the property ----------------------------------------------------------------------------------


@pytest.fixture(params=SINKS)
def both(request: Any, pg: Any, make_both_pipeline: Any, database_url: str) -> Iterator[dict[str, Any]]:
    """A history route and a log route on one sink; the log's in schemas of its own."""
    from conftest import pg_target

    sink = request.param
    with pg_target(database_url) as log_pg:
        yield {"history": (make_both_pipeline(pg, BOTH, sink=sink, mode="history"), target(pg, sink)),
               "log": (make_both_pipeline(log_pg, BOTH, sink=sink, mode="log"), target(log_pg, sink))}


def expected_history(route: Route, records: list[dict[str, Any]], log: bool = False) -> list[tuple[Any, ...]]:
    """The stream's history: a row per record, valid until its key's next record (deletes included: NULL
    values in a history, the OldImage's in a ``log``)."""
    parsed = sorted(parse_event(event(records)), key=lambda r: (int(r.keys["Id"]["N"]), r.version))
    rows = []
    for record, following in zip(parsed, [*parsed[1:], None]):
        key = int(record.keys["Id"]["N"])
        same = following is not None and int(following.keys["Id"]["N"]) == key
        image = (record.old_image if log else None) if record.is_delete else record.new_image
        rows.append((key, record.version, "d" if record.is_delete else "u",
                     None if image is None else image.get("empDepartment", {}).get("S", "NA"),
                     record.created_at, following.created_at if same else None))
    return rows


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(operations=HISTORY, steps=st.lists(STEP.map(lambda s: Step(s.size, s.duplicate, s.lost, s.bisect, s.reread,
                                                                    s.replay)), max_size=20))
def test_history_and_log_equal_the_stream_under_any_delivery(both: dict[str, Any], dynamodb: Any,  # noqa: F811
                                                              operations: list[tuple], steps: list[Step]) -> None:
    client, streams = dynamodb
    arn = fresh_table(client)
    apply_history(client, operations)
    records = read_stream(streams, arn, {})
    for mode, (pipeline, pg) in both.items():
        name = "Employees" if pipeline.config.routes["employees"].sink == "aurora" else "employees"  # folded
        pg.conn.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(pg.schema, name)))
        Shard(records, lambda batch, step, p=pipeline: p.process(event(batch)).response, steps).run()
        expected = expected_history(pipeline.config.routes["employees"], records, log=mode == "log")
        rows = table(pg)
        if mode == "history":
            assert versions(rows, "Id", "_cdc_version", "_cdc_op", "Department", "_valid_from", "_valid_to") == expected
        else:
            assert versions(rows, "Id", "_cdc_version", "_cdc_op", "Department", "_cdc_time") == [
                row[:5] for row in expected]


@pytest.mark.parametrize("sink", SINKS)
@pytest.mark.parametrize("mode", ["history", "log"])
def test_verify_compares_the_current_versions_with_dynamodb(mode: str, sink: str,
                                                            request: pytest.FixtureRequest) -> None:
    employees = (request.getfixturevalue("pair")(ROUTE, mode=mode) if sink == "aurora"
                 else request.getfixturevalue("warehouse")(BOTH, mode=mode))  # Redshift: through the Data API path
    employees.put({"Id": 1, "empName": "Ana", "empDepartment": "Ops"}, {"Id": 2, "empName": "Bo"})
    # a newer version of 1 and a delete of 2, in DynamoDB and through the stream
    employees.put({"Id": 1, "empName": "Ana", "empDepartment": "Eng"})
    employees.dynamodb.delete_item(TableName="Employees", Key={"Id": {"N": "2"}})
    assert employees.pipeline.process(event([employees.stream.remove({"Id": 2})])).response == OK
    assert counts(employees.verify()) == (1, 1, 0, 0, 0)  # older versions and deleted items are history
    # a current version that differs from the item is found
    employees.sql('UPDATE {0} SET "Department" = \'x\' WHERE "Id" = 1 AND "_cdc_version" = '
                  '(SELECT max("_cdc_version") FROM {0} WHERE "Id" = 1)')
    assert counts(employees.verify()) == (1, 1, 0, 0, 1)


@pytest.mark.parametrize("mode", ["history", "log"])
def test_a_versioned_table_as_created_has_no_drift(mode: str, pg: Any, make_pipeline: Any) -> None:
    pipeline = make_pipeline(pg, ROUTE, mode=mode)
    sink, route = pipeline.sinks["aurora"], pipeline.config.routes["employees"]
    assert sink.check(route) == []
    pg.conn.execute(sql.SQL("ALTER TABLE {} DROP COLUMN {}").format(
        sql.Identifier(pg.schema, "Employees"), sql.Identifier("_cdc_op")))
    assert [(d.problem, d.column) for d in sink.check(route)] == [("missing column", "_cdc_op")]
