"""Schema drift: compare a live table with its route, and compose the statements that fix it.

Each dialect reads its catalog into a ``LiveTable`` (Postgres: ``pg_catalog`` with
``format_type`` names; Redshift: ``information_schema``); ``differences`` is a pure function
of the route, that snapshot and the dialect, so each kind of drift is a plain value to test.

Each drift says what its fix does to the data (``Fix``): a new table, column or index is
additive and ``schema --apply`` runs it; a type change, a key change or a column the route
no longer writes is destructive and runs only with ``--allow-destructive``; what the
database cannot do in place (Redshift: a key column's type, any type change but a
VARCHAR's length) is never run, and its note says what to do instead.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from psycopg import sql

from router.model import VERSION_COLUMN, Route
from router.modes import Fix
from router.sink import Drift
from sinks.sql.ddl import primary_key, route_ddl, route_indexes, table_key, target_columns
from sinks.sql.dialect import Dialect
from sinks.sql.rows import written_columns


@dataclass(frozen=True)
class LiveTable:
    columns: dict[str, str]                 # name -> catalog type name
    primary_key: tuple[str, ...] = ()
    primary_key_name: str | None = None
    indexes: frozenset[str] = frozenset()   # names of its indexes (dialects with indexes)


def differences(route: Route, live: LiveTable | None, dialect: Dialect) -> list[Drift]:
    table, shown = sql.Identifier(route.schema, route.table), route.qualified_table
    if live is None:
        return [Drift(route.name, shown, "missing table", fix=tuple(_text(s) for s in route_ddl(route, dialect)))]
    drifts, expected = [], target_columns(route, dialect)
    for name, type_name in expected:
        actual = live.columns.get(dialect.same_name(name))
        if actual is None:
            drifts.append(_missing_column(route, table, name, type_name))
        elif actual != dialect.catalog_type(type_name):
            drifts.append(_type_change(route, table, name, type_name, dialect.route_type(actual), dialect))
    if dialect.keys_enforced and live.primary_key != tuple(map(dialect.same_name, table_key(route))):
        drifts.append(_key_drift(route, live, table, dialect))
    drifts += [Drift(route.name, shown, "missing index", name, fix=(_text(statement),))
               for name, statement in route_indexes(route, dialect).items() if name not in live.indexes]
    if route.auto:  # columns: auto: the columns its attributes added are expected (and recorded by the sink)
        return drifts
    written = {dialect.same_name(name) for name, _ in expected}
    drifts += [_extra_column(route, table, name, type_name, dialect)
               for name, type_name in live.columns.items() if name not in written]
    return drifts


def _missing_column(route: Route, table: sql.Identifier, name: str, type_name: str) -> Drift:
    add = (_text(_add_column(table, name, type_name)),)
    if name in table_key(route) and name != VERSION_COLUMN:
        return Drift(route.name, route.qualified_table, "missing column", name, type_name, kind=Fix.BY_HAND,
                     note=f"{name} is in the key, and the rows stored have no value for it: recreate the table "
                          f"(DROP TABLE {table.as_string(None)}; cdc-router schema --apply; cdc-router backfill "
                          f"{route.name})")
    return Drift(route.name, route.qualified_table, "missing column", name, type_name, fix=add)


def _type_change(route: Route, table: sql.Identifier, name: str, type_name: str, actual: str,
                 dialect: Dialect) -> Drift:
    drift = Drift(route.name, route.qualified_table, "type mismatch", name, type_name, actual,
                  fix=(_text(_alter_type(table, name, type_name, dialect)),), kind=Fix.DESTRUCTIVE,
                  note="fails if a stored value does not convert; rewrites the table under an exclusive lock "
                       "unless only a varchar grows")
    if not dialect.varchar_length_only:
        return drift
    if name in table_key(route) or name not in dict(written_columns(route)):
        return replace(drift, fix=(), kind=Fix.BY_HAND, note=(
            f"Redshift cannot change the type of {name} in place (a key or bookkeeping column): recreate the "
            f"table (DROP TABLE {table.as_string(None)}; cdc-router schema --apply; cdc-router backfill {route.name})"))
    if type_name.startswith("VARCHAR") and actual.startswith("VARCHAR"):
        return replace(drift, alone=True, note="Redshift changes a VARCHAR's length in place, outside a transaction; "
                                               "fails if a stored value is longer")
    fix = (_text(_drop_column(table, name)), _text(_add_column(table, name, type_name)))
    return replace(drift, fix=fix, note=(
        f"Redshift changes only a VARCHAR's length in place: the column is dropped and added as {type_name}, "
        f"empty until `cdc-router backfill {route.name} --columns {name}` fills it"))


def _extra_column(route: Route, table: sql.Identifier, name: str, type_name: str, dialect: Dialect) -> Drift:
    return Drift(route.name, route.qualified_table, "extra column", name, actual=dialect.route_type(type_name),
                 fix=(_text(_drop_column(table, name)),), kind=Fix.DESTRUCTIVE,
                 note="the route does not write it; dropping it loses its values (a column renamed in the config: "
                      "rename it by hand, ALTER TABLE ... RENAME COLUMN, before schema --apply adds the new name)")


def _key_drift(route: Route, live: LiveTable, table: sql.Identifier, dialect: Dialect) -> Drift:
    add = sql.SQL("ADD {}").format(primary_key(table_key(route)))
    expected, note = ", ".join(table_key(route)), "fails if stored rows repeat a key or have NULL in it"
    if live.primary_key_name is None:
        return Drift(route.name, route.qualified_table, "missing primary key", expected=expected,
                     fix=(_text(sql.SQL("ALTER TABLE {} {}").format(table, add)),), kind=Fix.DESTRUCTIVE, note=note)
    drop = sql.SQL("DROP CONSTRAINT {}").format(sql.Identifier(live.primary_key_name))
    fix: tuple[str, ...]
    if dialect.combined_alter:
        fix = (_text(sql.SQL("ALTER TABLE {} {}, {}").format(table, drop, add)),)
    else:
        fix = tuple(_text(sql.SQL("ALTER TABLE {} {}").format(table, clause)) for clause in (drop, add))
    return Drift(route.name, route.qualified_table, "different primary key", expected=expected,
                 actual=", ".join(live.primary_key), fix=fix, kind=Fix.DESTRUCTIVE, note=note)


def _add_column(table: sql.Identifier, name: str, type_name: str) -> sql.Composed:
    # Existing rows get version 0: older than any stream record, so the next change of each row applies.
    default = sql.SQL(" NOT NULL DEFAULT 0") if name == VERSION_COLUMN else sql.SQL("")
    return sql.SQL("ALTER TABLE {} ADD COLUMN {} {}{}").format(table, sql.Identifier(name), sql.SQL(type_name), default)


def _drop_column(table: sql.Identifier, name: str) -> sql.Composed:
    return sql.SQL("ALTER TABLE {} DROP COLUMN {}").format(table, sql.Identifier(name))


def _alter_type(table: sql.Identifier, name: str, type_name: str, dialect: Dialect) -> sql.Composed:
    column, column_type = sql.Identifier(name), sql.SQL(type_name)
    using = sql.SQL(" USING {}::{}").format(column, column_type) if dialect.alter_type_using else sql.SQL("")
    return sql.SQL("ALTER TABLE {} ALTER COLUMN {} TYPE {}{}").format(table, column, column_type, using)


def _text(statement: sql.Composable) -> str:
    return statement.as_string(None)
