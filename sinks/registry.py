"""The product's sink types by the name used in ``tables.yaml``; classes are imported when first used."""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping

from router.sink import Sink

_TYPES = {
    "postgres": ("sinks.postgres", "PostgresSink"),
    "redshift": ("sinks.redshift", "RedshiftSink"),
}


class LazySinkTypes(Mapping[str, type[Sink]]):
    """``{type name: Sink class}`` that imports a sink's module (psycopg, boto3) only when asked for it."""

    def __init__(self, types: Mapping[str, tuple[str, str]]):
        self._types = dict(types)

    def __getitem__(self, name: str) -> type[Sink]:
        module, attr = self._types[name]
        return getattr(importlib.import_module(module), attr)

    def __iter__(self) -> Iterator[str]:
        return iter(self._types)

    def __len__(self) -> int:
        return len(self._types)


SINK_TYPES = LazySinkTypes(_TYPES)
