"""Every sink under test, behind one small interface (dlt's ``destinations_configs`` style).

A test that takes the ``target`` fixture runs once per sink in ``SINKS``: the tests'
in-memory sink, Postgres, and the Redshift sink with its statements executed on the test
PostgreSQL (redshift_on_postgres.py). Each target builds a pipeline for the Employees route
(``factories.route``) with the modes asked for, and reads back the route's whole table and
its dead letters in one shape, whatever the sink.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from factories import MEMORY, postgres, redshift, route, tables
from memory_sink import MemorySink, pipeline_of
from redshift_on_postgres import FoldedTarget

from router.model import DELETED_COLUMN, VERSION_COLUMN, Route
from router.pipeline import Pipeline

SINKS = ["memory", "postgres", "redshift"]


class Target:
    """One sink under test: a pipeline for the Employees route, and what it wrote."""

    def pipeline(self, deletes: str, on_error: str) -> Pipeline:
        raise NotImplementedError

    def rows(self, route_: Route) -> list[dict[str, Any]]:
        """The route's whole table, ordered by key, with its version and soft-delete mark."""
        raise NotImplementedError

    def dead_letters(self) -> list[dict[str, Any]]:
        """The stored dead letters: route, source_table, sequence_number, record, error."""
        raise NotImplementedError


def _shape(route_: Route, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    shaped = [{**{c.name: r.get(c.name) for c in route_.columns}, VERSION_COLUMN: int(r[VERSION_COLUMN]),
               DELETED_COLUMN: r.get(DELETED_COLUMN)} for r in rows]
    return sorted(shaped, key=lambda r: tuple(r[k] for k in route_.key))


class MemoryTarget(Target):
    def __init__(self) -> None:
        self.sink: MemorySink | None = None

    def pipeline(self, deletes: str, on_error: str) -> Pipeline:
        built = pipeline_of(tables({"employees": route(sink="mem", deletes=deletes, on_error=on_error)},
                                   {"mem": MEMORY}))
        self.sink = built.sinks["mem"]  # type: ignore[assignment]
        return built

    def rows(self, route_: Route) -> list[dict[str, Any]]:
        assert self.sink is not None
        return _shape(route_, list(self.sink.rows(route_).values()))

    def dead_letters(self) -> list[dict[str, Any]]:
        assert self.sink is not None
        return self.sink.dead_letters


class SqlTarget(Target):
    """Postgres, or Redshift on Postgres: the target table in ``pg``, the state in ``state``."""

    def __init__(self, make: Callable[..., Pipeline], pg: Any, state: Any, sink: dict[str, Any], folds: bool = False):
        self.make, self.pg, self.state, self.sink, self.folds = make, pg, state, sink, folds

    def pipeline(self, deletes: str, on_error: str) -> Pipeline:
        employees = route(f"{self.pg.schema}.Employees", sink="target", deletes=deletes, on_error=on_error)
        return self.make(self.pg, tables({"employees": employees}, {"target": self.sink}))

    def rows(self, route_: Route) -> list[dict[str, Any]]:
        # Redshift folds identifiers to lower case: read its table by the names the route gives
        pg = FoldedTarget(self.pg, [route_.table, *(c.name for c in route_.columns)]) if self.folds else self.pg
        return _shape(route_, pg.rows(route_.table, bookkeeping=True))

    def dead_letters(self) -> list[dict[str, Any]]:
        return self.state.state("dead_letters")


@pytest.fixture(params=SINKS)
def target(request: pytest.FixtureRequest) -> Target:
    if request.param == "memory":
        return MemoryTarget()
    pg = request.getfixturevalue("pg")
    if request.param == "postgres":
        return SqlTarget(request.getfixturevalue("make_pipeline"), pg, pg, postgres(pg.state_schema))
    warehouse = request.getfixturevalue("warehouse_pg")
    return SqlTarget(request.getfixturevalue("make_both_pipeline"), pg, warehouse, redshift(warehouse.state_schema),
                     folds=True)
