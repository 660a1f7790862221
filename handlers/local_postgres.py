"""Find a PostgreSQL for the local demo, and say which one it is.

In order: ``DATABASE_URL``; a server listening on 127.0.0.1:5432; an embedded server from
the ``pgserver`` package (Postgres binaries in its wheel, data in a temporary directory);
a throwaway container through testcontainers where Docker runs. pgserver is not used as
root: there it silently adds a system user (``useradd pgserver``) and opens read and
execute permissions on every parent directory of its data and binaries.
"""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

from sinks.postgres.connection import mask

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 5432
NO_POSTGRES = ("no PostgreSQL found: set DATABASE_URL=postgresql://USER@HOST:PORT/DB, start PostgreSQL on "
               "127.0.0.1:5432, or install the embedded one with pip install 'cdc-router[embedded]'")


class NoPostgresError(Exception):
    """No usable PostgreSQL; the message says how to provide one."""


@dataclass
class LocalPostgres:
    url: str
    source: str                                   # said to the user: where the server came from
    stop: Callable[[], None] = lambda: None       # ends an embedded server; nothing for the others
    temporary: bool = False                       # started for the demo and removed afterwards

    def __enter__(self) -> LocalPostgres:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    @property
    def shown(self) -> str:
        return mask(self.url)


def find_postgres(environ: Mapping[str, str] | None = None, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                  embedded: Sequence[Callable[[], LocalPostgres | None]] | None = None) -> LocalPostgres:
    """The first PostgreSQL that is there; ``embedded`` are the ones that can be started (None: all)."""
    environ = os.environ if environ is None else environ
    if environ.get("DATABASE_URL"):
        return LocalPostgres(environ["DATABASE_URL"], "DATABASE_URL")
    if _listening(host, port):
        return _listening_server(host, port)
    for start in (_pgserver, _testcontainers) if embedded is None else embedded:
        found = start()
        if found is not None:
            return found
    raise NoPostgresError(NO_POSTGRES)


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _listening_server(host: str, port: int) -> LocalPostgres:
    """Connect as the default user (PGUSER or the login name), then as ``postgres``."""
    error: Exception | None = None
    for user in (None, "postgres"):
        url = make_conninfo(host=host, port=port, dbname="postgres", user=user, connect_timeout=3)
        try:
            psycopg.connect(url).close()
        except psycopg.Error as exc:
            error = exc
            continue
        return LocalPostgres(url, f"the server listening on {host}:{port}")
    first_line = str(error).strip().splitlines()[0] if error else ""
    raise NoPostgresError(f"a server listens on {host}:{port} but refused the demo ({mask(first_line)}): "
                          "set DATABASE_URL=postgresql://USER:PASSWORD@HOST:PORT/DB")


def _pgserver() -> LocalPostgres | None:
    try:
        import pgserver
    except ImportError:
        return None
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        raise NoPostgresError("pgserver is installed but not used as root (it would add a system user and open "
                              "directory permissions): set DATABASE_URL or start PostgreSQL on 127.0.0.1:5432")
    server = pgserver.get_server(tempfile.mkdtemp(prefix="cdc-router-demo-"), cleanup_mode="delete")
    return LocalPostgres(server.get_uri(), "an embedded pgserver (temporary, removed at exit)", server.cleanup, True)


def _testcontainers() -> LocalPostgres | None:
    if not (os.environ.get("DOCKER_HOST") or os.path.exists("/var/run/docker.sock")):
        return None
    try:
        from testcontainers.postgres import PostgresContainer
    except ImportError:
        return None
    container = PostgresContainer("postgres:16-alpine", driver=None)
    container.start()
    return LocalPostgres(container.get_connection_url(), "a throwaway Docker container (testcontainers)",
                         container.stop, True)
