"""``cdc-router demo`` end to end (moto in-process, the test Postgres), and how it finds a Postgres."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from handlers import local_postgres
from handlers.cli import app
from handlers.demo import DEMO_SCHEMA, DEMO_STATE
from handlers.local_postgres import LocalPostgres, NoPostgresError, find_postgres, local_address

BIN = Path(sys.executable).parent
STEPS = [
    # (step title, a line of the target table printed after it)
    ("1. put-item: a new employee (the article's first step)", "│ 2001 │ Akua │ AnyDept    │"),
    ("2. update-item: the employee changes department", "│ 2001 │ Akua │ ExDept     │"),
    ("3. delete-item: the employee leaves", "cdc_demo.Employees: (no rows)"),
    ("4. more items: NA where a value is too long or absent", "│ 2003 │ NA    │ NA         │"),
]


def demo_connections(database_url: str) -> int:
    with psycopg.connect(database_url, autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'cdc-router%%' "
                            "AND datname = current_database()").fetchone()[0]


@pytest.fixture
def demo_url(database_url: str) -> Iterator[str]:
    """The test database, without the demo's schemas afterwards unless they were there before (a user's demo)."""
    schemas = (DEMO_SCHEMA, DEMO_STATE)
    with psycopg.connect(database_url, autocommit=True) as conn:
        there = {row[0] for row in conn.execute("SELECT nspname FROM pg_namespace WHERE nspname = ANY(%s)",
                                                [list(schemas)])}
    yield database_url
    with psycopg.connect(database_url, autocommit=True) as conn:
        for schema in schemas:
            if schema not in there:
                conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def assert_walkthrough(output: str) -> None:
    """Each step, in order, followed by the table as it is after that step."""
    position = 0
    for title, row in STEPS:
        position = output.index(title, position)
        position = output.index(row, position)


def test_demo_through_the_cli_runner(demo_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    database_url = demo_url
    monkeypatch.setenv("DATABASE_URL", database_url)
    before = demo_connections(database_url)

    result = CliRunner().invoke(app, ["demo"])

    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"PostgreSQL: DATABASE_URL ({local_postgres.mask(database_url)})"
    assert lines[1] == ("DynamoDB: in-process moto; tables Employees, Orders with streams; "
                        "target tables in schema cdc_demo")
    assert_walkthrough(result.stdout)
    assert "$ aws dynamodb update-item Employees Id=2001 SET empDepartment = 'ExDept'" in result.stdout
    assert "employees deleted 1" in result.stdout and '"cdc_demo"."Employees" │ ["2001"]' in result.stdout
    assert "│ customer_name │ Ama Mensah" in result.stdout
    assert lines[-1].startswith("done in ") and "nothing left running" in lines[-1]
    # nothing left running: every connection the demo opened is closed again
    assert demo_connections(database_url) == before


def test_demo_as_a_real_process_and_run_twice(demo_url: str) -> None:
    for _ in range(2):  # a second run starts from a clean demo schema: moto's sequence numbers start over
        done = subprocess.run([str(BIN / "cdc-router"), "demo"], capture_output=True, text=True, timeout=120,
                              env={**os.environ, "DATABASE_URL": demo_url, "COLUMNS": "120"})
        assert done.returncode == 0, done.stderr
        assert_walkthrough(done.stdout)


def test_demo_without_an_employees_route_says_why(tmp_path: Path, demo_url: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", demo_url)
    config = tmp_path / "tables.yaml"
    text = (Path(__file__).parent.parent / "config" / "tables.yaml").read_text()
    config.write_text(text.replace("source: Employees", "source: People"))
    result = CliRunner().invoke(app, ["demo", "--config", str(config)])
    assert (result.exit_code, result.stderr) == (
        1, f"error: the demo replays the reference article on the Employees table, and {config} has no "
           "postgres route with source: Employees\n")


# -- finding a Postgres ------------------------------------------------------------------------


def test_database_url_comes_first() -> None:
    found = find_postgres({"DATABASE_URL": "postgresql://u:secret@db.example:5432/app"})
    assert (found.url, found.source, found.temporary) == ("postgresql://u:secret@db.example:5432/app",
                                                          "DATABASE_URL", False)
    assert found.shown == "postgresql://u:***@db.example:5432/app"


def test_then_a_server_listening_on_the_port(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    given = conninfo_to_dict(database_url)
    for variable, key in (("PGUSER", "user"), ("PGPASSWORD", "password")):
        if given.get(key):
            monkeypatch.setenv(variable, str(given[key]))
    host, port = str(given.get("host") or "127.0.0.1"), int(given.get("port") or 5432)
    found = find_postgres({}, host=host, port=port)
    assert found.source == f"the server listening on {host}:{port}" and not found.temporary
    with psycopg.connect(found.url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def closed_port() -> int:
    with socket.socket() as probe:  # a port nothing listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def unavailable(reason: str) -> Callable[[], LocalPostgres]:
    def start() -> LocalPostgres:
        raise NoPostgresError(reason)
    return start


def test_with_nothing_there_the_error_says_what_was_tried_and_how_to_provide_one() -> None:
    port = closed_port()
    with pytest.raises(NoPostgresError) as missing:
        find_postgres({"CDC_ROUTER_LOCAL_POSTGRES": f"127.0.0.1:{port}"},
                      embedded=[unavailable("Docker is not available"), lambda: None])
    assert str(missing.value) == (
        f"no PostgreSQL found: set DATABASE_URL=postgresql://USER@HOST:PORT/DB, start PostgreSQL on 127.0.0.1:{port}, "
        "or install the embedded one with pip install 'cdc-router[embedded]' (not as root) "
        f"(tried: DATABASE_URL is not set, nothing listens on 127.0.0.1:{port}; Docker is not available)")


@pytest.mark.parametrize("given, expected", [
    (None, ("127.0.0.1", 5432)),             # unset: the default
    ("db.local:6543", ("db.local", 6543)),
    ("[::1]:5433", ("::1", 5433)),           # IPv6: the port is after the last colon
])
def test_the_local_address_comes_from_the_environment(given: str | None, expected: tuple[str, int]) -> None:
    assert local_address({} if given is None else {"CDC_ROUTER_LOCAL_POSTGRES": given}) == expected


def test_a_malformed_local_address_says_what_is_expected() -> None:
    with pytest.raises(NoPostgresError, match="CDC_ROUTER_LOCAL_POSTGRES='5432': expected HOST:PORT"):
        local_address({"CDC_ROUTER_LOCAL_POSTGRES": "5432"})


def test_pgserver_is_not_used_as_root(monkeypatch: pytest.MonkeyPatch) -> None:
    # pgserver, run as root, adds a system user and opens directory permissions: refuse, and say so
    monkeypatch.setitem(sys.modules, "pgserver", types.ModuleType("pgserver"))
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    with pytest.raises(NoPostgresError, match="pgserver is installed but not used as root"):
        local_postgres._pgserver()
