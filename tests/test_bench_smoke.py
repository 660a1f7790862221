"""A smoke run of the write path benchmark (``python -m bench --quick``) so that it does not rot.

It asserts what the benchmark produced, never how fast: timings belong to the benchmark.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import psycopg

from bench import python_side
from bench.workload import WORKLOADS, events

ROOT = Path(__file__).resolve().parent.parent


def test_generated_events_mix_inserts_modifies_and_removes_with_key_reuse() -> None:
    batch = events(WORKLOADS["wide"], 1_000, 1, prefill=100)[0]["Records"]
    names = [r["eventName"] for r in batch]
    assert 0.6 < names.count("INSERT") / len(names) < 0.8
    assert 0.15 < names.count("MODIFY") / len(names) < 0.35
    assert 0.02 < names.count("REMOVE") / len(names) < 0.1
    keys = [r["dynamodb"]["Keys"]["orderId"]["S"] for r in batch]
    assert len(set(keys)) < len(keys)  # some keys come back within the batch
    sequence_numbers = [int(r["dynamodb"]["SequenceNumber"]) for r in batch]
    assert sequence_numbers == sorted(sequence_numbers)
    assert all("NewImage" not in r["dynamodb"] for r in batch if r["eventName"] == "REMOVE")


def test_quick_benchmark_writes_every_cell_and_drops_its_schema(database_url: str, tmp_path: Path) -> None:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    output = tmp_path / "bench.json"
    env = {**os.environ, "DATABASE_URL": database_url, "POWERTOOLS_LOG_LEVEL": "WARNING"}
    done = subprocess.run([sys.executable, "-m", "bench", "--quick", "--schema", schema, "--json", str(output)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(output.read_text())

    cells = {(c["route"], c["batch"], c["prefill"]): c for c in result["results"]}
    assert set(cells) == {(route, batch, prefill) for route in ("employees", "kinesis", "wide")
                          for batch in (10, 50) for prefill in (0, 500)}
    for (route, _, _), cell in cells.items():
        assert cell["router"] > 0 and cell["copy"] > 0 and cell["staged"] > 0
        assert (cell["reference"] is not None and cell["reference"] > 0) == (route == "employees")
    assert set(result["python_us_per_record"]) == {"employees", "kinesis", "wide"}
    assert result["cold_start"]["median_ms"] > 0
    assert result["machine"]["synchronous_commit"] and result["machine"]["cores"] >= 1
    assert {t["target"] for t in result["targets"]} == {
        "Python side per employees record (us)", "Python side per wide record (us)", "cold start (ms)",
        "disjoint keys, 2 writers: writer samples waiting on a lock", "overlapping keys, 2 writers: keys not converged"}
    for route in ("employees", "kinesis", "wide"):
        side = result["python_side"][route]
        assert side["us"] > 0 and side["json_loads_us"] > 0 and set(side["stages"]) == set(python_side.STAGES)
    assert "json.loads" in done.stdout
    assert all(cell["router_db_us"] > 0 and cell["staged_db_us"] > 0 for cell in cells.values())
    runs = {(r["keys"], r["writers"]): r for r in result["concurrency"]}
    assert set(runs) == {(keys, writers) for keys in ("disjoint", "overlapping") for writers in (1, 2)}
    assert all(r["records"] == writers * 2 * 50 and r["mismatches"] == 0 for (_, writers), r in runs.items())
    assert "cdc-router" in done.stdout and "per-record" in done.stdout  # the printed table
    assert "Database time per record" in done.stdout and "Concurrent writers" in done.stdout

    with psycopg.connect(database_url) as conn:
        left = conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
    assert left == (0,)


def test_the_added_column_benchmark_prints_every_cell_and_drops_its_schemas(database_url: str,
                                                                           capsys: Any) -> None:
    from bench import auto_columns

    schema = f"bench_auto_{uuid.uuid4().hex[:8]}"
    assert auto_columns.main(["--batch-sizes", "3,5", "--repeat", "2", "--schema", schema],
                             database_url=database_url) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines() if line.strip()[:1].isdigit()]
    assert [row[0] for row in rows] == ["3", "5"] and all(len(row) == 5 for row in rows)
    with psycopg.connect(database_url) as conn:
        left = conn.execute("SELECT count(*) FROM information_schema.schemata WHERE schema_name LIKE %s",
                            (schema + "%",)).fetchone()
    assert left == (0,)
