"""Property over configurations, not only schedules (issue 12): for every generated tables.yaml,
either ``validate`` rejects it with a message, or the records its routes cannot handle fail the
batch with a configuration error (never dead-lettered), or every target converges to what
DynamoDB (moto) holds, on both SQL sinks, under any Lambda delivery schedule.

Generated: 1-3 routes of one pk+sk table (filters on attributes, key attributes and map paths;
shared target tables; renamed, partial and non-key key columns; each ``deletes`` and ``on_error``;
value column types), the stream's view type, whether ``sources:`` declares the table, a history
of writes and a delivery schedule. Examples: CDC_CONFIG_EXAMPLES (default 40, for CI); how each
configuration ended: ``pytest tests/test_property_configs.py --hypothesis-show-statistics``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from conftest import PgTarget, pg_target
from factories import event, read_stream, stream_arn, wire
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import event as statistic
from hypothesis import strategies as st
from lambda_esm import Shard, Step
from moto import mock_aws
from psycopg import sql
from redshift_on_postgres import on_postgres

from operations.assemble import build_sinks, load_config
from router.errors import ConfigError
from router.pipeline import Pipeline
from router.transform import RouteTransform
from sources.dynamodb_streams import parse_record
from sources.lambda_events import parse_event

EXAMPLES = int(os.environ.get("CDC_CONFIG_EXAMPLES") or 40)

FILTERS = {
    "none": None,
    "staff": "{attribute: kind, equals: staff}",
    "contractor": "{attribute: kind, equals: contractor}",
    "people": "{attribute: kind, in: [staff, contractor]}",
    "no-kind": "{attribute: kind, exists: false}",
    "not-staff": "{not: {attribute: kind, equals: staff}}",
    "profile": "{attribute: sk, equals: P}",
    "orders": "{attribute: sk, begins_with: 'O#'}",
    "meta-staff": "{attribute: meta.kind, equals: staff}",
    "staff-orders": "{all: [{attribute: kind, equals: staff}, {attribute: sk, begins_with: 'O#'}]}",
}
KEYS = {  # the key columns, and their names
    "both": ("pk: {from: pk}, sk: {from: sk, type: varchar(10)}", ["pk", "sk"]),
    "renamed": ("id: {from: pk}, sort: {from: sk}", ["id", "sort"]),
    "partition": ("pk: {from: pk}", ["pk"]),
    "non-key": ("pk: {from: pk}, kind: {from: kind}", ["pk", "kind"]),
}
# filters that never select the same item: a second route on the first one's table often takes one
DISJOINT = {"staff": ("contractor", "no-kind", "not-staff"), "contractor": ("staff", "no-kind"),
            "people": ("no-kind",), "no-kind": ("staff", "contractor", "people"), "not-staff": ("staff",),
            "profile": ("orders",), "orders": ("profile",), "staff-orders": ("contractor", "profile")}
VALUE_TYPES = ["text", "bigint", "numeric", "jsonb"]
VIEWS = ["NEW_AND_OLD_IMAGES", "NEW_AND_OLD_IMAGES", "NEW_IMAGE", "KEYS_ONLY"]


@dataclass(frozen=True)
class RouteSpec:
    filter: str
    key: str
    table: str          # t0 or t1: routes of one sink with the same table share it
    sink: str           # aurora (Postgres) or warehouse (the Redshift sink on Postgres)
    deletes: str
    on_error: str
    value_type: str


ROUTES = st.builds(RouteSpec, filter=st.sampled_from(sorted(FILTERS)), key=st.sampled_from(["both", "both", "renamed", "partition", "non-key"]),
                   table=st.sampled_from(["t0", "t1"]), sink=st.sampled_from(["aurora", "warehouse"]),
                   deletes=st.sampled_from(["hard", "soft", "ignore"]),
                   on_error=st.sampled_from(["fail", "dead_letter"]), value_type=st.sampled_from(VALUE_TYPES))


@st.composite
def route_lists(draw: Any) -> list[RouteSpec]:
    """1-3 routes; later ones often copy the first's table, sink, key, deletes and value type (so that
    shared targets that validate accepts, with disjoint filters, come up often)."""
    first = draw(ROUTES)
    routes = [first]
    for _ in range(draw(st.integers(0, 2))):
        route = draw(ROUTES)
        if draw(st.integers(0, 3)):  # three times in four: the first route's table, key and deletes
            partners = DISJOINT.get(first.filter, ())
            chosen = draw(st.sampled_from(partners)) if partners and draw(st.integers(0, 3)) else route.filter
            route = RouteSpec(chosen, first.key, first.table, first.sink, first.deletes, route.on_error,
                              first.value_type)
        routes.append(route)
    return routes


ATTRIBUTES = st.fixed_dictionaries({}, optional={
    "kind": st.sampled_from(["staff", "contractor"]),
    "v": st.sampled_from([0, 1, 2, "x"]),
    "name": st.sampled_from(["Al", "Beatrice"]),
    "meta": st.fixed_dictionaries({"kind": st.sampled_from(["staff", "contractor"])}),
})
ITEM_KEYS = st.tuples(st.sampled_from(["a", "b"]), st.sampled_from(["P", "O#1"]))
OPERATION = st.one_of(st.tuples(st.just("put"), ITEM_KEYS, ATTRIBUTES),
                      st.tuples(st.just("update"), ITEM_KEYS, ATTRIBUTES),
                      st.tuples(st.just("delete"), ITEM_KEYS))
STEP = st.builds(Step, size=st.integers(1, 6), duplicate=st.booleans(), lost=st.booleans(),
                 bisect=st.booleans(), reread=st.booleans(), replay=st.sampled_from([0, 0, 3]))


def config_text(routes: list[RouteSpec], view: str, declared: bool, pg: PgTarget, warehouse: PgTarget) -> str:
    schemas = {"aurora": pg.schema, "warehouse": warehouse.schema}
    lines = ["version: 1", "sinks:",
             "  aurora: {type: postgres, dsn: '${DATABASE_URL}', state_schema: " + pg.state_schema + "}",
             "  warehouse: {type: redshift, workgroup: analytics, database: dev, distribution: auto, "
             f"state_schema: {warehouse.state_schema}}}"]
    if declared:
        lines += ["sources:", f"  Items: {{key: [pk, sk], stream: {view}}}"]
    lines.append("routes:")
    for index, route in enumerate(routes):
        key_columns, key = KEYS[route.key]
        lines += [f"  r{index}:", "    source: Items", f"    sink: {route.sink}",
                  f"    table: {schemas[route.sink]}.{route.table}", f"    key: [{', '.join(key)}]",
                  f"    columns: {{{key_columns}, v: {{type: {route.value_type}, fallback: null}}, "
                  "name: {type: varchar(4), fallback: NA}}",
                  f"    deletes: {route.deletes}", f"    on_error: {route.on_error}"]
        if FILTERS[route.filter]:
            lines.append(f"    filter: {FILTERS[route.filter]}")
    return "\n".join(lines) + "\n"


# -- DynamoDB: the history, and its stream as each view type delivers it ------------------------------


@pytest.fixture(scope="module")
def dynamodb() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("dynamodb"), boto3.client("dynamodbstreams")


def run_history(dynamodb: Any, operations: list[tuple]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A fresh Items table after ``operations``: (its stream records, with both images; its items)."""
    client, streams = dynamodb
    if client.list_tables()["TableNames"]:
        client.delete_table(TableName="Items")
    client.create_table(
        TableName="Items", BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk")],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    for kind, (pk, sk), *rest in operations:
        key = {"pk": {"S": pk}, "sk": {"S": sk}}
        if kind == "put":
            client.put_item(TableName="Items", Item={**key, **wire(rest[0])})
        elif kind == "update" and rest[0]:
            names = {f"#a{i}": name for i, name in enumerate(sorted(rest[0]))}
            values = {f":v{i}": wire({"v": rest[0][name]})["v"] for i, name in enumerate(sorted(rest[0]))}
            client.update_item(TableName="Items", Key=key, ExpressionAttributeNames=names,
                               ExpressionAttributeValues=values,
                               UpdateExpression="SET " + ", ".join(f"#a{i} = :v{i}" for i in range(len(names))))
        elif kind == "delete":
            client.delete_item(TableName="Items", Key=key)
    arn = client.describe_table(TableName="Items")["Table"]["LatestStreamArn"]
    return read_stream(streams, arn, {}), client.scan(TableName="Items", ConsistentRead=True)["Items"]


def as_view(record: dict[str, Any], view: str) -> dict[str, Any]:
    """The record as a stream of view type ``view`` carries it."""
    body = {k: v for k, v in record["dynamodb"].items() if k not in ("NewImage", "OldImage")}
    body["StreamViewType"] = view
    if view in ("NEW_IMAGE", "NEW_AND_OLD_IMAGES") and "NewImage" in record["dynamodb"]:
        body["NewImage"] = record["dynamodb"]["NewImage"]
    if view == "NEW_AND_OLD_IMAGES" and "OldImage" in record["dynamodb"]:
        body["OldImage"] = record["dynamodb"]["OldImage"]
    return {**record, "dynamodb": body}


# -- the oracle: every record applied once, in order, with both images ---------------------------------

Target = tuple[str, str, str]  # (sink, schema, table)


def image_row(route: Any, image: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The key and row the route's own transform makes of an item (what verify and backfill use too)."""
    raw = {"eventName": "INSERT", "eventSourceARN": stream_arn("Items"),
           "dynamodb": {"Keys": {n: image[n] for n in ("pk", "sk")}, "NewImage": image, "SequenceNumber": "1"}}
    change = RouteTransform(route)(parse_record(raw, 0))
    assert change is not None
    return change.key, change.row


def selected(route: Any, image: dict[str, Any] | None) -> bool:
    return image is not None and (route.filter is None or route.filter(image))


def expected_targets(config: Any, records: list[dict[str, Any]]) -> dict[Target, dict[Any, tuple[dict, bool]]]:
    """Per target: key -> (row, soft-deleted). A record first deletes what routes lose, then upserts what
    routes select: routes sharing a table have disjoint filters, so an item moving between them moves rows."""
    state: dict[Target, dict[Any, tuple[dict, bool]]] = {(r.sink, r.schema, r.table): {} for r in config.routes.values()}
    for record in records:
        body = record["dynamodb"]
        new, old = body.get("NewImage"), body.get("OldImage")
        losing, selecting = [], []
        for route in config.routes.values():
            target = state[(route.sink, route.schema, route.table)]
            if record["eventName"] != "REMOVE" and selected(route, new):
                selecting.append((target, *image_row(route, new)))
            elif selected(route, old) and route.deletes != "ignore":
                losing.append((target, route.deletes, image_row(route, old)[0]))
        for target, deletes, key in losing:
            if deletes == "hard":
                target.pop(key, None)
            else:
                target[key] = (target[key][0], True)
        for target, key, row in selecting:
            target[key] = (row, False)
    return state


def actual_target(pg: PgTarget, route: Any) -> dict[Any, tuple[dict, bool]]:
    rows = pg.conn.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(route.schema, route.table))).fetchall()
    return {tuple(r[k] for k in route.key): ({k: v for k, v in r.items() if not k.startswith("_cdc_")},
                                             r.get("_cdc_deleted_at") is not None) for r in rows}


def compare(expected: dict[Any, tuple[dict, bool]], actual: dict[Any, tuple[dict, bool]]) -> None:
    live = {k: row for k, (row, deleted) in expected.items() if not deleted}
    assert {k: row for k, (row, deleted) in actual.items() if not deleted} == live
    # no phantom rows: a soft-deleted row is one the route once held
    assert {k for k, (_, deleted) in actual.items() if deleted} == {k for k, (_, d) in expected.items() if d}


# -- the harness ---------------------------------------------------------------------------------------


class Stopped(Exception):
    """The pipeline stopped the stream at a record (the shard would be blocked there)."""


@pytest.fixture
def targets(database_url: str, redshift_shims: str) -> Iterator[dict[str, PgTarget]]:
    with pg_target(database_url) as pg, pg_target(database_url) as warehouse:
        for target in (pg, warehouse):
            target.conn.prepare_threshold = None  # the tables change types between examples: no cached plans
        yield {"aurora": pg, "warehouse": warehouse}


def reset(targets: dict[str, PgTarget]) -> None:
    for pg in targets.values():
        for schema in (pg.schema, pg.state_schema):
            pg.conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def deliver(pipeline: Pipeline, records: list[dict[str, Any]], steps: list[Step]) -> Any:
    """Run the schedule; return the failure that stopped the stream, if one did."""
    def invoke(batch: Any, step: Step) -> dict[str, Any]:
        result = pipeline.process(event(batch))
        if result.failure is not None:
            raise Stopped(result.failure)
        return result.response
    try:
        Shard(records, invoke, steps).run()
    except Stopped as stopped:
        return stopped.args[0]
    return None


@settings(max_examples=EXAMPLES, deadline=None, phases=[p for p in Phase if p is not Phase.explain],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large])
@given(routes=route_lists(), view=st.sampled_from(VIEWS), declared=st.booleans(),
       operations=st.lists(OPERATION, min_size=1, max_size=12), steps=st.lists(STEP, max_size=8))
def test_every_accepted_configuration_converges(targets: dict[str, PgTarget], dynamodb: Any, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch, redshift_shims: str,
                                                routes: list[RouteSpec], view: str, declared: bool,
                                                operations: list[tuple], steps: list[Step]) -> None:
    # GIVEN a generated configuration
    monkeypatch.setenv("DATABASE_URL", redshift_shims)
    path = tmp_path / "tables.yaml"
    path.write_text(config_text(routes, view, declared, targets["aurora"], targets["warehouse"]))
    try:
        config = load_config(str(path))
    except ConfigError as exc:
        # THEN either validate rejects it, every message naming the file and where
        assert exc.errors and all(e.startswith(f"{path}: ") for e in exc.errors)
        statistic("rejected by validate: " + exc.errors[0].split(": ", 2)[-1][:60])
        return
    reset(targets)
    pipeline = on_postgres(Pipeline(config, build_sinks(config), parse_event), redshift_shims)
    try:
        # WHEN DynamoDB takes a history of writes and Lambda delivers its stream in this schedule
        records, _ = run_history(dynamodb, operations)
        failure = deliver(pipeline, [as_view(r, view) for r in records], steps)
    finally:
        pipeline.close()
    # THEN nothing is dead-lettered (every value fits its column or has a fallback) ...
    for pg in targets.values():
        assert pg.state("dead_letters") == []
    if failure is not None:
        # ... and a stopped stream is a configuration problem validate could not see (the source undeclared),
        # naming the table, never a record set aside
        assert failure.configuration and not declared, failure.reason
        assert "Items" in failure.reason
        statistic("stopped: " + failure.reason.split(": ", 1)[-1][:60])
        return
    # ... or every target equals what DynamoDB holds, through its routes
    expected = expected_targets(config, records)
    for route in config.routes.values():
        compare(expected[(route.sink, route.schema, route.table)], actual_target(targets[route.sink], route))
    shared = len({(r.sink, r.table) for r in config.routes.values()}) < len(config.routes)
    statistic("converged" + (" with a shared target table" if shared else ""))
