"""Find a PostgreSQL for the local demo and the tests, and say which one it is.

In order: ``DATABASE_URL``; a server listening on 127.0.0.1:5432 (another address with
``CDC_ROUTER_LOCAL_POSTGRES=HOST:PORT``); then the servers that can be started: for the
demo an embedded server from the ``pgserver`` package (Postgres binaries in its wheel, data
in a temporary directory), then a throwaway container through testcontainers where Docker
runs; the tests try them the other way round. pgserver is not used as root: there it
silently adds a system user (``useradd pgserver``) and opens read and execute permissions
on every parent directory of its data and binaries. When none is found, the error says
what was tried and how to provide one.
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

ADDRESS_VARIABLE = "CDC_ROUTER_LOCAL_POSTGRES"  # HOST:PORT probed when DATABASE_URL is unset
DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 5432
NO_POSTGRES = ("no PostgreSQL found: set DATABASE_URL=postgresql://USER@HOST:PORT/DB, start PostgreSQL on "
               "{address}, or install the embedded one with pip install 'cdc-router[embedded]' (not as root)")


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


Starter = Callable[[], "LocalPostgres | None"]  # starts one, or raises NoPostgresError saying why it cannot


def local_address(environ: Mapping[str, str] | None = None) -> tuple[str, int]:
    """Where a local server is looked for: ``$CDC_ROUTER_LOCAL_POSTGRES`` (HOST:PORT), else 127.0.0.1:5432."""
    given = (os.environ if environ is None else environ).get(ADDRESS_VARIABLE, "")
    host, _, port = given.rpartition(":")
    if not given:
        return DEFAULT_HOST, DEFAULT_PORT
    if not host or not port.isdigit():
        raise NoPostgresError(f"{ADDRESS_VARIABLE}={given!r}: expected HOST:PORT, e.g. 127.0.0.1:5432")
    return host.strip("[]"), int(port)  # [::1]:5432


def find_postgres(environ: Mapping[str, str] | None = None, host: str | None = None, port: int | None = None,
                  embedded: Sequence[Starter] | None = None) -> LocalPostgres:
    """The first PostgreSQL that is there; ``embedded`` are the ones that can be started (None: the demo's)."""
    environ = os.environ if environ is None else environ
    if environ.get("DATABASE_URL"):
        return LocalPostgres(environ["DATABASE_URL"], "DATABASE_URL")
    default_host, default_port = local_address(environ)
    host, port = host or default_host, port or default_port
    if _listening(host, port):
        return _listening_server(host, port)
    tried = [f"DATABASE_URL is not set, nothing listens on {host}:{port}"]
    for start in (_pgserver, _testcontainers) if embedded is None else embedded:
        try:
            found = start()
        except NoPostgresError as exc:
            tried.append(str(exc))
            continue
        if found is not None:
            return found
    raise NoPostgresError(f"{NO_POSTGRES.format(address=f'{host}:{port}')} (tried: {'; '.join(tried)})")


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
    raise NoPostgresError(f"a server listens on {host}:{port} but refused the connection ({mask(first_line)}): "
                          "set DATABASE_URL=postgresql://USER:PASSWORD@HOST:PORT/DB")


def _pgserver() -> LocalPostgres:
    try:
        import pgserver
    except ImportError:
        raise NoPostgresError("the embedded pgserver is not installed") from None
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        raise NoPostgresError("pgserver is installed but not used as root (it would add a system user and open "
                              "directory permissions)")
    server = pgserver.get_server(tempfile.mkdtemp(prefix="cdc-router-pg-"), cleanup_mode="delete")
    return LocalPostgres(server.get_uri(), "an embedded pgserver (temporary, removed at exit)", server.cleanup, True)


def _testcontainers() -> LocalPostgres:
    if not (os.environ.get("DOCKER_HOST") or os.path.exists("/var/run/docker.sock")):
        raise NoPostgresError("Docker is not available for testcontainers")
    try:
        from testcontainers.postgres import PostgresContainer
    except ImportError:
        raise NoPostgresError("testcontainers is not installed") from None
    container = PostgresContainer("postgres:16-alpine", driver=None)
    try:
        container.start()
    except Exception as exc:  # no Docker engine behind the socket, no image, no permission
        first_line = (str(exc).strip().splitlines() or [""])[0]
        raise NoPostgresError(f"testcontainers could not start one ({type(exc).__name__}: {first_line})") from None
    return LocalPostgres(container.get_connection_url(), "a throwaway Docker container (testcontainers)",
                         container.stop, True)


TEST_ORDER: Sequence[Starter] = (_testcontainers, _pgserver)  # the test extras bring testcontainers
