"""Backfill from a DynamoDB export to S3 (DYNAMODB_JSON), built in the real layout: from a local
directory and from moto's S3, resumed after a crash, and refused when damaged."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from conftest import EMPLOYEES
from exports import upload, write_export
from factories import wire
from moto import mock_aws
from replica import expected_rows, live_rows

from operations.assemble import load_config
from operations.backfill import Backfill, BackfillError, PageReport, route_pipeline
from operations.backfill_checkpoints import PostgresBackfillCheckpoints
from sources.export import ExportSource

ITEMS = [wire({"Id": i, "empName": f"name{i}", "empDepartment": "Ops", "tags": {"a", "b"}, "raw": b"\x00\x01"})
         for i in range(1, 501)]


class Crash(Exception):
    pass


@pytest.fixture
def run(pg: Any, write_config: Callable[..., Any]) -> Iterator[Callable[..., Any]]:
    """``run(source, **options)``: a backfill of the employees route from ``source``, as a new process."""
    config = load_config(write_config(EMPLOYEES, pg, deletes="hard", on_error="fail"))
    route, pipelines = config.routes["employees"], []

    def backfill(source: ExportSource, **options: Any) -> Any:
        pipeline = route_pipeline(config, route)
        pipeline.sinks["aurora"].apply_ddl()
        pipelines.append(pipeline)
        checkpoints = PostgresBackfillCheckpoints(pipeline.sinks["aurora"])  # type: ignore[arg-type]
        checkpoints.create()
        return Backfill(pipeline, route, source, checkpoints, key_names=["Id"], **options).run()

    backfill.route = route  # type: ignore[attr-defined]
    yield backfill
    for pipeline in pipelines:
        pipeline.close()


def test_a_local_export_fills_the_target(tmp_path: Path, pg: Any, run: Any) -> None:
    write_export(tmp_path, "Employees", ITEMS, files=3)
    # GIVEN the folder above the export (the bucket's copy), where one export lies below
    source = ExportSource(str(tmp_path), page_size=64)
    assert (source.table, source.estimated_items, len(source.segments)) == ("Employees", 500, 3)

    result = run(source)

    assert (result.items, result.stats.upserted) == (500, 500)
    assert live_rows(pg, run.route) == expected_rows(run.route, ITEMS)
    assert {r["segment"]: (r["items"], r["finished"]) for r in pg.state("backfill_checkpoints")} == {
        name: (entry["itemCount"], True) for name, entry in source.files.items()}


def test_an_s3_export_fills_the_target_and_resumes_after_a_crash(tmp_path: Path, pg: Any, run: Any) -> None:
    write_export(tmp_path / "bucket", "Employees", ITEMS, files=2)
    with mock_aws():
        s3 = boto3.client("s3")
        upload(s3, tmp_path / "bucket")
        url = "s3://backups/exports/AWSDynamoDB/01700000000000-a1b2c3d4/"
        pages: list[PageReport] = []

        def crash_after_three(report: PageReport) -> None:
            pages.append(report)
            if len(pages) == 3:
                raise Crash()

        with pytest.raises(Crash):
            run(ExportSource(url, s3, page_size=50), workers=1, on_page=crash_after_three)
        # the first data file is three pages in: its position is a line number
        (position,) = [r for r in pg.state("backfill_checkpoints")]
        assert (position["position"], position["items"], position["finished"]) == ({"line": 150}, 150, False)

        result = run(ExportSource(url, s3, page_size=50))

    assert (result.resumed, result.items, result.stats.upserted, result.stats.stale) == (150, 350, 350, 0)
    assert live_rows(pg, run.route) == expected_rows(run.route, ITEMS)


def damage(folder: Path, change: Callable[[list[str]], list[str]]) -> str:
    """Rewrite the first data file's lines; returns its name."""
    path = sorted((folder / "data").iterdir())[0]
    lines = gzip.decompress(path.read_bytes()).decode().splitlines(keepends=True)
    path.write_bytes(gzip.compress("".join(change(lines)).encode()))
    return path.name


@pytest.mark.parametrize("change, problem", [
    # a line lost: the manifest's itemCount tells
    (lambda lines: lines[:-1], "holds 166 items, and its manifest says 167: the file is incomplete"),
    # a value changed in place: same count, other bytes
    (lambda lines: [lines[0].replace("name", "NAME")] + lines[1:], "does not match its MD5 checksum"),
    # not an export line
    (lambda lines: ['{"NotAnItem": {}}\n'] + lines[1:], 'line 1: not a {"Item": {...}} object'),
])
def test_a_damaged_data_file_stops_the_backfill(tmp_path: Path, run: Any, change: Any, problem: str) -> None:
    folder = write_export(tmp_path, "Employees", ITEMS, files=3)
    name = damage(folder, change)
    with pytest.raises(BackfillError) as stopped:
        run(ExportSource(str(folder), page_size=1000))
    assert f"export data file {name}" in str(stopped.value) and problem in str(stopped.value)


@pytest.mark.parametrize("edit, problem", [
    (lambda s: {**s, "outputFormat": "ION"}, "format ION; only DYNAMODB_JSON is read"),
    (lambda s: {**s, "exportType": "INCREMENTAL_EXPORT"}, "an INCREMENTAL_EXPORT; only a full export is a backfill"),
])
def test_exports_it_cannot_read_are_refused(tmp_path: Path, edit: Any, problem: str) -> None:
    folder = write_export(tmp_path, "Employees", ITEMS[:3], files=1)
    summary = folder / "manifest-summary.json"
    summary.write_text(json.dumps(edit(json.loads(summary.read_text()))))
    with pytest.raises(BackfillError) as refused:
        ExportSource(str(tmp_path))
    assert str(refused.value) == f"export {tmp_path}: {problem}"


def test_the_export_must_be_one(tmp_path: Path) -> None:
    with pytest.raises(BackfillError, match="no manifest-summary.json below it"):
        ExportSource(str(tmp_path))
    write_export(tmp_path, "Employees", ITEMS[:3], export_id="01700000000000-aaaaaaaa")
    write_export(tmp_path, "Employees", ITEMS[:3], export_id="01700000000001-bbbbbbbb")
    with pytest.raises(BackfillError, match="2 exports .*; give the folder of one export"):
        ExportSource(str(tmp_path))
