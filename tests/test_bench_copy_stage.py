"""A smoke run of ``python -m bench.copy_stage`` (issue 19's COPY-staging comparison) so that it does not rot.

It asserts what the script produced, never how fast: timings belong to the benchmark.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent


def test_copy_stage_applies_both_variants_without_failures_and_drops_its_schema(database_url: str) -> None:
    schema = f"copy_stage_{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "DATABASE_URL": database_url, "POWERTOOLS_LOG_LEVEL": "WARNING"}
    done = subprocess.run([sys.executable, "-m", "bench.copy_stage", "--batch", "50", "--batches", "4",
                           "--prefill", "200", "--schema", schema],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stderr.splitlines()]
    measured = {(row[0], row[1]) for row in rows if len(row) > 2 and row[2] == "|" and row[0] != "route"}
    assert measured == {(route, variant) for route in ("employees", "wide") for variant in ("json", "copy")}
    assert sum("Python side" in line for line in done.stderr.splitlines()) == 2
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone() == (0,)
