"""How the tests find their PostgreSQL (``postgres_session``): the demo's way, a database of their
own on a server found listening, and one paragraph, before any test runs, when there is none."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import psycopg
import pytest
from postgres_session import NO_POSTGRES_EXIT, session_database
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from test_demo import closed_port

from handlers.local_postgres import LocalPostgres

TESTS = Path(__file__).parent
ONE_DATABASE_TEST = '''
def test_needs_postgres(database_url):
    raise AssertionError("never runs: there is no PostgreSQL")

def test_needs_none():
    pass
'''


def pytest_run(tmp_path: Path, environ: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """pytest in a fresh process on a file of two tests, with the suite's way to find PostgreSQL (and no server to
    start, whatever this machine has: Docker, pgserver)."""
    (tmp_path / "conftest.py").write_text(textwrap.dedent('''
        from handlers import local_postgres
        local_postgres.TEST_ORDER = ()
        pytest_plugins = ["postgres_session"]
    '''))
    (tmp_path / "test_two.py").write_text(ONE_DATABASE_TEST)
    env = {name: value for name, value in os.environ.items() if name != "DATABASE_URL"}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args, str(tmp_path)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env={**env, **environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(TESTS.parent)])})


def test_without_postgres_the_run_stops_before_the_first_test_with_one_paragraph(tmp_path: Path) -> None:
    # GIVEN no DATABASE_URL and nothing listening where a local server is looked for
    port = closed_port()
    # WHEN a selection with a test that needs PostgreSQL runs
    done = pytest_run(tmp_path, {"CDC_ROUTER_LOCAL_POSTGRES": f"127.0.0.1:{port}"})
    # THEN nothing ran, the exit code says so, and the one paragraph says what was tried and what to do
    assert done.returncode == NO_POSTGRES_EXIT, done.stdout + done.stderr
    output = done.stdout + done.stderr
    assert "no tests ran" in output and "Traceback" not in output and "never runs" not in output
    paragraph = [line for line in output.splitlines() if "PostgreSQL" in line]
    assert len(paragraph) == 1, output
    assert paragraph[0].startswith("! _pytest.outcomes.Exit: The tests need PostgreSQL and stopped before the first")
    assert f"nothing listens on 127.0.0.1:{port}" in paragraph[0] and "set DATABASE_URL=" in paragraph[0]


def test_tests_that_need_no_postgres_run_without_one(tmp_path: Path) -> None:
    done = pytest_run(tmp_path, {"CDC_ROUTER_LOCAL_POSTGRES": f"127.0.0.1:{closed_port()}"}, "-k", "needs_none")
    assert done.returncode == 0 and "1 passed" in done.stdout, done.stdout + done.stderr


def test_on_a_server_found_listening_the_tests_use_a_database_of_their_own(database_url: str) -> None:
    # GIVEN a server found listening (the test server, reached through its own postgres database)
    server_url = make_conninfo(**{**conninfo_to_dict(database_url), "dbname": "postgres"})
    server = LocalPostgres(server_url, "the server listening on the test server's port")
    # WHEN the session's database is made
    database = session_database(server)
    # THEN the tests get a new, empty database, and closing the session drops it
    assert database.made is not None and conninfo_to_dict(database.url)["dbname"] == database.made
    with psycopg.connect(database.url) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == (database.made,)
    database.close()
    with psycopg.connect(server_url) as conn:
        assert conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s", [database.made]).fetchone() == (0,)


@pytest.mark.parametrize("server", [
    LocalPostgres("postgresql://u@h/app", "DATABASE_URL"),                    # the user's choice, as it is
    LocalPostgres("postgresql://u@h/x", "a throwaway container", temporary=True),  # already a throwaway
])
def test_a_given_or_temporary_server_is_used_as_it_is(server: LocalPostgres) -> None:
    database = session_database(server)
    assert (database.url, database.made) == (server.url, None)
