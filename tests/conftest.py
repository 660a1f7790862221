"""Shared fixtures. PostgreSQL is found the way the demo finds one (``postgres_session``):
without one, the run stops before the first test with one paragraph saying how to provide one."""

from __future__ import annotations

import contextlib
import functools
import importlib
import json
import logging
import os
import sys
import textwrap
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import set_json_loads

# moto: fake credentials, one region, and no account-id endpoints (moto does not serve them).
for _name, _value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                      "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                      "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled", "POWERTOOLS_LOG_LEVEL": "WARNING"}.items():
    os.environ.setdefault(_name, _value)

from factories import as_yaml  # noqa: E402

from operations.assemble import load_config, pipeline_for  # noqa: E402
from router.model import Config  # noqa: E402
from router.pipeline import Pipeline  # noqa: E402

pytest_plugins = [
    "postgres_session",  # the database_url fixture: the PostgreSQL found the way the demo finds one
    "redshift_on_postgres",  # fixtures that run the Redshift sink's statements on Postgres
    "sink_targets",  # ``target``: every sink under test, for the convergence scenarios
]


class PgTarget:
    """A test's own schemas in the test database, and an autocommit connection to look at them."""

    def __init__(self, url: str):
        self.url = url
        suffix = uuid.uuid4().hex[:10]
        self.schema, self.state_schema = f"t_{suffix}", f"s_{suffix}"
        self.conn = psycopg.connect(url, autocommit=True, row_factory=dict_row)
        # read json/jsonb numbers exactly, as they are stored
        set_json_loads(functools.partial(json.loads, parse_float=Decimal), self.conn)

    def rows(self, table: str, order_by: str | None = None, bookkeeping: bool = False) -> list[dict[str, Any]]:
        """Every row of ``schema.table``, without ``_cdc_*`` columns unless asked."""
        query = sql.SQL("SELECT * FROM {}").format(sql.Identifier(self.schema, table))
        if order_by:
            query += sql.SQL(" ORDER BY {}").format(sql.Identifier(order_by))
        rows = self.conn.execute(query).fetchall()
        return rows if bookkeeping else [{k: v for k, v in r.items() if not k.startswith("_cdc_")} for r in rows]

    def state(self, table: str) -> list[dict[str, Any]]:
        return self.conn.execute(sql.SQL("SELECT * FROM {} ORDER BY 1").format(
            sql.Identifier(self.state_schema, table))).fetchall()

    def drop(self) -> None:
        for schema in (self.schema, self.state_schema):
            self.conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
        self.conn.close()


@contextlib.contextmanager
def pg_target(url: str) -> Iterator[PgTarget]:
    """A ``PgTarget`` whose schemas are dropped afterwards."""
    target = PgTarget(url)
    try:
        yield target
    finally:
        target.drop()


@pytest.fixture
def pg(database_url: str) -> Iterator[PgTarget]:
    with pg_target(database_url) as target:
        yield target


EMPLOYEES = """
version: 1
sinks:
  aurora:
    type: postgres
    dsn: ${{DATABASE_URL}}
    state_schema: {state}
routes:
  employees:
    source: Employees
    sink: aurora
    table: {schema}.Employees
    key: [Id]
    columns:
      Id:         {{from: Id, type: bigint}}
      Name:       {{from: empName, type: varchar(20), fallback: NA}}
      Department: {{from: empDepartment, type: varchar(10), fallback: NA}}
    deletes: {deletes}
    on_error: {on_error}
"""


@pytest.fixture
def write_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str) -> Callable[..., Path]:
    """Write a tables.yaml; return its path. ``template`` is a config built by ``factories.tables``
    (written as it is), or text with ``{schema}``/``{state}`` (``pg``'s) and ``fields`` to fill in."""
    monkeypatch.setenv("DATABASE_URL", database_url)

    def write(template: str | dict[str, Any], pg: PgTarget, **fields: Any) -> Path:
        path = tmp_path / "tables.yaml"
        if isinstance(template, dict):
            path.write_text(as_yaml(template))
        else:
            path.write_text(textwrap.dedent(template).format(schema=pg.schema, state=pg.state_schema, **fields))
        return path

    return write


@pytest.fixture
def make_pipeline(write_config: Callable[..., Path]) -> Iterator[Callable[..., Pipeline]]:
    """Build a pipeline over a real Postgres from a config template; create its tables."""
    built: list[Pipeline] = []

    def make(pg: PgTarget, template: str | dict[str, Any] = EMPLOYEES, deletes: str = "hard", on_error: str = "fail",
             **fields: Any) -> Pipeline:
        config: Config = load_config(write_config(template, pg, deletes=deletes, on_error=on_error, **fields))
        pipeline = pipeline_for(config)
        for sink in pipeline.sinks.values():
            sink.apply_ddl()
        built.append(pipeline)
        return pipeline

    yield make
    for pipeline in built:
        pipeline.close()


@pytest.fixture
def lambda_handler(write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    """Import ``handlers.lambda_handler`` afresh with CDC_ROUTER_CONFIG pointing at a test config."""
    loaded: list[Any] = []

    def load(pg: PgTarget, template: str | dict[str, Any] = EMPLOYEES, **fields: Any) -> Any:
        fields.setdefault("deletes", "hard")
        fields.setdefault("on_error", "fail")
        monkeypatch.setenv("CDC_ROUTER_CONFIG", str(write_config(template, pg, **fields)))
        name = "handlers.lambda_handler"
        module = importlib.reload(sys.modules[name]) if name in sys.modules else importlib.import_module(name)
        for sink in module.pipeline.sinks.values():
            sink.apply_ddl()
        loaded.append(module)
        return module

    yield load
    for module in loaded:
        module.pipeline.close()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A moto server (every AWS service on one endpoint), for commands that take --endpoint-url."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no request lines in the test output
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def endpoint(moto_server: str) -> Iterator[str]:
    """The moto server, emptied after the test."""
    yield moto_server
    urllib.request.urlopen(urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST")).close()
