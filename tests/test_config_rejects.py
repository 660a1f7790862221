"""Configurations that cannot converge are refused by validate, with the file, route, key and reason
(issue 12: shared target tables, key columns, identifiers and key types)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_config import SINK_TYPES, config, load_errors

from operations.assemble import load_config
from router.needs import notes

STAFF = "filter: {attribute: kind, equals: staff}"


def second(filter_: str = "{attribute: kind, equals: contractor}", source: str = "Employees",
           columns: str = "{Id: {type: bigint}}", key: str = "[Id]") -> str:
    """A second route into public.Employees."""
    return (f"contractors: {{source: {source}, sink: mem, table: public.Employees, key: {key}, columns: {columns}, "
            f"filter: {filter_}}}")


REJECTED = [
    # finding 1: two source tables into one target; their SequenceNumbers cannot be compared
    pytest.param(config(route=(STAFF,), routes=(second(source="Contractors"),)),
                 ["FILE: routes.contractors.source: public.Employees is also written by route 'employees': its source "
                  "is DynamoDB table 'Employees', and changes of two tables cannot be ordered against each other "
                  "(their SequenceNumbers are not comparable): give each source table a target table of its own"],
                 id="two-source-tables"),
    # finding 1: filters that may select the same item (one route has none)
    pytest.param(config(routes=(second(),)),
                 ["FILE: routes.contractors.filter: public.Employees is also written by route 'employees': their "
                  "filters may select the same item (every item / kind = 'contractor'); routes sharing a table need "
                  "filters that never select the same item: equals/in on one attribute with no common value, "
                  "begins_with prefixes that do not overlap, or exists: true against false"],
                 id="overlapping-filters"),
    pytest.param(config(route=(STAFF,), routes=(second("{attribute: level, equals: 1}"),)),
                 ["FILE: routes.contractors.filter: public.Employees is also written by route 'employees': their "
                  "filters may select the same item (kind = 'staff' / level = 1); routes sharing a table need "
                  "filters that never select the same item: equals/in on one attribute with no common value, "
                  "begins_with prefixes that do not overlap, or exists: true against false"],
                 id="filters-on-two-attributes"),
    # finding 1: the same key names read from other attributes: one item would be two rows
    pytest.param(config(route=(STAFF,), routes=(second(columns="{Id: {from: empNo, type: bigint}}"),)),
                 ["FILE: routes.contractors.key: public.Employees is also written by route 'employees': its key "
                  "columns read other attributes or types (Id from Id as bigint against Id from empNo as bigint); "
                  "routes sharing a table must read the key alike, or one item would be two rows"],
                 id="shared-table-key-from-other-attribute"),
    # finding 1: other columns: a row moving between the routes would keep the other route's values
    pytest.param(config(route=(STAFF,), routes=(second(columns="{Id: {type: bigint}, Rate: {type: numeric}}"),)),
                 ["FILE: routes.contractors.columns: public.Employees is also written by route 'employees': with "
                  "columns ['Id']; routes sharing a table must write the same columns, or a row moving between them "
                  "would keep the other route's values"],
                 id="shared-table-other-columns"),
    # finding 4: a key column reading a path into a map cannot be a key attribute
    pytest.param(config(columns=("Id: {from: meta.id, type: bigint}",)),
                 ["FILE: routes.employees.columns.Id.from: key column 'Id' reads 'meta.id', a path into a map: key "
                  "columns must be read from the source table's key attributes (partition and sort key)"],
                 id="key-from-map-path"),
    # finding 7: empty identifiers
    pytest.param(config(table="'x.'"), ["FILE: routes.employees.table: invalid table 'x.': empty name "
                                        "(expected table or schema.table)"], id="empty-table-name"),
    pytest.param(config(table="'.t'"), ["FILE: routes.employees.table: invalid table '.t': empty name "
                                        "(expected table or schema.table)"], id="empty-schema-name"),
    # finding 7: key columns without equality
    *[pytest.param(config(columns=(f"Id: {{type: {type_}}}",)),
                   [f"FILE: routes.employees.columns.Id.type: a key column cannot be of type {shown}: it has no "
                    "equality operator or index in the target (use text, a number, uuid, a date or time, or bytea)"],
                   id=f"key-type-{shown}")
      for type_, shown in (("json", "json"), ("jsonb", "jsonb"), ('"text[]"', "text[]"), ('"bigint[]"', "bigint[]"))],
]


@pytest.mark.parametrize("text, errors", REJECTED)
def test_configurations_that_cannot_converge_are_refused(tmp_path: Path, text: str, errors: list[str]) -> None:
    assert load_errors(tmp_path, text) == errors


def test_routes_with_disjoint_filters_may_share_a_table(tmp_path: Path) -> None:
    # a single-table design merged back: staff and contractors, one table, the same key and columns
    text = config(route=(STAFF,), routes=(second(),))
    path = tmp_path / "tables.yaml"
    path.write_text(text)
    routes = load_config(path, environ={}, sink_types=SINK_TYPES).routes
    assert [r.table for r in routes.values()] == ["Employees", "Employees"]


DECLARED = [
    # a stream without NewImages feeds no route (finding 6, found by validate when the stream is declared)
    pytest.param(config(top=("sources: {Employees: {stream: KEYS_ONLY}}",)),
                 ["FILE: sources.Employees.stream: a KEYS_ONLY stream carries no NewImage, which every route needs: "
                  "enable the stream of Employees as NEW_AND_OLD_IMAGES (or NEW_IMAGE where no route's filter needs "
                  "the OldImage)"], id="keys-only-stream"),
    # a filter on a non-key attribute on a NEW_IMAGE stream (findings 2, 3)
    pytest.param(config(top=("sources: {Employees: {key: [Id], stream: NEW_IMAGE}}",), route=(STAFF,)),
                 ["FILE: routes.employees.filter: the stream of DynamoDB table 'Employees' is NEW_IMAGE, but the "
                  "route's filter reads kind (not key attributes): without the OldImage a MODIFY or REMOVE cannot tell "
                  "whether the item was the route's. Enable the stream as NEW_AND_OLD_IMAGES (or set deletes: "
                  "ignore)"], id="new-image-stream-filter"),
    # key columns from a non-key attribute (finding 4)
    pytest.param(config(top=("sources: {Employees: {key: userId}}",)),
                 ["FILE: routes.employees.key: key column(s) read non-key attribute(s) 'Id' of DynamoDB table "
                  "'Employees' (its key attributes: userId): key columns must be read from the table's key "
                  "attributes, which an item never changes"], id="key-not-a-key-attribute"),
    # a sort key no key column reads, not fixed by the filter: several items would share a row
    pytest.param(config(top=("sources: {Employees: {key: [Id, sk]}}",)),
                 ["FILE: routes.employees.key: key attribute(s) 'sk' of DynamoDB table 'Employees' are read by no "
                  "key column, so several items would share one row: add a key column from each, or select one value "
                  "of it with the filter (equals)"], id="sort-key-not-read"),
    pytest.param(config(top=("sources: {Employees: {stream: NEW_ALL}}",)),
                 ["FILE: sources.Employees.stream: invalid value 'NEW_ALL' (allowed: NEW_AND_OLD_IMAGES, NEW_IMAGE, "
                  "KEYS_ONLY, OLD_IMAGE)"], id="unknown-view-type"),
]


@pytest.mark.parametrize("text, errors", DECLARED)
def test_declared_sources_are_checked_by_validate(tmp_path: Path, text: str, errors: list[str]) -> None:
    assert load_errors(tmp_path, text) == errors


def test_validate_says_what_it_cannot_know(tmp_path: Path) -> None:
    path = tmp_path / "tables.yaml"
    # GIVEN a filtered route of an undeclared table WHEN validated THEN the notes say what records must show
    path.write_text(config(route=(STAFF,)))
    assert notes(load_config(path, environ={}, sink_types=SINK_TYPES)) == [
        "route employees: key read from Id, which must be the key attributes of DynamoDB table Employees (declare "
        "them under sources: to check now; otherwise the first record whose Keys differ stops the batch)",
        "route employees: its filter reads kind, so the stream of Employees must be NEW_AND_OLD_IMAGES: on a "
        "NEW_IMAGE stream a MODIFY or REMOVE cannot tell whether the item was this route's, and the batch stops "
        "there (declare the stream under sources: to check now)"]
    # AND a declared table, with a pinned sort key and the images the filter needs, leaves nothing unsaid
    path.write_text(config(top=("sources: {Employees: {key: [Id, sk], stream: NEW_AND_OLD_IMAGES}}",),
                           route=("filter: {all: [{attribute: kind, equals: staff}, {attribute: sk, equals: P}]}",)))
    assert notes(load_config(path, environ={}, sink_types=SINK_TYPES)) == []
