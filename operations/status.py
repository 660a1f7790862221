"""What ``cdc-router status`` shows: per route, where replication stands; with AWS, the triggers too.

From each Postgres sink (``operations.status_postgres``): the route's last applied change
(its SequenceNumber, when it was made, when it was applied), the target's rows, the route's
tombstones and dead letters, and the local runner's checkpoints. From AWS, given the
function's name and the failure queue (or the stack that has both as outputs): each
trigger's state and last processing result, and how many messages wait in the failure queue.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from operations import status_postgres
from operations.failures import FailureQueue
from router.pipeline import Pipeline
from sinks.postgres.sink import PostgresSink
from sources.dynamodb_streams import table_from_arn


@dataclass
class RouteStatus:
    route: str
    source: str
    sink: str
    target: str
    version: int | None = None                  # the newest SequenceNumber applied
    changed_at: dt.datetime | None = None       # when that change was made in DynamoDB
    applied_at: dt.datetime | None = None       # when the last batch of the route committed
    rows: int | None = None
    rows_estimated: bool = False
    tombstones: int | None = None
    dead_letters: int | None = None
    note: str | None = None                     # why a figure is missing

    @property
    def lag(self) -> dt.timedelta | None:
        """From the change being made to its being applied, for the last change applied."""
        if self.changed_at is None or self.applied_at is None:
            return None
        return max(self.applied_at - self.changed_at, dt.timedelta(0))


@dataclass
class Checkpoint:
    table: str
    shard_id: str
    sequence_number: int | None
    finished: bool
    updated_at: dt.datetime


@dataclass
class Trigger:
    table: str
    state: str
    last_result: str
    reason: str | None
    modified: dt.datetime | None


@dataclass
class Status:
    routes: list[RouteStatus]
    checkpoints: list[Checkpoint] = field(default_factory=list)
    triggers: list[Trigger] | None = None       # None: not asked (no function named)
    queue_depth: int | None = None
    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))


def read(pipeline: Pipeline) -> Status:
    """The database side: every route, and the runner's checkpoints of every Postgres sink."""
    config = pipeline.config
    routes = {name: RouteStatus(name, r.source, r.sink, r.qualified_table) for name, r in config.routes.items()}
    checkpoints: list[Checkpoint] = []
    for name, sink in pipeline.sinks.items():
        mine = [routes[r.name] for r in sink.routes]
        if not isinstance(sink, PostgresSink):
            for route in mine:
                route.note = f"sink {name} ({sink.config.type}) keeps no progress that status reads"
            continue
        status_postgres.fill(sink, mine)
        checkpoints += [Checkpoint(table_from_arn(arn)[0] or arn, shard, number, finished, updated)
                        for arn, shard, number, finished, updated in status_postgres.checkpoints(sink)]
    return Status(list(routes.values()), checkpoints)


def add_aws(status: Status, lambda_client: Any, function: str | None, sqs: Any = None,
            queue_url: str | None = None) -> None:
    """Each trigger of ``function``, and the failure queue's depth."""
    if function is not None:
        status.triggers = [_trigger(m) for m in _mappings(lambda_client, function)]
    if sqs is not None and queue_url is not None:
        status.queue_depth = FailureQueue(sqs, queue_url).depth()


def stack_outputs(cloudformation: Any, stack: str) -> tuple[str | None, str | None]:
    """The function's name and the failure queue's URL from the stack's outputs."""
    outputs = cloudformation.describe_stacks(StackName=stack)["Stacks"][0].get("Outputs") or []
    values = {o["OutputKey"]: o["OutputValue"] for o in outputs}
    return values.get("FunctionName"), values.get("FailureQueueUrl")


def _mappings(lambda_client: Any, function: str) -> list[dict[str, Any]]:
    mappings: list[dict[str, Any]] = []
    for page in lambda_client.get_paginator("list_event_source_mappings").paginate(FunctionName=function):
        mappings += page.get("EventSourceMappings") or []
    return mappings


def _trigger(mapping: dict[str, Any]) -> Trigger:
    arn = mapping.get("EventSourceArn", "")
    return Trigger(table_from_arn(arn)[0] or arn, mapping.get("State", "?"),
                   mapping.get("LastProcessingResult", "?"), mapping.get("StateTransitionReason"),
                   mapping.get("LastModified"))
