"""``kinesis:`` and ``version:`` in tables.yaml, and the version each source gives a record."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest

from operations.assemble import parse_config
from router.errors import ConfigError, RecordError
from router.model import VersionSpec
from router.modes import SourceKind, VersionSource
from router.records import ChangeRecord
from router.versions import version_reader

HEAD = """
version: 1
sinks:
  aurora: {type: postgres, dsn: "postgresql://localhost/x"}
routes:
"""


def route(name: str = "employees", source: str = "Employees", table: str = "Employees", **keys: str) -> str:
    extra = "".join(f"    {k}: {v}\n" for k, v in keys.items())
    return (f"  {name}:\n    source: {source}\n    sink: aurora\n    table: {table}\n    key: [Id]\n"
            f"    columns:\n      Id: {{type: bigint}}\n{extra}")


def errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(textwrap.dedent(HEAD) + text, "tables.yaml")
    return caught.value.errors


@pytest.mark.parametrize("keys, expected", [
    ({}, VersionSpec()),                                                            # the default
    ({"version": "sequence_number"}, VersionSpec()),
    ({"kinesis": "changes", "version": "approximate_creation_time"}, VersionSpec(VersionSource.APPROXIMATE_CREATION_TIME)),
    ({"kinesis": "changes", "version": "{attribute: rev}"}, VersionSpec(VersionSource.ATTRIBUTE, "rev")),
    ({"version": "{attribute: updatedAt}"}, VersionSpec(VersionSource.ATTRIBUTE, "updatedAt")),  # on DynamoDB Streams too
])
def test_valid_version_sources(keys: dict[str, str], expected: VersionSpec) -> None:
    config = parse_config(textwrap.dedent(HEAD) + route(**keys), "tables.yaml")
    assert config.routes["employees"].version == expected
    assert config.routes["employees"].kinesis == keys.get("kinesis")


@pytest.mark.parametrize("keys, message", [
    # a kinesis route without a version that survives reordering
    ({"kinesis": "changes"}, "routes.employees.version: defaults to sequence_number, which a kinesis route cannot use"),
    ({"kinesis": "changes", "version": "sequence_number"}, "is sequence_number, which a kinesis route cannot use"),
    # creation time on DynamoDB Streams: rounded down to the second
    ({"version": "approximate_creation_time"}, "approximate_creation_time needs kinesis: DynamoDB Streams round"),
    ({"kinesis": "changes", "version": "newest"}, "invalid value 'newest' (allowed: sequence_number, "
                                                  "approximate_creation_time, {attribute: NAME})"),
    ({"kinesis": "changes", "version": "{column: rev}"}, "invalid value {'column': 'rev'}"),
    ({"kinesis": "changes", "version": "{attribute: ''}"}, "invalid value {'attribute': ''}"),
    ({"kinesis": "'bad name!'", "version": "approximate_creation_time"}, "routes.employees.kinesis"),
])
def test_invalid_version_sources(keys: dict[str, str], message: str) -> None:
    assert any(message in error for error in errors(route(**keys))), errors(route(**keys))


def test_routes_of_one_table_agree_on_kinesis_and_version() -> None:
    found = errors(route(kinesis="changes", version="approximate_creation_time")
                   + route("copy", table="Copy", kinesis="other", version="{attribute: rev}"))
    assert any("routes.copy.kinesis: kinesis: other differs from route 'employees' (kinesis: changes)" in e for e in found)
    assert any("routes.copy.version: version: {attribute: rev} differs from route 'employees'" in e for e in found)


# -- the version of a record -----------------------------------------------------------------------

def record(event_name: str = "MODIFY", new: dict[str, Any] | None = None, old: dict[str, Any] | None = None,
           created_us: int | None = 1_732_957_420_604_000, source: SourceKind = SourceKind.KINESIS) -> ChangeRecord:
    return ChangeRecord(0, {}, "Employees", event_name=event_name, keys={"Id": {"N": "1"}}, new_image=new,
                        old_image=old, created_us=created_us, source=source)


ATTRIBUTE = VersionSpec(VersionSource.ATTRIBUTE, "rev")


@pytest.mark.parametrize("spec, rec, version", [
    (VersionSpec(VersionSource.APPROXIMATE_CREATION_TIME), record(), 1_732_957_420_604_000),
    (ATTRIBUTE, record(new={"rev": {"N": "7"}}), 70),                          # a write: the value, then 0
    (ATTRIBUTE, record("REMOVE", old={"rev": {"N": "7"}}), 71),                # its delete: then 1, above the write
    (ATTRIBUTE, record(new={"rev": {"N": "7.000"}}), 70),                      # a whole number written with zeros
    (ATTRIBUTE, record(new={"rev": {"S": "1970-01-01T00:00:01Z"}}), 10_000_000),
    (ATTRIBUTE, record(new={"rev": {"S": "2024-05-01T12:00:00.000001+02:00"}}), 17_145_576_000_000_010),
    (ATTRIBUTE, record(new={"rev": {"S": "1970-01-01T00:00:00.000002"}}), 20),  # no offset: UTC
    # a backfill record is 0 whatever the route says: below every stream version
    (ATTRIBUTE, record("INSERT", new={"rev": {"N": "7"}}, source=SourceKind.BACKFILL), 0),
    (VersionSpec(VersionSource.APPROXIMATE_CREATION_TIME), record(source=SourceKind.BACKFILL), 0),
])
def test_record_versions(spec: VersionSpec, rec: ChangeRecord, version: int) -> None:
    assert version_reader(spec)(rec) == version


@pytest.mark.parametrize("spec, rec, message", [
    (VersionSpec(VersionSource.APPROXIMATE_CREATION_TIME), record(created_us=None), "no ApproximateCreationDateTime"),
    (ATTRIBUTE, record(new={"other": {"N": "1"}}), "'rev' is absent from the NewImage"),
    (ATTRIBUTE, record("REMOVE", old=None), "'rev' is absent from the OldImage"),
    (ATTRIBUTE, record(new={"rev": {"N": "1.5"}}), "expected a whole number"),
    (ATTRIBUTE, record(new={"rev": {"N": "-1"}}), "expected a whole number"),
    (ATTRIBUTE, record(new={"rev": {"N": "1" + "0" * 37}}), "expected a whole number"),
    (ATTRIBUTE, record(new={"rev": {"S": "yesterday"}}), "expected ISO-8601 text"),
    (ATTRIBUTE, record(new={"rev": {"S": "1969-12-31T23:59:59Z"}}), "before 1970"),
    (ATTRIBUTE, record(new={"rev": {"BOOL": True}}), "of type BOOL"),
])
def test_unusable_versions_are_record_errors(spec: VersionSpec, rec: ChangeRecord, message: str) -> None:
    with pytest.raises(RecordError, match=message):
        version_reader(spec)(rec)
