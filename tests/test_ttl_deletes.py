"""TTL expiries told apart from users' deletes (issue 16): a REMOVE by DynamoDB's TTL process carries
``userIdentity`` {"type": "Service", "principalId": "dynamodb.amazonaws.com"}, and ``ttl_deletes`` says what
it does to the row; users' deletes keep following ``deletes``. Every case runs on both sinks."""

from __future__ import annotations

from typing import Any

import pytest
from factories import Stream, event
from redshift_on_postgres import BOTH_SINKS, EMPLOYEES_ROUTE, target

from router.records import TTL_IDENTITY
from router.sink import RouteStats
from sinks.registry import SINK_TYPES

ROUTE = BOTH_SINKS + EMPLOYEES_ROUTE.replace("sink: aurora", "sink: {sink}") + "    ttl_deletes: {ttl_deletes}\n"
SINKS = ["aurora", "warehouse"]
OK = {"batchItemFailures": []}


def expired(record: dict[str, Any]) -> dict[str, Any]:
    """The REMOVE as DynamoDB's TTL process writes it to the stream."""
    return {**record, "userIdentity": dict(TTL_IDENTITY)}


def items(stream: Stream) -> list[dict[str, Any]]:
    return [stream.insert({"Id": n, "empName": f"E{n}", "empDepartment": "Ops"}) for n in (1, 2)]


@pytest.mark.parametrize("sink", SINKS)
def test_an_ignored_expiry_keeps_the_row_and_a_user_delete_removes_it(sink: str, pg: Any,
                                                                       make_both_pipeline: Any) -> None:
    pipeline = make_both_pipeline(pg, ROUTE, sink=sink, deletes="hard", ttl_deletes="ignore")
    stream = Stream("Employees")
    # GIVEN two items; WHEN TTL expires 1 and a user deletes 2 (and a user delete by another service's
    # identity is still a user delete)
    assert pipeline.process(event(items(stream))).response == OK
    other_service = {**stream.remove({"Id": 2}), "userIdentity": {"type": "Service", "principalId": "lambda.amazonaws.com"}}
    result = pipeline.process(event([expired(stream.remove({"Id": 1})), other_service]))
    # THEN the expired item stays, the deleted one is gone, and the metrics tell them apart
    assert result.response == OK
    assert target(pg, sink).rows("Employees", order_by="Id") == [{"Id": 1, "Name": "E1", "Department": "Ops"}]
    assert result.stats["employees"] == RouteStats(deleted=1, expired=1)


@pytest.mark.parametrize("sink", SINKS)
def test_an_ignored_expiry_in_the_batch_of_the_upsert_keeps_the_upsert(sink: str, pg: Any,
                                                                        make_both_pipeline: Any) -> None:
    pipeline = make_both_pipeline(pg, ROUTE, sink=sink, deletes="hard", ttl_deletes="ignore")
    stream = Stream("Employees")
    batch = [*items(stream), expired(stream.remove({"Id": 1})), stream.remove({"Id": 2})]
    for _ in range(2):  # and a redelivery changes nothing
        assert pipeline.process(event(batch)).response == OK
        assert target(pg, sink).rows("Employees", order_by="Id") == [{"Id": 1, "Name": "E1", "Department": "Ops"}]


@pytest.mark.parametrize("sink", SINKS)
@pytest.mark.parametrize("deletes", ["hard", "soft"])
def test_an_expiry_follows_deletes_by_default(sink: str, deletes: str, pg: Any, make_both_pipeline: Any) -> None:
    template = ROUTE.replace("    ttl_deletes: {ttl_deletes}\n", "")
    pipeline = make_both_pipeline(pg, template, sink=sink, deletes=deletes)
    stream = Stream("Employees")
    assert pipeline.process(event(items(stream))).response == OK
    result = pipeline.process(event([expired(stream.remove({"Id": 1}))]))
    assert result.stats["employees"] == RouteStats(expired=1)  # counted apart, not as a delete
    rows = target(pg, sink).rows("Employees", order_by="Id", bookkeeping=True)
    if deletes == "hard":
        assert [r["Id"] for r in rows] == [2]
    else:
        assert [(r["Id"], r["_cdc_deleted_at"] is not None) for r in rows] == [(1, True), (2, False)]


def marks(pg: Any, sink: str) -> list[tuple[Any, ...]]:
    """Each row's key, name, whether it is marked deleted, and why."""
    rows = target(pg, sink).rows("Employees", order_by="Id", bookkeeping=True)
    return [(r["Id"], r["Name"], r["_cdc_deleted_at"] is not None, r["_cdc_delete_reason"]) for r in rows]


def expire_one_delete_one(pipeline: Any, stream: Stream) -> tuple[list[dict[str, Any]], list[dict[str, Any]], Any]:
    """Items 1-3 inserted, then a batch in which TTL expires 1 and a user deletes 2 (asserted applied,
    one expiry counted): the inserts, the removes and that batch's result."""
    inserts = [stream.insert({"Id": n, "empName": f"E{n}", "empDepartment": "Ops"}) for n in (1, 2, 3)]
    removes = [expired(stream.remove({"Id": 1})), stream.remove({"Id": 2})]
    assert pipeline.process(event(inserts)).response == OK
    result = pipeline.process(event(removes))
    assert (result.response, result.stats["employees"].expired) == (OK, 1)
    return inserts, removes, result


@pytest.mark.parametrize("sink", SINKS)
@pytest.mark.parametrize(("deletes", "after"), [
    # a user's delete removes the row; an expiry marks it, with the reason
    ("hard", [(1, "E1", True, "ttl"), (3, "E3", False, None)]),
    # both mark it, each with its reason
    ("soft", [(1, "E1", True, "ttl"), (2, "E2", True, "delete"), (3, "E3", False, None)]),
    # a user's delete leaves the row as it was
    ("ignore", [(1, "E1", True, "ttl"), (2, "E2", False, None), (3, "E3", False, None)]),
])
def test_a_soft_expiry_is_marked_with_its_reason_whatever_deletes_says(sink: str, deletes: str,
                                                                        after: list[tuple[Any, ...]], pg: Any,
                                                                        make_both_pipeline: Any) -> None:
    pipeline = make_both_pipeline(pg, ROUTE, sink=sink, deletes=deletes, ttl_deletes="soft")
    stream = Stream("Employees")
    # WHEN TTL expires 1 and a user deletes 2, delivered twice, then the inserts again (stale)
    inserts, removes, result = expire_one_delete_one(pipeline, stream)
    assert result.stats["employees"].deleted == (0 if deletes == "ignore" else 1)
    for batch in (removes, inserts):
        assert pipeline.process(event(batch)).response == OK
    assert marks(pg, sink) == after
    # AND an item written again after its expiry is live again
    assert pipeline.process(event([stream.insert({"Id": 1, "empName": "E1b", "empDepartment": "Ops"})])).response == OK
    assert marks(pg, sink)[0] == (1, "E1b", False, None)


@pytest.mark.parametrize("sink", SINKS)
def test_a_soft_expiry_in_the_batch_of_its_upsert_keeps_the_values(sink: str, pg: Any,
                                                                    make_both_pipeline: Any) -> None:
    pipeline = make_both_pipeline(pg, ROUTE, sink=sink, deletes="hard", ttl_deletes="soft")
    stream = Stream("Employees")
    batch = [*items(stream), expired(stream.remove({"Id": 1})), stream.remove({"Id": 2})]
    for _ in range(2):
        assert pipeline.process(event(batch)).response == OK
        assert marks(pg, sink) == [(1, "E1", True, "ttl")]


@pytest.mark.parametrize("sink", SINKS)
def test_a_redelivered_expiry_does_not_bring_back_an_item_deleted_since(sink: str, pg: Any,
                                                                        make_both_pipeline: Any) -> None:
    pipeline = make_both_pipeline(pg, ROUTE, sink=sink, deletes="hard", ttl_deletes="soft")
    stream = Stream("Employees")
    # GIVEN an item that expired, was written again, then deleted by a user
    first, expiry = stream.insert({"Id": 1, "empName": "E1", "empDepartment": "Ops"}), expired(stream.remove({"Id": 1}))
    again = stream.insert({"Id": 1, "empName": "E1b", "empDepartment": "Ops"})
    assert pipeline.process(event([first, expiry, again, stream.remove({"Id": 1})])).response == OK
    # WHEN the expiry is delivered again THEN the tombstone keeps the item away
    assert pipeline.process(event([expiry])).response == OK
    assert marks(pg, sink) == []


@pytest.mark.parametrize("sink", SINKS)
def test_history_tells_expiries_from_deletes(sink: str, pg: Any, make_both_pipeline: Any) -> None:
    pipeline = make_both_pipeline(pg, ROUTE + "    mode: history\n", sink=sink, deletes="hard", ttl_deletes="soft")
    stream = Stream("Employees")
    assert pipeline.process(event([*items(stream), expired(stream.remove({"Id": 1})),
                                   stream.remove({"Id": 2})])).response == OK
    rows = target(pg, sink).rows("Employees", order_by="_cdc_version", bookkeeping=True)
    assert [(r["Id"], r["_cdc_op"], r["_cdc_delete_reason"]) for r in rows] == [
        (1, "u", None), (2, "u", None), (1, "d", "ttl"), (2, "d", "delete")]


@pytest.mark.parametrize("deletes", ["hard", "soft"])
def test_the_reason_column_is_drift_until_schema_adds_it(deletes: str, pg: Any, make_both_pipeline: Any,
                                                          write_config: Any) -> None:
    from operations.assemble import load_config

    # GIVEN a table built before the route said ttl_deletes: soft
    make_both_pipeline(pg, ROUTE, sink="aurora", deletes=deletes, ttl_deletes="ignore")
    config = load_config(write_config(ROUTE, pg, sink="aurora", deletes=deletes, on_error="fail", ttl_deletes="soft",
                                      wschema="w", wstate="ws"))
    sink = SINK_TYPES["postgres"](config.sinks["aurora"], list(config.routes.values()))
    route = config.routes["employees"]
    try:
        drift = sink.check(route)
        expected = [("missing column", "_cdc_delete_reason")] + (
            [("missing column", "_cdc_deleted_at")] if deletes == "hard" else [])
        assert sorted((d.problem, d.column) for d in drift) == sorted(expected)
        for statement in (s for d in drift for s in d.fix):
            pg.conn.execute(statement)
        assert sink.check(route) == []
    finally:
        sink.close()


@pytest.mark.parametrize("sink", SINKS)
@pytest.mark.parametrize(("deletes", "after"), [
    ("soft", [(2, "E2", True, None), (3, "E3", False, None)]),    # a user's delete marks the row
    ("ignore", [(2, "E2", False, None), (3, "E3", False, None)]),  # a user's delete leaves it as it was
])
def test_a_hard_expiry_removes_the_row_whatever_deletes_says(sink: str, deletes: str, after: list[tuple[Any, ...]],
                                                              pg: Any, make_both_pipeline: Any) -> None:
    template = ROUTE.replace("    ttl_deletes: {ttl_deletes}\n", "    ttl_deletes: hard\n")
    pipeline = make_both_pipeline(pg, template, sink=sink, deletes=deletes)
    inserts, removes, result = expire_one_delete_one(pipeline, Stream("Employees"))
    # WHEN the removes and the inserts are delivered again THEN the tombstone keeps the expired item away
    for batch in (removes, inserts):
        assert pipeline.process(event(batch)).response == OK
    rows = target(pg, sink).rows("Employees", order_by="Id", bookkeeping=True)
    assert [(r["Id"], r["Name"], r.get("_cdc_deleted_at") is not None, r.get("_cdc_delete_reason")) for r in rows] == after


@pytest.mark.parametrize(("deletes", "ttl_deletes", "mode"), [
    ("hard", "ignore", "current"),
    ("soft", "soft", "current"),
    ("ignore", "ignore", "current"),
    ("hard", "soft", "current"),      # expiries marked, with the reason, users' deletes removed
    ("ignore", "soft", "current"),
    ("ignore", "hard", "current"),    # expiries removed and tombstoned, users' deletes ignored
    ("soft", "hard", "current"),
    ("ignore", "hard", "history"),    # a delete is a version
])
def test_ttl_deletes_is_independent_of_deletes(deletes: str, ttl_deletes: str, mode: str, pg: Any,
                                               write_config: Any) -> None:
    from router.config import load_config

    path = write_config(ROUTE + f"    mode: {mode}\n", pg, sink="aurora", deletes=deletes, on_error="fail",
                        ttl_deletes=ttl_deletes, wschema="w", wstate="ws")
    route = load_config(path, SINK_TYPES).routes["employees"]
    assert (route.deletes_for(False), route.deletes_for(True)) == (deletes, ttl_deletes)
