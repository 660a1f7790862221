"""TTL expiries told apart from users' deletes (issue 16): a REMOVE by DynamoDB's TTL process carries
``userIdentity`` {"type": "Service", "principalId": "dynamodb.amazonaws.com"}, and ``ttl_deletes`` says what
it does to the row; users' deletes keep following ``deletes``. Every case runs on both sinks."""

from __future__ import annotations

from typing import Any

import pytest
from factories import Stream, event
from redshift_on_postgres import BOTH_SINKS, EMPLOYEES_ROUTE, target

from router.errors import ConfigError
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


@pytest.mark.parametrize(("deletes", "ttl_deletes", "accepted"), [
    ("hard", "ignore", True),
    ("soft", "soft", True),
    ("ignore", "ignore", True),
    ("hard", "soft", False),    # the table has no _cdc_deleted_at to mark an expiry with
    ("ignore", "hard", False),  # nor do its statements delete
])
def test_ttl_deletes_must_fit_the_routes_deletes(deletes: str, ttl_deletes: str, accepted: bool, pg: Any,
                                                 write_config: Any) -> None:
    from router.config import load_config

    path = write_config(ROUTE, pg, sink="aurora", deletes=deletes, on_error="fail", ttl_deletes=ttl_deletes,
                        wschema="w", wstate="ws")
    if accepted:
        assert load_config(path, SINK_TYPES).routes["employees"].deletes_for(True) == ttl_deletes
        return
    with pytest.raises(ConfigError) as caught:
        load_config(path, SINK_TYPES)
    assert f"routes.employees.ttl_deletes: invalid value '{ttl_deletes}' with deletes: {deletes}" in str(caught.value)
