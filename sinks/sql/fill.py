"""``backfill --columns``: the versions recorded before the items are read, which a fill is guarded by.

A fill updates only the named columns of rows that exist, and only where the row's
``_cdc_version`` is still the one recorded here before the source was read: a row the stream
wrote since (an upsert, a soft delete) has another version and keeps what the stream wrote; a
row deleted since is gone; a row that is not there is not made; a soft-deleted row is not
recorded, so not filled. The version itself is never written.
"""

from __future__ import annotations

import zlib

from psycopg import sql

from router.model import DELETED_COLUMN, VERSION_COLUMN, Route
from router.modes import Deletes
from sinks.sql.rows import target_name


def versions_table(route: Route) -> str:
    """The name of the table in the sink's state schema that records the versions of ``route``'s rows."""
    return f"fill_versions_{zlib.crc32(target_name(route).encode()):08x}"


def record_versions(route: Route, versions: sql.Identifier) -> list[sql.Composed]:
    """The key and version of every row that is not soft-deleted, recorded anew in one transaction."""
    live = (sql.SQL(" WHERE {} IS NULL").format(sql.Identifier(DELETED_COLUMN)) if route.deletes == Deletes.SOFT
            else sql.SQL(""))
    return [forget_versions(versions),
            sql.SQL("CREATE TABLE {} AS SELECT {}, {} FROM {}{}").format(
                versions, sql.SQL(", ").join(map(sql.Identifier, route.key)), sql.Identifier(VERSION_COLUMN),
                sql.Identifier(route.schema, route.table), live)]


def forget_versions(versions: sql.Identifier) -> sql.Composed:
    return sql.SQL("DROP TABLE IF EXISTS {}").format(versions)


def guard(route: Route, target: sql.Composable, versions: sql.Composable) -> sql.Composed:
    """The row is as it was recorded: the same version (and, soft deletes, still not deleted)."""
    same = sql.SQL("{}.{} = {}.{}").format(target, sql.Identifier(VERSION_COLUMN), versions,
                                           sql.Identifier(VERSION_COLUMN))
    if route.deletes == Deletes.SOFT:
        same += sql.SQL(" AND {}.{} IS NULL").format(target, sql.Identifier(DELETED_COLUMN))
    return same
