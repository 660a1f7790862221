"""Route filters: which items of a source table a route selects (single-table designs).

A filter is built once from ``tables.yaml`` and compares DynamoDB values exactly, the way
DynamoDB's own condition expressions do: numbers as decimals (``N "0.10"`` equals 0.1),
strings as strings (``S "1"`` never equals the number 1), booleans as booleans.

    filter: {attribute: kind, equals: staff}
    filter: {attribute: kind, in: [staff, contractor]}
    filter: {attribute: sk, begins_with: "ORDER#"}
    filter: {attribute: deletedAt, exists: false}
    filter: {all: [{...}, {...}]}      # also any: [...] and not: {...}

``attribute`` takes the same path syntax as a column's ``from`` (``meta.type`` reads the
``type`` entry of the map ``meta``; ``[meta.type]`` names a top-level attribute whose name
contains a dot).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from router import attrs
from router.paths import MISSING_VALUE, lookup

Token = tuple[str, Any]  # ("S", str) | ("N", Decimal) | ("BOOL", bool): a DynamoDB value, compared exactly


@dataclass(frozen=True)
class Condition:
    """One test on one attribute: ``equals``/``in`` (``values``), ``begins_with`` or ``exists``."""

    path: tuple[str, ...]
    op: str                                   # "equals" (also for in), "begins_with", "exists"
    values: frozenset[Token] = frozenset()
    prefix: str = ""
    present: bool = True

    def __call__(self, image: dict[str, Any]) -> bool:
        av = lookup(image, self.path)
        if self.op == "exists":
            return (av is not MISSING_VALUE) == self.present
        if av is MISSING_VALUE:
            return False
        tag, payload = attrs.split(av)
        if self.op == "begins_with":
            return tag == "S" and type(payload) is str and payload.startswith(self.prefix)
        return _token(tag, payload) in self.values

    def describe(self) -> str:
        name = ".".join(self.path)
        if self.op == "exists":
            return f"{name} {'exists' if self.present else 'is absent'}"
        if self.op == "begins_with":
            return f"{name} begins with {self.prefix!r}"
        shown = sorted(_show(t) for t in self.values)
        return f"{name} = {shown[0]}" if len(shown) == 1 else f"{name} in [{', '.join(shown)}]"


@dataclass(frozen=True)
class Combination:
    kind: str                                 # "all" | "any" | "not"
    parts: tuple[Filter, ...]

    def __call__(self, image: dict[str, Any]) -> bool:
        if self.kind == "all":
            return all(part(image) for part in self.parts)
        if self.kind == "any":
            return any(part(image) for part in self.parts)
        return not self.parts[0](image)

    def describe(self) -> str:
        if self.kind == "not":
            return f"not ({self.parts[0].describe()})"
        return f" {'and' if self.kind == 'all' else 'or'} ".join(f"({p.describe()})" for p in self.parts)


Filter = Condition | Combination


def _token(tag: str, payload: Any) -> Token | None:
    if tag == "S" and type(payload) is str:
        return ("S", payload)
    if tag == "N":
        return ("N", attrs.number(payload))
    if tag == "BOOL" and type(payload) is bool:
        return ("BOOL", payload)
    return None


def _show(token: Token) -> str:
    tag, value = token
    return repr(value) if tag == "S" else str(value).lower() if tag == "BOOL" else str(value)


def conditions(node: Filter) -> list[Condition]:
    if isinstance(node, Condition):
        return [node]
    return [c for part in node.parts for c in conditions(part)]


def attributes(node: Filter) -> set[str]:
    """The top-level attributes the filter reads."""
    return {c.path[0] for c in conditions(node)}


def pinned(node: Filter) -> dict[str, Token]:
    """Top-level attributes every selected item has with one single value (``equals`` in an ``all``)."""
    if isinstance(node, Condition):
        if node.op == "equals" and len(node.values) == 1 and len(node.path) == 1:
            return {node.path[0]: next(iter(node.values))}
        return {}
    if node.kind == "all":
        return {name: token for part in node.parts for name, token in pinned(part).items()}
    return {}


def disjoint(a: Filter, b: Filter) -> bool:
    """True when no item can match both filters (provably, from their conditions alone)."""
    if isinstance(a, Combination) and a.kind == "any":
        return all(disjoint(part, b) for part in a.parts)
    if isinstance(b, Combination) and b.kind == "any":
        return all(disjoint(a, part) for part in b.parts)
    if isinstance(a, Combination) and a.kind == "all":
        return any(disjoint(part, b) for part in a.parts)
    if isinstance(b, Combination) and b.kind == "all":
        return any(disjoint(a, part) for part in b.parts)
    if isinstance(a, Combination) or isinstance(b, Combination):
        return _negation_disjoint(a, b)
    return a.path == b.path and _atoms_disjoint(a, b)


def _negation_disjoint(a: Filter, b: Filter) -> bool:
    """``not X`` against ``X`` (or against something that implies X)."""
    for first, second in ((a, b), (b, a)):
        if isinstance(first, Combination) and first.kind == "not" and _implies(second, first.parts[0]):
            return True
    return False


def _implies(a: Filter, b: Filter) -> bool:
    if a == b:
        return True
    if isinstance(a, Combination) and a.kind == "all":
        return any(_implies(part, b) for part in a.parts)
    if isinstance(a, Condition) and isinstance(b, Condition) and a.path == b.path:
        if b.op == "exists" and b.present:
            return a.op != "exists" or a.present
        if a.op == b.op == "equals":
            return a.values <= b.values
        if b.op == "begins_with":
            if a.op == "begins_with":
                return a.prefix.startswith(b.prefix)
            return a.op == "equals" and all(t[0] == "S" and t[1].startswith(b.prefix) for t in a.values)
    return False


def _atoms_disjoint(a: Condition, b: Condition) -> bool:
    ops = {a.op, b.op}
    if ops == {"exists"}:
        return a.present != b.present
    if "exists" in ops:
        exists = a if a.op == "exists" else b
        return not exists.present  # absent vs any value test
    if ops == {"equals"}:
        return not a.values & b.values
    if ops == {"begins_with"}:
        return not (a.prefix.startswith(b.prefix) or b.prefix.startswith(a.prefix))
    equals, prefix = (a, b) if a.op == "equals" else (b, a)
    return not any(t[0] == "S" and t[1].startswith(prefix.prefix) for t in equals.values)
