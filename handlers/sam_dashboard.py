"""The stack's CloudWatch dashboard: the function first, then one row per route.

The function row: the triggers' iterator age (how far behind the streams the function reads),
errors and throttles, concurrency (each shard is one concurrent execution and one database
connection) and duration. A route's row: what its batches did (applied, stale, deleted,
dead-lettered, failed) and its replication lag. The body is JSON under ``Fn::Sub``, so the
function's name, the stack's name (the metrics' ``service``) and the region follow the stack.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from handlers.observability import COUNTS, LAG
from handlers.sam_alarms import NAMESPACE
from handlers.sam_intrinsics import literal, sub

_WIDTH, _HEIGHT = 24, 6
_SERVICE = "${AWS::StackName}"  # the function's POWERTOOLS_SERVICE_NAME (sam_resources)


def dashboard(routes: Iterable[str]) -> dict[str, Any]:
    widgets = _function_row()
    for row, route in enumerate(routes, start=1):
        widgets += _route_row(route, row * _HEIGHT)
    body = json.dumps({"widgets": widgets}, separators=(",", ":"))
    return {"Type": "AWS::CloudWatch::Dashboard", "Properties": {"DashboardBody": sub(body)}}


def _function_row() -> list[dict[str, Any]]:
    def metric(name: str, stat: str) -> list[Any]:
        return ["AWS/Lambda", name, "FunctionName", "${Function}", {"stat": stat, "label": f"{name} ({stat})"}]

    panels = [
        ("Iterator age (ms): how far behind the streams", [metric("IteratorAge", "Maximum")]),
        ("Errors and throttles", [metric("Errors", "Sum"), metric("Throttles", "Sum")]),
        ("Concurrent executions (database connections)", [metric("ConcurrentExecutions", "Maximum")]),
        ("Duration (ms)", [metric("Duration", "Average"), metric("Duration", "Maximum")]),
    ]
    width = _WIDTH // len(panels)
    return [_widget(title, metrics, x=i * width, y=0, width=width) for i, (title, metrics) in enumerate(panels)]


def _route_row(route: str, y: int) -> list[dict[str, Any]]:
    escaped = literal(route)
    dimensions = ["service", _SERVICE, "route", escaped]
    counts = [[NAMESPACE, name, *dimensions, {"stat": "Sum", "label": field.replace("_", "-")}]
              for field, name in COUNTS.items()]
    lag = [[NAMESPACE, LAG, *dimensions, {"stat": "Maximum", "label": "lag (ms, max)"}]]
    half = _WIDTH // 2
    return [_widget(f"Route {escaped}: records per batch outcome", counts, x=0, y=y, width=half),
            _widget(f"Route {escaped}: replication lag", lag, x=half, y=y, width=half)]


def _widget(title: str, metrics: list[list[Any]], x: int, y: int, width: int) -> dict[str, Any]:
    return {"type": "metric", "x": x, "y": y, "width": width, "height": _HEIGHT, "properties": {
        "title": title, "region": "${AWS::Region}", "view": "timeSeries", "stacked": False, "period": 60,
        "metrics": metrics}}
