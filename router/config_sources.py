"""A route's change source (``kinesis:``) and version source (``version:``), validated.

- ``kinesis: NAME``: the table's changes arrive through the Kinesis data stream NAME (Kinesis
  Data Streams for DynamoDB); absent: through the table's DynamoDB stream.
- ``version: sequence_number | approximate_creation_time | {attribute: NAME}``; the default,
  sequence_number, is valid on DynamoDB Streams routes only, approximate_creation_time on
  Kinesis routes only (see ``router.versions`` for what each is).
- Routes of one source table agree on both: a record is parsed once, and two routes of one
  table that ordered its changes differently could fight over what is newest.
"""

from __future__ import annotations

from typing import Any

from router.config_errors import Errors
from router.model import Route, VersionSpec
from router.modes import VersionSource
from router.versions import describe
from router.yamlfile import Path

# https://docs.aws.amazon.com/kinesis/latest/APIReference/API_CreateStream.html: StreamName
STREAM_NAME = r"[a-zA-Z0-9_.-]{1,128}"
SCHEMA = {
    "kinesis": {"type": "string", "empty": False, "regex": STREAM_NAME},
    "version": {"type": ["string", "dict"]},  # no default here: an absent version is reported as such
}
_NAMED = [str(VersionSource.SEQUENCE_NUMBER), str(VersionSource.APPROXIMATE_CREATION_TIME)]
_ALLOWED = ", ".join(_NAMED) + ", {attribute: NAME}"


def build_version(entry: dict[str, Any], path: Path, errors: Errors) -> VersionSpec | None:
    """The route's ``VersionSpec``, or None after reporting what is wrong with it."""
    value, where = entry.get("version", str(VersionSource.SEQUENCE_NUMBER)), path + ("version",)
    spec = _spec(value, where, errors)
    if spec is None:
        return None
    kinesis = entry.get("kinesis")
    if kinesis is not None and spec.source == VersionSource.SEQUENCE_NUMBER:
        said = "is sequence_number" if "version" in entry else "defaults to sequence_number"
        errors.add(where, f"{said}, which a kinesis route cannot use: Kinesis records of DynamoDB changes carry "
                          "no per-item SequenceNumber and may arrive out of order and more than once (allowed on "
                          "kinesis routes: approximate_creation_time, {attribute: NAME})")
        return None
    if kinesis is None and spec.source == VersionSource.APPROXIMATE_CREATION_TIME:
        errors.add(where, "approximate_creation_time needs kinesis: DynamoDB Streams round "
                          "ApproximateCreationDateTime down to the second, so changes within a second would tie "
                          "(allowed without kinesis: sequence_number, {attribute: NAME})")
        return None
    return spec


def _spec(value: Any, where: Path, errors: Errors) -> VersionSpec | None:
    if isinstance(value, str):
        if value in _NAMED:
            return VersionSpec(VersionSource(value))
        errors.add(where, f"invalid value {value!r} (allowed: {_ALLOWED})")
        return None
    attribute = value.get("attribute") if isinstance(value, dict) else None
    if set(value) != {"attribute"} or not isinstance(attribute, str) or not attribute:
        errors.add(where, f"invalid value {value!r} (allowed: {_ALLOWED}; the attribute a non-empty name)")
        return None
    return VersionSpec(VersionSource.ATTRIBUTE, attribute)


def check_agreement(routes: dict[str, Route], errors: Errors) -> None:
    """Routes of one source table name the same ``kinesis:`` and ``version:``."""
    first: dict[str, Route] = {}
    for route in routes.values():
        other = first.setdefault(route.source, route)
        if other is route:
            continue
        for key, mine, theirs in (("kinesis", route.kinesis, other.kinesis),
                                  ("version", describe(route.version), describe(other.version))):
            if mine != theirs:
                errors.add(("routes", route.name, key),
                           f"{key}: {mine or '(absent)'} differs from route {other.name!r} ({key}: "
                           f"{theirs or '(absent)'}); routes of one source table ({route.source}) must agree on "
                           "kinesis and version")
