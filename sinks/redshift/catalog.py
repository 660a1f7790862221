"""A Redshift table's columns as its catalog describes them, for the drift check: ``information_schema``.

Read through the Data API like everything else (one ExecuteStatement per query, named
parameters). Redshift folds identifiers to lower case, so names are compared in lower case;
types are spelled back the way ``dialect.column_type`` writes them (``VARCHAR(80)``,
``DECIMAL(38,0)``, ``SUPER``), so that a route's expected type and the live one compare as text.
https://docs.aws.amazon.com/redshift/latest/dg/r_SVV_COLUMNS.html
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from psycopg import sql

from router.model import Route
from sinks.sql.drift import LiveTable
from sinks.sql.sink import QueryResult

Query = Callable[[sql.Composed, dict[str, Any]], QueryResult]

_COLUMNS = """SELECT column_name, COALESCE(domain_name, data_type), character_maximum_length, numeric_precision,
       numeric_scale
FROM information_schema.columns WHERE lower(table_schema) = lower({schema}) AND lower(table_name) = lower({table})
ORDER BY ordinal_position"""
# information_schema's type names -> Redshift's DDL spelling ("super": the test stand-in's domain)
_SPELLING = {"character varying": "VARCHAR({length})", "character": "CHAR({length})",
             "numeric": "DECIMAL({precision},{scale})", "timestamp with time zone": "TIMESTAMPTZ",
             "timestamp without time zone": "TIMESTAMP", "binary varying": "VARBYTE", "varbyte": "VARBYTE"}


def live_table(query: Query, route: Route, placeholder: Callable[[str], sql.Composable]) -> LiveTable | None:
    params = {"schema": route.schema, "table": route.table}
    names = {"schema": placeholder("schema"), "table": placeholder("table")}
    columns = query(sql.SQL(_COLUMNS).format(**names), params).rows
    if not columns:
        return None
    return LiveTable({str(name).lower(): spelled(*kind) for name, *kind in columns})  # keys: not enforced, not read


def spelled(data_type: str, length: Any, precision: Any, scale: Any) -> str:
    """A column's type as DDL writes it, from its ``information_schema.columns`` fields."""
    form = _SPELLING.get(str(data_type).lower(), str(data_type).upper())
    return form.format(length=length, precision=precision, scale=scale)
