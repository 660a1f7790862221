"""``cdc-router schema``: print the DDL, bring the live tables to the config (``--apply``), or check them.

Registered on ``handlers.cli.app`` (imported there with one line). What differs and which
statements fix it comes from the sinks (``Sink.check``, ``sinks.sql.drift``); here each
difference is run or held back by what its fix does to the data (``router.modes.Fix``).

Exit codes of ``--apply``: 0 the tables match the config; 3 destructive changes were held back
(``--allow-destructive`` runs them); 4 a change the database cannot make in place is left to do
by hand (its note says how), whatever else was held back; 1 an error (nothing of the failing
transaction was applied).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import click
from rich.text import Text

from handlers.cli_app import command, select_routes
from handlers.cli_support import console
from operations.assemble import build_sinks, load_config
from router.model import Route
from router.modes import Fix
from router.sink import Drift, Sink

EXIT_WITHHELD, EXIT_BY_HAND = 3, 4


@command
@click.option("--route", multiple=True, help="Only this route (repeatable).")
@click.option("--apply", is_flag=True, help="Bring the live tables to the config: create missing tables, add new "
                                            "columns and indexes; print destructive changes without running them.")
@click.option("--allow-destructive", is_flag=True, help="With --apply: also run the destructive changes (column "
                                                        "types, primary keys, dropping columns no route writes).")
@click.option("--check", is_flag=True, help="Compare the live tables with the routes; exit 1 on drift, "
                                            "printing the statements that fix it.")
def schema(config: Path | None, route: tuple[str, ...], apply: bool, allow_destructive: bool, check: bool,
           debug: bool) -> None:
    """Print, apply or check the target tables.

    Without options, prints the DDL. --apply creates what is missing and adds new columns and
    indexes; type changes, key changes and columns no route writes are printed with the
    statements that would run (exit 3) unless --allow-destructive; what the database cannot do
    in place is printed with what to do instead (exit 4). --check compares each live table
    with its route and exits 1 on drift, printing the statements that fix it.
    """
    if allow_destructive and not apply:
        raise click.UsageError("--allow-destructive goes with --apply")
    loaded = load_config(config, offline=not apply and not check)  # printing the DDL connects to nothing
    routes = select_routes(loaded, route)
    sinks = build_sinks(loaded)
    try:
        if not apply and not check:
            _print_ddl(sinks, routes)
        outcome = _apply(sinks, routes, allow_destructive) if apply else 0
        drifted = check and not _check(sinks, routes)
    finally:
        for sink in sinks.values():
            sink.close()
    if outcome or drifted:
        sys.exit(outcome or 1)


def _print_ddl(sinks: dict[str, Sink], routes: list[Route]) -> None:
    for name, sink in sinks.items():
        mine = [r for r in routes if r.sink == name]
        statements = sink.state_ddl() + [s for r in mine for s in sink.ddl(r)] if mine else []
        for statement in dict.fromkeys(statements):
            click.echo(f"{statement};\n")
        grants = sink.grants(mine) if mine else []
        if grants:
            click.echo(f"-- sink {name}: what the database user the function writes as needs\n")
            for statement in grants:
                click.echo(f"{statement};\n")


# -- --apply --------------------------------------------------------------------------------


def _apply(sinks: dict[str, Sink], routes: list[Route], allow_destructive: bool) -> int:
    """Create what is missing, run the fixes ``allow_destructive`` allows; the exit code for what is left."""
    left: list[Drift] = []
    for name, sink in sinks.items():
        mine = [r for r in routes if r.sink == name]
        if not mine:
            continue
        missing = _missing_tables(sink, mine)
        sink.apply_ddl(mine)  # state tables, missing tables, their indexes: CREATE ... IF NOT EXISTS
        console.print(f"sink {name}: " + _applied(mine, missing))
        if missing is None:
            continue
        drifts = [drift for r in mine for drift in sink.check(r)]
        run = [d for d in drifts if d.kind == Fix.ADDITIVE or (allow_destructive and d.kind == Fix.DESTRUCTIVE)]
        if run:
            sink.apply_fixes(run)
            _print_fixes(f"-- sink {name}: applied", run)
        left += [d for d in drifts if d not in run]
    return _report_left(left)


def _missing_tables(sink: Sink, routes: list[Route]) -> list[Route] | None:
    """The routes whose target table does not exist yet; None where the sink cannot tell."""
    try:
        return [r for r in routes if any(drift.problem == "missing table" for drift in sink.check(r))]
    except NotImplementedError:
        return None


def _applied(routes: list[Route], missing: list[Route] | None) -> str:
    tables = lambda chosen: ", ".join(r.qualified_table for r in chosen)  # noqa: E731
    if missing is None:
        return f"state tables and {tables(routes)} created unless they existed (existing tables are left as they are)"
    there = [r for r in routes if r not in missing]
    return "; ".join(part for part in (
        f"created {tables(missing)}" if missing else "",
        f"{tables(there)} already there" if there else "",
    ) if part) + "; state tables in place"


def _report_left(left: Sequence[Drift]) -> int:
    """What ``--apply`` did not run: destructive changes with the command that runs them, and changes
    to make by hand with what to do instead."""
    from handlers.render import drift_table

    if not left:
        return 0
    withheld = [d for d in left if d.kind == Fix.DESTRUCTIVE]
    by_hand = [d for d in left if d.kind == Fix.BY_HAND]
    console.print(drift_table(left, "not applied"))
    if withheld:
        _print_fixes("-- destructive, not run: these statements would run", withheld)
        flags = "".join(f" --route {name}" for name in dict.fromkeys(d.route for d in withheld))
        console.print(Text(f"-- to run them: cdc-router schema --apply --allow-destructive{flags}"))
    _print_by_hand(by_hand)
    return EXIT_BY_HAND if by_hand else EXIT_WITHHELD


def _print_by_hand(drifts: Sequence[Drift]) -> None:
    if drifts:
        console.print(Text("-- not possible in place, to do by hand:"))
    for drift in drifts:
        console.print(Text(f"-- {_what(drift)}: {drift.note}"))


def _print_fixes(title: str, drifts: Sequence[Drift]) -> None:
    console.print(Text(f"{title}:"))
    for drift in drifts:
        console.print(Text(f"-- {_what(drift)}" + (f" ({drift.note})" if drift.note else "")))
        for statement in drift.fix:
            click.echo(f"{statement};")


def _what(drift: Drift) -> str:
    return f"{drift.route}: {drift.table}: {drift.problem}" + (f" {drift.column}" if drift.column else "")


# -- --check --------------------------------------------------------------------------------


def _check(sinks: dict[str, Sink], routes: list[Route]) -> bool:
    from handlers.render import drift_table

    targets = [drift for route in routes for drift in sinks[route.sink].check(route)]
    drifts = [drift for name in sorted({route.sink for route in routes}) for drift in sinks[name].check_state()]
    fixes = list(dict.fromkeys(statement for drift in drifts for statement in drift.fix))  # state DDL once
    drifts += targets
    if not drifts:
        console.print(f"no drift: {len(routes)} target table(s) match their routes")
        return True
    console.print(drift_table(drifts))
    runnable = [drift for drift in drifts if drift.kind != Fix.BY_HAND]
    if runnable:
        console.print("-- statements that fix it:")
    for statement in fixes + [statement for drift in runnable if drift.route != "(state)" for statement in drift.fix]:
        click.echo(f"{statement};")
    _print_by_hand([drift for drift in drifts if drift.kind == Fix.BY_HAND])
    if runnable:
        destructive = any(drift.kind == Fix.DESTRUCTIVE for drift in runnable)
        console.print("-- or run: cdc-router schema --apply" + (
            " (the destructive ones: with --allow-destructive)" if destructive else ""))
    return False
