"""``cdc-router failures list|replay`` and ``cdc-router status``: what the failure queue holds, and
where each route stands. Registered on ``handlers.cli_app.app`` when ``handlers.cli`` loads.

AWS clients follow the usual settings (profile, region, ``AWS_ENDPOINT_URL``); ``--region``
and ``--endpoint-url`` override them. The queue and the function come from ``--queue-url``
and ``--function``, or from the outputs of the stack named by ``--stack``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.text import Text

from handlers.cli_app import app
from handlers.cli_support import console, subcommand
from operations.assemble import load_config, pipeline_for

SCREEN_WIDTH = 160


def _aws_options(function: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed([
        click.option("--stack", help="The deployed stack: its outputs name the queue and the function."),
        click.option("--queue-url", help="The failure queue [default: the stack's FailureQueueUrl]."),
        click.option("--region", help="AWS region [default: from the AWS config]."),
        click.option("--endpoint-url", help="One endpoint for every AWS service (a moto server, LocalStack)."),
    ]):
        function = option(function)
    return function


class _Aws:
    def __init__(self, region: str | None, endpoint_url: str | None, stack: str | None):
        import boto3

        self.session, self.endpoint_url = boto3.session.Session(region_name=region), endpoint_url
        self.outputs: tuple[str | None, str | None] = (None, None)
        if stack:
            from operations.status import stack_outputs

            self.outputs = stack_outputs(self.client("cloudformation"), stack)

    def client(self, name: str) -> Any:
        return self.session.client(name, endpoint_url=self.endpoint_url)  # type: ignore[call-overload]

    def queue_url(self, given: str | None) -> str:
        url = given or self.outputs[1]
        if not url:
            raise click.UsageError("name the failure queue: --queue-url URL, or --stack NAME")
        return url


@app.group("failures")
def failures() -> None:
    """List or replay the batches Lambda gave up on (the failure queue)."""


@subcommand(failures)
@_aws_options
@click.option("--limit", type=click.IntRange(1), default=100, show_default=True, help="Messages to show at most.")
def list_command(config: Path | None, stack: str | None, queue_url: str | None, region: str | None,
                 endpoint_url: str | None, limit: int, debug: bool) -> None:
    """Show each failed batch: table, shard, SequenceNumber range, why. The messages stay in the queue."""
    from operations.failures import FailureQueue, list_failures

    aws = _Aws(region, endpoint_url, stack)
    batches, foreign = list_failures(FailureQueue(aws.client("sqs"), aws.queue_url(queue_url)), limit)
    console.print(f"{len(batches)} failed batch(es)" + (f" (the first {limit})" if len(batches) == limit else ""))
    for batch in batches:
        console.print(Text(f"{batch.table} {batch.shard_id} SequenceNumber {batch.first}..{batch.last} "
                           f"({batch.size if batch.size is not None else '?'} records), {batch.condition or '?'}, "
                           f"failed {batch.failed_at or '?'}"))
    for line in foreign:
        console.print(Text(line, style="yellow"))


@subcommand(failures)
@_aws_options
@click.option("--limit", type=click.IntRange(1), default=100, show_default=True, help="Messages to replay at most.")
def replay_command(config: Path | None, stack: str | None, queue_url: str | None, region: str | None,
                   endpoint_url: str | None, limit: int, debug: bool) -> None:
    """Re-read each failed batch's range from its stream and apply it; delete the message once applied.

    Fix the cause first (the config, then package and deploy; or the target). The version
    guard turns records applied since into no-ops. A range the stream no longer holds (24 h)
    stays in the queue, with the backfill that repairs its routes. Exits 1 if any stays.
    """
    from handlers.render import route_counts
    from operations.failures import FailureQueue, ReplayOutcome, replay

    aws = _Aws(region, endpoint_url, stack)
    queue = FailureQueue(aws.client("sqs"), aws.queue_url(queue_url))
    pipeline = pipeline_for(load_config(config))
    left = total = 0
    try:
        for done in replay(pipeline, queue, aws.client("dynamodbstreams"), limit):
            total += 1
            batch = done.batch
            where = f"{batch.table} {batch.shard_id} SequenceNumber {batch.first}..{batch.last}"
            if done.outcome is ReplayOutcome.APPLIED:
                console.print(Text(f"{where}: applied: {done.records} records, "
                                   f"{route_counts(done.stats) or 'nothing to write'}; message deleted"))
                continue
            left += 1
            console.print(Text(f"{where if batch.stream_arn else batch.message_id}: {done.outcome}: {done.reason}"
                               "; message kept", style="red"))
            for command in done.repair:
                console.print(Text(f"    repair: {command}", style="yellow"))
    finally:
        pipeline.close()
    console.print(f"{total - left} of {total} failed batch(es) replayed and deleted")
    if left:
        sys.exit(1)


@subcommand(app)
@click.option("--stack", help="The deployed stack: its outputs name the function and the failure queue.")
@click.option("--function", "function_name", help="The function, for its triggers [default: the stack's].")
@click.option("--queue-url", help="The failure queue, for its depth [default: the stack's].")
@click.option("--region", help="AWS region [default: from the AWS config].")
@click.option("--endpoint-url", help="One endpoint for every AWS service (a moto server, LocalStack).")
def status(config: Path | None, stack: str | None, function_name: str | None, queue_url: str | None,
           region: str | None, endpoint_url: str | None, debug: bool) -> None:
    """One screen: per route, the last applied change and its lag, rows, tombstones, dead letters;
    the local runner's checkpoints; with --stack (or --function, --queue-url) each trigger's
    state and last result, and the failure queue's depth."""
    from handlers.render_status import status_screen
    from operations import status as reading

    pipeline = pipeline_for(load_config(config))
    try:
        found = reading.read(pipeline)
    finally:
        pipeline.close()
    if stack or function_name or queue_url:
        aws = _Aws(region, endpoint_url, stack)
        reading.add_aws(found, aws.client("lambda"), function_name or aws.outputs[0],
                        aws.client("sqs"), queue_url or aws.outputs[1])
    # a terminal's width, else (a pipe, a file) room for the whole table
    screen = console if console.is_terminal else Console(highlight=False, width=SCREEN_WIDTH)
    for part in status_screen(found):
        screen.print(part)
