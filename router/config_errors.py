"""Collecting config errors, each as ``FILE: dotted.path: what is wrong (what is allowed)``.

Cerberus errors are rewritten into that form; every message shows a value expanded from
``${VAR}`` as it is written in the file, never its value (a dsn, a password).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

import cerberus

from router import yamlfile
from router.errors import ConfigError
from router.yamlfile import Path, dotted


class Errors:
    """Collects messages in the ``FILE: path: message`` form."""

    def __init__(self, path: str, doc: yamlfile.Document):
        self.file, self.doc = path, doc
        self.items: list[tuple[Path, str]] = []

    @property
    def count(self) -> int:
        return len(self.items)

    def add(self, path: Path, message: str) -> None:
        self.items.append((tuple(path), self._hide_expanded(message)))

    def _hide_expanded(self, message: str) -> str:
        """Show ``${VAR}`` as written wherever its value (a dsn, a password) would appear."""
        for path in self.doc.expanded:
            value, written = self.doc.value(path), str(self.doc.shown(path))
            if isinstance(value, str) and value and value != written:
                message = _mask_value(message, value, written)
        return message

    def has_under(self, prefix: Path) -> bool:
        return any(p[: len(prefix)] == prefix for p, _ in self.items)

    def add_cerberus(self, errors: Iterable[Any], schema: dict[str, Any], prefix: Path = ()) -> None:
        leaves = _leaves(errors)
        meant, present = _misspelled(leaves, schema)
        for error in leaves:
            where = tuple(error.document_path)
            if any(reported == prefix + where for reported, _ in self.items):
                continue  # e.g. "must not be empty" after "environment variable X is not set"
            if error.rule == "required" and where in present:
                continue  # there, but misspelled: the unknown key is the one problem to report
            message = _cerberus_message(error, schema, error.value)
            if where in meant:
                message = message.replace("unknown key", f"unknown key, did you mean {meant[where]!r}?", 1)
            self.add(prefix + where, message)

    def raise_if_any(self) -> None:
        if self.items:
            raise ConfigError([f"{self.file}: {dotted(p)}: {m}" for p, m in self.items])


def tree_errors(node: Any) -> list[Any]:
    """Every error of a Cerberus ``document_error_tree``, depth first (its public form)."""
    found = list(node.errors)
    for child in node.descendants.values():
        found.extend(tree_errors(child))
    return found


def _leaves(errors: Iterable[Any]) -> list[Any]:
    found = []
    for error in errors:
        found.extend(_leaves(error.child_errors) if error.is_group_error else [error])
    return found


def _misspelled(errors: list[Any], schema: dict[str, Any]) -> tuple[dict[Path, str], set[Path]]:
    """Unknown keys that are a missing required key misspelled (``dns`` for ``dsn``): the key each one
    meant, and the required keys not to report as missing (the meant one, and its ``excludes`` partners)."""
    missing = {tuple(e.document_path) for e in errors if e.rule == "required"}
    meant: dict[Path, str] = {}
    present: set[Path] = set()
    for error in errors:
        if error.code != cerberus.errors.UNKNOWN_FIELD.code or not error.document_path:
            continue
        where, key = tuple(error.document_path[:-1]), str(error.document_path[-1])
        siblings = _schema_at(schema, error.schema_path)
        for match in difflib.get_close_matches(key, [k for k in siblings if where + (k,) in missing], n=1, cutoff=0.6):
            meant[tuple(error.document_path)] = match
            excludes = siblings[match].get("excludes", [])
            present.update(where + (k,) for k in [match, *([excludes] if isinstance(excludes, str) else excludes)])
    return meant, present


def _mask_value(message: str, value: str, written: str) -> str:
    if value in message:
        return message.replace(value, written)
    for size in range(len(value) - 1, 7, -1):  # a value shown cut short, as in "'s3cr3t-Pa...'"
        if value[:size] in message:
            return message.replace(value[:size], written)
    return message


def _cerberus_message(error: Any, schema: dict[str, Any], value: Any) -> str:
    rule, constraint = error.rule, error.constraint
    if error.code == 0 and error.info:  # a message from a check_with rule
        return str(error.info[0])
    if rule == "required":
        return "required key is missing"
    if error.code == cerberus.errors.UNKNOWN_FIELD.code:
        allowed = _allowed_keys(schema, error.schema_path)
        return "unknown key" + (f" (allowed: {', '.join(allowed)})" if allowed else "")
    if rule == "allowed":
        return f"invalid value {value!r} (allowed: {', '.join(map(str, constraint))})"
    if rule == "type":
        wanted = " or ".join(constraint) if isinstance(constraint, list) else constraint
        return f"invalid value {value!r} (expected a {wanted})"
    if rule == "empty":
        return "must not be empty"
    if rule == "nullable":
        return "must not be null"
    template = cerberus.errors.BasicErrorHandler.messages.get(error.code, "{value!r} is not valid")
    return template.format(*error.info, constraint=constraint, field=error.field, value=value)


def _allowed_keys(schema: dict[str, Any], schema_path: tuple[Any, ...]) -> list[str]:
    return sorted(_schema_at(schema, schema_path))


def _schema_at(schema: dict[str, Any], schema_path: tuple[Any, ...]) -> dict[str, Any]:
    node: Any = schema
    for part in schema_path:
        node = node.get(part) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else {}
