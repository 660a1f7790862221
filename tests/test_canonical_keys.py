"""One text per key value for tombstones and advisory locks (issue 12, finding 8): N "7" and N "7.0"
are one row of a numeric key column, so a stale upsert of 7 must not pass the tombstone of 7.0."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from conftest import EMPLOYEES
from factories import Stream, event

from router.transform import canonical_number
from sinks.postgres.statements import row_locks
from sinks.sql.rows import tombstone_key


@pytest.mark.parametrize("spellings, canonical", [
    # trailing zeros and exponents of one number
    ((Decimal("7"), Decimal("7.0"), Decimal("7.000"), Decimal("0.7E+1")), "7"),
    ((Decimal("70"), Decimal("7E+1"), Decimal("70.0")), "70"),
    ((Decimal("0"), Decimal("-0"), Decimal("0.00"), Decimal("0E+5")), "0"),
    ((Decimal("-1.50"), Decimal("-1.5")), "-1.5"),
    # 38 digits stay 38 digits
    ((Decimal("1234567890123456789012345678901234567.8"),), "1234567890123456789012345678901234567.8"),
])
def test_equal_numbers_have_one_spelling(spellings: tuple[Decimal, ...], canonical: str) -> None:
    numbers = [canonical_number(value) for value in spellings]
    assert {str(n) for n in numbers} == {canonical}
    assert {tombstone_key((n,)) for n in numbers} == {f'["{canonical}"]'}
    assert len({frozenset(row_locks("t", [(n,)])) for n in numbers}) == 1


def test_a_stale_upsert_does_not_pass_the_tombstone_of_another_spelling(pg: Any, make_pipeline: Any) -> None:
    # GIVEN a route keyed by an unconstrained numeric, with hard deletes
    pipeline = make_pipeline(pg, template=EMPLOYEES.replace("Id:         {{from: Id, type: bigint}}",
                                                            "Id:         {{from: Id, type: numeric}}"))
    raw = Stream("Employees")
    insert = raw.insert({"Id": 7, "empName": "a"}, sequence=100)
    remove = raw.remove({"Id": 7}, sequence=300)
    remove["dynamodb"]["Keys"]["Id"] = {"N": "7.0"}  # the same item, its number spelled otherwise
    # WHEN the item is inserted, deleted as 7.0, and the insert replayed (older than the delete)
    for batch in ([insert], [remove], [insert]):
        assert pipeline.process(event(batch)).response == {"batchItemFailures": []}
    # THEN the row stays deleted and one tombstone guards it
    assert pg.rows("Employees") == []
    assert [row["key"] for row in pg.state("tombstones")] == ['["7"]']
