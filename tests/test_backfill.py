"""Backfill against moto's DynamoDB and a real Postgres: a parallel Scan into the target,
interleaved with the stream's changes, crashes and resumes, and throttling."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from conftest import EMPLOYEES
from factories import event, read_stream
from moto import mock_aws
from moto_tables import create_employees
from replica import expected_rows, live_rows, scan
from test_retry import Throttled

from operations.assemble import load_config
from operations.backfill import Backfill, BackfillError, BackfillResult, PageReport, SegmentState, route_pipeline
from operations.backfill_checkpoints import PostgresBackfillCheckpoints
from sources.scan import SCAN_RETRIES, ScanSource


class Crash(Exception):
    """Stands for a process killed mid-backfill."""


class Setup:
    """A moto Employees table with its stream, and backfills over the test's Postgres schemas."""

    def __init__(self, pg: Any, config_path: Any, dynamodb: Any, streams: Any):
        self.pg, self.dynamodb, self.streams = pg, dynamodb, streams
        self.config = load_config(config_path)
        self.route = self.config.routes["employees"]
        self.arn = dynamodb.describe_table(TableName="Employees")["Table"]["LatestStreamArn"]
        self.iterators: dict[str, str] = {}
        self.pipelines: list[Any] = []

    def backfill(self, segments: int = 4, page_size: int = 100, checkpoints: Any = None, **options: Any) -> Backfill:
        """A fresh backfill, as a new process would build it."""
        pipeline = route_pipeline(self.config, self.route)
        pipeline.sinks["aurora"].apply_ddl()
        self.pipelines.append(pipeline)
        saved = PostgresBackfillCheckpoints(pipeline.sinks["aurora"])  # type: ignore[arg-type]
        saved.create()
        source = ScanSource(self.dynamodb, "Employees", segments, page_size=page_size,
                            estimated_items=self.dynamodb.describe_table(TableName="Employees")["Table"]["ItemCount"])
        return Backfill(pipeline, self.route, source, checkpoints or saved, key_names=["Id"], **options)

    def apply_stream(self, handler: Any) -> None:
        """Everything new on the stream, through the Lambda handler."""
        records = read_stream(self.streams, self.arn, self.iterators)
        if records:
            assert handler.handler(event(records), None) == {"batchItemFailures": []}

    def converged(self) -> bool:
        return live_rows(self.pg, self.route) == expected_rows(self.route, scan(self.dynamodb, "Employees"))


@pytest.fixture
def setup(pg: Any, write_config: Callable[..., Any]) -> Iterator[Setup]:
    with mock_aws():
        dynamodb = boto3.client("dynamodb")
        create_employees(dynamodb)
        made = Setup(pg, write_config(EMPLOYEES, pg, deletes="hard", on_error="fail"), dynamodb,
                     boto3.client("dynamodbstreams"))
        yield made
        for pipeline in made.pipelines:
            pipeline.close()


def put(dynamodb: Any, ids: range | list[int], name: str = "n") -> None:
    for start in range(0, len(ids), 25):
        dynamodb.batch_write_item(RequestItems={"Employees": [
            {"PutRequest": {"Item": {"Id": {"N": str(i)}, "empName": {"S": f"{name}{i}"},
                                     "empDepartment": {"S": "Ops"}}}} for i in ids[start:start + 25]]})


def saved(pg: Any) -> dict[str, SegmentState]:
    rows = pg.state("backfill_checkpoints")
    return {r["segment"]: SegmentState(r["position"], r["items"], r["finished"]) for r in rows}


def test_a_parallel_scan_fills_the_target(setup: Setup, pg: Any) -> None:
    put(setup.dynamodb, range(1, 3001))
    reports: list[PageReport] = []

    result = setup.backfill(segments=4, page_size=200, on_page=reports.append).run()

    assert setup.converged() and len(pg.rows("Employees")) == 3000
    assert (result.items, result.stats.upserted, result.stats.stale, result.resumed) == (3000, 3000, 0, 0)
    # every segment read something, and each is saved as finished with its count
    assert {r.segment for r in reports} == {"0/4", "1/4", "2/4", "3/4"}
    positions = saved(pg)
    assert all(s.finished and s.position is None for s in positions.values())
    assert sum(s.items for s in positions.values()) == 3000
    assert reports[-1].done == 3000 and reports[-1].total == 3000
    assert {r["_cdc_version"] for r in pg.rows("Employees", bookkeeping=True)} == {0}
    # a rerun finds every segment finished and reads nothing
    assert setup.backfill().run() == BackfillResult(resumed=3000)


def test_interleaved_with_the_stream_converges_without_resurrecting_deletes(setup: Setup, pg: Any,
                                                                           lambda_handler: Any) -> None:
    db, rng = setup.dynamodb, random.Random(6)
    handler = lambda_handler(pg)
    put(db, range(1, 601))
    deleted: set[int] = set()

    def change(count: int) -> None:
        """Updates, deletes and new items over keys the scan has and has not read yet."""
        for _ in range(count):
            key = rng.randint(1, 700)
            if rng.random() < 0.4:
                db.delete_item(TableName="Employees", Key={"Id": {"N": str(key)}})
                deleted.add(key)
            else:
                db.put_item(TableName="Employees", Item={"Id": {"N": str(key)}, "empName": {"S": f"v{rng.random()}"}})
                deleted.discard(key)

    # BEFORE: the trigger has applied some changes, and lags behind on others
    change(30)
    setup.apply_stream(handler)
    change(10)

    # DURING: changes after each page; the trigger applies them after every other page
    def during(report: PageReport) -> None:
        change(8)
        if rng.random() < 0.5:
            setup.apply_stream(handler)

    # one page in flight: nothing is read while a page is written and the table changes
    result = setup.backfill(segments=3, page_size=25, in_flight=1, on_page=during).run()

    # AFTER: the trigger catches up, then keeps going
    setup.apply_stream(handler)
    change(20)
    setup.apply_stream(handler)

    assert setup.converged()
    live = {r["Id"] for r in live_rows(pg, setup.route)}
    assert deleted and not live & deleted
    assert result.stats.stale > 0  # the backfill met rows and tombstones the stream wrote, and kept them


@pytest.mark.parametrize("crash_at", ["after the checkpoint", "before the checkpoint"])
def test_a_crashed_backfill_resumes_where_it_stopped(setup: Setup, pg: Any, crash_at: str) -> None:
    put(setup.dynamodb, range(1, 1001))
    pages: list[PageReport] = []

    class FailingCheckpoints(PostgresBackfillCheckpoints):
        def save(self, route: str, source: str, segment: str, state: SegmentState) -> None:
            if len(pages) == 4:
                raise Crash("killed between the page's commit and its checkpoint")
            super().save(route, source, segment, state)

    def on_page(report: PageReport) -> None:
        pages.append(report)
        if len(pages) == 5:
            raise Crash("killed after the fifth page")

    first = setup.backfill(page_size=50, on_page=on_page)
    if crash_at == "before the checkpoint":
        first.checkpoints = FailingCheckpoints(first.pipeline.sinks["aurora"])  # type: ignore[arg-type]
    with pytest.raises(Crash):
        first.run()

    # the positions saved: some segments part-way, none finished, and the rows they cover are written
    positions = saved(pg)
    done = sum(s.items for s in positions.values())
    assert done == sum(p.items for p in pages[:4 if crash_at == "before the checkpoint" else 5])
    assert not any(s.finished for s in positions.values()) and any(s.position for s in positions.values())
    written = len(pg.rows("Employees"))
    assert written == done + (50 if crash_at == "before the checkpoint" else 0)  # one page not checkpointed

    second = setup.backfill(page_size=50).run()

    # resumed, not restarted: only the rest was read; a page written but not checkpointed was a no-op
    assert (second.resumed, second.items) == (done, 1000 - done)
    assert second.stats.upserted == 1000 - written and second.stats.stale == written - done
    assert setup.converged() and len(pg.rows("Employees")) == 1000
    assert all(s.finished for s in saved(pg).values()) and sum(s.items for s in saved(pg).values()) == 1000


def test_a_different_segmentation_does_not_mix_with_saved_positions(setup: Setup) -> None:
    put(setup.dynamodb, range(1, 201))
    with pytest.raises(Crash):
        setup.backfill(segments=4, page_size=20, workers=1,
                       on_page=lambda report: (_ for _ in ()).throw(Crash())).run()
    with pytest.raises(BackfillError) as refused:
        setup.backfill(segments=8).run()
    assert str(refused.value) == ("an unfinished backfill of route 'employees' from scan Employees has other segments "
                                  "(0/4): rerun it with the same segmentation, or start again with --restart")
    setup.backfill(segments=4).run()
    assert setup.converged()


def test_throttled_scans_are_retried_by_botocore_and_go_on(setup: Setup) -> None:
    put(setup.dynamodb, range(1, 51))
    # the backfill's client, as `cdc-router backfill` makes it: botocore retries throttling, nothing else does
    setup.dynamodb = boto3.client("dynamodb", region_name="us-east-1", config=Config(retries=SCAN_RETRIES))
    scans: list[bool] = []

    def throttle(request: Any, **kwargs: Any) -> Any:
        """Answer the first three Scans with ProvisionedThroughputExceededException, as DynamoDB would."""
        scans.append(len(scans) < 3)
        return Throttled.response(request, "ProvisionedThroughputExceededException") if scans[-1] else None

    setup.dynamodb.meta.events.register("before-send.dynamodb.Scan", throttle)

    assert setup.backfill(segments=1).run().items == 50

    assert scans == [True, True, True, False]  # three throttled tries, then the one page, read once
    assert setup.converged()
