"""Real failures in a real Postgres, for fault-injection tests.

- ``FaultTrigger``: a row trigger on a target table that raises a chosen SQLSTATE (or
  sleeps) when a row with a faulted key is written; the test arms and clears faults
  between invocations, so a fault lasts exactly as long as the test wants.
- ``RowLock``: a second connection holding a row lock, so that the sink's statement
  blocks on it (for lock_timeout, statement_timeout, or killing the backend mid-batch).
- ``sink_pids`` / ``terminate``: what a server restart does to the client, without
  restarting the shared server: every backend of the sink is terminated.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg
from psycopg import sql

# SQLSTATEs the trigger raises: what the sink must classify as transient or as a rejection.
SERIALIZATION_FAILURE, DEADLOCK, CHECK_VIOLATION, UNIQUE_VIOLATION = "40001", "40P01", "23514", "23505"
SLEEP = "sleep"  # not a SQLSTATE: the trigger sleeps (a slow statement, for statement_timeout)

_FUNCTION = """
CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    code text;
    row_key text := to_jsonb(CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END) ->> {key_column};
BEGIN
    SELECT f."sqlstate" INTO code FROM {faults} f WHERE f."key" = row_key;
    IF code = 'sleep' THEN
        PERFORM pg_sleep(2);
    ELSIF code IS NOT NULL THEN
        RAISE EXCEPTION 'injected fault on key %', row_key USING ERRCODE = code;
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END $$"""


class FaultTrigger:
    """Faults by key on ``schema.table``, armed and cleared from the test's own connection."""

    def __init__(self, conn: psycopg.Connection[Any], schema: str, table: str, key_column: str):
        self.conn, self.faults = conn, sql.Identifier(schema, f"{table}_faults")
        function = sql.Identifier(schema, f"{table}_inject_fault")
        conn.execute(sql.SQL('CREATE TABLE IF NOT EXISTS {} ("key" text PRIMARY KEY, "sqlstate" text NOT NULL)')
                     .format(self.faults))
        conn.execute(sql.SQL(_FUNCTION).format(function=function, faults=self.faults,
                                               key_column=sql.Literal(key_column)))
        conn.execute(sql.SQL("CREATE OR REPLACE TRIGGER {} BEFORE INSERT OR UPDATE OR DELETE ON {} "
                             "FOR EACH ROW EXECUTE FUNCTION {}()").format(
            sql.Identifier(f"{table}_inject_fault"), sql.Identifier(schema, table), function))

    def arm(self, key: Any, sqlstate: str) -> None:
        self.conn.execute(sql.SQL('INSERT INTO {} VALUES (%s, %s) ON CONFLICT ("key") DO UPDATE '
                                  'SET "sqlstate" = EXCLUDED."sqlstate"').format(self.faults), (str(key), sqlstate))

    def clear(self, key: Any | None = None) -> None:
        if key is None:
            self.conn.execute(sql.SQL("DELETE FROM {}").format(self.faults))
        else:
            self.conn.execute(sql.SQL('DELETE FROM {} WHERE "key" = %s').format(self.faults), (str(key),))


class RowLock:
    """Hold ``SELECT ... FOR UPDATE`` on one row from a separate connection until released."""

    def __init__(self, url: str, schema: str, table: str, key_column: str, key: Any):
        self.conn = psycopg.connect(url)
        self.conn.execute(sql.SQL("SELECT 1 FROM {} WHERE {} = %s FOR UPDATE").format(
            sql.Identifier(schema, table), sql.Identifier(key_column)), (key,))

    def release(self) -> None:
        if not self.conn.closed:
            self.conn.rollback()
            self.conn.close()


def sink_pids(conn: psycopg.Connection[Any], application_name: str) -> list[int]:
    rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s AND pid <> pg_backend_pid()",
                        (application_name,)).fetchall()
    return [row[0] if isinstance(row, tuple) else row["pid"] for row in rows]


def terminate(conn: psycopg.Connection[Any], pids: list[int]) -> None:
    for pid in pids:
        conn.execute("SELECT pg_terminate_backend(%s)", (pid,))


def wait_until_blocked(conn: psycopg.Connection[Any], application_name: str, timeout: float = 10.0,
                       exclude: tuple[int, ...] = ()) -> int:
    """The pid of the sink's backend once it waits on a lock (its statement is mid-batch)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s AND wait_event_type = 'Lock' "
                            "AND NOT pid = ANY(%s)", (application_name, list(exclude))).fetchall()
        if rows:
            return rows[0][0] if isinstance(rows[0], tuple) else rows[0]["pid"]
        time.sleep(0.01)
    raise AssertionError(f"no backend of {application_name!r} blocked on a lock within {timeout}s")
