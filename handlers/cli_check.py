"""``cdc-router check-sink SINK``: the pilot's self-test of one sink (``operations.check_sink``).
Registered on ``handlers.cli.app`` when that module loads."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.table import Table
from rich.text import Text

from handlers.cli_app import command
from handlers.cli_support import console
from operations.assemble import load_config


@command
@click.argument("sink")
def check_sink(config: Path | None, sink: str, debug: bool) -> None:
    """Run each statement form of SINK against its database, with edge values, and compare.

    In two scratch schemas (dropped at the end) it creates a table with every column type,
    writes and rewrites rows through the sink's own statements (trailing spaces, 38-digit
    numbers, +00:00 timestamps, JSON with large and precise numbers, the largest VARBYTE,
    deletes, tombstones, dead letters), reads them back and prints pass or fail per form.
    Exit code 1 if any form failed. Run it once against a real workgroup or cluster.
    """
    from operations.check_sink import check_sink as run_checks

    loaded = load_config(config)
    if sink not in loaded.sinks:
        raise click.BadParameter(f"unknown sink {sink!r} (sinks: {', '.join(loaded.sinks)})", param_hint="SINK")
    results = run_checks(loaded, sink)
    table = Table(title=Text(f"check-sink {sink} ({loaded.sinks[sink].type})"), title_justify="left")
    for header in ("form", "result", "detail"):
        table.add_column(Text(header), overflow="fold")
    for result in results:
        table.add_row(Text(result.form), Text("pass", style="green") if result.passed else Text("FAIL", style="red"),
                      Text(result.detail))
    console.print(table)
    failed = sum(not result.passed for result in results)
    console.print(f"{len(results) - failed} of {len(results)} forms passed")
    if failed:
        sys.exit(1)
