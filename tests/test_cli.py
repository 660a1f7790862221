"""The command line through Click's runner and as the installed console script: output, exit
codes (0 fine, 1 a problem found, 2 usage) and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from conftest import EMPLOYEES
from factories import as_yaml, postgres, route, tables

from handlers.cli import app

BIN = Path(sys.executable).parent
EVENTS = Path(__file__).parent / "events"
# two mistakes: a varchar without its length, a delete mode that does not exist
BAD_CONFIG = as_yaml(tables(
    {"employees": route("public.Employees", columns={"Id": {"type": "bigint"}, "Name": {"type": "varchar"}},
                        deletes="sometimes")},
    {"aurora": postgres(dsn="postgresql://localhost/x")}))


def bad_config_errors(path: Path) -> str:
    return (f"{path}: routes.employees.columns.Name.type: invalid type 'varchar': varchar needs a length, "
            "e.g. varchar(20)\n"
            f"{path}: routes.employees.deletes: invalid value 'sometimes' (allowed: hard, soft, ignore)\n")


def cli(*args: Any) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def script(*args: Any, executable: str = "cdc-router") -> subprocess.CompletedProcess[str]:
    """The installed console script, in a real process."""
    return subprocess.run([str(BIN / executable), *map(str, args)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "COLUMNS": "200"})


@pytest.fixture
def employees(pg: Any, write_config: Callable[..., Path]) -> Path:
    return write_config(EMPLOYEES, pg, deletes="hard", on_error="fail")


@pytest.fixture
def bad_config(tmp_path: Path) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD_CONFIG)
    return path


# -- help, usage errors ------------------------------------------------------------------------


def test_help_from_the_installed_console_script() -> None:
    done = script("--help")
    assert done.returncode == 0, done.stderr
    for name in ("validate", "schema", "replay", "run", "demo"):
        assert f"\n  {name} " in done.stdout


def test_python_dash_m_handlers_is_the_same_command_line() -> None:
    done = subprocess.run([sys.executable, "-m", "handlers", "schema", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "Usage: cdc-router schema [OPTIONS]" in done.stdout
    assert "--check" in done.stdout and "--apply" in done.stdout


@pytest.mark.parametrize("args, message", [
    (["validate", "--bogus"], "error: No such option '--bogus'.  (see cdc-router validate --help)\n"),
    (["bogus"], "error: No such command 'bogus'.  (see cdc-router --help)\n"),
    (["replay", "nowhere.json"], "error: Invalid value for 'EVENT.json': File 'nowhere.json' does not exist.  "
                                 "(see cdc-router replay --help)\n"),
    (["run", "--from", "yesterday"], "error: Invalid value for '--from': invalid start 'yesterday' (allowed: "
                                     "trim_horizon, latest, or an ISO-8601 time such as 2025-03-01T12:00:00Z)  "
                                     "(see cdc-router run --help)\n"),
])
def test_usage_errors_are_one_line_and_exit_2(args: list[str], message: str) -> None:
    result = cli(*args)
    assert (result.exit_code, result.stdout, result.stderr) == (2, "", message)


def test_an_unknown_route_is_a_usage_error(employees: Path) -> None:
    result = cli("schema", "--config", employees, "--route", "payroll")
    assert result.exit_code == 2
    assert result.stderr == ("error: Invalid value for --route: unknown route 'payroll' (routes: employees)  "
                             "(see cdc-router schema --help)\n")


# -- validate ----------------------------------------------------------------------------------


def test_validate_prints_each_route(employees: Path) -> None:
    result = cli("validate", "--config", employees)
    assert result.exit_code == 0, result.stderr
    assert "route employees: DynamoDB Employees -> sink aurora" in result.stdout
    assert "varchar(20)" in result.stdout and "empDepartment" in result.stdout
    assert result.stdout.rstrip().endswith(f"{employees} is valid: 1 route(s), 1 sink(s)")


def test_validate_prints_every_error_of_a_bad_config_and_exits_1(bad_config: Path) -> None:
    result = cli("validate", "--config", bad_config)
    assert (result.exit_code, result.stdout, result.stderr) == (1, "", bad_config_errors(bad_config))


def test_validate_a_bad_config_from_the_console_script(bad_config: Path) -> None:
    done = script("validate", "-c", bad_config)
    assert (done.returncode, done.stdout, done.stderr) == (1, "", bad_config_errors(bad_config))


def test_the_config_comes_from_the_environment_variable(bad_config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDC_ROUTER_CONFIG", str(bad_config))
    assert cli("validate").stderr == bad_config_errors(bad_config)


def test_a_missing_config_file_is_one_line(tmp_path: Path) -> None:
    result = cli("validate", "--config", tmp_path / "none.yaml")
    assert (result.exit_code, result.stderr) == (
        1, f"{tmp_path / 'none.yaml'}: cannot read the configuration: No such file or directory\n")


# -- schema ------------------------------------------------------------------------------------


def test_schema_prints_the_ddl_without_touching_the_database(employees: Path, pg: Any) -> None:
    result = cli("schema", "--config", employees)
    assert result.exit_code == 0, result.stderr
    assert f'CREATE TABLE IF NOT EXISTS "{pg.state_schema}"."tombstones"' in result.stdout
    assert f'CREATE TABLE IF NOT EXISTS "{pg.schema}"."Employees" (\n    "Id" bigint NOT NULL,' in result.stdout
    assert pg.conn.execute("SELECT count(*) AS n FROM pg_namespace WHERE nspname = %s",
                           (pg.schema,)).fetchone()["n"] == 0


def test_schema_check_finds_the_missing_table_apply_creates_it(employees: Path, pg: Any) -> None:
    # GIVEN no target table WHEN checked THEN drift, exit 1, and the statement that fixes it
    drift = cli("schema", "--config", employees, "--check")
    assert drift.exit_code == 1
    assert "missing table" in drift.stdout and "-- statements that fix it:" in drift.stdout
    assert f'CREATE TABLE IF NOT EXISTS "{pg.schema}"."Employees"' in drift.stdout
    # WHEN --apply runs THEN the check passes
    applied = script("schema", "--config", employees, "--apply", "--check")
    assert applied.returncode == 0, applied.stderr
    assert "no drift: 1 target table(s) match their routes" in applied.stdout
    assert pg.rows("Employees") == []


def test_schema_check_shows_a_type_mismatch_and_its_fix(employees: Path, pg: Any) -> None:
    cli("schema", "--config", employees, "--apply")
    pg.conn.execute(f'ALTER TABLE "{pg.schema}"."Employees" ALTER COLUMN "Department" TYPE text')
    result = script("schema", "--config", employees, "--check")
    assert result.returncode == 1
    assert "type mismatch" in result.stdout and "character varying(10)" not in result.stdout
    assert (f'ALTER TABLE "{pg.schema}"."Employees" ALTER COLUMN "Department" TYPE varchar(10) '
            'USING "Department"::varchar(10);') in result.stdout


# -- replay ------------------------------------------------------------------------------------


def test_replay_applies_a_saved_event(employees: Path, pg: Any) -> None:
    cli("schema", "--config", employees, "--apply")
    result = script("replay", EVENTS / "employees_put_2001.json", "--config", employees)
    assert result.returncode == 0, result.stderr
    assert result.stdout.rstrip().endswith('{"batchItemFailures": []}')
    assert "│ employees │ 1        │ 0       │ 0     │ 0             │ 0      │" in result.stdout
    assert pg.rows("Employees") == [{"Id": 2001, "Name": "Akua", "Department": "AnyDept"}]


def test_replay_dry_run_prints_rows_and_statements_and_writes_nothing(employees: Path, pg: Any) -> None:
    cli("schema", "--config", employees, "--apply")
    result = cli("replay", EVENTS / "employees_put_2001.json", "--config", employees, "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert "│ upsert │ 111000000000000000000001 │ 2001 │ Akua │ AnyDept    │" in result.stdout
    assert f'INSERT INTO "{pg.schema}"."Employees" AS t' in result.stdout
    assert '-- employees: %(rows)s = [{"c0":2001,"c1":"Akua","c2":"AnyDept"' in result.stdout
    assert pg.rows("Employees") == []


@pytest.mark.parametrize("deletes, event_file, upserted, deleted", [
    ("hard", "employees_put_2001.json", 1, 0),
    # the insert, update and delete of one item reduce to its delete: a hard delete finds no row in an
    # empty table, a soft one marks one (it writes the row), an ignored one leaves the last upsert
    ("hard", "employees_put_update_delete_2001.json", 0, 0),
    ("soft", "employees_put_update_delete_2001.json", 0, 1),
    ("ignore", "employees_put_update_delete_2001.json", 1, 0),
])
def test_replay_dry_run_counts_as_if_the_target_were_empty(tmp_path: Path, deletes: str, event_file: str,
                                                           upserted: int, deleted: int) -> None:
    config = tmp_path / "tables.yaml"  # nothing listens at the DSN: a dry run connects nowhere
    config.write_text(as_yaml(tables({"employees": route("s.Employees", deletes=deletes)},
                                     {"aurora": postgres(dsn="postgresql://127.0.0.1:9/nowhere")})))
    result = cli("replay", EVENTS / event_file, "--config", config, "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert f"│ employees │ {upserted}        │ {deleted}       │ 0     │ 0             │ 0      │" in result.stdout


def test_replay_reports_a_failed_record_and_exits_1(employees: Path, tmp_path: Path) -> None:
    # no schema --apply: the target table does not exist, so the sink fails the batch at its first record
    result = cli("replay", EVENTS / "employees_put_2001.json", "--config", employees)
    assert result.exit_code == 1
    assert "does not exist" in result.stdout
    assert result.stdout.rstrip().endswith('{"batchItemFailures": [{"itemIdentifier": "111000000000000000000001"}]}')


@pytest.mark.parametrize("content, error", [
    ("{not json", "error: {path}: not valid JSON (Expecting property name enclosed in double quotes: "
                  "line 1 column 2 (char 1))\n"),
    ('{"Items": []}', "error: not a DynamoDB Streams or Kinesis event: expected an object with a 'Records' list, got keys "
                      "['Items']\n"),
])
def test_replay_of_something_that_is_not_an_event(employees: Path, tmp_path: Path, content: str, error: str) -> None:
    path = tmp_path / "event.json"
    path.write_text(content)
    result = cli("replay", path, "--config", employees)
    assert (result.exit_code, result.stderr) == (1, error.format(path=path))


# -- unexpected failures -----------------------------------------------------------------------


def test_an_unexpected_error_is_one_line_and_debug_shows_the_traceback(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "tables.yaml"
    config.write_text(textwrap.dedent(EMPLOYEES).format(schema="s", state="st", deletes="hard", on_error="fail"))
    # a password in the DSN, and nothing listening on the port
    monkeypatch.setenv("DATABASE_URL", "postgresql://app:hunter2@127.0.0.1:9/db?connect_timeout=2")
    plain = cli("schema", "--config", config, "--check")
    assert plain.exit_code == 1 and plain.stdout == ""
    assert plain.stderr.startswith("error: ConnectionTimeout: ") or plain.stderr.startswith("error: OperationalError")
    assert plain.stderr.count("\n") == 1 and plain.stderr.rstrip().endswith("(--debug shows the traceback)")
    assert "hunter2" not in plain.stderr
    debug = cli("schema", "--config", config, "--check", "--debug")
    assert debug.exit_code == 1 and "Traceback (most recent call last)" in debug.stderr


def test_the_json_response_is_machine_readable(employees: Path) -> None:
    cli("schema", "--config", employees, "--apply")
    result = cli("replay", EVENTS / "employees_put_update_delete_2001.json", "--config", employees)
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"batchItemFailures": []}
