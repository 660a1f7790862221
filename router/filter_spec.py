"""A route's ``filter:`` as written in tables.yaml -> a ``router.filters`` filter, or errors.

YAML 1.1 (PyYAML) reads some plain scalars as something else than they look: ``yes``/``no``/
``on``/``off`` are booleans, ``010`` is 8, ``0x1F`` is 31, ``2024-01-01`` a date, ``null``
nothing at all. A filter compared with such a value silently selects nothing, so these are
refused with a hint to quote them. Numbers are taken from the text as written (``0.1`` is
the decimal 0.1, never the float 0.1000000000000000055...).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from router.filters import Combination, Condition, Filter, Token
from router.paths import parse_path

Path = tuple[Any, ...]
Plain = Callable[[Path], "tuple[str, str] | None"]  # path -> (YAML tag, text) of a plain (unquoted) scalar
Report = Callable[[Path, str], None]

CONDITIONS = ("equals", "in", "begins_with", "exists")
COMBINATIONS = ("all", "any", "not")
ALLOWED = "attribute with one of equals, in, begins_with, exists; or one of all, any, not"
_INT = re.compile(r"[-+]?(0|[1-9][0-9]*)\Z")
_DECIMAL = re.compile(r"[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?\Z")
_YAML12_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+\.?[0-9]*)[eE][-+]?[0-9]+\Z")
_QUOTE_HINT = "quote it ({quoted}) to compare with the text"


class FilterSpec:
    """Parses one route's filter, reporting every problem through ``report``."""

    def __init__(self, plain: Plain, report: Report):
        self.plain, self.report = plain, report

    def parse(self, spec: Any, path: Path) -> Filter | None:
        if not isinstance(spec, dict) or not spec:
            self.report(path, f"invalid filter {spec!r} (expected a mapping: {ALLOWED})")
            return None
        combos = [k for k in COMBINATIONS if k in spec]
        if combos:
            return self._combination(spec, combos, path)
        return self._condition(spec, path)

    def _combination(self, spec: dict[str, Any], combos: list[str], path: Path) -> Filter | None:
        if len(spec) != 1:
            self.report(path, f"{combos[0]} must be the only key of its mapping (found: {', '.join(map(str, spec))})")
            return None
        kind = combos[0]
        if kind == "not":
            part = self.parse(spec["not"], path + ("not",))
            return None if part is None else Combination("not", (part,))
        items = spec[kind]
        if not isinstance(items, list) or not items:
            self.report(path + (kind,), f"expected a non-empty list of filters, got {items!r}")
            return None
        parts = [self.parse(item, path + (kind, index)) for index, item in enumerate(items)]
        if any(p is None for p in parts):
            return None
        return Combination(kind, tuple(p for p in parts if p is not None))

    def _condition(self, spec: dict[str, Any], path: Path) -> Condition | None:
        unknown = [k for k in spec if k not in CONDITIONS and k != "attribute"]
        chosen = [k for k in CONDITIONS if k in spec]
        if unknown or len(chosen) != 1 or "attribute" not in spec:
            problem = (f"unknown key {unknown[0]!r}" if unknown else "needs attribute" if "attribute" not in spec
                       else "needs exactly one condition")
            self.report(path, f"{problem} (allowed: {ALLOWED})")
            return None
        try:
            attr_path = parse_path(spec["attribute"])
        except ValueError as exc:
            self.report(path + ("attribute",), str(exc))
            return None
        op = chosen[0]
        value, where = spec[op], path + (op,)
        if op == "exists":
            if not isinstance(value, bool) or self._yaml11_bool(where):
                self.report(where, f"invalid value {value!r} (expected true or false)")
                return None
            return Condition(attr_path, "exists", present=value)
        if op == "begins_with":
            if not isinstance(value, str) or not value:
                self.report(where, f"invalid value {value!r} (expected a non-empty string; quote it)")
                return None
            return Condition(attr_path, "begins_with", prefix=value)
        values = value if op == "in" else [value]
        if op == "in" and (not isinstance(value, list) or not value):
            self.report(where, f"invalid value {value!r} (expected a non-empty list of values)")
            return None
        tokens = [self._literal(v, where + ((i,) if op == "in" else ())) for i, v in enumerate(values)]
        if any(t is None for t in tokens):
            return None
        return Condition(attr_path, "equals", values=frozenset(t for t in tokens if t is not None))

    def _yaml11_bool(self, where: Path) -> bool:
        plain = self.plain(where)
        return plain is not None and plain[1].lower() not in ("true", "false")

    def _literal(self, value: Any, where: Path) -> Token | None:
        """A value to compare with, as DynamoDB holds it; ``None`` after reporting a YAML 1.1 trap."""
        plain = self.plain(where)
        text = plain[1] if plain else None
        if isinstance(value, bool):
            if text is not None and text.lower() not in ("true", "false"):
                return self._refuse(where, text, f"YAML 1.1 reads {text} as the boolean {str(value).lower()}",
                                    f"or write {str(value).lower()} for a boolean")
            return ("BOOL", value)
        if isinstance(value, (int, float)):
            if text is not None and not (_INT if isinstance(value, int) else _DECIMAL).match(text):
                return self._refuse(where, text, f"YAML 1.1 reads {text} as the number {value}",
                                    f"or write {value} for the number" if isinstance(value, int) else "")
            return ("N", Decimal(text if text is not None else str(value)))
        if isinstance(value, str):
            if text is not None and _YAML12_FLOAT.match(text):
                return self._refuse(where, text, f"{text} is text in YAML 1.1 but a number in YAML 1.2",
                                    "or write the number with a decimal point (1.0e3) or in full")
            return ("S", value)
        if value is None:
            return self._refuse(where, text or "null", "YAML reads it as null (no value)",
                                "or use exists: false for items without the attribute")
        kind = "a date" if hasattr(value, "isoformat") else type(value).__name__
        return self._refuse(where, text or repr(value), f"YAML reads it as {kind}", "")

    def _refuse(self, where: Path, text: str, why: str, alternative: str) -> Token | None:
        hint = _QUOTE_HINT.format(quoted=f"'{text}'") + (f", {alternative}" if alternative else "")
        self.report(where, f"ambiguous value {text}: {why}; {hint}")
        return None
