"""Security of the write path: identifiers from tables.yaml are quoted everywhere, values only
travel as parameters (checked on the wire), passwords stay out of logs and errors, and
sslmode/sslrootcert reach the connection."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest
import yaml
from factories import Stream, as_yaml, event, postgres, route, tables
from moto import mock_aws
from psycopg import pq, sql

from operations.assemble import parse_config, pipeline_for

HOSTILE = "x'); DROP TABLE canary; --"
SHORT = "');DROP TABLE c;--"  # fits the Employees route's varchar(20)
ODD = """
version: 1
sinks:
  aurora: {{type: postgres, dsn: "${{DATABASE_URL}}", state_schema: '{state}"; DROP TABLE canary; --'}}
routes:
  odd:
    source: Odd
    sink: aurora
    table: '{schema}"; DROP TABLE canary; --.Odd "t"; x'
    key: ['the "key"; --']
    columns:
      'the "key"; --': {{from: Id, type: bigint}}
      "it's; a col":   {{from: v, type: text}}
    extras: 'more "stuff"'
    deletes: {deletes}
    on_error: dead_letter
"""


@pytest.mark.parametrize("deletes", ["hard", "soft", "ignore"])
def test_hostile_identifiers_are_written_as_names_on_every_path(pg: Any, make_pipeline: Any, deletes: str) -> None:
    # GIVEN a canary table, and a schema, table, key, columns, extras and state schema named like SQL
    pg.conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(pg.schema)))
    pg.conn.execute(sql.SQL("CREATE TABLE {} (x int)").format(sql.Identifier(pg.schema, "canary")))
    schema, state = f'{pg.schema}"; DROP TABLE canary; --', f'{pg.state_schema}"; DROP TABLE canary; --'
    try:
        pipeline = make_pipeline(pg, template=ODD, deletes=deletes)
        stream = Stream("Odd")
        batches = [[stream.insert({"Id": 1, "v": HOSTILE, "w": HOSTILE}), stream.insert({"Id": 2, "v": "b"})],
                   [stream.modify({"Id": 1, "v": "c"}), stream.remove({"Id": 2})],
                   [stream.insert({"Id": 3, "v": "d"})]]
        batches[2][0]["dynamodb"]["NewImage"]["bad"] = {"N": "x"}  # unreadable extras: dead-lettered
        for batch in batches:
            assert pipeline.process(event(batch)).response == {"batchItemFailures": []}
        # THEN every name was used as written, and nothing was executed
        rows = pg.conn.execute(sql.SQL("SELECT * FROM {} ORDER BY 1").format(
            sql.Identifier(schema, 'Odd "t"; x'))).fetchall()
        assert [(r['the "key"; --'], r["it's; a col"]) for r in rows if not r.get("_cdc_deleted_at")] == (
            [(1, "c"), (2, "b")] if deletes == "ignore" else [(1, "c")])
        assert rows[0]['more "stuff"'] == {}  # the modify's image dropped attribute w
        assert pg.conn.execute(sql.SQL("SELECT count(*) AS n FROM {}").format(
            sql.Identifier(state, "dead_letters"))).fetchone()["n"] == 1
    finally:
        for name in (schema, state):
            pg.conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))
    assert pg.conn.execute(sql.SQL("SELECT count(*) AS n FROM {}").format(
        sql.Identifier(pg.schema, "canary"))).fetchone()["n"] == 0


def test_values_travel_only_as_parameters(pg: Any, make_pipeline: Any, tmp_path: Path) -> None:
    # GIVEN a libpq protocol trace of the sink's connection
    pipeline = make_pipeline(pg)
    conn = pipeline.sinks["aurora"].connection()
    trace = tmp_path / "wire.trace"
    with open(trace, "w") as handle:
        conn.pgconn.trace(handle.fileno())
        conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        stream = Stream("Employees")
        # WHEN values shaped like SQL are written, updated and deleted
        pipeline.process(event([stream.insert({"Id": 1, "empName": SHORT, "empDepartment": "'; --"}),
                                stream.insert({"Id": 2, "empName": "Robert'); --", "empDepartment": "x"})]))
        pipeline.process(event([stream.remove({"Id": 2})]))
        conn.pgconn.untrace()
    # THEN the SQL text the client sent (Parse, Query) never holds them; only Bind parameters do
    lines = trace.read_text().splitlines()
    sql_text = [line for line in lines if line.startswith("F") and ("\tParse\t" in line or "\tQuery\t" in line)]
    binds = [line for line in lines if line.startswith("F") and "\tBind\t" in line]
    assert sql_text and binds
    assert not any("DROP TABLE" in line or "Robert" in line for line in sql_text)
    assert any(SHORT in line for line in binds)
    assert [r["Name"] for r in pg.rows("Employees")] == [SHORT]


def failing_sink_config(pg: Any, dsn_line: str) -> str:
    """A sink nothing listens for, its credentials in ``dsn_line``; a Name that does not fit fails the record."""
    columns = {"Id": {"from": "Id", "type": "bigint"}, "Name": {"from": "empName", "type": "varchar(5)"}}
    sink = postgres(pg.state_schema, connect_timeout=2, **yaml.safe_load("{" + dsn_line + "}"))
    return as_yaml(tables({"employees": route(f"{pg.schema}.Employees", columns=columns)}, {"aurora": sink}))


@pytest.mark.parametrize("dsn_line", [
    'dsn: "postgresql://cdc:pw-in-url-9f3a@127.0.0.1:1/db"',                 # URL form
    "dsn: \"host=127.0.0.1 port=1 user=cdc password='pw in kv 9f3a' dbname=db\"",  # key=value form
    "secret: {secret}",                                                       # Secrets Manager
])
def test_passwords_stay_out_of_logs_and_errors(pg: Any, dsn_line: str, capsys: Any,
                                                                 caplog: Any) -> None:
    secret = {"host": "127.0.0.1", "port": 1, "username": "cdc", "password": "pw-from-secret-9f3a", "dbname": "db"}
    stream = Stream("Employees")
    fits, too_long = stream.insert({"Id": 1, "empName": "ok"}), stream.insert({"Id": 2, "empName": "far-too-long"})
    name = f"dev/rds-{uuid.uuid4().hex[:8]}"  # Powertools caches secrets by name across tests
    with mock_aws():
        boto3.client("secretsmanager").create_secret(Name=name, SecretString=json.dumps(secret))
        pipeline = pipeline_for(parse_config(failing_sink_config(pg, dsn_line.replace("{secret}", name))))
        # WHEN the connection fails, and then a record fails its cast
        down = pipeline.process(event([fits]))
        pipeline.sinks["aurora"].credentials.options.update(dsn=pg.url)
        pipeline.sinks["aurora"].credentials.options.pop("secret", None)
        refused = pipeline.process(event([too_long]))
        pipeline.close()
    output = capsys.readouterr()
    texts = [down.failure.reason, refused.failure.reason, output.out, output.err, caplog.text]
    # THEN the failures are reported, and no password appears anywhere
    assert down.failure.transient and "Connection refused" in down.failure.reason
    assert "does not fit varchar(5)" in refused.failure.reason
    for text in texts:
        assert not any(marker in text for marker in ("pw-in-url", "pw in kv", "pw-from-secret", "9f3a"))


def test_sslmode_and_sslrootcert_reach_the_connection(pg: Any, tmp_path: Path) -> None:
    root = tmp_path / "rds-global-bundle.pem"
    root.write_text("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")

    def sink(mode: str) -> Any:
        config = failing_sink_config(pg, f'dsn: "{pg.url}", sslmode: {mode}, sslrootcert: "{root}"')
        return pipeline_for(parse_config(config)).sinks["aurora"]

    # verify-full: libpq insists on TLS with certificate and host name checks (this test server has no TLS)
    strict = sink("verify-full")
    with pytest.raises(psycopg.OperationalError, match="SSL"):
        strict.connection()
    # allow: the same options reach libpq and the connection reports them
    relaxed = sink("allow")
    parameters = relaxed.connection().info.get_parameters()
    relaxed.close()
    assert parameters.get("sslmode") == "allow" and parameters.get("sslrootcert") == str(root)
