"""``backfill --columns``: a column added to a route after its table was replicated is filled from a Scan
(moto) into rows that exist, on the real PostgreSQL and on the Redshift stand-in, while the stream keeps
writing: a stream write that lands between the Scan reading an item and the fill writing it wins, no
deleted row comes back, no missing row is made, and no row's version moves."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from click.testing import CliRunner
from exports import write_export
from factories import event, postgres, read_stream, redshift, route, tables, wire
from moto import mock_aws
from moto_tables import create_employees
from redshift_on_postgres import PostgresTransport

from handlers.cli import app
from operations.assemble import load_config
from operations.backfill import Backfill, BackfillError, SegmentState, fill_of, route_pipeline
from router.modes import Fix
from sinks.redshift import RedshiftSink
from sources.pages import Page
from sources.scan import ScanSource

V1 = {"Id": {"type": "bigint"}, "Name": {"from": "empName", "type": "varchar(20)"}}
V2 = {**V1, "Department": {"from": "empDepartment", "type": "varchar(10)"}}  # the column added later


class Table:
    """The moto Employees table and its stream, applied to a pipeline as Lambda would, record by record kept back
    where a test wants the stream to lag."""

    def __init__(self) -> None:
        self.dynamodb, self.streams = boto3.client("dynamodb"), boto3.client("dynamodbstreams")
        self.arn = create_employees(self.dynamodb)
        self.iterators: dict[str, str] = {}
        self.held: list[dict[str, Any]] = []

    def put(self, i: int, name: str, department: str, **more: Any) -> None:
        self.dynamodb.put_item(TableName="Employees", Item=wire({"Id": i, "empName": name, "empDepartment": department,
                                                                **more}))

    def delete(self, i: int) -> None:
        self.dynamodb.delete_item(TableName="Employees", Key=wire({"Id": i}))

    def replicate(self, pipeline: Any, hold: set[int] = frozenset()) -> None:  # type: ignore[assignment]
        """The stream's new records (and those held before), but those of ``hold``'s ids, which wait."""
        records = self.held + read_stream(self.streams, str(self.arn), self.iterators)
        self.held = [r for r in records if int(r["dynamodb"]["Keys"]["Id"]["N"]) in hold]
        ready = [r for r in records if r not in self.held]
        if ready:
            assert pipeline.process(event(ready)).failure is None


class Interleaved:
    """A Scan whose every page, once read, is followed by ``during()`` before the fill writes it."""

    def __init__(self, scan: ScanSource, during: Any):
        self.scan, self.during = scan, during
        self.name, self.table, self.segments, self.estimated_items = scan.name, scan.table, scan.segments, None

    def read(self, segment: str, position: Any) -> Iterator[Page]:
        for page in self.scan.read(segment, position):
            self.during()
            yield page


class Memory:
    """Checkpoints in memory (the Redshift route's positions: the command keeps them in a postgres sink)."""

    def __init__(self) -> None:
        self.saved: dict[tuple[str, str], dict[str, SegmentState]] = {}

    def load(self, route: str, source: str) -> dict[str, SegmentState]:
        return dict(self.saved.get((route, source), {}))

    def save(self, route: str, source: str, segment: str, state: SegmentState) -> None:
        self.saved.setdefault((route, source), {})[segment] = state

    def clear(self, route: str, source: str) -> None:
        self.saved.pop((route, source), None)


def config(sink: str, pg: Any, warehouse_pg: Any, columns: dict[str, Any], **options: Any) -> dict[str, Any]:
    schema = pg.schema if sink == "aurora" else warehouse_pg.schema
    return tables({"employees": route(f"{schema}.Employees", sink=sink, columns=columns, **options)},
                  {"aurora": postgres(pg.state_schema), "warehouse": redshift(warehouse_pg.state_schema)})


def rows(sink: str, pg: Any, warehouse_pg: Any) -> dict[int, dict[str, Any]]:
    """Every row by Id, names in lower case (Redshift folds them), with its version."""
    target, table = (pg, "Employees") if sink == "aurora" else (warehouse_pg, "employees")
    return {int(r["id"]): r for r in ({k.lower(): v for k, v in row.items()}
                                      for row in target.rows(table, bookkeeping=True))}


@pytest.fixture
def aws() -> Iterator[Table]:
    with mock_aws():
        yield Table()


@pytest.mark.parametrize("sink, deletes", [("aurora", "hard"), ("aurora", "soft"), ("warehouse", "hard"),
                                           ("warehouse", "soft")])
def test_a_fill_writes_the_new_column_and_the_stream_wins_where_it_wrote_since(
        sink: str, deletes: str, aws: Table, pg: Any, warehouse_pg: Any, make_both_pipeline: Any, write_config: Any,
        redshift_shims: str) -> None:
    # GIVEN items 1-6 replicated under v1, which has no Department column
    for i in range(1, 7):
        aws.put(i, f"n{i}", f"D{i}")
    aws.replicate(make_both_pipeline(pg, config(sink, pg, warehouse_pg, V1, deletes=deletes)))
    # AND the route gains Department: the column is added, the function runs v2
    v2_config = config(sink, pg, warehouse_pg, V2, deletes=deletes)
    function = make_both_pipeline(pg, v2_config, deletes=deletes)
    target = function.sinks[sink]
    employees = next(iter(target.routes))
    target.apply_fixes([d for d in target.check(employees) if d.kind == Fix.ADDITIVE])
    # AND item 7 is written, its record still on its way (the stream lags)
    aws.put(7, "n7", "D7")
    before = rows(sink, pg, warehouse_pg)
    assert sorted(before) == [1, 2, 3, 4, 5, 6] and {r["department"] for r in before.values()} == {None}

    def stream_writes_after_the_scan_read() -> None:
        aws.put(2, "n2", "NEW2")                # a newer value of the very column being filled
        aws.delete(4)                           # a delete: the row must not come back
        aws.put(5, "renamed", "NEW5")
        aws.replicate(function, hold={7})

    # WHEN the versions are recorded, then Department is filled from a Scan while the stream writes
    fill = fill_of(employees, ["Department"])
    pipeline = route_pipeline(load_config(write_config(v2_config, pg)), employees, fill)
    filling = pipeline.sinks[sink]
    if isinstance(filling.inner, RedshiftSink):  # type: ignore[attr-defined]
        filling.inner.transport = PostgresTransport(redshift_shims)  # type: ignore[attr-defined]
    filling.inner.record_versions(employees)  # type: ignore[attr-defined]
    scan = Interleaved(ScanSource(aws.dynamodb, "Employees", 1, page_size=100), stream_writes_after_the_scan_read)
    result = Backfill(pipeline, employees, scan, Memory(), key_names=["Id"], workers=1, in_flight=1, fill=fill).run()
    pipeline.close()

    # THEN rows 1, 3 and 6 are filled with their version untouched; 2 and 5 keep the stream's writes; 4 is not
    # back (soft: still marked deleted, its Department empty); 7, not yet in the target, is not made
    after = rows(sink, pg, warehouse_pg)
    assert {i: after[i]["department"] for i in after} == {
        1: "D1", 2: "NEW2", 3: "D3", 5: "NEW5", 6: "D6", **({4: None} if deletes == "soft" else {})}
    assert all(after[i]["_cdc_version"] == before[i]["_cdc_version"] for i in (1, 3, 6))
    assert after[5]["name"] == "renamed" and after[5]["_cdc_version"] > before[5]["_cdc_version"]
    assert (result.items, result.stats.upserted, result.stats.stale) == (7, 3, 4)
    # AND the stream, catching up, writes item 7 whole
    aws.replicate(function)
    assert rows(sink, pg, warehouse_pg)[7]["department"] == "D7"


@pytest.mark.parametrize("names, options, error", [
    # a column the route does not have, or a bookkeeping one
    (["Title"], {}, "route 'employees' has no column 'Title' (its columns: Id, Name, Department)"),
    (["_cdc_version"], {}, "route 'employees' has no column '_cdc_version'"),
    # the key identifies the rows a fill writes
    (["Id", "Name"], {}, "column 'Id' is in the key of route 'employees'"),
    # history and log tables keep past versions, which the table's items cannot give
    (["Name"], {"mode": "history"}, "route 'employees' keeps a row per version (mode: history)"),
    ([" ", ""], {}, "--columns names no column"),
])
def test_what_cannot_be_filled_is_refused(names: list[str], options: dict[str, Any], error: str, pg: Any,
                                          warehouse_pg: Any, write_config: Any) -> None:
    employees = load_config(write_config(config("aurora", pg, warehouse_pg, V2, **options), pg)).routes["employees"]
    with pytest.raises(BackfillError, match=error.replace("(", r"\(").replace(")", r"\)")):
        fill_of(employees, names)


def test_a_masked_column_is_filled_masked_as_the_stream_writes_it(aws: Table, pg: Any, warehouse_pg: Any,
                                                                   make_both_pipeline: Any, write_config: Any) -> None:
    v2 = {**V1, "Ssn": {"from": "ssn", "type": "text", "mask": "sha256"}}
    aws.put(1, "n1", "D1", ssn="123-45-6789")
    aws.replicate(make_both_pipeline(pg, config("aurora", pg, warehouse_pg, V1)))
    function = make_both_pipeline(pg, config("aurora", pg, warehouse_pg, v2))
    target = function.sinks["aurora"]
    employees = next(iter(target.routes))
    target.apply_fixes(target.check(employees))
    fill = fill_of(employees, ["Ssn"])
    pipeline = route_pipeline(load_config(write_config(config("aurora", pg, warehouse_pg, v2), pg)), employees, fill)
    target.record_versions(employees)
    Backfill(pipeline, employees, ScanSource(aws.dynamodb, "Employees", 1), Memory(), key_names=["Id"],
             fill=fill).run()
    pipeline.close()
    aws.put(2, "n2", "D2", ssn="123-45-6789")  # the same value, written by the stream
    aws.replicate(function)
    filled, streamed = (rows("aurora", pg, warehouse_pg)[i]["ssn"] for i in (1, 2))
    assert filled == streamed and len(filled) == 64 and "6789" not in filled


def test_the_command_fills_from_a_scan_and_wants_an_export_taken_after_the_versions(
        aws: Table, pg: Any, warehouse_pg: Any, make_both_pipeline: Any, write_config: Any, tmp_path: Path) -> None:
    for i in range(1, 4):
        aws.put(i, f"n{i}", f"D{i}")
    aws.replicate(make_both_pipeline(pg, config("aurora", pg, warehouse_pg, V1)))
    path = write_config(config("aurora", pg, warehouse_pg, V2), pg)
    assert CliRunner().invoke(app, ["schema", "-c", str(path), "--apply"]).exit_code == 0
    # WHEN filled from a Scan THEN the versions are recorded first, the rows filled, the versions dropped after
    done = CliRunner().invoke(app, ["backfill", "employees", "-c", str(path), "--columns", "Department"])
    assert done.exit_code == 0, done.output
    assert f"recorded the version of every row of {pg.schema}.Employees" in done.output
    assert ": 3 filled, 0 not filled (no such row, deleted, or written by the stream since the versions were " \
           "recorded), 0 dead-lettered;" in done.output
    assert [r["Department"] for r in pg.rows("Employees", order_by="Id")] == ["D1", "D2", "D3"]
    assert pg.conn.execute("SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = %s AND "
                           "table_name LIKE 'fill_versions_%%'", (pg.state_schema,)).fetchone()["n"] == 0
    # AND an export taken before the versions were recorded is refused, the versions kept for the next one
    items = [wire({"Id": i, "empName": f"n{i}", "empDepartment": f"E{i}"}) for i in range(1, 4)]
    old = write_export(tmp_path / "old", "Employees", items)
    refused = CliRunner().invoke(app, ["backfill", "employees", "-c", str(path), "--columns", "Department",
                                       "--restart", "--from-export", str(old)])
    assert refused.exit_code == 1 and "before the versions of the rows were recorded" in refused.stderr
    new = write_export(tmp_path / "new", "Employees", items)  # taken now: after the versions
    filled = CliRunner().invoke(app, ["backfill", "employees", "-c", str(path), "--columns", "Department",
                                      "--from-export", str(new)])
    assert filled.exit_code == 0, filled.output
    assert "recorded the version" not in filled.output and ": 3 filled," in filled.output
    assert [r["Department"] for r in pg.rows("Employees", order_by="Id")] == ["E1", "E2", "E3"]


def test_the_extras_column_is_filled_with_what_no_column_maps(aws: Table, pg: Any, warehouse_pg: Any,
                                                               make_both_pipeline: Any, write_config: Any) -> None:
    # GIVEN rows replicated before the route had an extras column
    aws.put(1, "n1", "D1", title="CTO")
    aws.replicate(make_both_pipeline(pg, config("aurora", pg, warehouse_pg, V1)))
    v2 = config("aurora", pg, warehouse_pg, V1, extras="more")
    target = make_both_pipeline(pg, v2).sinks["aurora"]
    employees = next(iter(target.routes))
    target.apply_fixes(target.check(employees))
    # WHEN only the extras column is filled THEN it holds the unmapped attributes; Name is left as it was
    pg.conn.execute(f'UPDATE "{pg.schema}"."Employees" SET "Name" = \'kept\'')
    fill = fill_of(employees, ["more"])
    pipeline = route_pipeline(load_config(write_config(v2, pg)), employees, fill)
    target.record_versions(employees)
    Backfill(pipeline, employees, ScanSource(aws.dynamodb, "Employees", 1), Memory(), key_names=["Id"],
             fill=fill).run()
    pipeline.close()
    assert pg.rows("Employees") == [{"Id": 1, "Name": "kept", "more": {"empDepartment": "D1", "title": "CTO"}}]


def test_a_fill_stopped_by_a_failed_item_resumes_with_the_versions_it_recorded(
        aws: Table, pg: Any, warehouse_pg: Any, make_both_pipeline: Any, write_config: Any) -> None:
    # GIVEN rows of v1, and an item whose Department does not fit varchar(10) (on_error: fail)
    for i in range(1, 6):
        aws.put(i, f"n{i}", "x" * 20 if i == 3 else f"D{i}")
    aws.replicate(make_both_pipeline(pg, config("aurora", pg, warehouse_pg, V1)))
    path = write_config(config("aurora", pg, warehouse_pg, V2), pg)
    assert CliRunner().invoke(app, ["schema", "-c", str(path), "--apply"]).exit_code == 0
    command = ["backfill", "employees", "-c", str(path), "--columns", "Department", "--segments", "1",
               "--batch-size", "1"]
    # WHEN the fill stops at that item
    stopped = CliRunner().invoke(app, command)
    assert stopped.exit_code == 1 and "does not fit varchar(10)" in stopped.stderr
    assert "recorded the version of every row" in stopped.output
    # AND the item is corrected in DynamoDB (its record not applied yet), and the command run again
    aws.put(3, "n3", "D3")
    resumed = CliRunner().invoke(app, command)
    # THEN it goes on with the versions recorded first (not recorded again) and fills every row
    assert resumed.exit_code == 0, resumed.output
    assert "recorded the version" not in resumed.output and ", resumed after " in resumed.output
    assert [r["Department"] for r in pg.rows("Employees", order_by="Id")] == ["D1", "D2", "D3", "D4", "D5"]
