"""The Redshift sink's own cases, its statements executed on the test PostgreSQL: values as
literals, Redshift's DDL, the Data API's statement limits, and one source feeding both sinks."""

from __future__ import annotations

import datetime as dt
import importlib
import sys
import time
import uuid
from decimal import Decimal
from typing import Any

import psycopg
from factories import Stream, event
from psycopg import sql
from redshift_on_postgres import BOTH_SINKS, EMPLOYEES_ROUTE, on_postgres
from test_deadline import LambdaContext

from operations.assemble import build_sinks, load_config
from operations.dryrun import dry_run_pipeline

WAREHOUSE = BOTH_SINKS + """  values:
    source: Values
    sink: warehouse
    table: {wschema}.values
    key: [id]
    columns:
      id:     {{type: bigint}}
      text:   {{type: text}}
      short:  {{type: varchar(6)}}
      amount: {{type: numeric}}                # DECIMAL(38,9) on Redshift
      price:  {{type: "numeric(38,2)"}}
      ratio:  {{type: double precision}}
      flag:   {{type: boolean}}
      day:    {{type: date}}
      at:     {{type: timestamptz}}
      uid:    {{type: uuid}}
      doc:    {{type: jsonb}}                  # SUPER
      tags:   {{type: "text[]"}}               # a string set into a SUPER array
      sizes:  {{type: "numeric[]"}}
      blob:   {{type: bytea}}                  # VARBYTE
    extras: more
    deletes: hard
    on_error: {on_error}
"""
TRICKY = "it's a \\ back'slash \\\\ '' \"dq\" \\n é 😀 \t end"
ITEM = {
    "id": 9223372036854775807, "text": TRICKY, "short": "naïve✓",
    "amount": Decimal("12345678901234567890123456789.123456789"),
    "price": Decimal("-999999999999999999999999999999999999.99"), "ratio": Decimal("-1.5E-120"), "flag": True,
    "day": "2024-02-29", "at": "2024-01-01T12:00:00+02:00", "uid": "6f1c0a52-9b8e-4c8e-8f3e-0d2b8d1a7c11",
    "doc": {"q": TRICKY, "n": Decimal("1234567890.123456789012345678"), "list": [1, {"a": None}]},
    "tags": {"b", "a'\\"}, "sizes": {Decimal("1.5"), Decimal("10")}, "blob": b"\x00\xff'\\", "other": "kept",
}


def _values(warehouse_pg: Any) -> list[tuple[Any, ...]]:
    """The table with SUPER values as JSON text, to see every digit the literal carried."""
    query = sql.SQL("SELECT id, text, short, amount, price, ratio, flag, day, at, uid, doc::text, tags::text, "
                    "sizes::text, blob, more::text FROM {} ORDER BY id").format(
        sql.Identifier(warehouse_pg.schema, "values"))
    with psycopg.connect(warehouse_pg.url) as conn:
        return conn.execute(query).fetchall()


def test_values_arrive_exact_through_literals(pg: Any, warehouse_pg: Any, make_both_pipeline: Any) -> None:
    pipeline = make_both_pipeline(pg, WAREHOUSE)
    s = Stream("Values", key=["id"])
    response = pipeline.process(event([s.insert(ITEM), s.insert({"id": 1, "text": "", "doc": None}),
                                       s.insert({"id": 2, "amount": Decimal("-0.000000001")})]))
    assert response.response == {"batchItemFailures": []}
    assert _values(warehouse_pg) == [
        # absent attributes and NULL are NULL; the empty string stays an empty string
        (1, "", None, None, None, None, None, None, None, None, None, None, None, None, "{}"),
        (2, None, None, Decimal("-0.000000001"), None, None, None, None, None, None, None, None, None, None, "{}"),
        (9223372036854775807, TRICKY, "naïve✓", Decimal("12345678901234567890123456789.123456789"),
         Decimal("-999999999999999999999999999999999999.99"), -1.5e-120, True, dt.date(2024, 2, 29),
         dt.datetime(2024, 1, 1, 10, tzinfo=dt.UTC), "6f1c0a52-9b8e-4c8e-8f3e-0d2b8d1a7c11",
         '{"n": 1234567890.123456789012345678, "q": "it\'s a \\\\ back\'slash \\\\\\\\ \'\' \\"dq\\" \\\\n é 😀 \\t end", '
         '"list": [1, {"a": null}]}',
         '["a\'\\\\", "b"]', "[1.500000000, 10.000000000]", b"\x00\xff'\\", '{"other": "kept"}'),
    ]


def test_a_value_that_does_not_fit_redshift_falls_back_or_is_dead_lettered(
        pg: Any, warehouse_pg: Any, make_both_pipeline: Any) -> None:
    pipeline = make_both_pipeline(pg, WAREHOUSE, on_error="dead_letter")
    s = Stream("Values", key=["id"])
    # GIVEN a number with ten decimals for DECIMAL(38,9), and 25 characters for varchar(6)
    records = [s.insert({"id": 1, "amount": Decimal("1.0123456789")}), s.insert({"id": 2, "short": "x" * 25}),
               s.insert({"id": 3, "amount": Decimal("7")})]
    assert pipeline.process(event(records)).response == {"batchItemFailures": []}
    # THEN neither is rounded or cut: both are dead-lettered, the rest is applied
    assert [row[0] for row in _values(warehouse_pg)] == [3]
    errors = [d["error"] for d in warehouse_pg.state("dead_letters")]
    assert sorted(errors) == sorted([
        "column 'amount' (from 'amount'): Decimal('1.0123456789') does not fit "
        "numeric(38,9): more than 9 decimal places",
        "column 'short' (from 'short'): 'xxxxxxxxxxxxxxxxxxxxxxxxx' does not fit varchar(6): 25 characters, "
        "at most 6 allowed"])


def test_route_ddl_distributes_and_sorts_on_the_key(write_config: Any, pg: Any, warehouse_pg: Any) -> None:
    path = write_config(WAREHOUSE.replace("distribution: auto", "distribution: key"), pg,
                        wschema="sales", wstate="cdc", on_error="fail")  # DDL as text only: nothing is run
    config = load_config(path)
    sink = build_sinks(config)["warehouse"]
    assert sink.ddl(config.routes["values"]) == ['CREATE SCHEMA IF NOT EXISTS "sales"', """\
CREATE TABLE IF NOT EXISTS "sales"."values" (
    "id" BIGINT NOT NULL,
    "text" VARCHAR(65535),
    "short" VARCHAR(24),
    "amount" DECIMAL(38,9),
    "price" DECIMAL(38,2),
    "ratio" DOUBLE PRECISION,
    "flag" BOOLEAN,
    "day" DATE,
    "at" TIMESTAMPTZ,
    "uid" VARCHAR(36),
    "doc" SUPER,
    "tags" SUPER,
    "sizes" SUPER,
    "blob" VARBYTE,
    "more" SUPER,
    "_cdc_version" DECIMAL(38,0) NOT NULL,
    PRIMARY KEY ("id")
) DISTKEY ("id") SORTKEY ("id")"""]
    assert sink.state_ddl()[1].endswith(') DISTKEY ("key") SORTKEY ("target", "key")')


DOCS = BOTH_SINKS + """  docs:
    source: Docs
    sink: warehouse
    table: {wschema}.docs
    key: [id]
    columns:
      id:    {{type: integer}}
      body:  {{type: text}}
      more:  {{type: text}}
    deletes: hard
    on_error: {on_error}
"""


def test_a_batch_over_the_data_api_limits_is_split_and_converges(
        pg: Any, warehouse_pg: Any, make_both_pipeline: Any) -> None:
    pipeline = make_both_pipeline(pg, DOCS)
    transport = pipeline.sinks["warehouse"].transport
    s = Stream("Docs", key=["id"])
    # GIVEN 50 rows of 60,000 characters: one row per 100 KB statement, 50 statements, over 40 per call
    records = [s.insert({"id": i, "body": f"{i}'\\" + "x" * 60_000}) for i in range(50)]
    sent = len(transport.calls)
    result = pipeline.process(event(records))
    assert result.response == {"batchItemFailures": []} and result.stats["docs"].upserted == 50
    assert len(transport.calls) - sent == 2 and all(len(call) <= 40 for call in transport.calls)
    assert all(len(statement.encode()) <= 100_000 for call in transport.calls for statement in call)
    # WHEN the same batch is redelivered THEN everything is stale, and the table is whole
    assert pipeline.process(event(records)).stats["docs"].stale == 50
    assert [(r["id"], r["body"]) for r in warehouse_pg.rows("docs", order_by="id")] == [
        (i, f"{i}'\\" + "x" * 60_000) for i in range(50)]


def test_a_row_over_the_statement_limit_is_dead_lettered(pg: Any, warehouse_pg: Any, make_both_pipeline: Any) -> None:
    pipeline = make_both_pipeline(pg, DOCS, on_error="dead_letter")
    s = Stream("Docs", key=["id"])
    records = [s.insert({"id": 1, "body": "a"}), s.insert({"id": 2, "body": "x" * 60_000, "more": "y" * 60_000}),
               s.insert({"id": 3, "body": "c"})]
    assert pipeline.process(event(records)).response == {"batchItemFailures": []}
    assert [r["id"] for r in warehouse_pg.rows("docs", order_by="id")] == [1, 3]
    [letter] = warehouse_pg.state("dead_letters")
    assert "over the Data API's 100000-byte statement limit" in letter["error"]
    # the record (122 KB) is larger than JSON_PARSE takes: what identifies it is kept
    assert letter["record"]["dynamodb"] == {"Keys": {"id": {"N": "2"}}, "SequenceNumber": str(10**20 + 100)}


def test_a_row_over_the_statement_limit_stops_the_batch(pg: Any, warehouse_pg: Any, make_both_pipeline: Any) -> None:
    pipeline = make_both_pipeline(pg, DOCS, on_error="fail")
    s = Stream("Docs", key=["id"])
    records = [s.insert({"id": 1, "body": "a"}), s.insert({"id": 2, "body": "x" * 60_000, "more": "y" * 60_000}),
               s.insert({"id": 3, "body": "c"})]
    assert pipeline.process(event(records)).response == {"batchItemFailures": [{"itemIdentifier": str(10**20 + 100)}]}
    assert [r["id"] for r in warehouse_pg.rows("docs")] == [1]


def test_a_version_over_38_digits_is_refused(pg: Any, warehouse_pg: Any, make_both_pipeline: Any) -> None:
    pipeline = make_both_pipeline(pg, DOCS, on_error="dead_letter")
    s = Stream("Docs", key=["id"])
    assert pipeline.process(event([s.insert({"id": 1}, sequence=10**38)])).response == {"batchItemFailures": []}
    [letter] = warehouse_pg.state("dead_letters")
    assert letter["sequence_number"] is None  # it does not fit the dead-letter table either
    assert f"version {10**38} has more than 38 digits: it does not fit Redshift's DECIMAL(38,0)" in letter["error"]


BOTH_FROM_ONE_SOURCE = BOTH_SINKS + EMPLOYEES_ROUTE + EMPLOYEES_ROUTE.replace(
    "  employees:", "  employees_warehouse:").replace("sink: aurora", "sink: warehouse").replace(
    "{schema}.Employees", "{wschema}.Employees")


def test_one_source_feeds_both_sinks(pg: Any, warehouse_pg: Any, make_both_pipeline: Any) -> None:
    pipeline = make_both_pipeline(pg, BOTH_FROM_ONE_SOURCE)
    s = Stream("Employees")
    records = [s.insert({"Id": 2001, "empName": "Akua", "empDepartment": "AnyDept"}),
               s.modify({"Id": 2001, "empName": "Akua", "empDepartment": "ExDept"}),
               s.insert({"Id": 2002, "empName": "Bo"}), s.remove({"Id": 2002})]
    result = pipeline.process(event(records))
    assert result.response == {"batchItemFailures": []}
    assert pg.rows("Employees") == [{"Id": 2001, "Name": "Akua", "Department": "ExDept"}]
    # the same row; Redshift folds the identifiers to lower case
    assert warehouse_pg.rows("employees") == [{"id": 2001, "name": "Akua", "department": "ExDept"}]
    assert vars(result.stats["employees"]) == vars(result.stats["employees_warehouse"])


def test_the_handler_gives_the_sink_its_deadline(pg: Any, warehouse_pg: Any, write_config: Any,
                                                 monkeypatch: Any, redshift_shims: str) -> None:
    path = write_config(DOCS, pg, wschema=warehouse_pg.schema, wstate=warehouse_pg.state_schema, on_error="fail")
    monkeypatch.setenv("CDC_ROUTER_CONFIG", str(path))
    name = "handlers.lambda_handler"
    module = importlib.reload(sys.modules[name]) if name in sys.modules else importlib.import_module(name)
    on_postgres(module.pipeline, redshift_shims)
    transport = module.pipeline.sinks["warehouse"].transport
    # WHEN Lambda says 20 s remain THEN the transport is told the moment they end
    before = time.monotonic()
    assert module.handler(event([Stream("Docs", key=["id"]).insert({"id": 1})]), LambdaContext(20_000)) == {
        "batchItemFailures": []}
    assert before + 20 <= transport.deadlines[-1] <= time.monotonic() + 20
    module.pipeline.close()


def test_one_batch_is_one_call(pg: Any, warehouse_pg: Any, make_both_pipeline: Any) -> None:
    pipeline = make_both_pipeline(pg, WAREHOUSE, on_error="dead_letter")
    transport = pipeline.sinks["warehouse"].transport
    s = Stream("Values", key=["id"])
    sent = len(transport.calls)
    pipeline.process(event([s.insert({"id": 1}), s.insert({"id": "x"}), s.remove({"id": 1}), s.insert({"id": 2})]))
    # THEN the changes, the dead letter and the container's first tombstone purge are one transaction
    [call] = transport.calls[sent:]
    table, state = f'"{warehouse_pg.schema}"."values"', f'"{warehouse_pg.state_schema}"'
    assert [statement.split(" (")[0].split(" WHERE")[0] for statement in call] == [
        f'LOCK {state}."dead_letters", {state}."tombstones", {table}',  # what it writes, first, in one order
        'CREATE TEMP TABLE "_cdc_stage_0"',
        'INSERT INTO "_cdc_stage_0" VALUES',
        f'DELETE FROM "_cdc_stage_0" USING {table}',                      # guard: rows as new or newer
        f'DELETE FROM "_cdc_stage_0" USING {state}."tombstones"',         # guard: tombstones as new or newer
        f'DELETE FROM {table} USING "_cdc_stage_0"',                      # hard deletes
        f'DELETE FROM {table} USING "_cdc_stage_0"',                      # rows the upserts replace
        f'INSERT INTO {table}',
        f'DELETE FROM {state}."tombstones" USING "_cdc_stage_0"',         # tombstones the deletes replace
        f'INSERT INTO {state}."tombstones"',
        'CREATE TEMP TABLE "_cdc_dead_letters_1"',
        'INSERT INTO "_cdc_dead_letters_1" VALUES',
        f'DELETE FROM "_cdc_dead_letters_1" USING {state}."dead_letters"',  # letters stored before
        f'INSERT INTO {state}."dead_letters"',
        f'DELETE FROM {state}."tombstones"',                              # purge
    ]


def test_a_time_key_written_in_another_zone_is_still_tombstoned(
        pg: Any, warehouse_pg: Any, make_both_pipeline: Any) -> None:
    pipeline = make_both_pipeline(pg, WAREHOUSE.replace("key: [id]", "key: [uid, at]"))
    s = Stream("Values", key=["uid", "at"])
    key = {"uid": str(uuid.UUID(int=7)), "at": "2024-01-01T02:00:00+02:00"}
    same_instant = {"uid": str(uuid.UUID(int=7)), "at": "2024-01-01T00:00:00Z"}
    records = [s.insert({**key, "id": 1}), s.remove(key)]
    pipeline.process(event(records))
    # a replay of the insert, its time written in another zone, is still the tombstoned key
    stale = Stream("Values", key=["uid", "at"]).insert({**same_instant, "id": 1}, sequence=10**20)
    assert pipeline.process(event([stale])).stats["values"].stale == 1
    assert warehouse_pg.rows("values") == []


def test_a_dry_run_shows_the_statements_apply_sends(pg: Any, make_both_pipeline: Any) -> None:
    now = dt.datetime(2024, 1, 2, tzinfo=dt.UTC)
    pipeline = make_both_pipeline(pg, DOCS, on_error="dead_letter")
    dry = dry_run_pipeline(pipeline.config)  # its Redshift sink has the Data API transport: it must send nothing
    pipeline.sinks["warehouse"].now = dry.sinks["warehouse"].real.now = lambda: now
    s = Stream("Docs", key=["id"])
    records = [s.insert({"id": 1, "body": "it's"}), s.insert({"id": "x"}), s.remove({"id": 2})]
    dry.process(event(records))
    pipeline.process(event(records))
    explained = dry.sinks["warehouse"].statements
    assert explained[0].startswith("-- warehouse: BatchExecuteStatement 1 of 1 (one transaction)\n")
    assert [statement.split("\n", 1)[-1] for statement in explained] == pipeline.sinks["warehouse"].transport.calls[-1]


def test_many_dead_letters_stay_within_forty_statements_per_call(
        pg: Any, warehouse_pg: Any, make_both_pipeline: Any) -> None:
    pipeline = make_both_pipeline(pg, DOCS, on_error="dead_letter")
    transport = pipeline.sinks["warehouse"].transport
    s = Stream("Docs", key=["id"])
    # GIVEN 1,000 records of 6 KB whose key cannot be cast: 70 statements of dead-letter rows
    records = [s.insert({"id": f"x{i}", "body": "b" * 6000}) for i in range(1000)]
    sent = len(transport.calls)
    assert pipeline.process(event(records)).response == {"batchItemFailures": []}
    # THEN they are spread over calls of at most 40 statements (the Data API refuses more), each letter once
    calls = transport.calls[sent:]
    assert len(calls) > 1 and all(len(call) <= 40 for call in calls)
    assert len(warehouse_pg.state("dead_letters")) == 1000


def test_a_binary_value_over_one_from_hex_literal_arrives_whole(
        pg: Any, warehouse_pg: Any, make_both_pipeline: Any) -> None:
    pipeline = make_both_pipeline(pg, WAREHOUSE)
    s = Stream("Values", key=["id"])
    # GIVEN 40,000 bytes: 80,000 hex digits, over the 65,535 characters of FROM_HEX's VARCHAR argument
    blob = bytes(range(256)) * 156 + b"\x00\xff" * 32
    assert pipeline.process(event([s.insert({"id": 1, "blob": blob})])).response == {"batchItemFailures": []}
    assert _values(warehouse_pg)[0][13] == blob


def test_keys_that_differ_by_trailing_spaces_are_different_rows(
        pg: Any, warehouse_pg: Any, make_both_pipeline: Any) -> None:
    pipeline = make_both_pipeline(pg, DOCS.replace("key: [id]", "key: [body]"))  # a VARCHAR(65535) key
    s = Stream("Docs", key=["body"])
    # GIVEN "a" and "a ": one value to Redshift's VARCHAR comparison, two items to DynamoDB
    for record in (s.insert({"body": "a", "id": 1}), s.insert({"body": "a ", "id": 2}),
                   s.modify({"body": "a ", "id": 3})):
        assert pipeline.process(event([record])).stats["docs"].upserted == 1  # never stale against the other
    assert sorted((r["body"], r["id"]) for r in warehouse_pg.rows("docs")) == [("a", 1), ("a ", 3)]
    # WHEN "a " is deleted THEN "a" stays, and a replay of "a " is kept out by its own tombstone only
    pipeline.process(event([s.remove({"body": "a "})]))
    pipeline.process(event([Stream("Docs", key=["body"]).insert({"body": "a ", "id": 2}, sequence=10**20)]))
    assert [(r["body"], r["id"]) for r in warehouse_pg.rows("docs")] == [("a", 1)]


def refused_third(pg: Any, warehouse_pg: Any, make_both_pipeline: Any, on_error: str) -> tuple[Any, list[Any]]:
    """Six records, the third of which the database refuses: a constraint the casts know nothing of."""
    pipeline = make_both_pipeline(pg, DOCS, on_error=on_error)
    warehouse_pg.conn.execute(sql.SQL("ALTER TABLE {} ADD CONSTRAINT refused CHECK (body <> 'refused')").format(
        sql.Identifier(warehouse_pg.schema, "docs")))
    s = Stream("Docs", key=["id"])
    records = [s.insert({"id": i, "body": "refused" if i == 3 else f"body {i}"}) for i in range(1, 7)]
    return pipeline.process(event(records)), records


def test_a_refused_change_is_dead_lettered_alone(pg: Any, warehouse_pg: Any, make_both_pipeline: Any) -> None:
    # WHEN Redshift refuses one statement of the batch THEN the change that caused it is found and set aside
    result, records = refused_third(pg, warehouse_pg, make_both_pipeline, "dead_letter")
    assert result.response == {"batchItemFailures": []}
    assert [r["id"] for r in warehouse_pg.rows("docs", order_by="id")] == [1, 2, 4, 5, 6]
    [letter] = warehouse_pg.state("dead_letters")
    assert letter["sequence_number"] == int(records[2]["dynamodb"]["SequenceNumber"])
    assert "rejected by the database" in letter["error"] and 'violates check constraint "refused"' in letter["error"]
    assert (result.stats["docs"].upserted, result.stats["docs"].dead_lettered) == (5, 1)


def test_a_refused_change_stops_the_batch_there(pg: Any, warehouse_pg: Any, make_both_pipeline: Any) -> None:
    result, records = refused_third(pg, warehouse_pg, make_both_pipeline, "fail")
    # THEN what is before it is committed, and Lambda retries from it
    assert result.response == {"batchItemFailures": [{"itemIdentifier": records[2]["dynamodb"]["SequenceNumber"]}]}
    assert [r["id"] for r in warehouse_pg.rows("docs", order_by="id")] == [1, 2]
    assert result.failure is not None and result.failure.transient is False
