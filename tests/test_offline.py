"""Commands that connect to nothing work without the variables only a connection needs
(issue 18): ``validate``, ``schema`` printing DDL and ``replay --dry-run``, on the shipped config
with ``DATABASE_URL`` unset; and a missing config says how to name one."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from handlers.cli import app
from operations.assemble import parse_config
from router.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "tests" / "events"
UNSET = "environment variable DATABASE_URL is not set (referenced as ${DATABASE_URL})"


SHIPPED = ROOT / "config" / "tables.yaml"
SHIPPED_SECRET = "secret: ${DB_SECRET:-cdc-router/aurora}"


@pytest.fixture
def no_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.chdir(ROOT)  # the shipped config/tables.yaml, as a newcomer runs it


@pytest.fixture
def local_config(no_database_url: None, tmp_path: Path) -> Path:
    """The shipped config in its local form, as the README says to write it: ``dsn: ${DATABASE_URL}``."""
    text = SHIPPED.read_text(encoding="utf-8")
    assert SHIPPED_SECRET in text  # the deployed default reads a Secrets Manager secret
    path = tmp_path / "tables.yaml"
    path.write_text(text.replace(SHIPPED_SECRET, "dsn: ${DATABASE_URL}"), encoding="utf-8")
    return path


@pytest.mark.parametrize("args, shows", [
    # validate: every route, then a note that a connection would need the variable
    (["validate"], f"note: sinks.aurora.dsn: {UNSET}; commands that connect need it"),
    # schema: the DDL
    (["schema"], 'CREATE TABLE IF NOT EXISTS "public"."Employees"'),
    # replay --dry-run: the rows and statements it would write, and the Lambda response
    (["replay", "--dry-run", str(EVENTS / "employees_put_2001.json")], '{"batchItemFailures": []}'),
])
def test_offline_commands_need_no_database_url(local_config: Path, args: list[str], shows: str) -> None:
    result = CliRunner().invoke(app, [*args, "--config", str(local_config)])
    assert (result.exit_code, result.stderr) == (0, "")
    assert shows in result.stdout


def test_the_shipped_config_validates_with_nothing_set(no_database_url: None) -> None:
    result = CliRunner().invoke(app, ["validate"])
    assert (result.exit_code, result.stderr) == (0, "")
    assert "config/tables.yaml is valid" in result.stdout


@pytest.mark.parametrize("args", [["schema", "--apply"], ["schema", "--check"], ["dead-letters", "list"]])
def test_commands_that_connect_still_say_the_variable_is_missing(local_config: Path, args: list[str]) -> None:
    result = CliRunner().invoke(app, [*args, "--config", str(local_config)])
    assert (result.exit_code, result.stderr) == (1, f"{local_config}: sinks.aurora.dsn: {UNSET}\n")


CONFIG = """
version: 1
sinks:
  aurora: {{type: postgres, dsn: "${{DATABASE_URL}}", state_schema: "{state}"}}
routes:
  r: {{source: T, sink: aurora, table: "{table}", key: [id], columns: {{id: {{type: bigint}}}}}}
"""


def test_offline_a_connection_option_stays_as_written_and_is_listed() -> None:
    config = parse_config(textwrap.dedent(CONFIG.format(state="cdc", table="public.t")), "t.yaml", environ={},
                          offline=True)
    assert config.sinks["aurora"].options["dsn"] == "${DATABASE_URL}"
    assert config.unresolved == (f"sinks.aurora.dsn: {UNSET}",)


@pytest.mark.parametrize("state, table, where", [
    ("${STATE}", "public.t", "sinks.aurora.state_schema"),  # the DDL names it: not only a connection needs it
    ("cdc", "${SCHEMA}.t", "routes.r.table"),                # routes are never connection options
])
def test_offline_an_unset_variable_elsewhere_is_still_an_error(state: str, table: str, where: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config(textwrap.dedent(CONFIG.format(state=state, table=table)), "t.yaml", environ={}, offline=True)
    name = (state + table).split("${")[1].split("}")[0]
    assert raised.value.errors == [f"t.yaml: {where}: environment variable {name} is not set (referenced as ${{{name}}})"]


def test_outside_the_project_a_missing_config_says_how_to_name_one(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CDC_ROUTER_CONFIG", raising=False)
    result = CliRunner().invoke(app, ["validate"])
    assert (result.exit_code, result.stderr) == (
        1, f"config/tables.yaml: cannot read the configuration: No such file or directory (the default, relative "
           f"to {tmp_path}: pass --config PATH or set CDC_ROUTER_CONFIG=PATH)\n")
    # a path given explicitly needs no hint
    result = CliRunner().invoke(app, ["validate", "--config", "mine.yaml"])
    assert result.stderr == "mine.yaml: cannot read the configuration: No such file or directory\n"
