"""Defaults and fallbacks counted per route and column; a warning once per container when no record
of a batch had a column's attribute (issue 12, finding 11: a misspelled ``from`` with a fallback
replicated the fallback forever while validate, replay and verify all passed)."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import pytest
from factories import MEMORY, Stream, event, route, tables
from memory_sink import pipeline_of

from handlers.render import substitute_lines

MISSPELLED = {"Id": {"type": "bigint"}, "Name": {"from": "empNmae", "type": "varchar(20)", "fallback": "NA"},
              "Dept": {"from": "empDepartment", "default": "none"}, "Level": {"from": "level", "type": "integer",
                                                                              "fallback": 0}}


def test_defaults_and_fallbacks_are_counted_per_route_and_column(caplog: pytest.LogCaptureFixture) -> None:
    # GIVEN a route whose Name reads a misspelled attribute, with a fallback
    pipeline = pipeline_of(tables({"employees": route(sink="mem", columns=MISSPELLED)}, {"mem": MEMORY}))
    s = Stream("Employees")
    batch = [s.insert({"Id": 1, "empName": "Ann", "empDepartment": "Ops", "level": "high"}),  # level: no integer
             s.insert({"Id": 2, "empName": "Bo"}),                                            # no department
             s.modify({"Id": 1, "empName": "Ann", "empDepartment": "Ops", "level": 3}),
             s.remove({"Id": 2})]
    # WHEN a batch is processed (twice: the warning is once per container)
    with caplog.at_level(logging.WARNING):
        first = pipeline.process(event(batch))
        second = pipeline.process(event(batch))
    # THEN the stats count, per column, the rows that took the default or the fallback
    stats = first.stats["employees"]
    assert (stats.defaults, stats.fallbacks) == (Counter({"Dept": 1}), Counter({"Name": 3, "Level": 2}))
    assert second.stats["employees"].fallbacks == Counter({"Name": 3, "Level": 2})
    # AND replay prints them
    assert substitute_lines(first.stats) == ["route employees: defaults applied: Dept 1",
                                             "route employees: fallbacks applied: Level 2, Name 3"]
    # AND the column whose attribute no record had is named in one warning, not one per batch
    warnings = [r for r in caplog.records if "no record of the batch had the attribute" in r.getMessage()]
    assert [(r.route, r.column, r.attribute) for r in warnings] == [
        ("employees", "Name", "empNmae")]


def test_a_column_present_in_some_records_is_not_warned(caplog: pytest.LogCaptureFixture) -> None:
    pipeline = pipeline_of(tables({"employees": route(sink="mem")}, {"mem": MEMORY}))
    s = Stream("Employees")
    with caplog.at_level(logging.WARNING):
        pipeline.process(event([s.insert({"Id": 1, "empName": "A", "empDepartment": "x"}), s.insert({"Id": 2})]))
    assert not [r for r in caplog.records if "no record of the batch had the attribute" in r.getMessage()]


def test_verify_reports_substitutes(pg: Any, make_pipeline: Any) -> None:
    # GIVEN the Employees route in sync with its items, every Department a fallback
    from operations.verify import Verifier
    from operations.verify_postgres import PostgresComparison

    pipeline = make_pipeline(pg)
    route_ = pipeline.config.routes["employees"]
    items = [{"Id": {"N": "1"}, "empName": {"S": "Ann"}}, {"Id": {"N": "2"}, "empName": {"S": "Bo"}}]
    s = Stream("Employees")
    pipeline.process(event([s.insert({"Id": 1, "empName": "Ann"}), s.insert({"Id": 2, "empName": "Bo"})]))
    # WHEN verified THEN no drift, and the report says how many rows took the fallback
    verifier = Verifier(route_, PostgresComparison(pipeline.sinks["aurora"], route_), ["Id"])
    verifier.add(items)
    report = verifier.report()
    assert not report.drift
    assert (report.defaults, report.fallbacks) == (Counter(), Counter({"Department": 2}))
