"""Load and validate ``tables.yaml`` (the product's main interface) into ``router.model`` objects.

Validation happens in three passes, all at load time so that a bad file stops the
function from starting: the YAML itself (syntax, duplicate keys, ``${VAR}``), the
Cerberus schema (shape and allowed values, sink entries by their type's own schema),
then cross-field checks (keys are columns, sinks exist, identifiers fit, literals cast).
Every error reads ``FILE: dotted.path: what is wrong (what is allowed)``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

import cerberus
import yaml

from router import yamlfile
from router.config_errors import Errors, tree_errors
from router.config_sources import SCHEMA as SOURCE_SCHEMA
from router.config_sources import build_version, check_agreement
from router.errors import CastError, ConfigError
from router.filter_spec import FilterSpec
from router.filters import Filter
from router.limits import fit_type
from router.model import MISSING, RESERVED_COLUMNS, Capabilities, Column, Config, MaskKey, Route, SinkConfig, Source
from router.modes import Deletes, EpochUnit, Mask, Mode, NewAttribute, OnError, Unrouted
from router.needs import check_declared
from router.paths import parse_path
from router.records import VIEW_TYPES
from router.shared_targets import check_shared_targets
from router.sink import SinkTypes
from router.types import parse_type
from router.yamlfile import Path

DEFAULT_PATH = "config/tables.yaml"
ENV_VAR = "CDC_ROUTER_CONFIG"

_STRING = {"type": "string", "empty": False}
COLUMN_SCHEMA = {
    "from": {"type": ["string", "list"], "empty": False, "schema": {"type": "string"}},
    "type": {"type": "string", "check_with": "column_type", "default": "text"},
    "default": {"nullable": True},
    "fallback": {"nullable": True},
    "mask": {"type": "string", "allowed": list(Mask)},
    "epoch": {"type": "string", "allowed": list(EpochUnit)},
}
ROUTE_SCHEMA = {
    **SOURCE_SCHEMA,  # kinesis, version
    "source": {**_STRING, "required": True},
    "sink": {**_STRING, "required": True},
    "table": {**_STRING, "required": True},
    "key": {"type": ["string", "list"], "required": True, "empty": False,
            "schema": {"type": "string", "empty": False}},
    "columns": {"type": ["dict", "string"], "required": True, "empty": False,  # a mapping, or "auto"
                "keysrules": {"type": "string", "empty": False},
                "valuesrules": {"type": "dict", "nullable": True, "schema": COLUMN_SCHEMA}},
    "auto": {"type": "boolean"},  # beside a columns mapping: the unlisted attributes become columns too
    "on_new_attribute": {"type": "string", "allowed": list(NewAttribute)},  # absent: see _RouteBuilder._new_attribute
    "extras": {**_STRING, "nullable": True},
    "deletes": {"type": "string", "allowed": list(Deletes), "default": Deletes.HARD.value},
    "ttl_deletes": {"type": "string", "allowed": list(Deletes)},  # absent: as `deletes`
    "mode": {"type": "string", "allowed": list(Mode), "default": Mode.CURRENT.value},
    "on_error": {"type": "string", "allowed": list(OnError), "default": OnError.FAIL.value},
    "filter": {"type": "dict"},  # checked by router.filter_spec, which knows the YAML as written
    "log_records": {"type": "boolean", "default": False},
}
DECLARED_SOURCE_SCHEMA = {  # what a DynamoDB table is, declared so that validate can check its routes now
    "key": {"type": ["string", "list"], "empty": False, "schema": {"type": "string", "empty": False}},
    "stream": {"type": "string", "allowed": list(VIEW_TYPES)},
}
TOP_SCHEMA: dict[str, dict[str, Any]] = {
    "version": {"type": "integer", "required": True, "allowed": [1]},
    "unrouted": {"type": "string", "allowed": list(Unrouted), "default": Unrouted.FAIL.value},
    "sinks": {"type": "dict", "required": True, "empty": False,
              "keysrules": {"type": "string", "empty": False},
              "valuesrules": {"type": "dict", "allow_unknown": True}},  # the types' schemas: _top_schema
    "routes": {"type": "dict", "required": True, "empty": False,
               "keysrules": {"type": "string", "empty": False},
               "valuesrules": {"type": "dict", "schema": ROUTE_SCHEMA}},
    "sources": {"type": "dict", "keysrules": {"type": "string", "empty": False},
                "valuesrules": {"type": "dict", "schema": DECLARED_SOURCE_SCHEMA}},
}


class _Validator(cerberus.Validator):
    def _check_with_column_type(self, field: str, value: Any) -> None:
        try:
            parse_type(value)
        except ValueError as exc:
            self._error(field, str(exc))


def default_path() -> str:
    return os.environ.get(ENV_VAR) or DEFAULT_PATH


def load_config(path: str | os.PathLike[str] | None, sink_types: SinkTypes,
                environ: Mapping[str, str] | None = None, *, offline: bool = False) -> Config:
    """Read, validate and build the configuration; raise ``ConfigError`` listing every problem.

    ``sink_types`` maps the ``type:`` names a sink may have to their classes: the entry point
    builds it (the core names no sink implementation). ``offline``: for commands that connect
    to nothing, a ``${VAR}`` that is unset is no error where only a connection reads it (a
    sink's ``connection_options``, such as a dsn); it stays as written and is listed in
    ``Config.unresolved``. Anywhere else (a table, a schema) it is an error either way."""
    shown = str(path if path is not None else default_path())
    try:
        with open(shown, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        hint = "" if path is not None else (f" (the default, from {ENV_VAR}; pass --config PATH)" if os.environ.get(ENV_VAR)
                                            else f" (the default, relative to {os.getcwd()}: pass --config PATH or "
                                                 f"set {ENV_VAR}=PATH)")
        raise ConfigError([f"{shown}: cannot read the configuration: {exc.strerror}{hint}"]) from None
    return parse_config(text, sink_types, shown, environ, offline=offline)


def parse_config(text: str, sink_types: SinkTypes, path: str = DEFAULT_PATH,
                 environ: Mapping[str, str] | None = None, *, offline: bool = False) -> Config:
    try:
        doc = yamlfile.read(text, environ, name=path)
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML: {_one_line(exc)} ({_yaml_hint(exc)})"]) from None
    errors = Errors(path, doc)
    for where, message in doc.errors:
        errors.add(where, message)
    unresolved = _unset_variables(doc, sink_types, errors, offline)
    if not isinstance(doc.data, dict):
        errors.add((), "expected a mapping with version, sinks and routes")
        errors.raise_if_any()
    top_schema = _top_schema(sink_types)
    validator = _Validator(top_schema)
    if not validator.validate(doc.data):
        errors.add_cerberus(tree_errors(validator.document_error_tree), top_schema)
    data = validator.document if validator.document is not None else doc.data
    sinks = _build_sinks(data.get("sinks") or {}, sink_types, errors)
    routes = _build_routes(data.get("routes") or {}, sinks, sink_types, errors)
    sources = _build_sources(data.get("sources") or {}, errors)
    check_declared(routes, sources, errors.add)
    errors.raise_if_any()
    return Config(path=path, sinks=sinks, routes=routes, unrouted=Unrouted(data["unrouted"]), version=data["version"],
                  unresolved=tuple(unresolved), sources=sources)


def _unset_variables(doc: yamlfile.Document, sink_types: SinkTypes, errors: Errors, offline: bool) -> list[str]:
    """Report each unset ``${VAR}``; offline, list the ones only a connection needs instead."""
    unresolved = []
    for where, name in doc.unset:
        message = f"environment variable {name} is not set (referenced as ${{{name}}})"
        if offline and _connection_option(doc, where, sink_types):
            unresolved.append(f"{yamlfile.dotted(where)}: {message}")
        else:
            errors.add(where, message)
    return unresolved


def _connection_option(doc: yamlfile.Document, where: Path, sink_types: SinkTypes) -> bool:
    if len(where) != 3 or where[0] != "sinks":
        return False
    sink_type = doc.value(where[:2] + ("type",))
    return sink_type in sink_types and where[2] in sink_types[sink_type].connection_options


def _build_sources(entries: dict[str, Any], errors: Errors) -> dict[str, Source]:
    sources = {}
    for name, entry in entries.items():
        if isinstance(entry, dict) and not errors.has_under(("sources", name)):
            key = entry.get("key")
            sources[name] = Source(name, tuple([key] if isinstance(key, str) else key) if key else None,
                                   entry.get("stream"))
    return sources


def _sink_schema(sink_types: SinkTypes) -> dict[str, Any]:
    return {"type": {"type": "string", "required": True, "allowed": list(sink_types)},
            # the HMAC key of the routes' `mask: hmac_sha256` columns (router.masking), for every sink type
            "mask_secret": {"type": "string", "empty": False, "excludes": "mask_key"},
            "mask_key": {"type": "string", "empty": False, "excludes": "mask_secret"}}


def _top_schema(sink_types: SinkTypes) -> dict[str, Any]:
    sinks: dict[str, Any] = {**TOP_SCHEMA["sinks"], "valuesrules": {"type": "dict", "allow_unknown": True,
                                                     "schema": _sink_schema(sink_types)}}
    return {**TOP_SCHEMA, "sinks": sinks}


def _build_sinks(entries: dict[str, Any], sink_types: SinkTypes, errors: Errors) -> dict[str, SinkConfig]:
    sinks: dict[str, SinkConfig] = {}
    for name, entry in entries.items():
        if not isinstance(entry, dict) or entry.get("type") not in sink_types:
            continue  # already reported by the top-level schema
        sink_type = sink_types[entry["type"]]
        schema = {**_sink_schema(sink_types), **sink_type.config_schema}
        validator = _Validator(schema)
        if not validator.validate(entry):
            errors.add_cerberus(tree_errors(validator.document_error_tree), schema, prefix=("sinks", name))
            continue
        options = {k: v for k, v in validator.document.items() if k not in ("type", "mask_secret", "mask_key")}
        sinks[name] = SinkConfig(name=name, type=entry["type"], options=options, capabilities=sink_type.capabilities,
                                 mask_key=_mask_key(validator.document))
    return sinks


def _mask_key(entry: dict[str, Any]) -> MaskKey | None:
    if "mask_secret" in entry or "mask_key" in entry:
        return MaskKey(secret=entry.get("mask_secret"), value=entry.get("mask_key"))
    return None


def _build_routes(entries: dict[str, Any], sinks: dict[str, SinkConfig], sink_types: SinkTypes,
                  errors: Errors) -> dict[str, Route]:
    routes: dict[str, Route] = {}
    for name, entry in entries.items():
        if isinstance(entry, dict):
            route = _RouteBuilder(name, entry, sinks, errors).build()
            if route is None:
                continue
            sink = sinks.get(route.sink)  # absent: the sink's own entry is invalid, and reported
            problems = sink_types[sink.type].route_problems(route, sink.options) if sink else []
            for where, reason in problems:  # what the sink's database cannot do with this route
                errors.add(("routes", name, *where), reason)
            if not problems:
                routes[name] = route
    check_shared_targets(routes, sinks, errors.add)
    check_agreement(routes, errors)
    return routes


class _RouteBuilder:
    """Cross-field checks for one route, on every part the schema found well-formed (so that one
    load reports everything to fix), then the ``Route`` itself if nothing is wrong."""

    def __init__(self, name: str, entry: dict[str, Any], sinks: dict[str, SinkConfig], errors: Errors):
        self.name, self.entry, self.sinks, self.errors = name, entry, sinks, errors
        self.path: Path = ("routes", name)

    def _valid(self, *keys: Any) -> bool:
        """The schema accepted this part of the route (present and well-formed)."""
        return keys[0] in self.entry and not self.errors.has_under(self.path + keys)

    def build(self) -> Route | None:
        auto = self._auto()
        entry = self.entry
        sink = self._sink() if self._valid("sink") else None
        capabilities = sink.capabilities if sink else Capabilities()
        max_bytes = capabilities.max_identifier_bytes
        schema, table = "", ""
        if self._valid("table"):
            schema, table = _split_table(entry["table"], sink.options.get("schema", "public") if sink else "public")
            self._identifiers([("table", schema), ("table", table)], max_bytes)
        columns: list[Column | None] = []
        if self._valid("columns"):
            columns = [self._column(col_name, spec or {}, capabilities) for col_name, spec in entry["columns"].items()
                       if self._valid("columns", col_name)]
            self._check_distinct(list(entry["columns"]), capabilities)
        key = [entry["key"]] if isinstance(entry.get("key"), str) else list(entry.get("key") or [])
        if self._valid("key") and self._valid("columns"):
            self._check_key(key, columns)
        extras = entry.get("extras")
        if extras is not None and self._valid("extras"):
            self._identifiers([("extras", extras)], max_bytes)
            named = {capabilities.identity(name) for name in [*(entry.get("columns") or {}), *RESERVED_COLUMNS]}
            if capabilities.identity(extras) in named:
                self.errors.add(self.path + ("extras",), f"{extras!r} is already a column of this route"
                                + _folded(capabilities))
        route_filter = self._filter(entry.get("filter")) if self._valid("filter") else None
        version = None
        if not self.errors.has_under(self.path + ("kinesis",)) and not self.errors.has_under(self.path + ("version",)):
            version = build_version(entry, self.path, self.errors)
        ttl_deletes = self._ttl_deletes() if self._valid("ttl_deletes") else None
        on_new_attribute = self._new_attribute(auto)
        if self.errors.has_under(self.path) or version is None:
            return None
        return Route(
            name=self.name, source=entry["source"], sink=entry["sink"], schema=schema, table=table,
            key=tuple(key), columns=tuple(c for c in columns if c is not None), extras=extras,
            deletes=Deletes(entry["deletes"]), on_error=OnError(entry["on_error"]), filter=route_filter,
            log_records=entry["log_records"], kinesis=entry.get("kinesis"), version=version,
            ttl_deletes=ttl_deletes, mask_key=sink.mask_key if sink else None,
            mode=Mode(entry["mode"]), auto=auto, on_new_attribute=on_new_attribute,
        )

    def _auto(self) -> bool:
        """``columns: auto`` (the key's columns listed as text, the rest added as attributes appear), or
        ``auto: true`` beside a mapping; the entry is rewritten to the mapping form."""
        columns, auto = self.entry.get("columns"), self.entry.get("auto")
        if isinstance(columns, str) and self._valid("columns"):
            if columns != "auto":
                self.errors.add(self.path + ("columns",), f"invalid value {columns!r} (allowed: auto, or a mapping "
                                                          "of column names to their options)")
                return False
            if auto is False:
                self.errors.add(self.path + ("auto",), "auto: false contradicts columns: auto (remove auto, or "
                                                       "list the columns)")
            key = self.entry.get("key")
            keys = [key] if isinstance(key, str) else key if isinstance(key, list) else []
            self.entry = {**self.entry, "columns": {name: {} for name in keys if isinstance(name, str)}}
            return True
        return bool(auto) and isinstance(columns, dict)

    def _new_attribute(self, auto: bool) -> NewAttribute:
        """``on_new_attribute``; absent: add_column on an auto route, else extras where the route has an extras
        column, else ignore. Refused where the route could not do what it says."""
        extras = self.entry.get("extras")
        default = NewAttribute.ADD_COLUMN if auto else NewAttribute.EXTRAS if extras else NewAttribute.IGNORE
        if not self._valid("on_new_attribute"):
            return default
        chosen, where = NewAttribute(self.entry["on_new_attribute"]), self.path + ("on_new_attribute",)
        if chosen == NewAttribute.ADD_COLUMN and not auto:
            self.errors.add(where, "add_column needs columns: auto, or auto: true beside the columns mapping (a "
                                   "route that lists its columns adds none)")
        elif chosen == NewAttribute.EXTRAS and not extras:
            self.errors.add(where, "extras needs an extras column: set extras: <column name> on the route")
        elif chosen == NewAttribute.IGNORE and extras and not auto:
            self.errors.add(where, f"ignore leaves the extras column {extras!r} always empty on a route without "
                                   "auto: remove extras, or use on_new_attribute: extras")
        return chosen

    def _ttl_deletes(self) -> Deletes:
        """What an expiry does, whatever ``deletes`` says: a route where either removes rows keeps
        tombstones (``Route.hard_deletes``); ``soft`` adds the reason column (``Route.delete_reason``)."""
        return Deletes(self.entry["ttl_deletes"])

    def _sink(self) -> SinkConfig | None:
        name = self.entry["sink"]
        if name in self.sinks:
            return self.sinks[name]
        if not self.errors.has_under(("sinks",)):
            defined = ", ".join(self.sinks) or "none"
            self.errors.add(self.path + ("sink",), f"unknown sink {name!r} (defined sinks: {defined})")
        return None

    def _identifiers(self, named: Iterable[tuple[str, str]], max_bytes: int) -> None:
        for key, identifier in named:
            if not identifier:
                self.errors.add(self.path + (key,), f"invalid {key} {self.entry[key]!r}: empty name "
                                                    "(expected table or schema.table)")
                continue
            size = len(identifier.encode("utf-8"))
            if size > max_bytes:
                self.errors.add(self.path + (key,), f"identifier {identifier!r} is {size} bytes long "
                                                    f"(at most {max_bytes} allowed by the sink)")

    def _column(self, name: str, spec: dict[str, Any], capabilities: Capabilities) -> Column | None:
        path, max_bytes = self.path + ("columns", name), capabilities.max_identifier_bytes
        if capabilities.identity(name) in RESERVED_COLUMNS:
            self.errors.add(path, f"column name {name!r} is reserved for cdc-router's bookkeeping" + _folded(capabilities))
            return None
        size = len(name.encode("utf-8"))
        if size > max_bytes:
            self.errors.add(path, f"identifier {name!r} is {size} bytes long (at most {max_bytes} allowed by the sink)")
        try:
            attr_path = parse_path(spec.get("from", name))
        except ValueError as exc:
            self.errors.add(path + ("from",), str(exc))
            attr_path = (name,)
        column_type = parse_type(spec.get("type", "text"))
        try:
            column_type = fit_type(column_type, capabilities)
        except ValueError as exc:  # reported; the column stays, so that key checks do not report it missing
            self.errors.add(path + ("type",), str(exc))
        literals = {}
        for option in ("default", "fallback"):
            literals[option] = MISSING
            if option in spec:
                literals[option] = self._literal(spec[option], column_type, path + (option,))
        mask = Mask(spec["mask"]) if "mask" in spec else None
        if mask is not None:
            self._check_mask(mask, column_type, spec, path)
        epoch = spec.get("epoch")
        if epoch is not None and column_type.base not in ("date", "timestamp", "timestamptz"):
            self.errors.add(path + ("epoch",), f"epoch applies to date, timestamp and timestamptz columns, "
                                              f"not {column_type.name}")
        return Column(name=name, path=attr_path, type=column_type, mask=mask,
                      epoch=EpochUnit(epoch) if epoch else None, **literals)

    def _check_mask(self, mask: Mask, column_type: Any, spec: dict[str, Any], path: Path) -> None:
        """A digest is 64 hex characters: it needs a text column; the key must exist; nothing unmasked may
        stand in for the value (a default or fallback would be stored as written)."""
        if mask != Mask.REDACT and (column_type.base not in ("text", "varchar") or column_type.is_array
                                    or (column_type.length or 64) < 64):
            self.errors.add(path + ("type",), f"invalid type {column_type.name!r} for mask: {mask} "
                                              "(allowed: text, varchar(n) with n >= 64)")
        if "default" in spec or "fallback" in spec:
            self.errors.add(path + ("mask",), "a masked column cannot have a default or a fallback")
        sink = self.sinks.get(self.entry.get("sink", ""))
        if mask == Mask.HMAC_SHA256 and sink is not None and sink.mask_key is None:
            self.errors.add(path + ("mask",), f"mask: hmac_sha256 needs a key: set mask_secret (a Secrets Manager "
                                              f"secret) or mask_key on sink {sink.name!r}")

    def _check_distinct(self, names: list[str], capabilities: Capabilities) -> None:
        """Column names that are one name to the database (``Id`` and ``id`` where names fold)."""
        seen: dict[str, str] = {}
        for name in names:
            other = seen.setdefault(capabilities.identity(name), name)
            if other != name:
                self.errors.add(self.path + ("columns", name), f"{name!r} and {other!r} are one column"
                                + _folded(capabilities))

    def _literal(self, value: Any, column_type: Any, path: Path) -> Any:
        if value is None:
            return None
        try:
            return column_type.cast(value)
        except CastError as exc:
            self.errors.add(path, f"invalid value: {exc}")
            return MISSING

    def _check_key(self, key: list[str], columns: list[Column | None]) -> None:
        by_name = {c.name: c for c in columns if c is not None}
        for index, name in enumerate(key):
            column = by_name.get(name)
            if column is None:
                self.errors.add(self.path + ("key", index), f"{name!r} is not a column of this route "
                                                            f"(columns: {', '.join(self.entry['columns'])})")
            elif column.mask == Mask.REDACT:
                self.errors.add(self.path + ("columns", name), "a key column cannot be redacted (use mask: "
                                                               "hmac_sha256 or sha256: the key becomes a hash)")
            elif column.default is not MISSING or column.fallback is not MISSING:
                self.errors.add(self.path + ("columns", name), "a key column cannot have a default or a fallback "
                                                               "(it would merge different items into one row)")
            elif len(column.path) != 1:
                self.errors.add(self.path + ("columns", name, "from"),
                                f"key column {name!r} reads {column.source!r}, a path into a map: key columns must be "
                                "read from the source table's key attributes (partition and sort key)")
            elif not column.type.has_equality:
                self.errors.add(self.path + ("columns", name, "type"),
                                f"a key column cannot be of type {column.type.name}: it has no equality operator or "
                                "index in the target (use text, a number, uuid, a date or time, or bytea)")
        if len(set(key)) != len(key):
            self.errors.add(self.path + ("key",), f"repeated column in key {key}")

    def _filter(self, spec: dict[str, Any] | None) -> Filter | None:
        if spec is None:
            return None
        return FilterSpec(self.errors.doc.plain, self.errors.add).parse(spec, self.path + ("filter",))


def _split_table(text: str, default_schema: str) -> tuple[str, str]:
    schema, dot, table = text.partition(".")
    return (schema, table) if dot else (default_schema, text)


def _yaml_hint(exc: yaml.YAMLError) -> str:
    if "'\\t'" in str(exc):  # "found character '\t' that cannot start any token"
        return "a tab: indent with spaces, YAML does not accept tabs there"
    return 'quote values with [ ] { } : # in them, e.g. type: "text[]"'


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


def _folded(capabilities: Capabilities) -> str:
    """Why two names are one, where the sink folds them."""
    return " (the sink folds identifiers to lower case)" if capabilities.folds_identifiers else ""
