"""``cdc-router template``, ``package`` and ``dead-letters``: deploying the function and
recovering from what it set aside. Registered on ``handlers.cli.app`` when that module loads.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click
from rich.text import Text

from handlers.cli_app import app, command, select_routes
from handlers.cli_support import console, subcommand
from handlers.package import PYTHON_VERSIONS
from operations.assemble import load_config, pipeline_for
from router.config import default_path

DEFAULT_TEMPLATE = Path("deploy/template.yaml")
DEFAULT_ZIP = Path("build/cdc-router-lambda.zip")
ARCHITECTURES = ("x86_64", "arm64")


# -- template -------------------------------------------------------------------------------


@command
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_TEMPLATE,
              show_default=True, help="Where to write the template ('-': stdout).")
@click.option("--zip", "zip_path", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_ZIP,
              show_default=True, help="The zip built by cdc-router package: the template follows its "
                                      "architecture and Python.")
@click.option("--code-uri", default=None, help="The zip, relative to the template [default: --zip seen from --output].")
@click.option("--arch", type=click.Choice(ARCHITECTURES), default=None,
              help="Lambda architecture [default: the zip's, else x86_64]; must match the zip's.")
@click.option("--python-version", type=click.Choice(PYTHON_VERSIONS), default=None,
              help="The runtime's Python [default: the zip's, else 3.12]; must match the zip's.")
@click.option("--batch-size", type=click.IntRange(1, 10000), default=100, show_default=True,
              help="BatchSize: stream records per invocation.")
@click.option("--batching-window", type=click.IntRange(0, 300), default=1, show_default=True,
              help="MaximumBatchingWindowInSeconds.")
@click.option("--max-retries", type=click.IntRange(0, 10000), default=10, show_default=True,
              help="MaximumRetryAttempts before a batch goes to the failure queue.")
@click.option("--max-record-age", type=click.IntRange(60, 604800), default=86400, show_default=True,
              help="MaximumRecordAgeInSeconds.")
@click.option("--starting-position", type=click.Choice(["TRIM_HORIZON", "LATEST"]), default="TRIM_HORIZON",
              show_default=True, help="Where a new trigger starts reading its stream (TRIM_HORIZON: the oldest "
                                      "record, harmless with the version guard).")
@click.option("--memory", type=click.IntRange(128, 10240), default=512, show_default=True, help="MemorySize (MB).")
@click.option("--timeout", type=click.IntRange(3, 900), default=60, show_default=True, help="Timeout (seconds).")
@click.option("--allow-dsn-password", is_flag=True,
              help="Deploy a sink whose dsn holds (or may hold) a password, readable in the function's configuration.")
def template(config: Path | None, output: Path, zip_path: Path, code_uri: str | None, arch: str | None,
             python_version: str | None, batch_size: int, batching_window: int, max_retries: int,
             max_record_age: int, starting_position: str, memory: int, timeout: int, allow_dsn_password: bool,
             debug: bool) -> None:
    """Render the AWS SAM template from the config: one stream trigger per routed table.

    The trigger settings become the defaults of template parameters (override them with
    sam deploy --parameter-overrides). Render again after adding a route.
    """
    from handlers import sam_template
    from handlers.package import BuildInfo

    built = BuildInfo.of(zip_path)
    arch = _follow_zip(zip_path, built, "arch", arch, "x86_64")
    python_version = _follow_zip(zip_path, built, "python_version", python_version, "3.12")
    if code_uri is None:
        target_dir = Path.cwd() if str(output) == "-" else output.resolve().parent
        code_uri = os.path.relpath(zip_path.resolve(), target_dir)
    settings = sam_template.Settings(code_uri=code_uri, architecture=arch, python_version=python_version,
                                     batch_size=batch_size, batching_window=batching_window, max_retries=max_retries,
                                     max_record_age=max_record_age, starting_position=starting_position,
                                     memory_mb=memory, timeout_s=timeout)
    rendered = sam_template.render(config or default_path(), settings, allow_dsn_password)
    if str(output) == "-":
        click.echo(sam_template.dump(rendered), nl=False)
        return
    sam_template.write(rendered, output)
    triggers = [name for name, r in rendered["Resources"]["Function"]["Properties"]["Events"].items()]
    console.print(f"{output}: {len(triggers)} trigger(s) ({', '.join(triggers)}), code {code_uri}, {arch}, "
                  f"{settings.runtime}")


def _follow_zip(zip_path: Path, built: Any, field: str, given: str | None, default: str) -> str:
    """The zip's value of ``field``; a different ``given`` one is refused (the function would not start)."""
    option = "--" + field.replace("_", "-")
    found = getattr(built, field) if built is not None else None
    if given is not None and found is not None and given != found:
        raise click.UsageError(f"{zip_path} was built for {option} {found}, not {given}: build it again "
                               f"(cdc-router package {option} {given}) or leave {option} out")
    return given or found or default


# -- package --------------------------------------------------------------------------------


@command
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_ZIP,
              show_default=True, help="Where to write the zip.")
@click.option("--arch", type=click.Choice(ARCHITECTURES), default="x86_64", show_default=True,
              help="Lambda architecture of the wheels; the template follows the zip.")
@click.option("--python-version", type=click.Choice(PYTHON_VERSIONS), default="3.12", show_default=True,
              help="The runtime's Python; `cdc-router template` follows the zip.")
@click.option("--python", "interpreter", metavar="PATH",
              help="The Python of --python-version that compiles the bytecode [default: this one, else pythonX.Y].")
@click.option("--no-bytecode", is_flag=True, help="Leave the .pyc files out (each cold start compiles the code).")
@click.option("--allow-dsn-password", is_flag=True,
              help="Package a sink whose dsn holds (or may hold) a password, readable in the function's configuration.")
def package(config: Path | None, output: Path, arch: str, python_version: str, interpreter: str | None,
            no_bytecode: bool, allow_dsn_password: bool, debug: bool) -> None:
    """Build the Lambda zip: the code compiled to bytecode, manylinux wheels for --arch, and the
    config as config/tables.yaml.

    boto3 and botocore are left out: the Lambda runtime provides them.
    """
    from handlers.package import build
    from handlers.sam_template import load_deployable

    path = Path(config or default_path())
    load_deployable(path, allow_dsn_password=allow_dsn_password)  # refuse an invalid config, or an exposed password
    built = build(output, path, arch=arch, python_version=python_version, bytecode=not no_bytecode,
                  interpreter=interpreter)
    console.print(f"{built.path}: {built.size / 1e6:.1f} MB zipped, {built.unpacked / 1e6:.1f} MB unzipped, "
                  f"{built.files} files; Lambda {arch}, Python {python_version}, "
                  f"{'bytecode compiled' if built.bytecode else 'no bytecode'}; config {path}")


# -- dead-letters ---------------------------------------------------------------------------


@app.group("dead-letters")
def dead_letters() -> None:
    """List or retry the records set aside under on_error: dead_letter."""


@subcommand(dead_letters)
@click.option("--route", multiple=True, help="Only this route (repeatable).")
@click.option("--limit", type=click.IntRange(1), default=100, show_default=True,
              help="Show at most this many dead letters (by route, then stream order).")
def list_command(config: Path | None, route: tuple[str, ...], limit: int, debug: bool) -> None:
    """Show the dead-letter table's rows: route, SequenceNumber, when, and the error."""
    from operations.redrive import stored

    pipeline = pipeline_for(load_config(config))
    try:
        names = [r.name for r in select_routes(pipeline.config, route)] if route else []
        letters = list(stored(pipeline, names, limit))
    finally:
        pipeline.close()
    console.print(f"{len(letters)} dead letter(s)" + (f" (the first {limit})" if len(letters) == limit else ""))
    for sink, letter in letters:
        console.print(Text(f"{letter.route} #{letter.id}: table {letter.source_table}, SequenceNumber "
                           f"{letter.sequence_number}, failed {letter.failed_at.isoformat(timespec='seconds')}, "
                           f"sink {sink.name}"))
        console.print(Text(f"    {letter.error}", style="red"))


@subcommand(dead_letters)
@click.option("--route", multiple=True, help="Only this route (repeatable).")
def retry_command(config: Path | None, route: tuple[str, ...], debug: bool) -> None:
    """Re-apply dead letters through the current config; remove the ones that succeed.

    Fix the route (a type, a column) or the target first. Each record goes through the
    pipeline with its version guard, so a retry never overwrites newer data. Exits 1 if
    any record still fails.
    """
    from operations.redrive import retry

    pipeline = pipeline_for(load_config(config))
    try:
        names = [r.name for r in select_routes(pipeline.config, route)] if route else []
        outcomes = retry(pipeline, names)
    finally:
        pipeline.close()
    for outcome in outcomes:
        letter = outcome.letter
        where = f"{letter.route} #{letter.id} (SequenceNumber {letter.sequence_number})"
        if outcome.applied:
            stats = outcome.stats
            what = "stale: the row was already newer" if stats and stats.stale else "applied"
            console.print(f"{where}: {what}; removed from the dead letters")
        else:
            console.print(Text(f"{where}: still fails: {outcome.reason}", style="red"))
    failed = [o for o in outcomes if not o.applied]
    console.print(f"{len(outcomes) - len(failed)} of {len(outcomes)} dead letter(s) applied and removed")
    if failed:
        sys.exit(1)
