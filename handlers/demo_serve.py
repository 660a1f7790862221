"""``cdc-router demo --serve``: DynamoDB on 127.0.0.1 for trying the other commands locally.

A moto server (in this process, on a thread) with a table and a stream for every routed
source, holding the demo's items; it runs until Ctrl-C. ``environment`` is what a second
shell needs so that ``run``, ``backfill``, ``verify`` and ``replay`` reach it and the demo's
PostgreSQL: botocore reads ``AWS_ENDPOINT_URL`` for every client, and moto accepts any
credentials. Its tables live in memory: they are gone when it stops.
"""

from __future__ import annotations

import logging
import shlex
import socket
from collections.abc import Mapping
from typing import Any

from handlers.demo import REGION, DemoError, create_source_tables, scenario
from handlers.local_postgres import LocalPostgres
from router.model import Config

DEFAULT_PORT = 5005
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


class DemoServer:
    """Started on enter (tables created, the demo's items put), stopped on exit."""

    def __init__(self, config: Config, port: int = DEFAULT_PORT):
        self.config, self.port = config, port
        self.endpoint = ""
        self.tables: list[str] = []
        self.items = 0

    def __enter__(self) -> DemoServer:
        try:
            from moto.server import ThreadedMotoServer
        except ImportError:
            raise DemoError("demo --serve needs moto's server: pip install 'cdc-router[demo]'") from None
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request in the user's terminal
        try:  # ThreadedMotoServer waits forever for a server whose port was taken: try the port first
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", self.port))
        except OSError as exc:
            raise DemoError(f"cannot serve on 127.0.0.1:{self.port} ({exc.strerror}): choose another --port") from None
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        try:
            self._fill()
        except BaseException:
            self._server.stop()
            raise
        return self

    def _fill(self) -> None:
        import boto3

        dynamodb = boto3.client("dynamodb", endpoint_url=self.endpoint, region_name=REGION,
                                aws_access_key_id="testing", aws_secret_access_key="testing")
        self.tables = create_source_tables(dynamodb, self.config)
        for _, actions in scenario(set(self.tables)):
            for table, _, act in actions:
                if table in self.tables:
                    act(dynamodb)
                    self.items += 1

    def __exit__(self, *exc_info: Any) -> None:
        self._server.stop()

    def environment(self, postgres: LocalPostgres) -> dict[str, str]:
        """The variables a second shell needs: the endpoint, a region, fake credentials, and the database."""
        variables = {"AWS_ENDPOINT_URL": self.endpoint, "AWS_DEFAULT_REGION": REGION, **FAKE_CREDENTIALS,
                     "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled"}  # moto serves no account-id endpoints
        if postgres.source != "DATABASE_URL":  # else the user's own, already set
            variables["DATABASE_URL"] = postgres.url
        return variables


def exports(variables: Mapping[str, str]) -> list[str]:
    """``export NAME=value`` lines, quoted for a POSIX shell."""
    return [f"export {name}={shlex.quote(value)}" for name, value in variables.items()]


def suggestions(config: Config) -> list[str]:
    """What to try next against the server, for the config's first route."""
    route = next(iter(config.routes))
    commands = [
        ("cdc-router schema --apply", "the target tables"),
        ("cdc-router run --until-idle", "the streams into them"),
        (f"cdc-router verify {route}", "the target against DynamoDB"),
        (f"cdc-router backfill {route}", "the items already there (stale once run applied them)"),
        ("cdc-router replay tests/events/employees_put_2001.json", "a saved Lambda event"),
    ]
    width = max(len(command) for command, _ in commands[:4]) + 2
    return [f"{command.ljust(width) if len(command) < width else command + '  '}# {what}" for command, what in commands]
