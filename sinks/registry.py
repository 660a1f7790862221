"""Sink types by the name used in ``tables.yaml``; classes are imported only when used."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sinks.base import Sink

_TYPES = {
    "postgres": ("sinks.postgres", "PostgresSink"),
    "redshift": ("sinks.redshift", "RedshiftSink"),
    "memory": ("sinks.memory", "MemorySink"),
}


def sink_types() -> tuple[str, ...]:
    return tuple(_TYPES)


def sink_class(type_name: str) -> type["Sink"]:
    module, name = _TYPES[type_name]
    return getattr(importlib.import_module(module), name)
