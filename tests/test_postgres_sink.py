"""The Postgres sink against a real server: DDL, every column type, connections, secrets."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest
from factories import Stream, event
from moto import mock_aws
from psycopg import sql

from operations.assemble import load_config, pipeline_for

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def fresh_database(database_url: str) -> Iterator[str]:
    """A new empty database, dropped afterwards: for DDL that names fixed schemas."""
    name = f"cdc_fresh_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    info = psycopg.conninfo.conninfo_to_dict(database_url)
    try:
        yield psycopg.conninfo.make_conninfo(**{**info, "dbname": name})
    finally:
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def test_every_shipped_route_loads_and_its_ddl_applies(fresh_database: str, monkeypatch: Any) -> None:
    # GIVEN the shipped config's secret in (moto's) Secrets Manager, naming the fresh database
    info = psycopg.conninfo.conninfo_to_dict(fresh_database)
    secret = {"host": info.get("host", "127.0.0.1"), "port": int(info.get("port", 5432)),
              "username": info.get("user", "postgres"), "password": info.get("password", ""),
              "dbname": info.get("dbname")}
    monkeypatch.delenv("DB_SECRET", raising=False)
    with mock_aws():
        boto3.client("secretsmanager").create_secret(Name="cdc-router/aurora", SecretString=json.dumps(secret))
        pipeline = pipeline_for(load_config(ROOT / "config" / "tables.yaml"))
        _apply_ddl_twice(pipeline, fresh_database)


def _apply_ddl_twice(pipeline: Any, fresh_database: str) -> None:
    try:
        for sink in pipeline.sinks.values():
            sink.apply_ddl()
            sink.apply_ddl()  # idempotent
        with psycopg.connect(fresh_database) as conn:
            tables = {tuple(r) for r in conn.execute(
                "SELECT table_schema, table_name FROM information_schema.tables "
                "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')")}
        assert {("public", "Employees"), ("sales", "orders"), ("cdc_router", "tombstones"),
                ("cdc_router", "dead_letters")} <= tables
    finally:
        pipeline.close()


ORDERS = """
version: 1
sinks:
  aurora: {{type: postgres, dsn: "${{DATABASE_URL}}", state_schema: {state}}}
routes:
  orders:
    source: Orders
    sink: aurora
    table: {schema}.orders
    key: [order_id]
    columns:
      order_id:      {{from: orderId, type: uuid}}
      customer_id:   {{from: customer.id, type: bigint}}
      customer_name: {{from: customer.name, type: varchar(100), fallback: NA}}
      city:          {{from: customer.address.city, type: text}}
      status:        {{type: varchar(20), default: pending}}
      total:         {{type: "numeric(12,2)"}}
      items:         {{type: jsonb}}
      tags:          {{type: "text[]"}}
      scores:        {{type: "numeric[]"}}
      photo:         {{type: bytea}}
      paid:          {{type: boolean}}
      created_at:    {{from: createdAt, type: timestamptz}}
      updated_at:    {{from: updatedAt, type: timestamptz}}
      due:           {{type: date}}
    extras: attributes
    deletes: soft
    on_error: dead_letter
"""


def test_every_column_type_round_trips_exactly(pg: Any, make_pipeline: Any) -> None:
    pipeline = make_pipeline(pg, template=ORDERS)
    order_id = uuid.uuid4()
    item = {
        "orderId": str(order_id),
        "customer": {"id": 42, "name": "Zoë O'Brien; DROP TABLE x", "address": {"city": "Köln"}},
        "total": Decimal("1234.50"),
        "items": [{"sku": "A-1", "qty": 2, "price": Decimal("12345678901234567890.123456789")}],
        "tags": {"gift", "express"},
        "scores": {Decimal("1.5"), Decimal("-2")},
        "photo": b"\x00\x01\xffbinary",
        "paid": True,
        "createdAt": "2024-05-01T12:30:00+02:00",
        "updatedAt": 1714559400123,
        "due": "2024-06-01",
        "note": "unmapped",
        "rating": Decimal("4.75"),
    }
    stream = Stream("Orders", key=("orderId",))
    assert pipeline.process(event([stream.insert(item)])).response == {"batchItemFailures": []}
    (row,) = pg.rows("orders")
    assert row == {
        "order_id": order_id, "customer_id": 42, "customer_name": "Zoë O'Brien; DROP TABLE x", "city": "Köln",
        "status": "pending", "total": Decimal("1234.50"),
        "items": [{"sku": "A-1", "qty": 2, "price": Decimal("12345678901234567890.123456789")}],
        "tags": ["express", "gift"], "scores": [Decimal("-2"), Decimal("1.5")], "photo": b"\x00\x01\xffbinary",
        "paid": True,
        "created_at": dt.datetime(2024, 5, 1, 10, 30, tzinfo=dt.UTC),
        "updated_at": dt.datetime(2024, 5, 1, 10, 30, 0, 123000, tzinfo=dt.UTC),
        "due": dt.date(2024, 6, 1),
        "attributes": {"note": "unmapped", "rating": Decimal("4.75")},
    }


def test_identifiers_with_quotes_semicolons_and_spaces_are_quoted(pg: Any, make_pipeline: Any) -> None:
    template = """
    version: 1
    sinks:
      aurora: {{type: postgres, dsn: "${{DATABASE_URL}}", state_schema: {state}}}
    routes:
      odd:
        source: Odd
        sink: aurora
        table: {schema}.Odd "table"; DROP TABLE x; --
        key: [the "key"]
        columns:
          the "key": {{from: Id, type: bigint}}
          semi;colon: {{from: v, type: text}}
    """
    pipeline = make_pipeline(pg, template=template)
    assert pipeline.process(event([Stream("Odd").insert({"Id": 1, "v": "ok"})])).response == {"batchItemFailures": []}
    assert pg.rows('Odd "table"; DROP TABLE x; --') == [{'the "key"': 1, "semi;colon": "ok"}]


def test_reconnects_after_the_connection_is_killed_between_invocations(pg: Any, make_pipeline: Any) -> None:
    pipeline = make_pipeline(pg)
    sink = pipeline.sinks["aurora"]
    stream = Stream("Employees")
    pipeline.process(event([stream.insert({"Id": 1, "empName": "a", "empDepartment": "b"})]))
    old_pid = sink.connection().info.backend_pid
    pg.conn.execute("SELECT pg_terminate_backend(%s)", (old_pid,))
    result = pipeline.process(event([stream.insert({"Id": 2, "empName": "a", "empDepartment": "b"})]))
    assert result.response == {"batchItemFailures": []}
    assert sink.connection().info.backend_pid != old_pid
    assert [r["Id"] for r in pg.rows("Employees", order_by="Id")] == [1, 2]


def test_connection_errors_never_show_the_password(pg: Any, make_pipeline: Any, caplog: Any, capsys: Any) -> None:
    pipeline = make_pipeline(pg)
    sink = pipeline.sinks["aurora"]
    sink.close()
    sink.config.options["dsn"] = "postgresql://cdc:hunter2-secret@127.0.0.1:1/db"
    result = pipeline.process(event([Stream("Employees").insert({"Id": 1, "empName": "a", "empDepartment": "b"})]))
    assert result.failure is not None and "Connection refused" in result.failure.reason
    output = capsys.readouterr()
    for text in (result.failure.reason, output.out, output.err, caplog.text):
        assert "hunter2-secret" not in text


def test_tombstones_older_than_the_retention_are_purged(pg: Any, make_pipeline: Any) -> None:
    pipeline = make_pipeline(pg)
    stream = Stream("Employees")
    pipeline.process(event([stream.insert({"Id": i, "empName": "a", "empDepartment": "b"}) for i in (1, 2)]))
    pipeline.process(event([stream.remove({"Id": 1}), stream.remove({"Id": 2})]))
    pg.conn.execute(sql.SQL("UPDATE {} SET deleted_at = now() - interval '49 hours' WHERE key = '[\"1\"]'").format(
        sql.Identifier(pg.state_schema, "tombstones")))
    sink = pipeline.sinks["aurora"]
    sink._last_purge = None  # the next batch is the container's first purge opportunity
    pipeline.process(event([stream.insert({"Id": 3, "empName": "a", "empDepartment": "b"})]))
    assert [t["key"] for t in pg.state("tombstones")] == ['["2"]']  # sinks.sql.rows.tombstone_key


def test_batch_statements_are_planned_for_the_tables_current_size(pg: Any, make_pipeline: Any) -> None:
    # A generic plan cached while a table was empty joins it by sequential scan long after it has
    # grown (measured: 15 ms -> 900 ms per batch of 1,000 within a minute); see connection.py.
    sink = make_pipeline(pg).sinks["aurora"]
    assert sink.connection().execute("SHOW plan_cache_mode").fetchone() == ("force_custom_plan",)
