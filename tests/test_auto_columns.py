"""columns: auto and on_new_attribute (issue 15), above the database: the config, the column each
DynamoDB type becomes, names the sink would refuse, and where a value goes when its type changes.

The sinks' side (the ALTER in the batch's transaction, concurrent adders, the record of added
columns, verify) is in test_auto_columns_sql.py.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from factories import MEMORY, Stream, as_yaml, event, postgres, route, tables
from memory_sink import parse, pipeline_of

from router.auto import column_name
from router.errors import ConfigError
from router.model import Capabilities
from router.modes import NewAttribute

SESSIONS = Stream("Sessions", key=("userId",))


def auto_route(**options: Any) -> dict[str, Any]:
    return route("sessions", source="Sessions", sink="mem", key=("userId",), columns="auto", **options)  # type: ignore[arg-type]


def pipeline(**options: Any) -> Any:
    return pipeline_of(tables({"sessions": auto_route(**options)}, {"mem": MEMORY}))


def rows(built: Any) -> list[dict[str, Any]]:
    sink = built.sinks["mem"]
    return [dict(row) for _, row in sorted(sink.rows(built.config.routes["sessions"]).items())]


# -- the config ---------------------------------------------------------------------------------

def test_columns_auto_lists_the_key_as_text_and_adds_the_rest() -> None:
    # GIVEN columns: auto and nothing else; WHEN loaded; THEN the key is a text column, new attributes add columns
    config = parse(tables({"sessions": auto_route()}, {"mem": MEMORY}))
    sessions = config.routes["sessions"]
    assert (sessions.auto, sessions.on_new_attribute) == (True, NewAttribute.ADD_COLUMN)
    assert [(c.name, c.type.name) for c in sessions.columns] == [("userId", "text")]


@pytest.mark.parametrize(("options", "default"), [
    ({}, NewAttribute.IGNORE),                              # no extras column: new attributes are left out
    ({"extras": "more"}, NewAttribute.EXTRAS),              # kept in extras, as before issue 15
    ({"auto": True}, NewAttribute.ADD_COLUMN),              # auto beside a mapping adds the rest
    ({"auto": True, "extras": "more"}, NewAttribute.ADD_COLUMN),  # extras then takes what no column can hold
])
def test_the_default_of_on_new_attribute(options: dict[str, Any], default: NewAttribute) -> None:
    config = parse(tables({"employees": route(sink="mem", **options)}, {"mem": MEMORY}))
    assert config.routes["employees"].on_new_attribute == default


@pytest.mark.parametrize(("options", "message"), [
    # add_column without auto: a route that lists its columns says nothing of a new column's name or type
    ({"on_new_attribute": "add_column"},
     "routes.employees.on_new_attribute: add_column needs columns: auto, or auto: true beside the columns mapping"),
    ({"on_new_attribute": "extras"},
     "routes.employees.on_new_attribute: extras needs an extras column: set extras: <column name> on the route"),
    # the extras column would never receive anything
    ({"on_new_attribute": "ignore", "extras": "more"},
     "routes.employees.on_new_attribute: ignore leaves the extras column 'more' always empty"),
    ({"columns": "all"}, "routes.employees.columns: invalid value 'all' (allowed: auto, or a mapping"),
    ({"columns": "auto", "auto": False}, "routes.employees.auto: auto: false contradicts columns: auto"),
    ({"on_new_attribute": "widen"}, "routes.employees.on_new_attribute: invalid value 'widen' (allowed: add_column, extras, ignore, dead_letter)"),
])
def test_contradictions_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(tables({"employees": route(sink="mem", **options)}, {"mem": MEMORY}))
    assert any(error.startswith(f"test.yaml: {message}") for error in caught.value.errors), caught.value.errors


def test_an_auto_route_cannot_share_its_table() -> None:
    # the columns it adds would keep their values when an item moves to the other route
    shop = {"a": route("t", source="Shop", sink="mem", columns="auto", filter={"attribute": "k", "equals": "a"}),
            "b": route("t", source="Shop", sink="mem", columns="auto", filter={"attribute": "k", "equals": "b"})}
    with pytest.raises(ConfigError, match="routes.b.columns: public.t is also written by route 'a': a route with "
                                          "columns: auto"):
        parse(tables(shop, {"mem": MEMORY}))


# -- what the transform writes ----------------------------------------------------------------------

EVERY_TYPE = {"s": "text", "n": Decimal("1.5"), "yes": True, "b": b"\x00\x01", "m": {"a": 1}, "l": [1, "x"],
              "ss": {"a", "b"}, "ns": {1, 2}, "bs": {b"\x01"}}


def test_every_dynamodb_type_becomes_its_column() -> None:
    # GIVEN an item with one attribute of each type; WHEN replicated; THEN one column each, typed from it
    built = pipeline()
    result = built.process(event([SESSIONS.insert({"userId": "u1", **EVERY_TYPE})]))
    assert result.failure is None
    added = {c.attribute: c.type for c in built.transforms["sessions"].auto.route().added}
    assert added == {"s": "text", "n": "numeric", "yes": "boolean", "b": "bytea", "m": "jsonb", "l": "jsonb",
                     "ss": "text[]", "ns": "numeric[]", "bs": "bytea[]"}
    assert result.stats["sessions"].upserted == 1


def test_columns_added_later_in_a_batch_are_null_in_its_earlier_rows() -> None:
    built = pipeline()
    result = built.process(event([SESSIONS.insert({"userId": "u1", "a": "x"}),
                                  SESSIONS.insert({"userId": "u2", "b": Decimal(2)})]))
    assert result.failure is None
    assert [(r["userId"], r["a"], r["b"]) for r in rows(built)] == [("u1", "x", None), ("u2", None, Decimal(2))]


def test_a_null_attribute_adds_no_column_until_a_typed_value_comes() -> None:
    built = pipeline()
    built.process(event([SESSIONS.insert({"userId": "u1", "later": None})]))
    assert built.transforms["sessions"].auto.route().added == ()
    built.process(event([SESSIONS.modify({"userId": "u1", "later": "now"})]))
    assert [c.attribute for c in built.transforms["sessions"].auto.route().added] == ["later"]


def test_a_value_of_another_type_goes_to_extras() -> None:
    # GIVEN a column typed text by the first value; WHEN a number comes; THEN it goes to extras, the column NULL
    built = pipeline(extras="more")
    built.process(event([SESSIONS.insert({"userId": "u1", "a": "x"}), SESSIONS.insert({"userId": "u2", "a": 5})]))
    assert [(r["a"], r["more"]) for r in rows(built)] == [("x", {}), (None, {"a": 5})]


@pytest.mark.parametrize(("on_error", "failed", "dead_letters"), [
    ("fail", 1, 0),          # the batch stops at the record; Lambda retries from it
    ("dead_letter", 0, 1),   # the record is set aside with the reason
])
def test_without_extras_a_value_of_another_type_is_on_error(on_error: str, failed: int, dead_letters: int) -> None:
    built = pipeline(on_error=on_error)
    result = built.process(event([SESSIONS.insert({"userId": "u1", "a": "x"}), SESSIONS.insert({"userId": "u2", "a": 5})]))
    assert (result.stats["sessions"].failed, len(built.sinks["mem"].dead_letters)) == (failed, dead_letters)
    reason = (result.failure.reason if result.failure else built.sinks["mem"].dead_letters[0]["error"])
    assert "attribute 'a': a N value does not fit its column 'a' (text)" in reason


def test_on_new_attribute_dead_letter_sets_the_record_aside_whatever_on_error() -> None:
    built = pipeline_of(tables({"employees": route(sink="mem", on_new_attribute="dead_letter")}, {"mem": MEMORY}))
    stream = Stream("Employees")
    result = built.process(event([stream.insert({"Id": 1, "empName": "a"}),
                                  stream.insert({"Id": 2, "empName": "b", "badge": "x"})]))
    assert result.failure is None
    assert [d["error"] for d in built.sinks["mem"].dead_letters] == [
        "attribute 'badge' has no column (on_new_attribute: dead_letter)"]


# -- names the sink would refuse -------------------------------------------------------------------

POSTGRES, REDSHIFT = Capabilities(), Capabilities(max_identifier_bytes=127, folds_identifiers=True)


@pytest.mark.parametrize(("attribute", "taken", "capabilities", "expected"), [
    ("name", set(), POSTGRES, "name"),                                  # as it is
    ("Name", {"name"}, POSTGRES, "Name"),                               # Postgres tells them apart
    ("Name", {"name"}, REDSHIFT, "Name_dcd1d522"),                      # Redshift folds Name to name
    ("x" * 64, set(), POSTGRES, "x" * 54 + "_7ce10097"),           # 64 bytes: cut to 63 with its hash
    ("x" * 64, set(), REDSHIFT, "x" * 64),                              # 127 bytes on Redshift
    ("é" * 40, set(), POSTGRES, "é" * 27 + "_84fe2e03"),           # cut on a character, not a byte
    ("_cdc_version", {"_cdc_version"}, POSTGRES, "_cdc_version_9f54fe5d"),  # a bookkeeping column's name
    ("tab\there", set(), POSTGRES, "tabhere_5b876593"),                 # not printable
])
def test_stand_in_names(attribute: str, taken: set[str], capabilities: Capabilities, expected: str) -> None:
    assert column_name(attribute, taken, capabilities) == expected


def test_a_stand_in_taken_too_gets_a_number() -> None:
    first = column_name("x" * 64, set(), POSTGRES)
    second = column_name("x" * 64, {first}, POSTGRES)
    assert second.endswith("_2") and second != first and len(second.encode()) <= 63


def test_validate_shows_what_an_auto_route_adds(tmp_path: Any) -> None:
    from click.testing import CliRunner

    from handlers.cli import app

    path = tmp_path / "tables.yaml"
    path.write_text(as_yaml(tables({"sessions": route("sessions", source="Sessions", sink="db", key=("userId",),
                                                      columns="auto", extras="more")},  # type: ignore[arg-type]
                                   {"db": postgres(dsn="postgresql://localhost/x")})))
    result = CliRunner().invoke(app, ["validate", "--config", str(path)], catch_exceptions=False)
    assert result.exit_code == 0
    assert "every other attribute (on_new_attribute: add_column)" in " ".join(result.output.split())
    assert "(values no added column can hold)" in result.output
