"""Filtered routes and shared target tables on a real Postgres (issue 12, findings 1-4 and 6):
one route's "not mine" never deletes another route's row, an item that never matched writes
nothing, and a stream that lacks what a route needs stops the batch instead of dead-lettering."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import EMPLOYEES
from factories import Stream, event

ROUTES = EMPLOYEES.split("routes:\n")[0] + "routes:\n{routes}\n"  # the aurora sink, then these routes
PEOPLE = """
  {name}:
    source: People
    sink: aurora
    table: {schema}.people
    key: [id]
    columns:
      id: {{type: bigint}}
      name: {{type: text}}
    filter: {{attribute: kind, equals: {name}}}
    deletes: {deletes}
    on_error: {on_error}
"""
ORDERS = """
  orders:
    source: Shop
    sink: aurora
    table: {schema}.orders
    key: [id]
    columns:
      id: {{type: uuid}}
      total: {{type: numeric}}
    filter: {{attribute: type, equals: order}}
    deletes: {deletes}
    on_error: {on_error}
"""
ORDER_ID = "0b6c2a6e-4a43-4f69-9b1e-1f6c9f8f2a10"


def people(make_pipeline: Any, pg: Any, order: tuple[str, str], deletes: str) -> Any:
    routes = "".join(PEOPLE.replace("{name}", name) for name in order)
    return make_pipeline(pg, template=ROUTES.replace("{routes}", routes), deletes=deletes)


def live(pg: Any, table: str) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if not k.startswith("_cdc_")}
            for r in pg.rows(table, order_by="id", bookkeeping=True) if not r.get("_cdc_deleted_at")]


@pytest.mark.parametrize("deletes", ["hard", "soft"])
@pytest.mark.parametrize("order", [("staff", "contractor"), ("contractor", "staff")])
def test_routes_sharing_a_table_keep_each_others_rows(pg: Any, make_pipeline: Any, order: tuple[str, str],
                                                       deletes: str) -> None:
    # GIVEN staff and contractor routes into one table, in either declaration order (finding 1)
    pipeline = people(make_pipeline, pg, order, deletes)
    s = Stream("People", key=("id",), view="NEW_AND_OLD_IMAGES")
    # WHEN a staff and a contractor item are inserted and modified, then the staff item becomes a contractor
    records = [s.insert({"id": 1, "kind": "staff", "name": "Ann"}), s.insert({"id": 2, "kind": "contractor", "name": "Bo"}),
               s.modify({"id": 1, "kind": "staff", "name": "Ann B"}), s.modify({"id": 2, "kind": "contractor", "name": "Bob"})]
    assert pipeline.process(event(records)).response == {"batchItemFailures": []}
    # THEN both rows are there
    assert live(pg, "people") == [{"id": 1, "name": "Ann B"}, {"id": 2, "name": "Bob"}]
    # AND an item moving between the routes keeps its row (the route it left does not delete it), in one batch
    # or record by record
    moved = s.modify({"id": 1, "kind": "contractor", "name": "Ann C"})
    assert pipeline.process(event([moved])).response == {"batchItemFailures": []}
    assert live(pg, "people") == [{"id": 1, "name": "Ann C"}, {"id": 2, "name": "Bob"}]
    assert pg.state("tombstones") == []


@pytest.mark.parametrize("deletes", ["hard", "soft"])
def test_an_item_that_never_matched_writes_nothing(pg: Any, make_pipeline: Any, deletes: str) -> None:
    # GIVEN an orders route keyed by a uuid, on a NEW_AND_OLD_IMAGES stream of a single-table design (findings 2, 3)
    pipeline = make_pipeline(pg, template=ROUTES.replace("{routes}", ORDERS), deletes=deletes)
    s = Stream("Shop", key=("id",), view="NEW_AND_OLD_IMAGES")
    # WHEN a customer item (its id no uuid) is inserted, modified and removed, around an order
    records = [s.insert({"id": "cust-1", "type": "customer"}), s.insert({"id": ORDER_ID, "type": "order", "total": 5}),
               s.modify({"id": "cust-1", "type": "customer", "name": "x"}), s.remove({"id": "cust-1"})]
    # THEN nothing fails, and the orders table holds the order and nothing else: no phantom soft-deleted row
    assert pipeline.process(event(records)).response == {"batchItemFailures": []}
    assert [(str(r["id"]), r["total"], r.get("_cdc_deleted_at")) for r in pg.rows("orders", bookkeeping=True)] == [
        (ORDER_ID, 5, None)]
    assert pg.state("tombstones") == []


@pytest.mark.parametrize("on_error", ["fail", "dead_letter"])
@pytest.mark.parametrize("view", ["NEW_IMAGE", "KEYS_ONLY"])
def test_a_stream_without_the_old_image_a_filter_needs_stops_the_batch(pg: Any, make_pipeline: Any, view: str,
                                                                      on_error: str) -> None:
    # GIVEN the orders route on a stream that cannot tell whether a modified item was an order (findings 2, 6)
    pipeline = make_pipeline(pg, template=ROUTES.replace("{routes}", ORDERS), on_error=on_error)
    s = Stream("Shop", key=("id",), view=view)
    records = [s.insert({"id": "cust-1", "type": "customer"}), s.modify({"id": "cust-1", "type": "customer"})]
    # WHEN delivered
    result = pipeline.process(event(records))
    # THEN the first record stops the batch with what the table needs, whatever on_error says: never a dead letter
    assert result.response == {"batchItemFailures": [{"itemIdentifier": records[0]["dynamodb"]["SequenceNumber"]}]}
    assert result.failure is not None and result.failure.configuration
    assert f"the stream of DynamoDB table 'Shop' is {view}, but the route's filter reads type" in result.failure.reason
    assert "Enable the stream as NEW_AND_OLD_IMAGES" in result.failure.reason
    assert (pg.rows("orders"), pg.state("dead_letters")) == ([], [])


@pytest.mark.parametrize("view", ["KEYS_ONLY", "OLD_IMAGE"])
def test_a_stream_without_new_images_is_never_dead_lettered(pg: Any, make_pipeline: Any, view: str) -> None:
    # GIVEN an unfiltered route with on_error: dead_letter on a stream without NewImages (finding 6)
    pipeline = make_pipeline(pg, on_error="dead_letter")
    s = Stream("Employees", view=view)
    records = [s.insert({"Id": 1, "empName": "a"}), s.modify({"Id": 1, "empName": "b"})]
    # WHEN delivered THEN the batch stops at the first record, naming the table and the view type it needs
    result = pipeline.process(event(records))
    assert result.failure is not None and result.failure.configuration and result.failure.index == 0
    assert ("INSERT record without NewImage: the stream of DynamoDB table 'Employees' must be NEW_AND_OLD_IMAGES"
            in result.failure.reason)
    assert (pg.rows("Employees"), pg.state("dead_letters")) == ([], [])


def test_key_columns_read_from_non_key_attributes_stop_the_batch(pg: Any, make_pipeline: Any) -> None:
    # GIVEN a Users route keyed by email while the table's key is userId (finding 4)
    route = """
  users:
    source: Users
    sink: aurora
    table: {schema}.users
    key: [email]
    columns:
      email: {{type: text}}
      user_id: {{from: userId, type: text}}
    deletes: {deletes}
    on_error: {on_error}
"""
    pipeline = make_pipeline(pg, template=ROUTES.replace("{routes}", route), on_error="dead_letter")
    s = Stream("Users", key=("userId",), view="NEW_AND_OLD_IMAGES")
    result = pipeline.process(event([s.insert({"userId": "u1", "email": "a@example.com"})]))
    # THEN the first record fails with the attributes named, and nothing is dead-lettered
    assert result.failure is not None and result.failure.configuration
    assert ("key column(s) read non-key attribute(s) 'email' of DynamoDB table 'Users' (its key attributes: userId)"
            in result.failure.reason)
    assert pg.state("dead_letters") == []
