"""The ``cdc-router`` click group, its ``command`` decorator and shared option handling.

The subcommand modules (``handlers.cli``, ``cli_backfill``, ``cli_deploy``) register on ``app``;
``handlers.cli`` imports them all, so that nothing imports a module that imports it back.
"""

from __future__ import annotations

import click

from handlers.cli_support import OneLineErrors, subcommand
from router.model import Config, Route


@click.group(name="cdc-router", cls=OneLineErrors,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="cdc-router", prog_name="cdc-router")
def app() -> None:
    """Replicate DynamoDB Streams changes into PostgreSQL.

    Check the config, create and check the target tables, replay saved Lambda events,
    read streams locally, or watch the whole thing work with `cdc-router demo`.
    """


command = subcommand(app)


def select_routes(config: Config, names: tuple[str, ...]) -> list[Route]:
    unknown = [name for name in names if name not in config.routes]
    if unknown:
        raise click.BadParameter(f"unknown route {unknown[0]!r} (routes: {', '.join(config.routes)})",
                                 param_hint="--route")
    return [config.routes[name] for name in names] if names else list(config.routes.values())
