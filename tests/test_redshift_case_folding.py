"""Redshift folds identifiers to lower case: ``public.T`` and ``public.t`` are one table there
(issue 13, finding 6), so routes to both are checked as sharing it and write one tombstone target."""

from __future__ import annotations

import pytest

from operations.assemble import parse_config
from router.errors import ConfigError
from sinks.redshift import RedshiftSink
from sinks.sql.rows import target_name

CONFIG = """
version: 1
sinks:
  s: {{type: {sink}{options}}}
routes:
  upper:
    source: T
    sink: s
    table: public.T
    key: [id]
    columns: {{id: {{type: bigint}}}}
  lower:
    source: U
    sink: s
    table: public.t
    key: [id]
    columns: {{id: {{type: bigint}}}}
"""
REDSHIFT = ", workgroup: analytics, database: dev"
POSTGRES = ", dsn: postgresql://localhost/test"


def test_two_spellings_of_one_redshift_table_are_one_shared_target() -> None:
    # GIVEN routes of two source tables into public.T and public.t of one Redshift sink
    with pytest.raises(ConfigError) as caught:
        parse_config(CONFIG.format(sink="redshift", options=REDSHIFT), "tables.yaml", environ={})
    # THEN validate refuses them as two tables' changes fighting over one target table
    [error] = caught.value.errors
    assert error.startswith("tables.yaml: routes.lower.") and "also written by route 'upper'" in error


def test_on_postgres_the_two_spellings_are_two_tables() -> None:
    config = parse_config(CONFIG.format(sink="postgres", options=POSTGRES), "tables.yaml", environ={})
    assert sorted(config.routes) == ["lower", "upper"]


def test_a_redshift_tombstone_target_is_named_as_redshift_folds_it() -> None:
    config = parse_config(CONFIG.format(sink="redshift", options=REDSHIFT).split("  lower:")[0], "tables.yaml",
                          environ={})
    route = config.routes["upper"]
    sink = RedshiftSink(config.sinks["s"], [route])
    assert sink._targets["upper"] == '"public"."t"' == target_name(route, str.lower)
    assert target_name(route) == '"public"."T"'  # Postgres tells the spellings apart
