"""What differs between the SQL databases, declared as data (dlt's capabilities, not branches).

The base (``sinks.sql.sink``) composes the state tables, the target tables, the drift check
and the dead-letter queries once; a ``Dialect`` says how each database spells them: the type
a route's column becomes, the types of the state tables' columns, how a named parameter is
written, and the few clauses one database has and the other lacks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from psycopg import sql

from router.types import parse_type

# Kinds of state-table columns; each dialect names the type that stores one.
NAME, TEXT, VERSION, TIME, STAMP, DOCUMENT, ID = "name", "text", "version", "time", "stamp", "document", "id"


def no_layout(key: Sequence[str], distkey: str | None = None) -> sql.Composable:
    return sql.SQL("")


def text_cast(column: sql.Identifier, type_name: str) -> sql.Composable:
    """A column read back as text, PostgreSQL's way (arrays as JSON, as the route's values are sent)."""
    return sql.SQL("to_jsonb({})::text" if parse_type(type_name).is_array else "{}::text").format(column)


@dataclass(frozen=True)
class Dialect:
    column_type: Callable[[str], str]                 # a route's type -> the column's type
    types: Mapping[str, str]                          # a state-column kind (NAME, TEXT, ...) -> its type
    placeholder: Callable[[str], sql.Composable]      # a named parameter in a query
    document_text: str = "{}::text"                   # a DOCUMENT column read back as JSON text
    layout: Callable[[Sequence[str], str | None], sql.Composable] = no_layout  # after CREATE TABLE (...)
    indexes: bool = True                              # has secondary indexes (the tombstones' purge index)
    folds_case: bool = False                          # its catalog names every identifier in lower case
    alter_type_using: bool = True                     # ALTER COLUMN ... TYPE takes a USING conversion
    varchar_length_only: bool = False                 # ALTER COLUMN ... TYPE changes only a VARCHAR's length,
                                                      # of a non-key column, outside a transaction block
    combined_alter: bool = True                       # one ALTER TABLE may drop and add constraints at once
    keys_enforced: bool = True                        # primary keys are enforced, so a missing one is drift
    catalog_names: Mapping[str, str] = field(default_factory=dict)  # our type name -> its catalog's prefix
    as_text: Callable[[sql.Identifier, str], sql.Composable] = text_cast  # a column of a route's type, as text

    @property
    def version_type(self) -> str:
        return self.types[VERSION]

    @property
    def deleted_type(self) -> str:
        return self.types[TIME]

    def catalog_type(self, type_name: str) -> str:
        """How the catalog spells ``type_name``: ``varchar(20)`` -> ``character varying(20)`` on Postgres."""
        for ours, catalog in self.catalog_names.items():
            if type_name == ours or type_name.startswith((ours + "(", ours + "[")):
                return catalog + type_name[len(ours):]
        return type_name

    def route_type(self, catalog_name: str) -> str:
        """The other way: a catalog's type named as routes name it (``character varying(10)`` -> ``varchar(10)``)."""
        for ours, catalog in self.catalog_names.items():
            if catalog_name == catalog or catalog_name.startswith((catalog + "(", catalog + "[")):
                return ours + catalog_name[len(catalog):]
        return catalog_name

    def same_name(self, name: str) -> str:
        """A column or table name as the catalog holds it."""
        return name.lower() if self.folds_case else name
