"""tables.yaml validation: every bad file fails at load with exact "FILE: dotted.path: message" lines.

Each case builds a small file around one mistake (a memory sink, which only the tests
register (memory_sink.py), and an ``employees`` route unless the case says otherwise),
loads it from disk, and compares the whole list of messages. ``FILE`` in an expected message stands for the path of the loaded file.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from memory_sink import SINK_TYPES

from operations.assemble import load_config
from router.errors import ConfigError
from router.model import MISSING

ROOT = Path(__file__).resolve().parent.parent
TYPES = ("text, varchar(n), smallint, integer, bigint, numeric[(p[,s])], real, double precision, boolean, date, "
         "timestamp, timestamptz, uuid, json, jsonb, bytea, or an array of a scalar type such as text[]")
QUOTE_HINT = '(quote values with [ ] { } : # in them, e.g. type: "text[]")'
ROUTE_KEYS = ("auto, columns, deletes, extras, filter, key, kinesis, log_records, mode, on_error, on_new_attribute, sink, "
              "source, table, ttl_deletes, version")
COLUMN_KEYS = "default, epoch, fallback, from, mask, type"


def config(*, columns: Iterable[str] = ("Id: {type: bigint}",), sink: str = "mem", key: str = "[Id]",
           table: str = "public.Employees", route: Iterable[str] = (), top: Iterable[str] = (),
           sinks: Iterable[str] = ("mem: {type: memory}",), routes: Iterable[str] = ()) -> str:
    """A tables.yaml with one route ``employees``; line 11 is the first column, line 12 the second."""
    def indent(lines: Iterable[str], width: int) -> list[str]:
        return [" " * width + line for line in lines]

    return "\n".join([
        "version: 1", *top,
        "sinks:", *indent(sinks, 2),
        "routes:",
        "  employees:",
        "    source: Employees",
        f"    sink: {sink}",
        f"    table: {table}",
        f"    key: {key}",
        "    columns:", *indent(columns, 6), *indent(route, 4),
        *indent(routes, 2),
    ]) + "\n"


def load_errors(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> list[str]:
    """Load ``text`` from a file; return its error messages with the file's path shown as FILE."""
    path = tmp_path / "tables.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={} if environ is None else environ, sink_types=SINK_TYPES)
    assert str(caught.value) == "\n".join(caught.value.errors)
    return [message.replace(str(path), "FILE") for message in caught.value.errors]


BAD_FILES = [
    # a type name with a typo: the message lists every type that is allowed
    pytest.param(config(columns=("Id: {type: bigint}", "Name: {from: empName, type: varchar20}")), {},
                 [f"FILE: routes.employees.columns.Name.type: unknown type 'varchar20' (expected {TYPES})"],
                 id="unknown-type"),
    # varchar without its length
    pytest.param(config(columns=("Id: {type: varchar}",)), {},
                 ["FILE: routes.employees.columns.Id.type: invalid type 'varchar': varchar needs a length, "
                  "e.g. varchar(20)"],
                 id="varchar-without-length"),
    # a type that takes no arguments, given one
    pytest.param(config(columns=("Id: {type: bigint}", 'N: {type: "integer(4)"}')), {},
                 ["FILE: routes.employees.columns.N.type: invalid type 'integer(4)': integer takes no arguments"],
                 id="arguments-to-integer"),
    # numeric precision beyond PostgreSQL's limit
    pytest.param(config(columns=("Id: {type: bigint}", 'N: {type: "numeric(1001)"}')), {},
                 ["FILE: routes.employees.columns.N.type: invalid type 'numeric(1001)': "
                  "need 1 <= p <= 1000 and 0 <= s <= p"],
                 id="numeric-precision-too-large"),
    # a type that is not a string at all
    pytest.param(config(columns=("Id: {type: bigint}", "N: {type: 12}")), {},
                 ["FILE: routes.employees.columns.N.type: invalid value 12 (expected a string)"],
                 id="type-not-a-string"),
    # an unknown option inside a column
    pytest.param(config(columns=("Id: {type: bigint, colour: red}",)), {},
                 [f"FILE: routes.employees.columns.Id.colour: unknown key (allowed: {COLUMN_KEYS})"],
                 id="unknown-column-key"),
    # an unknown option of a route
    pytest.param(config(route=("colour: red",)), {},
                 [f"FILE: routes.employees.colour: unknown key (allowed: {ROUTE_KEYS})"],
                 id="unknown-route-key"),
    # an unknown top-level key
    pytest.param(config(top=("colour: red",)), {},
                 ["FILE: colour: unknown key (allowed: routes, sinks, sources, unrouted, version)"],
                 id="unknown-top-level-key"),
    # an option the memory sink does not have
    pytest.param(config(sinks=("mem: {type: memory, dsn: x}",)), {},
                 ["FILE: sinks.mem.dsn: unknown key (allowed: mask_key, mask_secret, type)"],
                 id="unknown-sink-option"),
    # a route without its source table
    pytest.param(config().replace("    source: Employees\n", ""), {},
                 ["FILE: routes.employees.source: required key is missing"],
                 id="missing-source"),
    # a route without columns
    pytest.param(config(columns=()), {},
                 ["FILE: routes.employees.columns: must not be null"],
                 id="missing-columns"),
    # a file that is a list, not a mapping
    pytest.param("- 1\n- 2\n", {},
                 ["FILE: (top level): expected a mapping with version, sinks and routes"],
                 id="not-a-mapping"),
    # a future file version
    pytest.param(config().replace("version: 1", "version: 2"), {},
                 ["FILE: version: invalid value 2 (allowed: 1)"],
                 id="unsupported-version"),
    # deletes must be one of three words
    pytest.param(config(route=("deletes: maybe",)), {},
                 ["FILE: routes.employees.deletes: invalid value 'maybe' (allowed: hard, soft, ignore)"],
                 id="bad-deletes"),
    # on_error must be fail or dead_letter
    pytest.param(config(route=("on_error: ignore",)), {},
                 ["FILE: routes.employees.on_error: invalid value 'ignore' (allowed: fail, dead_letter)"],
                 id="bad-on-error"),
    # unrouted must be fail or skip
    pytest.param(config(top=("unrouted: drop",)), {},
                 ["FILE: unrouted: invalid value 'drop' (allowed: fail, skip)"],
                 id="bad-unrouted"),
    # an unknown sink type
    pytest.param(config(sinks=("mem: {type: mysql}",)), {},
                 ["FILE: sinks.mem.type: invalid value 'mysql' (allowed: postgres, redshift, memory)"],
                 id="unknown-sink-type"),
    # the key names a column the route does not have
    pytest.param(config(columns=("Name: {type: text}",)), {},
                 ["FILE: routes.employees.key.0: 'Id' is not a column of this route (columns: Name)"],
                 id="key-not-a-column"),
    # the second key column is the missing one: the index in the path says which
    pytest.param(config(key="[Id, Sk]"), {},
                 ["FILE: routes.employees.key.1: 'Sk' is not a column of this route (columns: Id)"],
                 id="second-key-not-a-column"),
    # a key column listed twice
    pytest.param(config(key="[Id, Id]"), {},
                 ["FILE: routes.employees.key: repeated column in key ['Id', 'Id']"],
                 id="repeated-key-column"),
    # an empty key
    pytest.param(config(key="[]"), {},
                 ["FILE: routes.employees.key: must not be empty"],
                 id="empty-key"),
    # two columns with one target name: YAML would keep the last one silently
    pytest.param(config(columns=("Id: {type: bigint}", "Id: {type: text}")), {},
                 ["FILE: routes.employees.columns: duplicate key 'Id' (line 12)"],
                 id="duplicate-column"),
    # two routes with one name: the second would replace the first
    pytest.param(config(routes=("employees: {source: Staff, sink: mem, table: staff, key: Id, columns: {Id: {}}}",)),
                 {}, ["FILE: routes: duplicate key 'employees' (line 12)"],
                 id="duplicate-route"),
    # a duplicate top-level key
    pytest.param(config(top=("version: 1",)), {},
                 ["FILE: (top level): duplicate key 'version' (line 2)"],
                 id="duplicate-top-level-key"),
    # a route that names a sink nobody defined
    pytest.param(config(sink="warehouse"), {},
                 ["FILE: routes.employees.sink: unknown sink 'warehouse' (defined sinks: mem)"],
                 id="unknown-sink"),
    # a column name of 64 ASCII bytes: one more than PostgreSQL keeps
    pytest.param(config(columns=("Id: {type: bigint}", "c" * 64 + ": {type: text}")), {},
                 [f"FILE: routes.employees.columns.{'c' * 64}: identifier '{'c' * 64}' is 64 bytes long "
                  "(at most 63 allowed by the sink)"],
                 id="column-name-64-bytes"),
    # 32 characters but 64 bytes in UTF-8: the limit is in bytes, not characters
    pytest.param(config(columns=("Id: {type: bigint}", "é" * 32 + ": {type: text}")), {},
                 [f"FILE: routes.employees.columns.{'é' * 32}: identifier '{'é' * 32}' is 64 bytes long "
                  "(at most 63 allowed by the sink)"],
                 id="column-name-64-utf8-bytes"),
    # four-byte characters: 16 of them are 64 bytes
    pytest.param(config(columns=("Id: {type: bigint}", "😀" * 16 + ": {type: text}")), {},
                 [f"FILE: routes.employees.columns.{'😀' * 16}: identifier '{'😀' * 16}' is 64 bytes long "
                  "(at most 63 allowed by the sink)"],
                 id="column-name-emoji"),
    # a table name that is too long
    pytest.param(config(table="public." + "t" * 64), {},
                 [f"FILE: routes.employees.table: identifier '{'t' * 64}' is 64 bytes long "
                  "(at most 63 allowed by the sink)"],
                 id="table-name-64-bytes"),
    # a schema name that is too long
    pytest.param(config(table="s" * 64 + ".Employees"), {},
                 [f"FILE: routes.employees.table: identifier '{'s' * 64}' is 64 bytes long "
                  "(at most 63 allowed by the sink)"],
                 id="schema-name-64-bytes"),
    # an extras column name that is too long
    pytest.param(config(route=("extras: " + "e" * 64,)), {},
                 [f"FILE: routes.employees.extras: identifier '{'e' * 64}' is 64 bytes long "
                  "(at most 63 allowed by the sink)"],
                 id="extras-name-64-bytes"),
    # a fallback longer than its varchar column
    pytest.param(config(columns=("Id: {type: bigint}", "Name: {type: varchar(2), fallback: NAME}")), {},
                 ["FILE: routes.employees.columns.Name.fallback: invalid value: 'NAME' does not fit varchar(2): "
                  "4 characters, at most 2 allowed"],
                 id="fallback-too-long"),
    # a default with a fraction for an integer column
    pytest.param(config(columns=("Id: {type: bigint}", "N: {type: integer, default: 1.5}")), {},
                 ["FILE: routes.employees.columns.N.default: invalid value: 1.5 does not fit integer: "
                  "not a whole number"],
                 id="default-fraction-into-integer"),
    # a default that is not a date
    pytest.param(config(columns=("Id: {type: bigint}", "D: {type: date, default: not-a-date}")), {},
                 ["FILE: routes.employees.columns.D.default: invalid value: 'not-a-date' does not fit date: "
                  "expected an ISO-8601 time or epoch seconds/milliseconds"],
                 id="default-not-a-date"),
    # a scalar default for an array column
    pytest.param(config(columns=("Id: {type: bigint}", 'Tags: {type: "text[]", default: x}')), {},
                 ["FILE: routes.employees.columns.Tags.default: invalid value: 'x' does not fit text[]: "
                  "expected a list or a set"],
                 id="default-scalar-for-array"),
    # a key column with a fallback would merge different items into one row
    pytest.param(config(columns=("Id: {type: bigint, fallback: 0}",)), {},
                 ["FILE: routes.employees.columns.Id: a key column cannot have a default or a fallback "
                  "(it would merge different items into one row)"],
                 id="key-column-with-fallback"),
    # the same for a default
    pytest.param(config(columns=("Id: {type: bigint, default: 1}",)), {},
                 ["FILE: routes.employees.columns.Id: a key column cannot have a default or a fallback "
                  "(it would merge different items into one row)"],
                 id="key-column-with-default"),
    # an unset variable where an empty value is allowed: one message naming the variable
    pytest.param(config(columns=("Id: {type: bigint}", 'Name: {type: text, fallback: "${NAME_FALLBACK}"}')), {},
                 ["FILE: routes.employees.columns.Name.fallback: environment variable NAME_FALLBACK is not set "
                  "(referenced as ${NAME_FALLBACK})"],
                 id="unset-env-var"),
    # the classic: DATABASE_URL not exported; one message for one cause (not also "must not be empty")
    pytest.param(config(sinks=("mem: {type: memory}", "aurora: {type: postgres, dsn: '${DATABASE_URL}'}")), {},
                 ["FILE: sinks.aurora.dsn: environment variable DATABASE_URL is not set "
                  "(referenced as ${DATABASE_URL})"],
                 id="unset-database-url"),
    # ${VAR:-} expands to an empty string, which a dsn may not be
    pytest.param(config(sinks=("mem: {type: memory}", "aurora: {type: postgres, dsn: '${DATABASE_URL:-}'}")), {},
                 ["FILE: sinks.aurora.dsn: must not be empty"],
                 id="empty-default-for-dsn"),
    # a postgres sink with both credential sources
    pytest.param(config(sinks=("mem: {type: memory}", "aurora: {type: postgres, dsn: x, secret: dev/rds}")), {},
                 ["FILE: sinks.aurora.dsn: 'secret' must not be present with 'dsn'",
                  "FILE: sinks.aurora.secret: 'dsn' must not be present with 'secret'"],
                 id="dsn-and-secret"),
    # the version column is cdc-router's
    pytest.param(config(columns=("Id: {type: bigint}", "_cdc_version: {type: numeric}")), {},
                 ["FILE: routes.employees.columns._cdc_version: column name '_cdc_version' is reserved "
                  "for cdc-router's bookkeeping"],
                 id="reserved-version-column"),
    # and so is the soft-delete column
    pytest.param(config(columns=("Id: {type: bigint}", "_cdc_deleted_at: {type: timestamptz}")), {},
                 ["FILE: routes.employees.columns._cdc_deleted_at: column name '_cdc_deleted_at' is reserved "
                  "for cdc-router's bookkeeping"],
                 id="reserved-deleted-column"),
    # the extras column may not also be a mapped column
    pytest.param(config(columns=("Id: {type: bigint}", "attributes: {type: jsonb}"), route=("extras: attributes",)),
                 {}, ["FILE: routes.employees.extras: 'attributes' is already a column of this route"],
                 id="extras-is-a-column"),
    # a dotted path with an empty part
    pytest.param(config(columns=("Id: {type: bigint}", "City: {from: address..city}")), {},
                 ["FILE: routes.employees.columns.City.from: invalid attribute path 'address..city': empty name "
                  "(expected name, map.name, or a list of names such as [meta.type] for a name with a dot)"],
                 id="empty-path-part"),
    # a filter needs exactly one condition
    pytest.param(config(route=("filter: {attribute: kind, equals: a, begins_with: b}",)), {},
                 ["FILE: routes.employees.filter: needs exactly one condition (allowed: attribute with one of "
                  "equals, in, begins_with, exists; or one of all, any, not)"],
                 id="filter-two-conditions"),
    # two routes writing one table must agree on its key
    pytest.param(config(columns=("Id: {type: bigint}", "Name: {type: text}"), routes=(
        "names: {source: Employees, sink: mem, table: public.Employees, key: [Name], columns: {Name: {}}}",)), {},
                 ["FILE: routes.names.table: public.Employees is also written by route 'employees': with key ['Id'] "
                  "and deletes: hard; routes sharing a table must agree on both"],
                 id="shared-table-different-key"),
    # nor on why rows are deleted: ttl_deletes: soft adds _cdc_delete_reason, deletes: soft alone does not
    pytest.param(config(columns=("Id: {type: bigint}",), route=("deletes: soft", "ttl_deletes: soft"), routes=(
        "copy: {source: Employees, sink: mem, table: public.Employees, key: [Id], columns: {Id: {type: bigint}}, "
        "deletes: soft}",)), {},
                 ["FILE: routes.copy.ttl_deletes: public.Employees is also written by route 'employees': with "
                  "ttl_deletes: soft; routes sharing a table must agree on it"],
                 id="shared-table-different-delete-reason"),
    # broken YAML: the message points at the line and suggests quoting
    pytest.param(config(columns=("Id: [oops",)), {},
                 ['FILE: not valid YAML: while parsing a flow sequence in "FILE", line 11, column 11 '
                  "expected ',' or ']', but got '<stream end>' in \"FILE\", line 12, column 1 " + QUOTE_HINT],
                 id="yaml-syntax-error"),
    # unquoted numeric(12,2) in a {...} mapping: the comma splits it in two, and the message says to quote it
    pytest.param(config(columns=("Id: {type: bigint}", "Total: {type: numeric(12,2)}")), {},
                 [f"FILE: routes.employees.columns.Total.2): unknown key (allowed: {COLUMN_KEYS})",
                  "FILE: routes.employees.columns.Total.type: unknown type 'numeric(12': in a {...} mapping a comma "
                  'ends the value, so quote the type, e.g. type: "numeric(12,2)"'],
                 id="unquoted-numeric-in-flow-mapping"),
]


@pytest.mark.parametrize("text, environ, expected", BAD_FILES)
def test_bad_file_is_refused_with_exact_messages(tmp_path: Path, text: str, environ: dict[str, str],
                                                 expected: list[str]) -> None:
    # GIVEN a file with one mistake WHEN it is loaded THEN exactly these messages are reported
    assert sorted(load_errors(tmp_path, text, environ)) == sorted(expected)


def test_every_error_in_a_file_is_reported(tmp_path: Path) -> None:
    # GIVEN a file with mistakes at the top level, in a sink and in three routes
    text = config(
        top=("unrouted: drop",),
        sinks=("mem: {type: memory}", "aurora: {type: postgres, dsn: x, sslmode: sometimes}"),
        columns=("Id: {type: bigint}", "Name: {type: varchar20}"),
        routes=(
            "staff: {sink: mem, table: staff, key: [Id], columns: {Id: {}}, deletes: never}",
            "orders: {source: Orders, sink: mem, table: orders, key: [order_id], columns: {id: {}}}",
        ),
    )
    # WHEN it is loaded THEN every one of them is reported, not just the first
    assert sorted(load_errors(tmp_path, text)) == sorted([
        "FILE: unrouted: invalid value 'drop' (allowed: fail, skip)",
        "FILE: sinks.aurora.sslmode: invalid value 'sometimes' "
        "(allowed: disable, allow, prefer, require, verify-ca, verify-full)",
        f"FILE: routes.employees.columns.Name.type: unknown type 'varchar20' (expected {TYPES})",
        "FILE: routes.staff.source: required key is missing",
        "FILE: routes.staff.deletes: invalid value 'never' (allowed: hard, soft, ignore)",
        "FILE: routes.orders.key.0: 'order_id' is not a column of this route (columns: id)",
    ])


def test_a_schema_error_does_not_hide_other_errors_of_its_route(tmp_path: Path) -> None:
    # GIVEN one route with a misspelt type AND an undefined sink (two independent mistakes)
    text = config(sink="warehouse", columns=("Id: {type: bigint}", "Name: {type: varchar20}"))
    # WHEN it is loaded THEN both are reported, so that one deploy shows the operator everything to fix
    assert sorted(load_errors(tmp_path, text)) == sorted([
        f"FILE: routes.employees.columns.Name.type: unknown type 'varchar20' (expected {TYPES})",
        "FILE: routes.employees.sink: unknown sink 'warehouse' (defined sinks: mem)",
    ])


SECRET = "s3cr3t-Pa55w0rd"
DSN = f"postgresql://app:{SECRET}@db.internal:5432/prod"
SECRET_PLACES = [
    # the dsn of a sink whose other options are wrong, in a file with a route error too
    pytest.param(config(sinks=("mem: {type: memory}", "aurora: {type: postgres, dsn: '${DSN}', sslmode: sometimes, "
                                                      "colour: red}"),
                        columns=("Id: {type: bigint}", "Name: {type: varchar20}")),
                 id="dsn-beside-other-errors"),
    # an option with a disallowed value that came from a variable
    pytest.param(config(sinks=("mem: {type: memory}", "aurora: {type: postgres, dsn: x, sslmode: '${SECRET}'}")),
                 id="allowed-values-check"),
    # an option of the wrong type that came from a variable
    pytest.param(config(sinks=("mem: {type: memory}",
                               "aurora: {type: postgres, dsn: x, connect_timeout: '${SECRET}'}")),
                 id="type-check"),
    # a fallback from a variable that does not fit its column
    pytest.param(config(columns=("Id: {type: bigint}", "Name: {type: varchar(3), fallback: '${SECRET}'}")),
                 id="fallback-literal-check"),
    # a column type from a variable
    pytest.param(config(columns=("Id: {type: bigint}", "Name: {type: '${SECRET}'}")),
                 id="column-type-check"),
    # a sink name from a variable
    pytest.param(config(sink="${SECRET}"), id="sink-name-check"),
]


@pytest.mark.parametrize("text", SECRET_PLACES)
def test_an_expanded_value_never_appears_in_a_message(tmp_path: Path, text: str) -> None:
    # GIVEN a file whose error sits at (or beside) a value expanded from the environment
    environ = {"DSN": DSN, "SECRET": SECRET}
    # WHEN it is loaded
    errors = load_errors(tmp_path, text, environ)
    # THEN the error is reported, without the expanded value in it
    assert errors
    assert [message for message in errors if SECRET in message] == []


def test_env_references_are_expanded_with_defaults(tmp_path: Path) -> None:
    # GIVEN ${VAR} set, ${VAR:-default} unset and set, and a reference inside a longer string
    text = config(table="${TARGET_SCHEMA:-public}.${TARGET_TABLE}",
                  columns=("Id: {type: bigint}", "Name: {type: text, fallback: 'n/${NA:-a}'}",
                           "Dept: {type: text, default: '${DEPT:-none}'}"))
    path = tmp_path / "tables.yaml"
    path.write_text(text)
    # WHEN it is loaded
    loaded = load_config(path, environ={"TARGET_TABLE": "staff", "DEPT": "Eng"}, sink_types=SINK_TYPES)
    # THEN set variables win over defaults, unset ones take their default
    route = loaded.routes["employees"]
    assert route.target == ("public", "staff")
    assert {c.name: (c.default, c.fallback) for c in route.columns[1:]} == {
        "Name": (MISSING, "n/a"), "Dept": ("Eng", MISSING)}


def test_identifier_of_exactly_63_bytes_is_accepted(tmp_path: Path) -> None:
    # GIVEN column names of 63 bytes: ASCII, and 31 two-byte characters plus one ASCII
    names = ["c" * 63, "é" * 31 + "a"]
    path = tmp_path / "tables.yaml"
    path.write_text(config(columns=("Id: {type: bigint}", *(f"{n}: {{type: text}}" for n in names))))
    # WHEN it is loaded THEN both are columns
    assert [c.name for c in load_config(path, environ={}, sink_types=SINK_TYPES).routes["employees"].columns] == ["Id", *names]


def test_the_product_refuses_the_tests_memory_sink(tmp_path: Path) -> None:
    # GIVEN a file with a memory sink WHEN loaded with the product's sink types THEN it is refused
    path = tmp_path / "tables.yaml"
    path.write_text(config(), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert caught.value.errors == [f"{path}: sinks.mem.type: invalid value 'memory' (allowed: postgres, redshift)"]


def test_a_file_that_cannot_be_read(tmp_path: Path) -> None:
    # GIVEN a path with no file WHEN it is loaded THEN the message names it
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "missing.yaml", environ={})
    assert caught.value.errors == [f"{tmp_path / 'missing.yaml'}: cannot read the configuration: "
                                   "No such file or directory"]


def test_shipped_tables_yaml_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the shipped config/tables.yaml, whose credentials come from a Secrets Manager secret
    monkeypatch.delenv("DB_SECRET", raising=False)
    # WHEN it is loaded
    loaded = load_config(ROOT / "config" / "tables.yaml")
    # THEN it holds the reference article's route and the orders route, and names the default secret
    assert loaded.sinks["aurora"].options["secret"] == "cdc-router/aurora"
    assert "dsn" not in loaded.sinks["aurora"].options
    assert set(loaded.routes) == {"employees", "orders"}
    employees = loaded.routes["employees"]
    assert (employees.source, employees.target, employees.key, employees.deletes, employees.on_error) == (
        "Employees", ("public", "Employees"), ("Id",), "hard", "fail")
    assert [(c.name, c.source, c.type.name, c.fallback) for c in employees.columns] == [
        ("Id", "Id", "bigint", MISSING), ("Name", "empName", "varchar(20)", "NA"),
        ("Department", "empDepartment", "varchar(10)", "NA")]
    orders = loaded.routes["orders"]
    assert (orders.target, orders.key, orders.extras, orders.deletes, orders.on_error) == (
        ("sales", "orders"), ("order_id",), "attributes", "soft", "dead_letter")
    types: dict[str, Any] = {c.name: c.type.name for c in orders.columns}
    assert types["total"] == "numeric(12,2)" and types["tags"] == "text[]" and types["city"] == "text"
