"""``cdc-router demo``: the reference article's walkthrough on a laptop, with no AWS account.

DynamoDB and its streams run in-process (moto); the config's routes are pointed at the
``cdc_demo`` schema of the demo's PostgreSQL (recreated on every run, so the user's own
tables are never touched); after each DynamoDB change the stream runner reads the
streams and applies them, exactly as ``cdc-router run`` does. moto is a demo and test
dependency, imported only here.
"""

from __future__ import annotations

import dataclasses
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

import psycopg
from boto3.dynamodb.types import TypeSerializer
from psycopg import sql
from psycopg.rows import dict_row

from operations.assemble import pipeline_for
from operations.checkpoints import PostgresCheckpoints
from operations.shard_runner import BatchReport
from operations.stream_runner import StreamRunner
from router.attrs import dumps_exact
from router.model import Config, Route

DEMO_SCHEMA, DEMO_STATE = "cdc_demo", "cdc_demo_state"
REGION = "us-east-1"
_NUMERIC = {"smallint", "integer", "bigint", "numeric", "real", "double precision"}
_serialize = TypeSerializer().serialize


class DemoError(Exception):
    """The config cannot be demonstrated (no Employees route, a key the demo cannot build)."""


@dataclass
class Step:
    title: str
    commands: list[str]                                   # what was done to DynamoDB, as the aws CLI would say it
    reports: list[BatchReport] = field(default_factory=list)
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # target -> rows after the step


def demo_config(config: Config, dsn: str) -> Config:
    """``config`` with every postgres sink on ``dsn`` and every target table in the demo schema."""
    sinks = {name: dataclasses.replace(sink, options={**{k: v for k, v in sink.options.items() if k != "secret"},
                                                      "dsn": dsn, "state_schema": DEMO_STATE})
             for name, sink in config.sinks.items() if sink.type == "postgres"}
    routes = {name: dataclasses.replace(route, schema=DEMO_SCHEMA)
              for name, route in config.routes.items() if route.sink in sinks}
    tables = [route.table for route in routes.values()]
    if len(set(tables)) != len(tables):
        raise DemoError("the demo puts every target table in one schema, and two routes name the same table")
    if "Employees" not in {route.source for route in routes.values()}:
        raise DemoError(f"the demo replays the reference article on the Employees table, and {config.path} "
                        "has no postgres route with source: Employees")
    return dataclasses.replace(config, sinks=sinks, routes=routes)


def key_schema(route: Route) -> dict[str, Any]:
    """The DynamoDB key of a route's source table, from its key columns (hash, then range)."""
    if len(route.key) > 2:
        raise DemoError(f"route {route.name!r}: a DynamoDB key has at most two attributes")
    columns = route.key_columns
    return {
        "KeySchema": [{"AttributeName": c.path[0], "KeyType": kind} for c, kind in zip(columns, ("HASH", "RANGE"))],
        "AttributeDefinitions": [{"AttributeName": c.path[0], "AttributeType": _attribute_type(c.type.base)}
                                 for c in columns],
    }


def create_source_tables(dynamodb: Any, config: Config, stream_view: str = "NEW_IMAGE") -> list[str]:
    """A DynamoDB table with a stream for every routed source (its key from the source's first route)."""
    sources = {r.source: r for r in reversed(list(config.routes.values()))}
    for source, route in sources.items():
        dynamodb.create_table(TableName=source, BillingMode="PAY_PER_REQUEST", **key_schema(route),
                              StreamSpecification={"StreamEnabled": True, "StreamViewType": stream_view})
    return sorted(sources)


def _attribute_type(base: str) -> str:
    return "N" if base in _NUMERIC else "B" if base == "bytea" else "S"


class Demo:
    """Set up on enter, torn down on exit; ``steps`` performs the walkthrough."""

    stream_view: Literal["NEW_IMAGE", "NEW_AND_OLD_IMAGES"] = "NEW_IMAGE"

    def __init__(self, config: Config, dsn: str):
        self.config = demo_config(config, dsn)
        self.dsn = dsn

    @property
    def sources(self) -> list[str]:
        return sorted({route.source for route in self.config.routes.values()})

    def __enter__(self) -> Demo:
        try:
            from moto import mock_aws
        except ImportError:
            raise DemoError("the demo needs moto: pip install 'cdc-router[demo]'") from None

        os.environ.setdefault("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")  # moto serves no account endpoints
        self._mock = mock_aws()
        self._mock.start()
        try:
            self._setup()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _setup(self) -> None:
        import boto3

        self.dynamodb = boto3.client("dynamodb", region_name=REGION)
        self.conn = psycopg.connect(self.dsn, autocommit=True, row_factory=dict_row, application_name="cdc-router-demo")
        self.conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {}, {} CASCADE").format(
            sql.Identifier(DEMO_SCHEMA), sql.Identifier(DEMO_STATE)))
        self.pipeline = pipeline_for(self.config)
        for sink in self.pipeline.sinks.values():
            sink.apply_ddl()
        checkpoints = PostgresCheckpoints(next(iter(self.pipeline.sinks.values())))  # type: ignore[arg-type]
        checkpoints.create()
        create_source_tables(self.dynamodb, self.config, self.stream_view)
        self.runner = StreamRunner(self.pipeline, boto3.client("dynamodbstreams", region_name=REGION),
                                   self.dynamodb, checkpoints, batch_size=100)

    def __exit__(self, *exc_info: Any) -> None:
        for name in ("pipeline", "conn"):
            if hasattr(self, name):
                getattr(self, name).close()
        self._mock.stop()

    def steps(self) -> Iterator[Step]:
        sources = {route.source for route in self.config.routes.values()}
        for title, actions in scenario(sources):
            step = Step(title, [describe for _, describe, _ in actions])
            for _, _, act in actions:
                act(self.dynamodb)
            self.runner.on_batch = step.reports.append
            self.runner.run(until_idle=True)
            touched = {table for table, _, _ in actions}
            for route in self.config.routes.values():
                if route.source in touched:
                    step.tables[route.qualified_table] = self.rows(route)
            if any(stats.deleted for report in step.reports for stats in report.result.stats.values()):
                step.tables[f"{DEMO_STATE}.tombstones"] = self.tombstones()  # what keeps a replay from resurrecting
            yield step

    def tombstones(self) -> list[dict[str, Any]]:
        query = sql.SQL('SELECT "target", "key", "version" FROM {} ORDER BY 1, 2').format(
            sql.Identifier(DEMO_STATE, "tombstones"))
        return self.conn.execute(query).fetchall()

    def rows(self, route: Route) -> list[dict[str, Any]]:
        """The target table without bookkeeping columns, in key order."""
        query = sql.SQL("SELECT * FROM {} ORDER BY {}").format(
            sql.Identifier(route.schema, route.table), sql.SQL(", ").join(map(sql.Identifier, route.key)))
        return [{k: v for k, v in row.items() if not k.startswith("_cdc_")} for row in self.conn.execute(query)]


Action = tuple[str, str, Callable[[Any], Any]]  # source table, what it does (aws CLI words), doing it


def _put(table: str, item: dict[str, Any]) -> Action:
    wire = {name: _serialize(value) for name, value in item.items()}
    shown = {name: sorted(value) if isinstance(value, set) else value for name, value in item.items()}
    return table, f"put-item {table} {dumps_exact(shown)}", lambda db: db.put_item(TableName=table, Item=wire)


def scenario(sources: set[str]) -> list[tuple[str, list[Action]]]:
    key = {"Id": {"N": "2001"}}
    steps = [
        ("1. put-item: a new employee (the article's first step)", [
            _put("Employees", {"Id": 2001, "empName": "Akua", "empDepartment": "AnyDept"})]),
        ("2. update-item: the employee changes department", [
            ("Employees", "update-item Employees Id=2001 SET empDepartment = 'ExDept'",
             lambda db: db.update_item(TableName="Employees", Key=key, UpdateExpression="SET empDepartment = :d",
                                       ExpressionAttributeValues={":d": {"S": "ExDept"}}))]),
        ("3. delete-item: the employee leaves", [
            ("Employees", "delete-item Employees Id=2001", lambda db: db.delete_item(TableName="Employees", Key=key))]),
    ]
    more = [
        _put("Employees", {"Id": 2002, "empName": "Kwame", "empDepartment": "Research"}),
        _put("Employees", {"Id": 2003, "empName": "Adwoa Serwaa Owusu-Ansah", "empDepartment": "Engineering"}),
        _put("Employees", {"Id": 2004, "empName": "Kofi"}),
    ]
    if "Orders" in sources:
        more.append(_put("Orders", {
            "orderId": str(uuid.UUID("6f1c2e3a-0000-4000-8000-000000000042")), "total": Decimal("1249.90"),
            "customer": {"id": 42, "name": "Ama Mensah", "address": {"city": "Kumasi"}},
            "items": [{"sku": "DESK-1", "qty": 1}], "tags": {"office", "priority"},
            "createdAt": "2024-05-01T12:00:00Z", "updatedAt": 1714564800000, "channel": "web"}))
    steps.append(("4. more items: NA where a value is too long or absent" + (", a nested order" if "Orders" in sources
                                                                             else ""), more))
    return steps
