"""Route filters: exact DynamoDB comparisons, YAML 1.1 traps refused, paths as in ``from``,
combinations, and the disjointness that lets routes share a target table (issue 12, finding 5)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from factories import wire

from router import yamlfile
from router.filter_spec import FilterSpec
from router.filters import Filter, disjoint, pinned


def parse(text: str) -> tuple[Filter | None, list[str]]:
    """The filter written as YAML flow text after ``filter:``, and the errors reported for it."""
    doc = yamlfile.read(f"filter: {text}\n", {})
    errors: list[str] = []
    spec = FilterSpec(doc.plain, lambda path, message: errors.append(f"{yamlfile.dotted(path)}: {message}"))
    return spec.parse(doc.data["filter"], ("filter",)), errors


def selects(text: str, item: dict[str, Any]) -> bool:
    route_filter, errors = parse(text)
    assert errors == [] and route_filter is not None
    return route_filter(wire(item))


SELECTS = [
    # numbers compare as decimals: N "0.10" is 0.1 (a YAML float would never equal it)
    ("{attribute: rate, equals: 0.1}", {"rate": Decimal("0.10")}, True),
    ("{attribute: rate, equals: 7}", {"rate": Decimal("7.0")}, True),
    ("{attribute: rate, equals: 7}", {"rate": Decimal("7.5")}, False),
    # strings are strings: S "7" is not the number 7
    ("{attribute: rate, equals: 7}", {"rate": "7"}, False),
    ("{attribute: code, equals: '010'}", {"code": "010"}, True),
    ("{attribute: flag, equals: true}", {"flag": True}, True),
    ("{attribute: flag, equals: 'yes'}", {"flag": "yes"}, True),
    # in: any of the values
    ("{attribute: kind, in: [staff, contractor]}", {"kind": "contractor"}, True),
    ("{attribute: kind, in: [staff, contractor]}", {"kind": "intern"}, False),
    # begins_with on strings only
    ("{attribute: sk, begins_with: 'ORDER#'}", {"sk": "ORDER#1"}, True),
    ("{attribute: sk, begins_with: '1'}", {"sk": 12}, False),
    # exists: an attribute holding NULL exists, an absent one does not
    ("{attribute: deletedAt, exists: false}", {}, True),
    ("{attribute: deletedAt, exists: true}", {"deletedAt": None}, True),
    ("{attribute: deletedAt, exists: false}", {"deletedAt": "2024"}, False),
    # a dotted attribute is a map path, as in `from`; a list names an attribute with a dot in it
    ("{attribute: meta.type, equals: order}", {"meta": {"type": "order"}}, True),
    ("{attribute: meta.type, equals: order}", {"meta.type": "order"}, False),
    ("{attribute: [meta.type], equals: order}", {"meta.type": "order"}, True),
    # combinations
    ("{all: [{attribute: kind, equals: staff}, {attribute: level, in: [1, 2]}]}", {"kind": "staff", "level": 2}, True),
    ("{all: [{attribute: kind, equals: staff}, {attribute: level, in: [1, 2]}]}", {"kind": "staff", "level": 3}, False),
    ("{any: [{attribute: kind, equals: staff}, {attribute: sk, begins_with: A}]}", {"kind": "x", "sk": "AB"}, True),
    ("{not: {attribute: kind, equals: staff}}", {"kind": "staff"}, False),
    ("{not: {attribute: kind, equals: staff}}", {}, True),
]


@pytest.mark.parametrize("text, item, selected", SELECTS)
def test_filter_compares_dynamodb_values_exactly(text: str, item: dict[str, Any], selected: bool) -> None:
    assert selects(text, item) is selected


REFUSED = [
    # YAML 1.1 booleans
    ("{attribute: a, equals: yes}", "filter.equals: ambiguous value yes: YAML 1.1 reads yes as the boolean true; "
                                    "quote it ('yes') to compare with the text, or write true for a boolean"),
    ("{attribute: a, in: [x, off]}", "filter.in.1: ambiguous value off: YAML 1.1 reads off as the boolean false; "
                                     "quote it ('off') to compare with the text, or write false for a boolean"),
    ("{attribute: a, equals: On}", "filter.equals: ambiguous value On: YAML 1.1 reads On as the boolean true; "
                                   "quote it ('On') to compare with the text, or write true for a boolean"),
    # octal, hexadecimal, sexagesimal and underscores
    ("{attribute: a, equals: 010}", "filter.equals: ambiguous value 010: YAML 1.1 reads 010 as the number 8; "
                                    "quote it ('010') to compare with the text, or write 8 for the number"),
    ("{attribute: a, equals: 0x1F}", "filter.equals: ambiguous value 0x1F: YAML 1.1 reads 0x1F as the number 31; "
                                     "quote it ('0x1F') to compare with the text, or write 31 for the number"),
    ("{attribute: a, equals: 1:30}", "filter.equals: ambiguous value 1:30: YAML 1.1 reads 1:30 as the number 90; "
                                     "quote it ('1:30') to compare with the text, or write 90 for the number"),
    # dates, null, infinity, and a YAML 1.2 number that YAML 1.1 reads as text
    ("{attribute: a, equals: 2024-01-01}", "filter.equals: ambiguous value 2024-01-01: YAML reads it as a date; "
                                           "quote it ('2024-01-01') to compare with the text"),
    ("{attribute: a, equals: null}", "filter.equals: ambiguous value null: YAML reads it as null (no value); "
                                     "quote it ('null') to compare with the text, or use exists: false for items "
                                     "without the attribute"),
    ("{attribute: a, equals: .inf}", "filter.equals: ambiguous value .inf: YAML 1.1 reads .inf as the number inf; "
                                     "quote it ('.inf') to compare with the text"),
    ("{attribute: a, equals: 1e3}", "filter.equals: ambiguous value 1e3: 1e3 is text in YAML 1.1 but a number in "
                                    "YAML 1.2; quote it ('1e3') to compare with the text, or write the number with a "
                                    "decimal point (1.0e3) or in full"),
    ("{attribute: a, exists: yes}", "filter.exists: invalid value True (expected true or false)"),
    # shapes
    ("{attribute: a}", "filter: needs exactly one condition (allowed: attribute with one of equals, in, begins_with, "
                       "exists; or one of all, any, not)"),
    ("{attribute: a, equals: 1, begins_with: x}", "filter: needs exactly one condition (allowed: attribute with one "
                                                  "of equals, in, begins_with, exists; or one of all, any, not)"),
    ("{attribute: 'a.', equals: 1}", "filter.attribute: invalid attribute path 'a.': empty name (expected name, "
                                     "map.name, or a list of names such as [meta.type] for a name with a dot)"),
    ("{all: []}", "filter.all: expected a non-empty list of filters, got []"),
    ("{any: [{attribute: a, equals: x}], attribute: b}", "filter: any must be the only key of its mapping "
                                                         "(found: any, attribute)"),
]


@pytest.mark.parametrize("text, error", REFUSED)
def test_ambiguous_or_malformed_filters_are_refused(text: str, error: str) -> None:
    route_filter, errors = parse(text)
    assert (route_filter, errors) == (None, [error])


DISJOINT = [
    ("{attribute: kind, equals: staff}", "{attribute: kind, equals: contractor}", True),
    ("{attribute: kind, in: [a, b]}", "{attribute: kind, in: [b, c]}", False),
    ("{attribute: kind, equals: staff}", "{attribute: type, equals: contractor}", False),
    ("{attribute: sk, begins_with: 'ORDER#'}", "{attribute: sk, begins_with: 'ITEM#'}", True),
    ("{attribute: sk, begins_with: 'ORDER#'}", "{attribute: sk, begins_with: 'ORD'}", False),
    ("{attribute: sk, begins_with: 'ORDER#'}", "{attribute: sk, equals: 'ITEM#1'}", True),
    ("{attribute: kind, exists: false}", "{attribute: kind, equals: staff}", True),
    ("{attribute: kind, equals: staff}", "{not: {attribute: kind, equals: staff}}", True),
    ("{all: [{attribute: a, equals: 1}, {attribute: kind, equals: x}]}", "{attribute: kind, equals: y}", True),
    ("{any: [{attribute: kind, equals: x}, {attribute: kind, equals: z}]}", "{attribute: kind, equals: y}", True),
    ("{any: [{attribute: kind, equals: x}, {attribute: a, equals: z}]}", "{attribute: kind, equals: y}", False),
]


@pytest.mark.parametrize("first, second, expected", DISJOINT)
def test_disjoint_filters(first: str, second: str, expected: bool) -> None:
    a, b = parse(first)[0], parse(second)[0]
    assert a is not None and b is not None
    assert disjoint(a, b) is expected and disjoint(b, a) is expected


def test_pinned_attributes() -> None:
    route_filter = parse("{all: [{attribute: sk, equals: PROFILE}, {attribute: kind, in: [a, b]}]}")[0]
    assert route_filter is not None and pinned(route_filter) == {"sk": ("S", "PROFILE")}
