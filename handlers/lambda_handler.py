"""The Lambda entry point: wiring only. Config, routes and sink connections are built once
per container, at import (an invalid tables.yaml stops the function from starting).

Config path: ``CDC_ROUTER_CONFIG``, else ``config/tables.yaml`` beside the deployed code.
Logs and metrics: ``handlers.observability``. ``context`` may be None (tests, the CLI).

A batch that stopped at a record answers ``batchItemFailures`` (Lambda retries from that
record; the ``RecordsFailed`` alarm sees it). A batch of which nothing could be applied for
a reason that may pass (the database unreachable, a timeout) raises ``BatchNotAppliedError``
instead, after its metrics are written: Lambda retries it whole all the same, and the
function's ``Errors`` metric and alarm see a database outage (issue 17).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from handlers.observability import metrics, publish, start_batch
from operations.assemble import pipeline_from_path
from router import deadline
from router.config import ENV_VAR

CONFIG_PATH = os.environ.get(ENV_VAR) or str(Path(__file__).resolve().parent.parent / "config" / "tables.yaml")
pipeline = pipeline_from_path(CONFIG_PATH)


class BatchNotAppliedError(RuntimeError):
    """Nothing of the batch was applied, for a reason that may pass: Lambda retries it whole."""


@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    start_batch(event, context, pipeline.config)
    with deadline.until(deadline.from_lambda_context(context)):
        result = pipeline.process(event)
    publish(result, pipeline.config)
    failure = result.failure
    if failure is not None and failure.transient and failure.index == 0:
        raise BatchNotAppliedError(failure.redacted or failure.reason)
    return result.response
