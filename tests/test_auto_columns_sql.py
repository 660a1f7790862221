"""columns: auto on the SQL sinks (issue 15): columns added in the batch's transaction, the record
every container maps by, concurrent adders, and verify on a table whose items gain attributes.

Postgres, and the Redshift sink with its statements run on the test PostgreSQL (the stand-in).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import os
import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import boto3
import psycopg
import pytest
from factories import Stream, event, postgres, read_stream, redshift, route, tables, wire
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from lambda_esm import Shard, Step
from moto import mock_aws
from replica import scan

from operations.verify import Verifier, verify_all
from operations.verify_postgres import PostgresComparison
from operations.verify_redshift import RedshiftComparison
from router.attrs import to_python
from router.model import VERSION_COLUMN
from router.pipeline import Pipeline
from sinks.redshift.sink import RedshiftSink
from sources.scan import ScanSource

Records = list[dict[str, Any]]
KEY = "userId"


def sessions(pg: Any, sink: dict[str, Any], columns: Any = "auto", **options: Any) -> dict[str, Any]:
    return tables({"sessions": route(f"{pg.schema}.sessions", source="Sessions", sink="target", key=(KEY,),
                                     columns=columns, **options)}, {"target": sink})


@pytest.fixture(params=["postgres", "redshift"])
def build(request: pytest.FixtureRequest, pg: Any) -> Callable[..., Pipeline]:
    """A pipeline of the Sessions route (``columns: auto``) on the sink under test; each call is a new
    container on the same database."""
    if request.param == "postgres":
        make = request.getfixturevalue("make_pipeline")
        return lambda **options: make(pg, sessions(pg, postgres(pg.state_schema), **options))
    make_both, warehouse = request.getfixturevalue("make_both_pipeline"), request.getfixturevalue("warehouse_pg")
    return lambda **options: make_both(pg, sessions(pg, redshift(warehouse.state_schema), **options))


def table_rows(pipeline: Pipeline) -> list[dict[str, Any]]:
    """The target's rows by attribute name (the record maps columns back), without bookkeeping."""
    sink, route_ = pipeline.sinks["target"], pipeline.config.routes["sessions"]
    def fold(name: str) -> str:  # Redshift's catalog holds names in lower case; the stand-in cuts them at 63 bytes
        return sink.capabilities.identity(name).encode()[:63].decode("utf-8", "ignore")
    names = {fold(c.name): c.attribute for c in sink.added_columns(route_)} | {fold(KEY): KEY}
    with psycopg.connect(sink_url(pipeline)) as conn:
        conn.row_factory = psycopg.rows.dict_row
        rows = conn.execute(f'SELECT * FROM "{route_.schema}"."sessions"').fetchall()
    shaped = [{names.get(k, k): v for k, v in row.items() if not k.startswith("_cdc_")} for row in rows]
    return sorted(shaped, key=lambda row: row[KEY])


def sink_url(pipeline: Pipeline) -> str:
    sink = pipeline.sinks["target"]
    transport = getattr(sink, "transport", None)
    return transport.url if transport is not None else sink.credentials.conninfo()  # type: ignore[attr-defined]


# -- a moto table whose items gain an attribute of every DynamoDB type mid-stream ----------------

NEW_VALUES: dict[str, dict[str, Any]] = {
    "s": {"S": "text"}, "n": {"N": "12.50"}, "yes": {"BOOL": True}, "b": {"B": b"\x00\xff"},
    "m": {"M": {"a": {"N": "1"}, "b": {"L": [{"S": "x"}]}}}, "l": {"L": [{"N": "1"}, {"S": "two"}]},
    "ss": {"SS": ["b", "a"]}, "ns": {"NS": ["2", "1.5"]}, "bs": {"BS": [b"\x01", b"\x02"]},
    "nothing": {"NULL": True},
}


@mock_aws()
def history() -> tuple[Records, list[dict[str, Any]]]:
    """Puts of two attributes, then each new attribute set on an existing item (one per update), one
    removed again, a NULL, a delete and a re-insert with new attributes; the stream and the final items."""
    dynamodb = boto3.client("dynamodb")
    dynamodb.create_table(
        TableName="Sessions", BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": KEY, "AttributeType": "S"}],
        KeySchema=[{"AttributeName": KEY, "KeyType": "HASH"}],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    arn = dynamodb.describe_table(TableName="Sessions")["Table"]["LatestStreamArn"]
    for i in range(4):
        dynamodb.put_item(TableName="Sessions", Item={KEY: {"S": f"u{i}"}, "started": {"N": str(1000 + i)}})
    for i, (name, value) in enumerate(NEW_VALUES.items()):
        dynamodb.update_item(TableName="Sessions", Key={KEY: {"S": f"u{i % 4}"}}, UpdateExpression="SET #a = :v",
                             ExpressionAttributeNames={"#a": name}, ExpressionAttributeValues={":v": value})
    dynamodb.update_item(TableName="Sessions", Key={KEY: {"S": "u1"}}, UpdateExpression="REMOVE s")
    dynamodb.delete_item(TableName="Sessions", Key={KEY: {"S": "u2"}})
    dynamodb.put_item(TableName="Sessions", Item={KEY: {"S": "u2"}, "l": {"L": []}, "late": {"S": "back"}})
    records = read_stream(boto3.client("dynamodbstreams"), arn, {})
    return records, scan(dynamodb, "Sessions")


DELIVERIES: dict[str, Callable[[int], list[list[int]]]] = {  # the schedules of test_convergence.py
    "once": lambda n: [list(range(n))],
    "same batch twice": lambda n: [list(range(n))] * 2,
    "halves out of order": lambda n: [list(range(n // 2, n)), list(range(n // 2))],
    "one record per batch, backwards": lambda n: [[i] for i in reversed(range(n))],
    "every suffix (a retry from each record)": lambda n: [list(range(i, n)) for i in range(n)],
}


def expected(items: list[dict[str, Any]], columns: set[str]) -> list[dict[str, Any]]:
    """The items as rows by attribute: a column of every attribute the stream ever brought typed."""
    rows = []
    for item in items:
        row = dict.fromkeys(columns | {KEY})
        row.update({name: to_python(av) for name, av in item.items() if name in row})
        rows.append(row)
    return sorted(rows, key=lambda row: row[KEY])


def comparable(value: Any) -> Any:
    """A value as both sinks hand it back: sets as sorted lists, bytes as bytes, numbers as Decimal
    (1000 == 1000.000000000: Redshift's DECIMAL(38,9) keeps nine places)."""
    if isinstance(value, memoryview):
        return bytes(value)
    if isinstance(value, str) and value.startswith("\\x"):
        return bytes.fromhex(value[2:])
    if isinstance(value, (list, tuple, set)):  # a binary set in a SUPER array is base64 text, as in extras
        items = (base64.b64encode(bytes(v)).decode() if isinstance(v, (bytes, memoryview)) else v for v in value)
        return sorted((comparable(v) for v in items), key=repr)
    if isinstance(value, dict):
        return {k: comparable(v) for k, v in value.items()}
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return Decimal(str(value))
    return value


@pytest.mark.parametrize("delivery", DELIVERIES)
def test_the_target_equals_the_table_under_redelivery(build: Callable[..., Pipeline], delivery: str) -> None:
    records, items = history()
    with mock_aws():
        dynamodb = boto3.client("dynamodb")
        history.__wrapped__()  # type: ignore[attr-defined]  # the same table, in this mock, for verify
        pipeline = build()
        # WHEN the stream is delivered in these batches
        for batch in DELIVERIES[delivery](len(records)):
            assert pipeline.process(event([records[i] for i in batch])).failure is None
        # THEN a column per attribute, typed from its first value, and the rows equal the items
        added = {c.attribute: c.type for c in pipeline.sinks["target"].added_columns(pipeline.config.routes["sessions"])}
        assert added == {"started": "numeric", "s": "text", "n": "numeric", "yes": "boolean", "b": "bytea",
                         "m": "jsonb", "l": "jsonb", "ss": "text[]", "ns": "numeric[]", "bs": "bytea[]", "late": "text"}
        assert [comparable(r) for r in table_rows(pipeline)] == [comparable(r) for r in expected(items, set(added))]
        # AND cdc-router verify, reading the table, finds the target equal to it
        report = verified(pipeline, dynamodb)
        assert (report.drift, report.differences.source_rows) == (False, len(items))


def verified(pipeline: Pipeline, dynamodb: Any) -> Any:
    """``cdc-router verify`` of the Sessions route against the moto table: its report."""
    sink, route_ = pipeline.sinks["target"], pipeline.config.routes["sessions"]
    comparison = (RedshiftComparison if isinstance(sink, RedshiftSink) else PostgresComparison)(sink, route_)  # type: ignore[arg-type]
    try:
        return verify_all(Verifier(route_, comparison, [KEY]), ScanSource(dynamodb, "Sessions", 1), 1)
    finally:
        comparison.close()


def test_verify_compares_the_added_columns(build: Callable[..., Pipeline]) -> None:
    records, _ = history()
    with mock_aws():
        dynamodb = boto3.client("dynamodb")
        history.__wrapped__()  # type: ignore[attr-defined]  # the same table, in this mock
        pipeline = build()
        assert pipeline.process(event(records)).failure is None
        sink, route_ = pipeline.sinks["target"], pipeline.config.routes["sessions"]

        def verify() -> Any:
            return verified(pipeline, dynamodb)
        # THEN verify passes; and finds a changed value in an added column, and an attribute with no column
        assert not verify().drift
        with psycopg.connect(sink_url(pipeline), autocommit=True) as conn:
            conn.execute(f'UPDATE "{route_.schema}"."sessions" SET "n" = 1 WHERE "{sink.capabilities.identity(KEY)}" '
                         "= 'u1'")
        report = verify()
        assert (report.drift, report.differences.different, report.differences.first[0].columns) == (True, 1, ["n"])
        dynamodb.update_item(TableName="Sessions", Key={KEY: {"S": "u3"}}, UpdateExpression="SET fresh = :v",
                             ExpressionAttributeValues={":v": {"S": "x"}})
        report = verify()
        assert report.refused == 1 and "attribute 'fresh' has no column in the target" in str(
            report.differences.first[-1].source)


# -- concurrent containers ---------------------------------------------------------------------------

STREAM = Stream("Sessions", key=(KEY,))


def test_a_container_learns_the_columns_another_added(build: Callable[..., Pipeline]) -> None:
    # GIVEN two containers; WHEN the first adds a column and the second writes the item without it
    first, second = build(), build()
    assert second.process(event([STREAM.insert({KEY: "u1", "a": "x"})])).failure is None  # second knows a
    assert first.process(event([STREAM.modify({KEY: "u1", "a": "x", "b": 7})])).failure is None
    result = second.process(event([STREAM.modify({KEY: "u1", "a": "y"})]))
    # THEN the second read the record again: b is NULL as in the item, not 7 from the first's row
    assert result.failure is None
    assert table_rows(second) == [{KEY: "u1", "a": "y", "b": None}]


def test_a_name_too_long_maps_alike_in_every_container(build: Callable[..., Pipeline]) -> None:
    long_name = "attribute_" + "x" * 150  # over 63 bytes on Postgres and 127 on Redshift
    first = build()
    assert first.process(event([STREAM.insert({KEY: "u1", long_name: "v", "Name": "n"})])).failure is None
    second = build()  # a new container: it reads the record
    assert second.process(event([STREAM.modify({KEY: "u1", long_name: "w", "name": "m"})])).failure is None
    route_ = second.config.routes["sessions"]
    recorded = {c.attribute: c.name for c in second.sinks["target"].added_columns(route_)}
    assert recorded[long_name].startswith("attribute_xx") and recorded[long_name] != long_name
    folds = second.sinks["target"].capabilities.folds_identifiers  # Redshift: Name and name are one name
    assert (recorded["Name"], recorded["name"]) == ("Name", "name_82a3537f" if folds else "name")
    assert table_rows(second) == [{KEY: "u1", long_name: "w", "Name": None, "name": "m"}]


def test_two_concurrent_batches_adding_the_same_attribute_both_succeed(build: Callable[..., Pipeline]) -> None:
    # GIVEN two containers (two connections); WHEN both bring attribute "shared" at once, each for its own items
    containers = [build(), build()]
    for container in containers:  # both know the table (no column added yet)
        assert container.process(event([STREAM.insert({KEY: f"warm{id(container)}"})])).failure is None
    start, results = threading.Barrier(2), [None, None]

    def run(index: int) -> None:
        start.wait()
        batch = [STREAM.insert({KEY: f"u{index}-{i}", "shared": f"v{index}-{i}"}) for i in range(50)]
        results[index] = containers[index].process(event(batch))  # type: ignore[call-overload]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # THEN both succeed (one added the column, the other found it), and every row has its value
    assert [r.failure for r in results] == [None, None]  # type: ignore[attr-defined]
    assert sorted(r.stats["sessions"].columns_added for r in results) == [0, 1]  # type: ignore[attr-defined]
    rows = [r for r in table_rows(containers[0]) if r[KEY].startswith("u")]
    assert len(rows) == 100 and all(r["shared"] == "v" + r[KEY][1:] for r in rows)
    added = containers[0].sinks["target"].added_columns(containers[0].config.routes["sessions"])
    assert [(c.attribute, c.name) for c in added] == [("shared", "shared")]


def test_auto_beside_a_mapping_adds_only_the_attributes_no_column_reads(build: Callable[..., Pipeline]) -> None:
    # GIVEN auto: true beside columns that rename an attribute, type one and read one by its path
    columns = {KEY: {"from": KEY}, "name": {"from": "fullName"}, "started": {"from": "started", "type": "bigint"},
               "city": {"from": "address.city"}}
    pipeline = build(columns=columns, auto=True)
    # WHEN an item brings those attributes and one no column reads
    item = {KEY: "u1", "fullName": "Ana", "started": 5, "address": {"city": "Oslo"}, "device": "phone"}
    assert pipeline.process(event([STREAM.insert(item)])).failure is None
    # THEN only the unlisted attribute is added (not fullName, started or address), and the row holds each value once
    added = pipeline.sinks["target"].added_columns(pipeline.config.routes["sessions"])
    assert [(c.attribute, c.name, c.type) for c in added] == [("device", "device", "text")]
    assert table_rows(pipeline) == [{KEY: "u1", "name": "Ana", "started": 5, "city": "Oslo", "device": "phone"}]
    # AND a later record changes nothing in the table's columns
    item = {**item, "fullName": "Ana B", "started": 6}
    assert pipeline.process(event([STREAM.modify(item)])).stats["sessions"].columns_added == 0
    assert table_rows(pipeline) == [{KEY: "u1", "name": "Ana B", "started": 6, "city": "Oslo", "device": "phone"}]


def test_the_batch_that_adds_a_column_is_counted(build: Callable[..., Pipeline]) -> None:
    pipeline = build()
    result = pipeline.process(event([STREAM.insert({KEY: "u1", "a": "x", "b": 1})]))
    assert result.stats["sessions"].columns_added == 2
    assert pipeline.process(event([STREAM.modify({KEY: "u1", "a": "y"})])).stats["sessions"].columns_added == 0


def test_schema_check_expects_the_added_columns(build: Callable[..., Pipeline]) -> None:
    pipeline = build()
    assert pipeline.process(event([STREAM.insert({KEY: "u1", "a": "x"})])).failure is None
    sink, route_ = pipeline.sinks["target"], pipeline.config.routes["sessions"]
    assert sink.check(route_) == [] and sink.check_state() == []
    # a recorded column that is gone is drift, with the statement that adds it back
    with psycopg.connect(sink_url(pipeline), autocommit=True) as conn:
        conn.execute(f'ALTER TABLE "{route_.schema}"."sessions" DROP COLUMN "a"')
    assert [(d.problem, d.column) for d in sink.check(route_)] == [("missing column", "a")]


def test_rows_keep_their_version(build: Callable[..., Pipeline]) -> None:
    pipeline = build()
    record = STREAM.insert({KEY: "u1", "a": "x"})
    pipeline.process(event([record]))
    with psycopg.connect(sink_url(pipeline)) as conn:
        version = conn.execute(f'SELECT "{VERSION_COLUMN}" FROM "{pipeline.config.routes["sessions"].schema}".'
                               '"sessions"').fetchone()
    assert version is not None and int(version[0]) == int(record["dynamodb"]["SequenceNumber"])



@pytest.mark.parametrize("mode", ["history", "log"])
def test_history_and_log_tables_take_added_columns(build: Callable[..., Pipeline], mode: str) -> None:
    # GIVEN a row per version; WHEN a later version brings an attribute; THEN the earlier versions have NULL in it
    pipeline = build(mode=mode)
    records = [STREAM.insert({KEY: "u1", "a": "x"}), STREAM.modify({KEY: "u1", "a": "y", "b": True})]
    assert pipeline.process(event(records[1:])).failure is None
    assert pipeline.process(event(records)).failure is None  # the first version, late, and a redelivery
    assert sorted((r["a"], r["b"]) for r in table_rows(pipeline)) == [("x", None), ("y", True)]


def test_redshift_adds_one_column_per_statement_in_the_rows_call(make_both_pipeline: Callable[..., Pipeline],
                                                                 pg: Any, warehouse_pg: Any) -> None:
    # GIVEN the Redshift sink; WHEN a batch brings two attributes
    pipeline = make_both_pipeline(pg, sessions(pg, redshift(warehouse_pg.state_schema)))
    transport = pipeline.sinks["target"].transport  # type: ignore[attr-defined]
    transport.calls.clear()
    assert pipeline.process(event([STREAM.insert({KEY: "u1", "a": "x", "b": 1})])).failure is None
    # THEN one call: LOCK (the record with the other shared tables), the guard, one ALTER per column
    # without IF NOT EXISTS (Redshift has none), the record's rows, then the stage and the rows
    [call] = [c for c in transport.calls if any("ALTER TABLE" in s for s in c)]
    alters = [s for s in call if s.startswith("ALTER TABLE")]
    assert alters == [f'ALTER TABLE "{pg.schema}"."sessions" ADD COLUMN "a" VARCHAR(65535)',
                      f'ALTER TABLE "{pg.schema}"."sessions" ADD COLUMN "b" DECIMAL(38,9)']
    assert call[0].startswith("LOCK ") and '"auto_columns"' in call[0] and call[1].startswith("SELECT 1 / (CASE")
    assert call.index(alters[-1]) < next(i for i, s in enumerate(call) if s.startswith("CREATE TEMP TABLE"))


def test_the_stand_in_refuses_what_redshift_refuses(warehouse_pg: Any, redshift_shims: str) -> None:
    from redshift_on_postgres import PostgresTransport

    from sinks.redshift.transport import FailedStatementError, Statement
    table = f'"{warehouse_pg.schema}"."t"'
    transport = PostgresTransport(redshift_shims)
    transport.execute([Statement(f'CREATE SCHEMA IF NOT EXISTS "{warehouse_pg.schema}"'),
                       Statement(f"CREATE TABLE {table} (k INTEGER)")])
    for refused in (f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS a INTEGER",
                    f"ALTER TABLE {table} ADD COLUMN a INTEGER, ADD COLUMN b INTEGER"):
        with pytest.raises(FailedStatementError, match="one column, without IF NOT EXISTS"):
            transport.execute([Statement(refused)])


# -- a property: generated histories whose items gain and lose attributes of every type -------------

TEXT = st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",))  # what the target can store
VALUES = {  # an attribute per DynamoDB type (its name fixes its type, so every value fits its column)
    "s": st.text(TEXT, max_size=3), "n": st.integers(-10**6, 10**6).map(lambda i: Decimal(i) / 100), "yes": st.booleans(),
    "b": st.binary(min_size=1, max_size=3), "m": st.dictionaries(st.sampled_from("xy"), st.integers(0, 9), max_size=2),
    "l": st.lists(st.integers(0, 9), max_size=2), "ss": st.sets(st.text(TEXT, min_size=1, max_size=2), min_size=1, max_size=2),
    "ns": st.sets(st.integers(0, 99), min_size=1, max_size=2), "bs": st.sets(st.binary(min_size=1, max_size=2),
                                                                              min_size=1, max_size=2),
}
ATTRIBUTES = st.fixed_dictionaries({}, optional=VALUES)
ITEM = st.sampled_from(["a", "b", "c"])
OPERATIONS = st.lists(st.one_of(st.tuples(st.just("put"), ITEM, ATTRIBUTES), st.tuples(st.just("set"), ITEM, ATTRIBUTES),
                                st.tuples(st.just("remove"), ITEM, st.sampled_from(sorted(VALUES))),
                                st.tuples(st.just("delete"), ITEM)), min_size=1, max_size=10)
STEPS = st.lists(st.builds(Step, size=st.integers(1, 5), duplicate=st.booleans(), lost=st.booleans(),
                           bisect=st.booleans(), reread=st.booleans(), replay=st.sampled_from([0, 0, 3])), max_size=6)


def apply_operations(dynamodb: Any, operations: list[tuple]) -> tuple[Records, list[dict[str, Any]]]:
    """A fresh Sessions table after ``operations``: its stream records and its items."""
    if dynamodb.list_tables()["TableNames"]:
        dynamodb.delete_table(TableName="Sessions")
    dynamodb.create_table(
        TableName="Sessions", BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": KEY, "AttributeType": "S"}],
        KeySchema=[{"AttributeName": KEY, "KeyType": "HASH"}],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    for kind, item, *rest in operations:
        key = {KEY: {"S": item}}
        if kind == "put":
            dynamodb.put_item(TableName="Sessions", Item={**key, **wire(rest[0])})
        elif kind == "set" and rest[0]:
            names = sorted(rest[0])
            dynamodb.update_item(TableName="Sessions", Key=key, UpdateExpression="SET " + ", ".join(
                f"#a{i} = :v{i}" for i in range(len(names))),
                ExpressionAttributeNames={f"#a{i}": name for i, name in enumerate(names)},
                ExpressionAttributeValues={f":v{i}": wire({"v": rest[0][name]})["v"] for i, name in enumerate(names)})
        elif kind == "remove":
            dynamodb.update_item(TableName="Sessions", Key=key, UpdateExpression="REMOVE #a",
                                 ExpressionAttributeNames={"#a": rest[0]})
        elif kind == "delete":
            dynamodb.delete_item(TableName="Sessions", Key=key)
    arn = dynamodb.describe_table(TableName="Sessions")["Table"]["LatestStreamArn"]
    return read_stream(boto3.client("dynamodbstreams"), arn, {}), scan(dynamodb, "Sessions")


@settings(max_examples=int(os.environ.get("CDC_AUTO_EXAMPLES") or 10), deadline=None,
          phases=[p for p in Phase if p is not Phase.explain],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(operations=OPERATIONS, steps=STEPS, containers=st.integers(1, 2))
def test_the_target_equals_the_table_under_any_delivery(build: Callable[..., Pipeline], pg: Any,
                                                         operations: list[tuple], steps: list[Step],
                                                         containers: int) -> None:
    with mock_aws():
        # GIVEN items that gain and lose attributes of every type, and one or two containers taking turns
        records, items = apply_operations(boto3.client("dynamodb"), operations)
        pipelines = [build() for _ in range(containers)]
        reset(pipelines[0], pg)
        turns = itertools.cycle(pipelines)

        def invoke(batch: Any, step: Step) -> dict[str, Any]:
            result = next(turns).process(event(batch))
            assert result.failure is None, result.failure.reason
            return result.response
        try:
            # WHEN Lambda delivers the stream in this schedule (duplicates, lost responses, bisection, replays)
            Shard(records, invoke, steps).run()
            # THEN the target equals the table, a column for each attribute that ever had a typed value
            route_ = pipelines[0].config.routes["sessions"]
            added = {c.attribute for c in pipelines[0].sinks["target"].added_columns(route_)}
            brought = {name for r in records for name in r["dynamodb"].get("NewImage", {})} - {KEY}
            assert added == brought
            assert [comparable(r) for r in table_rows(pipelines[0])] == [comparable(r) for r in expected(items, added)]
        finally:
            for pipeline in pipelines:  # their connections: examples would pile them up
                pipeline.close()


def reset(pipeline: Pipeline, pg: Any) -> None:
    """The target and the sink's state as ``schema --apply`` leaves them (examples share the schemas)."""
    sink = pipeline.sinks["target"]
    with psycopg.connect(sink_url(pipeline), autocommit=True) as conn:
        conn.execute(f'DROP TABLE IF EXISTS "{pg.schema}"."sessions"')
        for table in ("auto_columns", "tombstones"):
            conn.execute(f'DELETE FROM "{sink.state_schema}"."{table}"')  # type: ignore[attr-defined]
    sink.apply_ddl()


def test_a_value_of_another_type_goes_to_extras(build: Callable[..., Pipeline]) -> None:
    # GIVEN a column typed text by its first value; WHEN a number comes for it; THEN extras has it, the column NULL
    pipeline = build(extras="more")
    assert pipeline.process(event([STREAM.insert({KEY: "u1", "a": "x"}), STREAM.insert({KEY: "u2", "a": 5})])).failure is None
    assert [comparable(r) for r in table_rows(pipeline)] == [{KEY: "u1", "a": "x", "more": {}},
                                                             {KEY: "u2", "a": None, "more": {"a": Decimal(5)}}]


def test_a_value_of_another_type_without_extras_follows_on_error(build: Callable[..., Pipeline]) -> None:
    # GIVEN a column typed text by its first value, no extras; WHEN a number comes for it in the middle of a batch
    pipeline = build(on_error="dead_letter")
    records = [STREAM.insert({KEY: "u1", "a": "x"}), STREAM.insert({KEY: "u2", "a": 5}),
               STREAM.insert({KEY: "u3", "a": "z"})]
    result = pipeline.process(event(records))
    # THEN its record is dead-lettered, as delivered, without a row, and the batch goes on
    assert (result.failure, result.response) == (None, {"batchItemFailures": []})
    assert (result.stats["sessions"].upserted, result.stats["sessions"].dead_lettered) == (2, 1)
    assert table_rows(pipeline) == [{KEY: "u1", "a": "x"}, {KEY: "u3", "a": "z"}]
    [letter] = pipeline.sinks["target"].dead_letters()
    assert (letter.route, letter.sequence_number) == ("sessions", int(records[1]["dynamodb"]["SequenceNumber"]))
    assert letter.record["dynamodb"]["NewImage"] == records[1]["dynamodb"]["NewImage"]
    assert "'a'" in letter.error


@pytest.mark.parametrize("deletes", ["soft", "ignore"])
def test_kept_rows_keep_their_added_columns(build: Callable[..., Pipeline], deletes: str) -> None:
    # GIVEN soft or ignored deletes; WHEN an item with an added column is deleted (and a redelivery comes)
    pipeline = build(deletes=deletes)
    records = [STREAM.insert({KEY: "u1", "a": "x"}), STREAM.remove({KEY: "u1"})]
    for batch in ([records[0]], records, records):
        assert pipeline.process(event(batch)).failure is None
    # THEN the row stays with its value
    assert table_rows(pipeline) == [{KEY: "u1", "a": "x"}]


def test_dead_letter_on_a_listed_route_needs_no_record_of_added_columns(make_pipeline: Callable[..., Pipeline],
                                                                        pg: Any) -> None:
    # GIVEN a route without auto, on a sink set up before issue 15 (no auto_columns table)
    config = tables({"employees": route(f"{pg.schema}.Employees", sink="target", on_error="fail",
                                        on_new_attribute="dead_letter")}, {"target": postgres(pg.state_schema)})
    pipeline = make_pipeline(pg, config)
    pg.conn.execute(f'DROP TABLE "{pg.state_schema}"."auto_columns"')
    stream = Stream("Employees")
    # WHEN a record brings an attribute no column reads; THEN it is dead-lettered, the others written
    result = pipeline.process(event([stream.insert({"Id": 1, "empName": "A"}),
                                     stream.insert({"Id": 2, "empName": "B", "badge": "x"})]))
    assert result.failure is None and result.stats["employees"].dead_lettered == 1
    assert [r["Id"] for r in pg.rows("Employees")] == [1]


@mock_aws()
def test_verify_expects_items_set_aside_for_a_new_attribute(make_pipeline: Callable[..., Pipeline], pg: Any) -> None:
    # GIVEN items, one with an attribute no column reads, replicated by a route that dead-letters those
    dynamodb = boto3.client("dynamodb")
    dynamodb.create_table(TableName="Employees", BillingMode="PAY_PER_REQUEST",
                          AttributeDefinitions=[{"AttributeName": "Id", "AttributeType": "N"}],
                          KeySchema=[{"AttributeName": "Id", "KeyType": "HASH"}])
    items = [{"Id": 1, "empName": "A"}, {"Id": 2, "empName": "B", "badge": "x"}]
    for item in items:
        dynamodb.put_item(TableName="Employees", Item=wire(item))
    config = tables({"employees": route(f"{pg.schema}.Employees", sink="target", on_error="fail",
                                        on_new_attribute="dead_letter")}, {"target": postgres(pg.state_schema)})
    pipeline = make_pipeline(pg, config)
    stream = Stream("Employees")
    assert pipeline.process(event([stream.insert(item) for item in items])).failure is None
    route_ = pipeline.config.routes["employees"]
    comparison = PostgresComparison(pipeline.sinks["target"], route_)  # type: ignore[arg-type]
    try:
        report = verify_all(Verifier(route_, comparison, ["Id"]), ScanSource(dynamodb, "Employees", 1), 1)
    finally:
        comparison.close()
    # THEN verify counts it refused, and expects it absent: no drift although on_error is fail
    assert (report.refused, report.set_aside, report.drift) == (1, 1, False)


def test_an_attribute_name_of_several_kilobytes(build: Callable[..., Pipeline]) -> None:
    # DynamoDB allows names up to 64 KB; the record keys on the column, whose name is cut to fit
    huge = "h" + "".join(hashlib.sha256(str(i).encode()).hexdigest() for i in range(250))  # 16 KB, incompressible
    pipeline = build()
    assert pipeline.process(event([STREAM.insert({KEY: "u1", huge: "v"})])).failure is None
    [added] = pipeline.sinks["target"].added_columns(pipeline.config.routes["sessions"])
    assert added.attribute == huge and added.name.startswith(huge[:20]) and len(added.name) < 128
    assert table_rows(pipeline) == [{KEY: "u1", huge: "v"}]


def test_a_listed_column_missing_from_the_target_fails_with_the_schema_hint(build: Callable[..., Pipeline]) -> None:
    # GIVEN an auto route beside a listed column, whose target lost that column (dropped by hand)
    pipeline = build(columns={KEY: {"from": KEY}, "name": {"from": "fullName"}}, auto=True)
    assert pipeline.process(event([STREAM.insert({KEY: "u1", "fullName": "Ana"})])).failure is None
    with psycopg.connect(sink_url(pipeline), autocommit=True) as conn:
        conn.execute(f'ALTER TABLE "{pipeline.config.routes["sessions"].schema}"."sessions" DROP COLUMN "name"')
    # WHEN a record writes it again
    failure = pipeline.process(event([STREAM.modify({KEY: "u1", "fullName": "Bo"})])).failure
    # THEN the batch fails, after its re-reads of the added columns, with what to do
    assert failure is not None and failure.index == 0
    assert "run cdc-router schema --check, then schema --apply" in failure.reason
