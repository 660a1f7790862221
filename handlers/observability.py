"""What the Lambda function tells CloudWatch about each batch: log keys and EMF metrics.

Metrics (namespace ``$POWERTOOLS_METRICS_NAMESPACE``, default ``CdcRouter``), one EMF
document per route that the batch touched, with the dimensions ``service`` and ``route``:

- ``RecordsApplied``, ``RecordsStale``, ``RecordsDeleted``, ``RecordsExpired``, ``RecordsDeadLettered``,
  ``RecordsFailed`` (counts, zeros included, so that alarms and sums see every batch); ``RecordsExpired``
  counts DynamoDB TTL expiries apart from users' deletes, whatever the route's ``ttl_deletes`` did
- ``ReplicationLagMs``: now minus the oldest ``ApproximateCreationDateTime`` in the batch

and, through Powertools' ``log_metrics``, ``BatchRecords`` (dimension ``service``) and
``ColdStart`` (dimensions ``function_name`` and ``service``). EMF is written to stdout and
turned into metrics by CloudWatch Logs: the function needs no ``cloudwatch:PutMetricData``.

Log keys: ``route`` (the routes of the batch's source table) and ``stream`` with
``sequence_numbers`` (first-last). Lambda's DynamoDB event carries no shard id; the
on-failure message names the shard together with the same first and last SequenceNumber.
Record bodies are logged only for routes with ``log_records: true`` (``router.pipeline``).
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools.metrics import EphemeralMetrics, Metrics, MetricUnit

from router.log import logger
from router.model import Config, Route
from router.pipeline import BatchResult
from router.sink import RouteStats
from sources.dynamodb_streams import table_from_arn
from sources.kinesis import stream_from_arn

NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "CdcRouter")
SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "cdc-router")
# RouteStats field -> metric name
COUNTS = {"upserted": "RecordsApplied", "stale": "RecordsStale", "deleted": "RecordsDeleted",
          "expired": "RecordsExpired", "dead_lettered": "RecordsDeadLettered", "failed": "RecordsFailed"}
COLUMNS_ADDED = "ColumnsAdded"  # routes with columns: auto (issue 15): columns added to the target
LAG = "ReplicationLagMs"
DEFAULTS, FALLBACKS = "DefaultsApplied", "FallbacksApplied"  # per route and column

# The cold-start metric names the function; outside Lambda (tests, the CLI) the context is
# None, so the name comes from the environment Lambda sets, never from the context.
metrics = Metrics(namespace=NAMESPACE, service=SERVICE,
                  function_name=os.environ.get("AWS_LAMBDA_FUNCTION_NAME", SERVICE))
# Per-route documents: their own dimension set, flushed one route at a time.
_route_metrics = EphemeralMetrics(namespace=NAMESPACE, service=SERVICE)


def start_batch(event: Any, context: Any, config: Config) -> None:
    """Set the log keys of this invocation (every key, so none is left from the last one) and
    count its records (also for an event that is not a stream batch: ``log_metrics`` always
    has a metric to flush)."""
    records = event.get("Records") if isinstance(event, dict) else None
    records = [r for r in records if isinstance(r, dict)] if isinstance(records, list) else []
    stream = records[0].get("eventSourceARN") if records else None
    # the first and the last sequence number, not every one: the parser walks the records next
    # (a malformed record must not break the logging: its number is skipped)
    first = next((n for r in records if isinstance(n := _sequence_number(r), str)), None)
    last = next((n for r in reversed(records) if isinstance(n := _sequence_number(r), str)), None)
    logger.append_keys(
        request_id=getattr(context, "aws_request_id", None), stream=stream,
        route=",".join(r.name for r in _routes_of(stream, config)) or None,
        sequence_numbers=f"{first}-{last}" if first is not None else None,
    )
    metrics.add_metric(name="BatchRecords", unit=MetricUnit.Count, value=len(records))


def _sequence_number(record: dict[str, Any]) -> Any:
    body = record.get("kinesis") if "kinesis" in record else record.get("dynamodb")
    return body.get("sequenceNumber" if "kinesis" in record else "SequenceNumber") if isinstance(body, dict) else None


def _routes_of(stream_arn: Any, config: Config) -> list[Route]:
    """The routes a stream feeds: its table's (DynamoDB Streams), or those naming it (Kinesis)."""
    table, _ = table_from_arn(stream_arn)
    if table is not None:
        return list(config.routes_for(table))
    name, _ = stream_from_arn(stream_arn)
    return [route for route in config.routes.values() if name is not None and route.kinesis == name]


def publish(result: BatchResult, config: Config) -> None:
    """Write one EMF document per route of the batch's source tables."""
    lag = result.max_lag_ms
    tables = {record.table for record in result.records if record.table}
    for route in (route for table in sorted(tables) for route in config.routes_for(table)):
        stats = result.stats.get(route.name)
        if stats is None:
            continue
        _route_metrics.add_dimension(name="route", value=route.name)
        for field, name in COUNTS.items():
            _route_metrics.add_metric(name=name, unit=MetricUnit.Count, value=getattr(stats, field))
        if route.auto:
            _route_metrics.add_metric(name=COLUMNS_ADDED, unit=MetricUnit.Count, value=stats.columns_added)
        if lag is not None:
            _route_metrics.add_metric(name=LAG, unit=MetricUnit.Milliseconds, value=round(max(lag, 0.0), 1))
        _route_metrics.flush_metrics()
        _publish_substitutes(route.name, stats)


def _publish_substitutes(route: str, stats: RouteStats) -> None:
    """``DefaultsApplied`` / ``FallbacksApplied`` per route and column: a misspelled ``from`` shows up here."""
    for name, counts in ((DEFAULTS, stats.defaults), (FALLBACKS, stats.fallbacks)):
        for column, count in sorted(counts.items()):
            _route_metrics.add_dimension(name="route", value=route)
            _route_metrics.add_dimension(name="column", value=column)
            _route_metrics.add_metric(name=name, unit=MetricUnit.Count, value=count)
            _route_metrics.flush_metrics()
