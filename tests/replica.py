"""Compare a Postgres target with its DynamoDB source through the route's own transform."""

from __future__ import annotations

from typing import Any

from operations.backfill import insert_record
from router.model import DELETED_COLUMN, Route
from router.transform import RouteTransform


def expected_rows(route: Route, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows the route should hold for these DynamoDB items (wire format), sorted by key."""
    transform = RouteTransform(route)
    rows = []
    for item in items:
        change = transform(insert_record(0, route.source, [c.path[0] for c in route.key_columns], item))
        if change is not None:
            rows.append(change.row)
    return sorted(rows, key=lambda row: tuple(row[k] for k in route.key))


def scan(dynamodb: Any, table: str) -> list[dict[str, Any]]:
    pages = dynamodb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True)
    return [item for page in pages for item in page["Items"]]


def live_rows(pg: Any, route: Route) -> list[dict[str, Any]]:
    """The target's rows that represent live items (soft-deleted rows excluded), sorted by key."""
    rows = pg.rows(route.table, bookkeeping=True)
    live = [{k: v for k, v in r.items() if not k.startswith("_cdc_")} for r in rows if not r.get(DELETED_COLUMN)]
    return sorted(live, key=lambda row: tuple(row[k] for k in route.key))
