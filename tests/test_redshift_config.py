"""tables.yaml with Redshift sinks: what loads, what is refused (and how it reads), and a route
moved from Aurora to the warehouse by one line."""

from __future__ import annotations

import difflib
import re
from pathlib import Path

import pytest
from factories import as_yaml, postgres, redshift, route, tables

from operations.assemble import parse_config
from router.errors import ConfigError
from router.model import Config
from sinks.redshift import RedshiftSink

CONFIG = """
version: 1
sinks:
  aurora:
    type: postgres
    dsn: postgresql://localhost/test
  warehouse:
    type: redshift
{options}
routes:
  r:
    source: T
    sink: {sink}
    table: t
    key: [id]
    columns:
      id: {{type: bigint}}
{columns}
"""
SERVERLESS = "    workgroup: analytics\n    database: dev"


def load(options: str = SERVERLESS, sink: str = "warehouse", columns: str = "", more: str = "") -> Config:
    return parse_config(CONFIG.format(options=options, sink=sink, columns=columns) + more, "tables.yaml")


@pytest.mark.parametrize("options, sink, columns, errors", [
    # neither Serverless nor provisioned
    ("    database: dev", "warehouse", "", [
        "tables.yaml: sinks.warehouse.cluster_identifier: required key is missing",
        "tables.yaml: sinks.warehouse.workgroup: required key is missing"]),
    # both
    (SERVERLESS + "\n    cluster_identifier: reporting", "warehouse", "", [
        "tables.yaml: sinks.warehouse.cluster_identifier: 'workgroup' must not be present with 'cluster_identifier'",
        "tables.yaml: sinks.warehouse.workgroup: 'cluster_identifier' must not be present with 'workgroup'"]),
    # db_user is for provisioned clusters only
    (SERVERLESS + "\n    db_user: loader", "warehouse", "", [
        "tables.yaml: sinks.warehouse.db_user: 'secret_arn', 'workgroup' must not be present with 'db_user'"]),
    ("    workgroup: analytics", "warehouse", "", ["tables.yaml: sinks.warehouse.database: required key is missing"]),
    (SERVERLESS + "\n    distribution: even", "warehouse", "", [
        "tables.yaml: sinks.warehouse.distribution: invalid value 'even' (allowed: key, auto)"]),
    # DECIMAL holds 38 digits on Redshift
    (SERVERLESS, "warehouse", '      amount: {type: "numeric(50,2)"}', [
        "tables.yaml: routes.r.columns.amount.type: invalid type 'numeric(50,2)': this sink stores at most 38 digits "
        "(numeric(p,s) with p <= 38)"]),
    # identifiers: 127 bytes on Redshift
    (SERVERLESS, "warehouse", f"      {'c' * 128}: {{type: text}}", [
        f"tables.yaml: routes.r.columns.{'c' * 128}: identifier '{'c' * 128}' is 128 bytes long "
        "(at most 127 allowed by the sink)"]),
    # ... 63 on Postgres
    (SERVERLESS, "aurora", f"      {'c' * 100}: {{type: text}}", [
        f"tables.yaml: routes.r.columns.{'c' * 100}: identifier '{'c' * 100}' is 100 bytes long "
        "(at most 63 allowed by the sink)"]),
    # Redshift folds names to lower case: Id and id are one column
    (SERVERLESS, "warehouse", "      Id: {type: bigint}", [
        "tables.yaml: routes.r.columns.Id: 'Id' and 'id' are one column (the sink folds identifiers to lower case)"]),
    # ... and _CDC_VERSION is the version column
    (SERVERLESS, "warehouse", "      _CDC_VERSION: {type: text}", [
        "tables.yaml: routes.r.columns._CDC_VERSION: column name '_CDC_VERSION' is reserved for cdc-router's "
        "bookkeeping (the sink folds identifiers to lower case)"]),
])
def test_invalid_redshift_configs(options: str, sink: str, columns: str, errors: list[str]) -> None:
    with pytest.raises(ConfigError) as raised:
        load(options, sink, columns)
    assert sorted(raised.value.errors) == sorted(errors)  # the order within one sink entry is not part of the contract


SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:rs"


@pytest.mark.parametrize("options, target", [
    # Serverless, as the Lambda's IAM identity
    (SERVERLESS, {"WorkgroupName": "analytics", "Database": "dev"}),
    # Serverless, with a secret's credentials
    (SERVERLESS + f"\n    secret_arn: {SECRET}", {"WorkgroupName": "analytics", "Database": "dev", "SecretArn": SECRET}),
    # a provisioned cluster, as a database user (temporary credentials)
    ("    cluster_identifier: reporting\n    database: dev\n    db_user: loader",
     {"ClusterIdentifier": "reporting", "Database": "dev", "DbUser": "loader"}),
    # a provisioned cluster, as the Lambda's IAM identity
    ("    cluster_identifier: reporting\n    database: dev", {"ClusterIdentifier": "reporting", "Database": "dev"}),
])
def test_valid_ways_to_connect(options: str, target: dict[str, str]) -> None:
    # GIVEN a column name of 100 bytes: too long for Postgres, fine on Redshift
    config = load(options, columns=f"      {'c' * 100}: {{type: numeric}}")
    assert [c.name for c in config.routes["r"].columns] == ["id", "c" * 100]
    # THEN every Data API request the sink makes names the workgroup or cluster, database and credentials
    sink = RedshiftSink(config.sinks["warehouse"], list(config.routes.values()))
    assert sink.transport.target == target


SECOND_ROUTE = """
  r2:
    source: T
    sink: {sink}
    table: t
    key: [id]
    columns:
      id: {{type: bigint}}
      b: {{type: text}}
"""


@pytest.mark.parametrize("sink", ["aurora", "warehouse"])
def test_routes_sharing_a_table_write_the_same_columns(sink: str) -> None:
    # a row moving between the routes would keep the other route's values (Postgres) or lose them (Redshift)
    with pytest.raises(ConfigError) as raised:
        load(sink=sink, columns="      a: {type: text}", more=SECOND_ROUTE.format(sink=sink))
    assert raised.value.errors == [
        "tables.yaml: routes.r2.columns: public.t is also written by route 'r': with columns ['a', 'id']; routes "
        "sharing a table must write the same columns, or a row moving between them would keep the other route's "
        "values"]


def test_names_that_differ_only_in_case_are_distinct_on_postgres() -> None:
    load(sink="aurora", columns="      Id: {type: bigint}\n      _CDC_VERSION: {type: text}")


BINARY_KEY = """
  blobs:
    source: Blobs
    sink: warehouse
    table: blobs
    key: [k]
    columns:
      k: {type: bytea}
"""


def test_a_binary_or_super_key_cannot_be_distkey_and_sortkey() -> None:
    # GIVEN a DynamoDB B-type key as bytea (VARBYTE), with distribution: key (a jsonb key is refused on any sink)
    with pytest.raises(ConfigError) as raised:
        load(more=BINARY_KEY)
    assert raised.value.errors == [
        f"tables.yaml: routes.blobs.key.{index}: key column {name!r} is {kind} on Redshift, which cannot be a DISTKEY "
        "or SORTKEY (distribution: key puts both on the key); set distribution: auto on sink 'warehouse', or key "
        "the route on another column" for index, name, kind in ((0, "k", "VARBYTE"),)]
    load(SERVERLESS + "\n    distribution: auto", more=BINARY_KEY)  # Redshift chooses: no DISTKEY, no SORTKEY


def test_numeric_19_is_a_128_bit_decimal() -> None:
    # DECIMAL(19,s) is 64-bit on Redshift: 9223372036854775807 unscaled at most, so 99999999999999999.99 fails
    config = parse_config(CONFIG.format(options=SERVERLESS, sink="warehouse", columns='      amount: {type: "numeric(19,2)"}\n'
                                        '      small: {type: "numeric(18,0)"}'), "tables.yaml")
    [table] = RedshiftSink(config.sinks["warehouse"], list(config.routes.values())).ddl(config.routes["r"])[-1:]
    assert '"amount" DECIMAL(20,2)' in table and '"small" DECIMAL(18,0)' in table


def test_moving_a_route_to_the_warehouse_is_one_line() -> None:
    sinks = {"aurora": postgres("cdc"), "warehouse": redshift("cdc_rs")}
    aurora, warehouse = (as_yaml(tables({"employees": route("hr.Employees", sink=sink)}, sinks))
                         for sink in ("aurora", "warehouse"))
    changed = [line for line in difflib.ndiff(aurora.splitlines(), warehouse.splitlines()) if line[0] in "+-"]
    assert changed == ["-     sink: aurora", "+     sink: warehouse"]
    # offline: the routes are compared, nothing connects (so DATABASE_URL may be unset, as on a newcomer's machine)
    on_aurora, on_warehouse = (parse_config(text, "tables.yaml", environ={}, offline=True).routes["employees"]
                               for text in (aurora, warehouse))
    described = [[(c.name, c.path, c.type.name, c.fallback) for c in route.columns] for route in (on_aurora, on_warehouse)]
    assert on_warehouse.sink == "warehouse" and described[0] == described[1]


def test_the_shipped_redshift_example_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    text = (Path(__file__).parent.parent / "config" / "tables.yaml").read_text()
    monkeypatch.setenv("DATABASE_URL", "postgresql://localhost/test")
    # GIVEN the commented warehouse sink and route WHEN uncommented THEN the file loads
    lines, uncommented, inside = text.splitlines(), [], False
    for line in lines:
        start = re.match(r"^  # (warehouse|employees_warehouse):$", line)
        inside = bool(start) or (inside and line.startswith("  #   "))
        uncommented.append(re.sub(r"^  # ", "  ", line) if inside else line)
    config = parse_config("\n".join(uncommented), "config/tables.yaml")
    assert config.sinks["warehouse"].type == "redshift"
    assert [r.sink for r in config.routes_for("Employees")] == ["aurora", "warehouse"]
    # THEN its sink reaches the workgroup as written, and its route's table is distributed on the key
    employees = config.routes["employees_warehouse"]
    sink = RedshiftSink(config.sinks["warehouse"], [employees])
    assert sink.transport.target == {"WorkgroupName": "analytics", "Database": "dev"}
    assert sink.ddl(employees)[-1].endswith('PRIMARY KEY ("Id")\n) DISTKEY ("Id") SORTKEY ("Id")')


@pytest.mark.parametrize("options, user", [
    (SERVERLESS, '"IAMR:<the Lambda role\'s name>"'),  # the Data API maps the role to IAMR:<role name>
    ("    cluster_identifier: reporting\n    database: dev\n    db_user: loader", '"loader"'),
])
def test_the_schema_command_prints_the_grants_the_database_user_needs(tmp_path: Path, options: str,
                                                                      user: str) -> None:
    from click.testing import CliRunner

    from handlers.cli import app
    path = tmp_path / "tables.yaml"
    path.write_text(CONFIG.format(options=options, sink="warehouse", columns="").replace("table: t", "table: hr.T"))
    result = CliRunner().invoke(app, ["schema", "--config", str(path)])
    assert result.exit_code == 0, result.output
    grants = [line for line in result.output.splitlines() if line.startswith("GRANT")]
    assert grants == [f"GRANT TEMP ON DATABASE \"dev\" TO {user};",
                      f"GRANT USAGE ON SCHEMA \"cdc_router\" TO {user};", f"GRANT USAGE ON SCHEMA \"hr\" TO {user};",
                      *(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {user};"
                        for table in ('"cdc_router"."tombstones"', '"cdc_router"."dead_letters"', '"hr"."T"'))]
