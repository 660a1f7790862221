"""``cdc-router demo --serve``: a moto server with the config's tables, and the environment it
prints lets ``schema --apply``, ``run``, ``verify`` and ``backfill`` work against it (README tutorial)."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import EMPLOYEES

from handlers.cli import app

BIN = Path(sys.executable).parent


@pytest.fixture
def served(pg: Any, write_config: Callable[..., Path], database_url: str) -> Iterator[tuple[Path, dict[str, str], list[str]]]:
    """``demo --serve`` as a real process on a free port: the config, the variables it printed, its output so far."""
    config = write_config(EMPLOYEES, pg, deletes="hard", on_error="fail")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}  # only what the server prints
    process = subprocess.Popen([str(BIN / "cdc-router"), "demo", "--serve", "--port", "0", "--config", str(config)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**clean, "DATABASE_URL": database_url})
    lines: list[str] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("Ctrl-C stops the server"):
                break
        exported = dict(shlex.split(line.strip())[1].split("=", 1) for line in lines
                        if line.strip().startswith("export "))
        yield config, exported, lines
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
        lines.extend(out.splitlines())
    assert (process.returncode, err) == (0, "")
    assert lines[-1] == "stopped: the moto server and its tables are gone"


def test_the_printed_environment_reaches_the_server(served: tuple[Path, dict[str, str], list[str]],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    config, exported, lines = served
    # GIVEN the server's tables and the demo's changes in their streams, and only the variables it printed
    assert lines[1].startswith("DynamoDB: a moto server on http://127.0.0.1:")
    assert lines[1].endswith("tables Employees with streams (6 change(s) of the demo in them)")
    assert set(exported) == {"AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                             "AWS_ACCOUNT_ID_ENDPOINT_MODE"}  # DATABASE_URL: the user's own, already set
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    for name, value in exported.items():
        monkeypatch.setenv(name, value)
    # WHEN the tutorial's commands run, THEN each works against the server
    runner = CliRunner()
    for args, shows in [
        (["schema", "--apply"], "created"),
        (["run", "--until-idle"], "caught up: 6 record(s) applied"),
        (["verify", "employees"], "no drift: the target matches its DynamoDB table"),
        (["backfill", "employees"], "3 already in the target or deleted since"),
    ]:
        result = runner.invoke(app, [*args, "--config", str(config)])
        assert (result.exit_code, result.stderr) == (0, ""), (args, result.stdout)
        assert shows in result.stdout, (args, result.stdout)


def test_a_busy_port_says_to_choose_another(pg: Any, write_config: Callable[..., Path]) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_config(EMPLOYEES, pg, deletes="hard", on_error="fail")
        result = CliRunner().invoke(app, ["demo", "--serve", "--port", str(port), "--config", str(config)])
    assert result.exit_code == 1
    assert result.stderr == f"error: cannot serve on 127.0.0.1:{port} (Address already in use): choose another --port\n"
