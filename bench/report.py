"""The benchmark's results as one printed table and a JSON document, with the targets of issue 7."""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from bench import python_side
from bench.python_side import PythonCost


@dataclass
class Cell:
    """One route x batch size x prefill: records per second of each contender (None: not measured)."""

    route: str
    batch: int
    prefill: int
    records: int
    router: float
    reference: float | None = None
    reference_records: int = 0
    copy: float | None = None
    staged: float | None = None
    router_db_us: float | None = None  # database time per record (bench.server): cdc-router's transactions
    staged_db_us: float | None = None  # and the staged COPY upsert's, on the same batches

    @property
    def db_ratio(self) -> float | None:
        return self.router_db_us / self.staged_db_us if self.router_db_us and self.staged_db_us else None

    @property
    def of_staged(self) -> float | None:
        return self.router / self.staged if self.staged else None

    @property
    def vs_reference(self) -> float | None:
        return self.router / self.reference if self.reference else None


def workload_stats(payloads: Sequence[str]) -> dict[str, Any]:
    """The generated mix: share of each event name, and distinct keys per record within a batch."""
    events = [[_change(r) for r in json.loads(payload)["Records"]] for payload in payloads]
    names = Counter(r["eventName"] for e in events for r in e)
    total = sum(names.values())
    distinct = sum(len({repr(r["dynamodb"]["Keys"]) for r in e}) for e in events)
    return {"mix": {name: round(count / total, 3) for name, count in sorted(names.items())},
            "distinct_keys_per_record": round(distinct / total, 3)}


def _change(record: dict[str, Any]) -> dict[str, Any]:
    """The DynamoDB change of a record: itself, or a Kinesis record's decoded data."""
    return json.loads(base64.b64decode(record["kinesis"]["data"])) if "kinesis" in record else record


def targets(cells: Sequence[Cell], python: Sequence[PythonCost], cold_ms: float) -> list[dict[str, Any]]:
    """Issue 7's and 19's targets, evaluated on this run (only those whose cells were measured)."""
    by = {(c.route, c.batch, c.prefill): c for c in cells}
    found: list[dict[str, Any]] = []

    def add(name: str, value: float | None, goal: str, met: bool) -> None:
        if value is not None:
            found.append({"target": name, "value": round(value, 3), "goal": goal, "met": met})

    b1000, b100 = by.get(("employees", 1000, 0)), by.get(("employees", 100, 0))
    if b1000:
        add("employees batch 1,000: records/s", b1000.router, ">= 60,000", b1000.router >= 60_000)
        if b1000.of_staged is not None:
            add("employees batch 1,000: share of the staged COPY upsert ceiling", b1000.of_staged, ">= 0.70",
                b1000.of_staged >= 0.70)
    if b100:
        add("employees batch 100: records/s", b100.router, ">= 25,000", b100.router >= 25_000)
    for batch in sorted({c.batch for c in cells if c.route == "employees"}):
        empty, full = by.get(("employees", batch, 0)), by.get(("employees", batch, 1_000_000))
        if empty and full:
            ratio = full.router / empty.router
            add(f"employees batch {batch:,}: 1,000,000-row table vs empty", ratio, ">= 0.80", ratio >= 0.80)
    for cost in python:
        if cost.target_us is not None:
            add(f"Python side per {cost.route} record (us)", cost.us, f"<= {cost.target_us:g}", bool(cost.met))
    add("cold start (ms)", cold_ms, "< 300", cold_ms < 300)
    for route, share in (("employees", 0.60), ("wide", 0.50)):  # issue 19, at batch 1,000 on 1,000,000 rows
        cell = by.get((route, 1_000, 1_000_000))
        if cell and cell.of_staged is not None:
            add(f"{route} batch 1,000, 1,000,000 rows: share of the staged COPY upsert", cell.of_staged,
                f">= {share:.2f}", cell.of_staged >= share)
        if cell and cell.db_ratio is not None:
            add(f"{route} batch 1,000, 1,000,000 rows: database time per record / the staged upsert's",
                cell.db_ratio, "<= 1.5", cell.db_ratio <= 1.5)
    return found


def describe_targets(found: Sequence[dict[str, Any]]) -> str:
    return "\n".join(["Targets:"] + [f"  {'met    ' if t['met'] else 'NOT met'} {t['target']}: {t['value']:,.3g} "
                                      f"(goal {t['goal']})" for t in found])


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _ratio(value: float | None, style: str) -> str:
    return "-" if value is None else format(value, style)


def table(machine: dict[str, Any], cells: Sequence[Cell], python: Sequence[PythonCost],
          cold: dict[str, float]) -> str:
    lines = [
        f"cdc-router write path: {machine['cores']} cores ({machine['cpu']}), PostgreSQL {machine['postgres']} "
        f"on {machine['postgres_on']}, synchronous_commit={machine['synchronous_commit']}, fsync={machine['fsync']}",
        "records/s end to end, one transaction per batch (higher is better); load average (1 min) "
        f"{machine['load_average']['start'][0]:.1f} at the start, {machine['load_average']['end'][0]:.1f} at the end",
        "",
        f"{'route':<10} {'batch':>6} {'prefill':>9} | {'cdc-router':>10} {'per-record*':>11} | "
        f"{'COPY':>8} {'staged upsert':>13} | {'of staged':>9} {'x per-record':>12}",
        "-" * 104,
    ]
    for c in cells:
        lines.append(f"{c.route:<10} {c.batch:>6,} {c.prefill:>9,} | {_rate(c.router):>10} {_rate(c.reference):>11} | "
                     f"{_rate(c.copy):>8} {_rate(c.staged):>13} | {_ratio(c.of_staged, '.0%'):>9} "
                     f"{_ratio(c.vs_reference, '.1f'):>12}")
    lines += [
        "",
        "* per-record: the reference article's Lambda (bench/reference.py; Employees only), for comparison.",
        "  COPY / staged upsert: the database's ceiling on the same batches' rows, batch by batch in turn with",
        "  the handler (COPY into an empty table; COPY into a staging table + INSERT .. ON CONFLICT DO UPDATE",
        "  into one prefilled like the target). Rows are ready before the clock starts: no Python in them.",
        *python_side.describe(python),
        f"Cold start (import handler + build config, fresh process): {cold['median_ms']:.0f} ms "
        f"(median of {cold['runs']}; min {cold['min_ms']:.0f}, max {cold['max_ms']:.0f})",
    ]
    return "\n".join(lines)


def document(machine: dict[str, Any], settings: dict[str, Any], workload: dict[str, Any], cells: Sequence[Cell],
             python: Sequence[PythonCost], cold: dict[str, float]) -> dict[str, Any]:
    return {
        "machine": machine, "settings": settings, "workload": workload,
        "results": [{**asdict(c), "of_staged": c.of_staged, "vs_reference": c.vs_reference, "db_ratio": c.db_ratio}
                    for c in cells],
        "python_us_per_record": {cost.route: cost.us for cost in python}, "python_side": python_side.document(python),
        "cold_start": cold, "targets": targets(cells, python, cold["median_ms"]),
    }
