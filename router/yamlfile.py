"""Read tables.yaml strictly: duplicate keys are errors, ``${VAR}`` references are expanded.

PyYAML silently keeps the last of two equal keys, which would let a second column or
route with the same name replace the first without a word; we walk the composed node
tree ourselves so that every duplicate is reported with its path.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

Path = tuple[Any, ...]
_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def dotted(path: Path) -> str:
    return ".".join(str(part) for part in path) or "(top level)"


@dataclass
class Document:
    """A parsed file: ``data`` with env references expanded, ``raw`` as written."""

    data: Any
    raw: Any
    errors: list[tuple[Path, str]] = field(default_factory=list)
    expanded: set[Path] = field(default_factory=set)
    unset: list[tuple[Path, str]] = field(default_factory=list)  # (where, variable): kept as written in ``data``
    plain_scalars: dict[Path, tuple[str, str]] = field(default_factory=dict)  # unquoted: (YAML tag, text)

    def plain(self, path: Path) -> tuple[str, str] | None:
        """``(tag, text)`` of the unquoted scalar at ``path`` as written (``yes``, ``010``), else None."""
        return self.plain_scalars.get(tuple(path))

    def shown(self, path: Path) -> Any:
        """The value at ``path`` as written in the file (never an expanded secret)."""
        return _at(self.raw, path)

    def value(self, path: Path) -> Any:
        """The value at ``path`` after ``${VAR}`` expansion."""
        return _at(self.data, path)


def _at(node: Any, path: Path) -> Any:
    for part in path:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def read(text: str, environ: Mapping[str, str] | None = None, name: str = "<config>") -> Document:
    """Parse YAML text. Syntax errors raise ``yaml.YAMLError``; content errors are collected."""
    stream = io.StringIO(text)
    stream.name = name  # PyYAML names the file in its syntax errors
    loader = yaml.SafeLoader(stream)
    try:
        node = loader.get_single_node()
        doc = Document(data=None, raw=None)
        if node is not None:
            doc.raw = _build(loader, node, (), doc, None)
            doc.data = _build(loader, node, (), doc, os.environ if environ is None else environ)
        return doc
    finally:
        loader.dispose()


def _build(loader: yaml.SafeLoader, node: yaml.Node, path: Path, doc: Document,
           environ: Mapping[str, str] | None) -> Any:
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if key in result:
                if environ is not None:  # report once, on the expanding pass
                    doc.errors.append((path, f"duplicate key {key!r} (line {key_node.start_mark.line + 1})"))
                continue
            result[key] = _build(loader, value_node, path + (key,), doc, environ)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_build(loader, item, path + (i,), doc, environ) for i, item in enumerate(node.value)]
    value = loader.construct_object(node, deep=True)
    if isinstance(node, yaml.ScalarNode) and node.style is None:
        doc.plain_scalars[path] = (node.tag, node.value)
    if environ is not None and isinstance(value, str) and "${" in value:
        return _expand(value, path, doc, environ)
    return value


def _expand(value: str, path: Path, doc: Document, environ: Mapping[str, str]) -> str:
    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        doc.unset.append((path, name))  # the loader decides: an error, or left for a connection to need
        return match.group(0)

    doc.expanded.add(path)
    return _ENV_RE.sub(substitute, value)
