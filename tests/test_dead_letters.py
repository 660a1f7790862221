"""Dead letters after the fact, against the real Postgres: list them, fix the route, retry them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result
from factories import Stream, event
from psycopg import sql

from handlers.cli import app

PEOPLE = """
version: 1
sinks:
  aurora:
    type: postgres
    dsn: ${{DATABASE_URL}}
    state_schema: {state}
routes:
  people:
    source: People
    sink: aurora
    table: {schema}.people
    key: [Id]
    columns:
      Id:   {{type: bigint}}
      Name: {{type: "{name_type}"}}
    deletes: {deletes}
    on_error: {on_error}
"""


def cli(*args: Any) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def dead_letter_a_long_name(pg: Any, make_pipeline: Callable[..., Any]) -> Stream:
    """GIVEN a route whose Name is varchar(5): 'Akua Mansa' is dead-lettered, 'Ann' applied."""
    stream = Stream("People")
    pipeline = make_pipeline(pg, PEOPLE, on_error="dead_letter", name_type="varchar(5)")
    result = pipeline.process(event([stream.insert({"Id": 1, "Name": "Akua Mansa"}),
                                     stream.insert({"Id": 2, "Name": "Ann"})]))
    assert result.failure is None and result.stats["people"].dead_lettered == 1
    return stream


def fix_the_route(pg: Any, write_config: Callable[..., Path]) -> Path:
    """The route's type and the target column both widened (what `schema --check` prints)."""
    pg.conn.execute(sql.SQL("ALTER TABLE {} ALTER COLUMN {} TYPE varchar(50)").format(
        sql.Identifier(pg.schema, "people"), sql.Identifier("Name")))
    return write_config(PEOPLE, pg, deletes="hard", on_error="dead_letter", name_type="varchar(50)")


def test_a_cast_error_retried_after_the_type_is_fixed_is_applied_and_leaves_the_dead_letters(
        pg: Any, make_pipeline: Callable[..., Any], write_config: Callable[..., Path]) -> None:
    dead_letter_a_long_name(pg, make_pipeline)
    [letter] = pg.state("dead_letters")
    assert letter["route"] == "people" and "does not fit varchar(5)" in letter["error"]

    # WHEN the route's type is fixed and the dead letters retried
    done = cli("dead-letters", "retry", "-c", fix_the_route(pg, write_config))

    # THEN the record is applied and its dead letter gone
    assert done.exit_code == 0, done.output
    assert "people #" in done.output and ": applied; removed from the dead letters" in done.output
    assert pg.rows("people", order_by="Id") == [{"Id": 1, "Name": "Akua Mansa"}, {"Id": 2, "Name": "Ann"}]
    assert pg.state("dead_letters") == []


def test_a_retry_that_still_fails_keeps_the_dead_letter_and_says_why(
        pg: Any, make_pipeline: Callable[..., Any], write_config: Callable[..., Path]) -> None:
    dead_letter_a_long_name(pg, make_pipeline)
    unchanged = write_config(PEOPLE, pg, deletes="hard", on_error="dead_letter", name_type="varchar(5)")
    done = cli("dead-letters", "retry", "-c", unchanged)
    assert done.exit_code == 1
    assert "still fails: record 0 (table People" in done.output and "does not fit varchar(5)" in done.output
    assert len(pg.state("dead_letters")) == 1
    assert pg.rows("people") == [{"Id": 2, "Name": "Ann"}]


def test_a_retry_older_than_the_row_is_stale_and_never_overwrites_newer_data(
        pg: Any, make_pipeline: Callable[..., Any], write_config: Callable[..., Path]) -> None:
    stream = dead_letter_a_long_name(pg, make_pipeline)
    # the item changed after it was dead-lettered, to a value that fits
    make_pipeline(pg, PEOPLE, on_error="dead_letter", name_type="varchar(5)").process(
        event([stream.modify({"Id": 1, "Name": "Akua"})]))
    done = cli("dead-letters", "retry", "-c", fix_the_route(pg, write_config))
    assert done.exit_code == 0, done.output
    assert "stale: the row was already newer" in done.output
    assert pg.rows("people", order_by="Id") == [{"Id": 1, "Name": "Akua"}, {"Id": 2, "Name": "Ann"}]
    assert pg.state("dead_letters") == []


def test_list_shows_each_dead_letter_with_its_route_sequence_number_and_error(
        pg: Any, make_pipeline: Callable[..., Any], write_config: Callable[..., Path]) -> None:
    dead_letter_a_long_name(pg, make_pipeline)
    path = write_config(PEOPLE, pg, deletes="hard", on_error="dead_letter", name_type="varchar(5)")
    done = cli("dead-letters", "list", "-c", path)
    assert done.exit_code == 0, done.output
    [letter] = pg.state("dead_letters")
    assert done.output.startswith(f"1 dead letter(s)\npeople #{letter['id']}: table People, "
                                  "SequenceNumber 100000000000000000000, failed ")
    assert done.output.endswith("sink aurora\n    column 'Name' (from 'Name'): 'Akua Mansa' does not fit "
                                "varchar(5): 10 characters, at most 5 allowed\n")
    assert cli("dead-letters", "list", "-c", path, "--route", "nobody").exit_code == 2  # an unknown route
