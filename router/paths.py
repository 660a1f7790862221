"""Attribute paths, as written in a column's ``from`` and a filter's ``attribute``.

``address.city`` reads the ``city`` entry of the map attribute ``address``; a list of names
(``[meta.type]``, ``[meta.type, code]``) takes each name as written, for attribute names
that contain a dot.
"""

from __future__ import annotations

from typing import Any

MISSING_VALUE = object()  # "the image has no such attribute"


def parse_path(spec: Any) -> tuple[str, ...]:
    """``address.city`` or ``[name, name]`` -> the names; ``ValueError`` with the reason."""
    if isinstance(spec, str):
        names = tuple(spec.split("."))
    elif isinstance(spec, list) and spec and all(isinstance(n, str) for n in spec):
        names = tuple(spec)
    else:
        raise ValueError(f"invalid attribute path {spec!r} (expected name, map.name, or a list of names)")
    if not all(names):
        raise ValueError(f"invalid attribute path {spec!r}: empty name (expected name, map.name, "
                         "or a list of names such as [meta.type] for a name with a dot)")
    return names


def show(path: tuple[str, ...]) -> str:
    """The path as it can be written back in tables.yaml."""
    return ".".join(path) if not any("." in name for name in path) else repr(list(path))


def lookup(image: dict[str, Any], path: tuple[str, ...]) -> Any:
    """The AttributeValue at ``path`` in a DynamoDB image, or ``MISSING_VALUE``."""
    av = image.get(path[0], MISSING_VALUE)
    for part in path[1:]:
        if type(av) is not dict or type(av.get("M")) is not dict:
            return MISSING_VALUE
        av = av["M"].get(part, MISSING_VALUE)
    return av
