"""What a newcomer met in the first hour (issue 18, findings 6, 7 and 10): messages that say what
to do, help on every option, output that survives pipes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from botocore.exceptions import NoCredentialsError, NoRegionError
from click.testing import CliRunner
from conftest import EMPLOYEES

from handlers.cli import app
from handlers.cli_support import BROKEN_PIPE, one_line
from operations.assemble import parse_config
from router.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ROUTE = "  r{n}: {{source: T{n}, sink: aurora, table: public.t{n}, key: [id], columns: {{id: {{type: bigint}}}}}}\n"
WIDE = "a_column_name_long_enough_to_make_the_table_wider"  # with its `from`: a table over 100 columns wide
FROM = "an_attribute_name_long_enough_to_make_the_table_wider"


def errors_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        parse_config(text, "t.yaml", environ={})
    return raised.value.errors


def test_a_tab_in_the_yaml_says_to_indent_with_spaces() -> None:
    (message,) = errors_of("version: 1\nsinks:\n\taurora: {type: postgres}\n")
    assert message.startswith("t.yaml: not valid YAML: ") and "line 3, column 1" in message
    assert message.endswith("(a tab: indent with spaces, YAML does not accept tabs there)")


def test_a_misspelled_dsn_is_the_one_problem_reported() -> None:
    # GIVEN dns: for dsn: WHEN loaded THEN one line: not also "dsn" and "secret" as missing
    assert errors_of('version: 1\nsinks:\n  aurora: {type: postgres, dns: "postgresql://localhost/x"}\nroutes:\n'
                     + ROUTE.format(n=1)) == [
        "t.yaml: sinks.aurora.dns: unknown key, did you mean 'dsn'? (allowed: application_name, connect_timeout, dsn, "
        "iam_auth, lock_timeout_ms, mask_key, mask_secret, region, schema, secret, sslmode, sslrootcert, state_schema, statement_timeout_ms, "
        "tombstone_retention_hours, type)"]


def test_a_sink_with_neither_dsn_nor_secret_still_says_both_are_missing() -> None:
    assert sorted(errors_of("version: 1\nsinks:\n  aurora: {type: postgres}\nroutes:\n" + ROUTE.format(n=1))) == [
        "t.yaml: sinks.aurora.dsn: required key is missing", "t.yaml: sinks.aurora.secret: required key is missing"]


def test_replay_names_the_unrouted_record_once_and_what_is_retried(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN an Employees batch whose second record comes from a table no route reads
    event = json.loads((ROOT / "tests" / "events" / "employees_put_update_delete_2001.json").read_text())
    event["Records"][1]["eventSourceARN"] = event["Records"][1]["eventSourceARN"].replace("/Employees/", "/Payroll/")
    (tmp_path / "event.json").write_text(json.dumps(event))
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    # WHEN replayed THEN the record is named once, with why, and what Lambda would be told to retry
    result = CliRunner().invoke(app, ["replay", "--dry-run", str(tmp_path / "event.json")])
    assert result.exit_code == 1
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("stopped at")]
    sequence_number = event["Records"][1]["dynamodb"]["SequenceNumber"]
    assert line == (f"stopped at record 1 (table Payroll, SequenceNumber {sequence_number}): no route for DynamoDB "
                    "table 'Payroll' in config/tables.yaml (add a route with source: Payroll, or set unrouted: skip); "
                    "it and the 1 record(s) after it are reported back for retry")


def all_options(command: click.Command, path: tuple[str, ...] = ("cdc-router",)) -> Iterator[tuple[str, click.Option]]:
    for param in command.params:
        if isinstance(param, click.Option):
            yield " ".join(path), param
    for name, sub in getattr(command, "commands", {}).items():
        yield from all_options(sub, (*path, name))


def test_every_option_has_help() -> None:
    missing = [f"{where} {option.opts[0]}" for where, option in all_options(app) if not option.help]
    assert missing == []


def test_verify_help_mentions_only_its_own_options() -> None:
    shown = CliRunner().invoke(app, ["verify", "--help"]).stdout
    assert "--segments" in shown and "--from-export" not in shown


def test_aws_region_and_credential_errors_say_how_to_give_them() -> None:
    assert one_line(NoRegionError(), hint=True).startswith("error: no AWS region: pass --region or set AWS_DEFAULT_REGION")
    assert "cdc-router demo --serve" in one_line(NoCredentialsError(), hint=True)


def piped(args: list[str], config: Path) -> tuple[int, str, str]:
    """The console script with stdout to a pipe (no COLUMNS, as in a shell pipeline)."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "DATABASE_URL")}
    done = subprocess.run([str(BIN / "cdc-router"), *args, "--config", str(config)], capture_output=True, text=True,
                          env=env, timeout=120)
    return done.returncode, done.stdout, done.stderr


@pytest.fixture
def many_routes(tmp_path: Path) -> Path:
    """A valid config whose validate output is far larger than a pipe's buffer."""
    path = tmp_path / "tables.yaml"
    routes = "".join(ROUTE.format(n=n) for n in range(400)).replace("{id: {type: bigint}}",
                                                                    f"{{id: {{type: bigint}}, {WIDE}: {{from: {FROM}}}}}")
    path.write_text("version: 1\nsinks:\n  aurora: {type: postgres, dsn: '${DATABASE_URL}'}\nroutes:\n" + routes)
    return path


def test_piped_tables_are_not_cut_at_80_columns(many_routes: Path) -> None:
    code, out, err = piped(["validate"], many_routes)
    assert (code, err) == (0, "")
    row = next(line for line in out.splitlines() if WIDE in line)
    assert row.startswith(f"│ {WIDE} │ {FROM} │ text ") and len(row) > 100


def test_output_closed_early_ends_quietly(many_routes: Path) -> None:
    # `cdc-router validate | head -2`, the output far larger than the pipe's buffer: head exits, the pipe closes
    script = f'"{BIN / "cdc-router"}" validate --config "{many_routes}" | head -2; echo "exit ${{PIPESTATUS[0]}}"'
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120,
                          env={k: v for k, v in os.environ.items() if k != "DATABASE_URL"})
    assert done.stderr == "" and done.stdout.startswith("route r0: ")
    assert done.stdout.splitlines()[-1] == f"exit {BROKEN_PIPE}"


def test_schema_apply_says_what_it_created_and_what_was_there(pg: Any, write_config: Callable[..., Path]) -> None:
    config = write_config(EMPLOYEES, pg, deletes="hard", on_error="fail")
    first, second = (CliRunner().invoke(app, ["schema", "--apply", "--config", str(config)]) for _ in range(2))
    assert first.stdout == f"sink aurora: created {pg.schema}.Employees; state tables in place\n"
    assert second.stdout == f"sink aurora: {pg.schema}.Employees already there; state tables in place\n"
