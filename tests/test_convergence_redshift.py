"""The spine's convergence suite (test_convergence.py), run unchanged through the Redshift sink.

Its tests build their pipelines with the ``make_pipeline`` fixture; the one below builds
the same Employees route with its ``sink:`` moved to ``warehouse`` (nothing else changes),
and the warehouse's statements run on the test PostgreSQL (redshift_on_postgres.py).
Collecting the imported tests here runs each of them a second time, through this fixture.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from conftest import EMPLOYEES, PgTarget
from redshift_on_postgres import FoldedTarget
from test_convergence import (  # noqa: F401  (collected again here, with the fixture below)
    employees,
    test_delete_then_replayed_insert_does_not_resurrect,
    test_ignored_deletes_keep_the_last_upsert,
    test_insert_for_existing_row_and_modify_for_missing_row_converge,
    test_replica_equals_dynamodb,
    test_soft_delete_keeps_row_marked_and_reinsert_clears_it,
)
from test_sink_convergence import ONE_ROUTE, target

from router.pipeline import Pipeline


@pytest.fixture
def pg(pg: PgTarget) -> FoldedTarget:
    """The spine's tests read "Employees" as written; Redshift folded the names to lower case."""
    return target(pg, "warehouse")


@pytest.fixture
def make_pipeline(make_both_pipeline: Callable[..., Pipeline]) -> Callable[..., Pipeline]:
    def make(pg: PgTarget, template: str = EMPLOYEES, **fields: Any) -> Pipeline:
        assert template == EMPLOYEES, "the spine's convergence suite writes the Employees route only"
        return make_both_pipeline(pg, ONE_ROUTE, sink="warehouse", **fields)
    return make
