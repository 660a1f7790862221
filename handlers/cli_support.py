"""What every ``cdc-router`` subcommand shares: one-line errors, exit codes, quiet logs, Ctrl-C.

Exit codes: 0 success, 1 a problem found (invalid config, drift, a failed record), 2 a
usage error, 130 interrupted, 141 output closed early (``| head``, silently, like SIGPIPE).
A failure is one line on stderr (every line of an invalid config); the traceback and the
JSON logs only with ``--debug``. AWS errors about a missing region or credentials say how
to give them, locally too (``cdc-router demo --serve``).
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import click
from rich.console import Console

from handlers.demo import DemoError
from handlers.local_postgres import NoPostgresError
from operations.shard_runner import StreamError
from router.errors import ConfigError, InvalidEventError
from router.log import logger
from router.sink import SinkError
from sinks.postgres.connection import mask

# Lines wrap in the terminal, not in pipes or logs; piped (Rich would assume 80 columns), tables are as wide as their
# contents. COLUMNS still sets the width.
PIPE_WIDTH = 1000
BROKEN_PIPE = 141  # 128 + SIGPIPE, as the shell reports a command killed by it


class _Console(Console):
    def on_broken_pipe(self) -> None:
        """As Rich does (quietly, stdout to devnull), with the exit code of a closed pipe rather than 1."""
        self.quiet = True
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(BROKEN_PIPE)


console = _Console(highlight=False, soft_wrap=True,
                   width=None if sys.stdout.isatty() or os.environ.get("COLUMNS") else PIPE_WIDTH)
# Errors whose message is already one clear line for the user.
EXPECTED = (SinkError, StreamError, InvalidEventError, DemoError, NoPostgresError, NotImplementedError, OSError)


class OneLineErrors(click.Group):
    """Usage errors as one line and exit code 2, like every other failure (Click prints three)."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True, **kwargs: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **kwargs)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **kwargs)
        except click.exceptions.NoArgsIsHelpError as exc:
            exc.show()  # the help text
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            hint = f"  (see {exc.ctx.command_path} --help)" if exc.ctx else ""
            error(f"error: {exc.format_message()}{hint}")
            sys.exit(exc.exit_code)
        except click.Abort:
            error("aborted")
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


def error(message: str) -> None:
    click.echo(message, err=True)


def subcommand(group: click.Group) -> Callable[[Callable[..., Any]], click.Command]:
    """A decorator: the function becomes a subcommand of ``group`` with --config and --debug,
    and any failure in it becomes one line on stderr and exit code 1."""

    def register(function: Callable[..., Any]) -> click.Command:
        @functools.wraps(function)
        def wrapper(**kwargs: Any) -> Any:
            debug = bool(kwargs.get("debug"))
            try:
                with quiet_logs(debug):
                    return function(**kwargs)
            except (click.exceptions.Exit, click.ClickException, click.Abort):
                raise
            except ConfigError as exc:
                for line in exc.errors:
                    error(line)
            except KeyboardInterrupt:
                error("interrupted")
                sys.exit(130)
            except BrokenPipeError:  # the reader went away (| head): stop quietly, as a command killed by SIGPIPE
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
                sys.exit(BROKEN_PIPE)
            except Exception as exc:  # the one place that turns any failure into a line
                if debug:
                    traceback.print_exc()
                error(one_line(exc, hint=not debug))
            sys.exit(1)

        wrapper = click.option("--debug", is_flag=True, help="Show tracebacks and the JSON logs.")(wrapper)
        wrapper = click.option("--config", "-c", type=click.Path(dir_okay=False, path_type=Path),
                               help="The tables.yaml [default: $CDC_ROUTER_CONFIG, else config/tables.yaml]")(wrapper)
        return group.command()(wrapper)

    return register


@contextmanager
def quiet_logs(debug: bool) -> Iterator[None]:
    """JSON logs on stderr (never mixed with the output) and only with --debug: the command reports outcomes."""
    handler, level = cast(logging.StreamHandler[Any], logger.registered_handler), logger.log_level
    stream = handler.stream
    handler.setStream(sys.stderr)
    logger.setLevel("INFO" if debug else "CRITICAL")
    try:
        yield
    finally:
        logger.setLevel(level)
        handler.setStream(stream)


AWS_HINTS = {  # botocore's exceptions by name (botocore is imported only by the commands that use AWS)
    "NoRegionError": "no AWS region: pass --region or set AWS_DEFAULT_REGION (for DynamoDB on this machine, "
                     "`cdc-router demo --serve` prints the variables to set)",
    "NoCredentialsError": "no AWS credentials: configure them (aws configure, AWS_PROFILE) or, for DynamoDB on this "
                          "machine, set the ones `cdc-router demo --serve` prints (moto accepts any)",
}


def one_line(exc: Exception, hint: bool) -> str:
    if type(exc).__module__.startswith("botocore") and type(exc).__name__ in AWS_HINTS:
        return "error: " + AWS_HINTS[type(exc).__name__]
    expected = isinstance(exc, EXPECTED)
    shown = str(exc) if expected else f"{type(exc).__name__}: {exc}"
    first = (shown.strip().splitlines() or [type(exc).__name__])[0]
    return "error: " + mask(first) + ("  (--debug shows the traceback)" if hint and not expected else "")


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """First Ctrl-C (or SIGTERM): finish the current batch, then stop. Second Ctrl-C: stop now."""

    def handle(signum: int, frame: Any) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.set()
        error("stopping after the current batch (Ctrl-C again to stop at once)")

    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return
    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
