"""Masked columns (issue 16): the unmasked value of a masked column reaches no table of the target
database (dead letters included), no log line and no output of ``replay``; a masked key column works.

The HMAC key comes from a Secrets Manager secret served by moto, read once per container."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
from click.testing import CliRunner
from factories import Stream, event
from moto import mock_aws
from psycopg import sql
from redshift_on_postgres import BOTH_SINKS, FoldedTarget

from handlers.cli import app
from operations import redrive
from operations.assemble import read_secret
from router import masking
from router.errors import ConfigError
from router.model import MaskKey
from router.modes import OnError
from router.pipeline import Pipeline
from sinks.registry import SINK_TYPES

KEY = "k3y-for-the-test"
CUSTOMERS = BOTH_SINKS.replace("    type: postgres\n", "    type: postgres\n    mask_secret: test/cdc-mask-key\n").replace(
    "    type: redshift\n", "    type: redshift\n    mask_secret: test/cdc-mask-key\n") + """
  customers:
    source: Customers
    sink: {sink}
    table: {target}.Customers
    key: [Email]
    columns:
      Email: {{from: email, mask: hmac_sha256}}
      Phone: {{from: contact.phone, type: varchar(64), mask: sha256}}
      Ssn:   {{from: ssn, type: bigint, mask: redact}}
      Name:  {{from: name}}
      Age:   {{from: age, type: smallint}}
    on_error: dead_letter
    log_records: true
"""
OK = {"batchItemFailures": []}


def digest(value: str, key: str | None = KEY) -> str:
    if key is None:
        return hashlib.sha256(value.encode()).hexdigest()
    return hmac.new(key.encode(), value.encode(), hashlib.sha256).hexdigest()


@pytest.fixture
def secret() -> Any:
    with mock_aws():
        boto3.client("secretsmanager").create_secret(Name="test/cdc-mask-key", SecretString=json.dumps({"key": KEY}))
        masking._keys.clear()  # a new container
        yield
        masking._keys.clear()


def secrets() -> dict[str, str]:
    """Unmasked values, unique to this test run so that nothing else in the database can match."""
    tag = uuid.uuid4().hex[:12]
    return {"email": f"ana.{tag}@example.com", "phone": f"+1555{tag}", "ssn": "123456789" + str(uuid.uuid4().int)[:6]}


def customer(values: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {"email": values["email"], "contact": {"phone": values["phone"]}, "ssn": int(values["ssn"]),
            "name": "Ana", "age": 30, **extra}


def search(pg: Any, needles: list[str]) -> list[str]:
    """Every table of the database whose rows, as text, hold one of ``needles``."""
    tables = pg.conn.execute("""SELECT table_schema, table_name FROM information_schema.tables
        WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')""").fetchall()
    found = []
    for table in tables:
        name = sql.Identifier(table["table_schema"], table["table_name"])
        for needle in needles:
            query = sql.SQL("SELECT count(*) AS n FROM {} AS t WHERE t::text LIKE %s").format(name)
            if pg.conn.execute(query, (f"%{needle}%",)).fetchone()["n"]:
                found.append(f"{table['table_schema']}.{table['table_name']}: {needle}")
    return found


@pytest.mark.parametrize("sink", ["aurora", "warehouse"])
def test_no_unmasked_value_reaches_the_database_or_the_logs(sink: str, pg: Any, warehouse_pg: Any, secret: Any,
                                                           make_both_pipeline: Any, caplog: pytest.LogCaptureFixture,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    pipeline = make_both_pipeline(pg, CUSTOMERS, sink=sink, target=pg.schema)
    ana, bo = secrets(), secrets()
    stream = Stream("Customers", key=("email",), view="NEW_AND_OLD_IMAGES")
    # GIVEN two customers, a change of one, and a record of the other that cannot be stored (age out of range)
    batch = [stream.insert(customer(ana)), stream.insert(customer(bo)),
             stream.modify(customer(ana, name="Ana B")), stream.modify(customer(bo, age=10**6))]
    result = pipeline.process(event(batch))
    assert (result.response, result.stats["customers"].dead_lettered) == (OK, 1)
    # THEN the rows hold digests, joinable by hashing the value with the key, and no unmasked value
    customers = pg if sink == "aurora" else FoldedTarget(pg, ["Customers", "Email", "Phone", "Ssn", "Name", "Age"])
    rows = customers.rows("Customers", order_by="Name")
    assert rows == [
        {"Email": digest(bo["email"]), "Phone": digest(bo["phone"], None), "Ssn": None, "Name": "Ana", "Age": 30},
        {"Email": digest(ana["email"]), "Phone": digest(ana["phone"], None), "Ssn": None, "Name": "Ana B", "Age": 30}]
    # a record that fails a route with log_records logs its body: masked too
    failing = stream.modify(customer(ana, age="not a number"))
    failing["dynamodb"]["NewImage"]["age"] = {"N": "not a number"}
    assert _strict(pipeline).process(event([failing])).response != OK
    output = capsys.readouterr()
    # every log record with its structured keys (Powertools' handler writes to the stdout of its import time)
    logs = output.out + output.err + json.dumps([vars(r) for r in caplog.records], default=str)
    letters = (pg if sink == "aurora" else warehouse_pg).state("dead_letters")
    assert [letter["record"]["dynamodb"]["NewImage"]["email"] for letter in letters] == [{"S": digest(bo["email"])}]
    needles = [v for values in (ana, bo) for v in values.values()]
    assert search(pg, needles) == []
    assert [n for n in needles if n in logs] == []
    assert digest(ana["email"]) in logs  # the failure was logged with its (masked) body
    # AND a delete reaches the row through its masked key
    pipeline.process(event([stream.remove({"email": bo["email"]})]))
    assert [r["Email"] for r in customers.rows("Customers")] == [digest(ana["email"])]


def _strict(pipeline: Pipeline, name: str = "customers") -> Pipeline:
    """The route ``name`` with on_error: fail, so that the failure is logged (with the record: log_records)."""
    routes = dict(pipeline.config.routes)
    routes[name] = dataclasses.replace(routes[name], on_error=OnError.FAIL)
    config = dataclasses.replace(pipeline.config, routes=routes)
    return Pipeline(config, pipeline.sinks, pipeline.parse, pipeline.read_secret)


def test_a_redriven_dead_letter_keeps_its_digests(pg: Any, secret: Any, make_both_pipeline: Any,
                                                   write_config: Any) -> None:
    pipeline = make_both_pipeline(pg, CUSTOMERS, sink="aurora", target=pg.schema)
    ana = secrets()
    stream = Stream("Customers", key=("email",))
    assert pipeline.process(event([stream.insert(customer(ana, age=10**6))])).response == OK
    assert pg.rows("Customers") == []
    # WHEN the column is widened and the dead letter retried
    pg.conn.execute(sql.SQL("ALTER TABLE {} ALTER COLUMN {} TYPE integer").format(
        sql.Identifier(pg.schema, "Customers"), sql.Identifier("Age")))
    wider = make_both_pipeline(pg, CUSTOMERS.replace("type: smallint", "type: integer"), sink="aurora",
                               target=pg.schema)
    [outcome] = redrive.retry(wider)
    # THEN the row holds the same digests as a direct write would
    assert outcome.applied
    assert pg.rows("Customers") == [{"Email": digest(ana["email"]), "Phone": digest(ana["phone"], None), "Ssn": None,
                                     "Name": "Ana", "Age": 10**6}]


@pytest.mark.parametrize("sink", ["aurora", "warehouse"])
def test_a_log_delete_carries_the_old_image_masked(sink: str, pg: Any, secret: Any, make_both_pipeline: Any) -> None:
    pipeline = make_both_pipeline(pg, CUSTOMERS + "    mode: log\n", sink=sink, target=pg.schema)
    ana = secrets()
    stream = Stream("Customers", key=("email",), view="NEW_AND_OLD_IMAGES")
    assert pipeline.process(event([stream.insert(customer(ana)), stream.remove({"email": ana["email"]})])).response == OK
    customers = pg if sink == "aurora" else FoldedTarget(pg, ["Customers", "Email", "Phone", "Ssn", "Name", "Age"])
    masked = {"Email": digest(ana["email"]), "Phone": digest(ana["phone"], None), "Ssn": None, "Name": "Ana", "Age": 30}
    assert customers.rows("Customers", order_by="_cdc_version") == [masked, masked]  # the upsert, then the delete
    assert search(pg, list(ana.values())) == []


def test_replay_output_shows_no_unmasked_value(pg: Any, secret: Any, write_config: Any, tmp_path: Path,
                                               make_both_pipeline: Any) -> None:
    make_both_pipeline(pg, CUSTOMERS, sink="aurora", target=pg.schema)  # creates the tables
    ana, bo = secrets(), secrets()
    stream = Stream("Customers", key=("email",))
    path = tmp_path / "event.json"
    # the second record cannot be stored (age is no number): dead-lettered, its values masked too
    path.write_text(json.dumps(event([stream.insert(customer(ana)), stream.insert(customer(bo, age="x"))])))
    config = write_config(CUSTOMERS, pg, sink="aurora", target=pg.schema, wschema="w", wstate="ws")
    for flags in (["--dry-run"], []):
        result = CliRunner().invoke(app, ["replay", str(path), "--config", str(config), *flags])
        assert result.exit_code == 0, result.output
        assert digest(ana["email"])[:8] in result.output or not flags  # the dry run prints the (masked) rows
        assert [v for values in (ana, bo) for v in values.values() if v in result.output] == []
    [letter] = pg.state("dead_letters")
    assert letter["record"]["dynamodb"]["NewImage"]["email"] == {"S": digest(bo["email"])}


def test_the_key_is_read_once_per_container(secret: Any) -> None:
    source = MaskKey(secret="test/cdc-mask-key")
    assert masking.read_key(source, read_secret) == KEY.encode()
    boto3.client("secretsmanager").put_secret_value(SecretId="test/cdc-mask-key", SecretString="rotated")
    assert masking.read_key(source, read_secret) == KEY.encode()  # a rotation takes a new container


@pytest.mark.parametrize(("column", "error"), [
    # a digest does not fit a number or a short varchar
    ("{from: email, type: bigint, mask: sha256}", "invalid type 'bigint' for mask: sha256"),
    ("{from: email, type: varchar(20), mask: sha256}", "invalid type 'varchar(20)' for mask: sha256"),
    # a default would be stored unmasked
    ("{from: email, mask: sha256, default: x}", "a masked column cannot have a default or a fallback"),
    # no key on the sink
    ("{from: email, mask: hmac_sha256}", "mask: hmac_sha256 needs a key: set mask_secret"),
])
def test_invalid_masks_are_refused_at_load(column: str, error: str, tmp_path: Path) -> None:
    path = tmp_path / "tables.yaml"
    path.write_text(f"""version: 1
sinks:
  aurora: {{type: postgres, dsn: "postgresql://x"}}
routes:
  r:
    source: T
    sink: aurora
    table: T
    key: [Id]
    columns:
      Id: {{type: bigint}}
      Email: {column}
""")
    with pytest.raises(ConfigError) as caught:
        masking_config(path)
    assert error in str(caught.value)


def test_a_redacted_key_column_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tables.yaml"
    path.write_text("""version: 1
sinks:
  aurora: {type: postgres, dsn: "postgresql://x", mask_key: k}
routes:
  r: {source: T, sink: aurora, table: T, key: [Id], columns: {Id: {mask: redact}}}
""")
    with pytest.raises(ConfigError, match="a key column cannot be redacted"):
        masking_config(path)


def masking_config(path: Path) -> Any:
    from router.config import load_config

    return load_config(path, SINK_TYPES)


def test_a_kinesis_record_is_stored_masked_and_still_parses(tmp_path: Path) -> None:
    from factories import wire
    from kinesis_factories import KinesisStream, change_data

    from router.model import Column, Route
    from router.modes import Mask
    from router.records import TTL_IDENTITY
    from router.transform import RouteTransform
    from router.types import parse_type
    from sources.kinesis import parse_record

    values = secrets()
    route = Route(name="r", source="Customers", sink="s", schema="public", table="Customers", key=("Email",),
                  columns=(Column("Email", ("email",), parse_type("text"), mask=Mask.HMAC_SHA256),),
                  mask_key=MaskKey(value=KEY))
    change = change_data("Customers", "REMOVE", wire({"email": values["email"]}), None,
                         wire({"email": values["email"]}), 1_700_000_000_000)
    raw = KinesisStream().put({**change, "userIdentity": dict(TTL_IDENTITY)})
    # GIVEN a Kinesis record of a TTL expiry WHEN it is masked for a dead letter or a log line
    masked = RouteTransform(route).masked(parse_record(raw, 0))
    # THEN its data holds the digest only, and it parses again (a redrive) to the same key and an expiry
    assert values["email"] not in json.dumps(masked.raw)
    again = parse_record(masked.raw, 0)
    assert (again.keys, again.is_expiry) == ({"email": {"S": digest(values["email"])}}, True)
    assert RouteTransform(route)(again).key == (digest(values["email"]),)  # read as it is, not hashed twice


PROFILES = CUSTOMERS.split("routes:\n", 1)[0] + """routes:
  contacts:
    source: Profiles
    sink: {sink}
    table: {target}.Contacts
    key: [Id]
    columns:
      Id:    {{from: id, type: bigint}}
      Email: {{from: email, mask: hmac_sha256}}
      Home:  {{from: address.home, mask: sha256}}
  ages:
    source: Profiles
    sink: {sink}
    table: {target}.Ages
    key: [Id]
    columns:
      Id:   {{from: id, type: bigint}}
      Age:  {{from: age, type: smallint}}
      Work: {{from: address.work}}
    on_error: dead_letter
    log_records: true
"""


@pytest.mark.parametrize("sink", ["aurora", "warehouse"])
def test_another_routes_masked_attribute_is_masked_in_a_dead_letter_and_a_log(
        sink: str, pg: Any, warehouse_pg: Any, secret: Any, make_both_pipeline: Any,
        caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN two routes of one table: one masks email and address.home, the other reads neither and
    # dead-letters what it cannot store
    pipeline = make_both_pipeline(pg, PROFILES, sink=sink, target=pg.schema)
    ana = secrets()
    stream = Stream("Profiles", key=("id",), view="NEW_AND_OLD_IMAGES")
    item = {"id": 1, "email": ana["email"], "address": {"home": ana["phone"], "work": "Dock 4"}, "age": 10**6}
    # WHEN a record the second route cannot store (age out of range) arrives
    result = pipeline.process(event([stream.insert(item)]))
    assert (result.response, result.stats["ages"].dead_lettered) == (OK, 1)
    # THEN its dead letter holds the first route's digests, and what the second route reads in clear
    letters = (pg if sink == "aurora" else warehouse_pg).state("dead_letters")
    image = letters[0]["record"]["dynamodb"]["NewImage"]
    assert image["email"] == {"S": digest(ana["email"])}
    assert image["address"]["M"] == {"home": {"S": digest(ana["phone"], None)}, "work": {"S": "Dock 4"}}
    # and a failing record of that route logs no unmasked value either
    assert _strict(pipeline, "ages").process(event([stream.modify(item)])).response != OK
    output = capsys.readouterr()
    logs = output.out + output.err + json.dumps([vars(r) for r in caplog.records], default=str)
    assert "Dock 4" in logs and ana["email"] not in logs and ana["phone"] not in logs
    assert search(pg, [ana["email"], ana["phone"]]) == []
