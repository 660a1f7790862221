"""Where the tests' PostgreSQL comes from: found the way ``cdc-router demo`` finds one.

``DATABASE_URL``; else a server listening on 127.0.0.1:5432 (``CDC_ROUTER_LOCAL_POSTGRES=HOST:PORT``
looks elsewhere), where the tests make a database of their own and drop it at the end, so
the server's databases are left as they were; else a throwaway container (testcontainers,
where Docker runs); else the embedded pgserver (not as root). It is looked for once, after
collection and before the first test, and only when a selected test needs it: with none,
the run stops there with one paragraph instead of an error per test.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from handlers import local_postgres
from handlers.local_postgres import LocalPostgres, NoPostgresError, find_postgres

NEEDS = "database_url"  # the fixture through which every test that needs PostgreSQL gets it
NO_POSTGRES_EXIT = pytest.ExitCode.USAGE_ERROR
ADVICE = ("The tests need PostgreSQL and stopped before the first one. {problem}. Tests that need no database run "
          "without one (e.g. pytest tests/test_transform.py); `make demo` finds its PostgreSQL the same way.")


@dataclass
class SessionDatabase:
    """The URL the tests use, the server it is on, and the database made for them (if any)."""

    url: str
    server: LocalPostgres
    made: str | None = None

    def close(self) -> None:
        try:
            if self.made is not None:
                with psycopg.connect(self.server.url, autocommit=True) as admin:
                    admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.made)))
        finally:
            self.server.stop()


_DATABASE = pytest.StashKey[SessionDatabase]()


def session_database(server: LocalPostgres) -> SessionDatabase:
    """A database of the tests' own on a server found listening; the others are used as they are."""
    if server.source == "DATABASE_URL" or server.temporary:
        return SessionDatabase(server.url, server)
    name = f"cdc_router_test_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(server.url, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.Error as exc:
        raise NoPostgresError(f"{server.source} ({server.shown}) refused to create a database for the tests "
                              f"({str(exc).strip().splitlines()[0]}): set DATABASE_URL to a database the tests "
                              "may create schemas and databases in") from None
    return SessionDatabase(make_conninfo(**{**conninfo_to_dict(server.url), "dbname": name}), server, name)


def pytest_collection_finish(session: pytest.Session) -> None:
    if not any(NEEDS in getattr(item, "fixturenames", ()) for item in session.items):
        return
    try:
        session.config.stash[_DATABASE] = session_database(find_postgres(embedded=local_postgres.TEST_ORDER))
    except NoPostgresError as exc:
        problem = str(exc)
        pytest.exit(ADVICE.format(problem=problem[0].upper() + problem[1:]), returncode=NO_POSTGRES_EXIT)


def pytest_sessionfinish(session: pytest.Session) -> None:
    database = session.config.stash.get(_DATABASE, None)
    if database is not None:
        database.close()


@pytest.fixture(scope="session")
def database_url(request: pytest.FixtureRequest) -> str:
    return request.config.stash[_DATABASE].url
