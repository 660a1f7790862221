"""The Python side with the database taken out (issue 19): CPU microseconds per record for parse,
route, transform, reduce and encoding the statement's rows, next to ``json.loads`` of the same
events in the same run, the floor of touching every byte in Python.

CPU time of this (single-threaded) process, not wall time: on a machine loaded by other work the
figures are not inflated by the other processes. Each pass runs over every event; the figures are
the median of the passes. ``json.loads`` runs with the cyclic collector paused, as
``pipeline.process`` does. The stages are timed on their own, in the same passes, to show where
the time goes; their sum is close to, not exactly, the whole.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.measure import DrySink
from operations.assemble import pipeline_for
from router.model import Config
from router.pipeline import Pipeline, _batches, paused_collector
from router.reduce import reduce_changes
from sinks.postgres import statements

TARGET_US = {"employees": 5.0, "wide": 30.0}  # issue 19, per record
STAGES = ("parse", "transform", "reduce", "encode")


@dataclass
class PythonCost:
    """One route's figures, microseconds of CPU per record (medians over the passes)."""

    route: str
    us: float                                 # parse -> route -> transform -> reduce -> encode (pipeline.process)
    json_loads_us: float                      # json.loads of the event's text: the floor
    stages: dict[str, float] = field(default_factory=dict)
    records: int = 0                          # per pass
    passes: int = 0

    @property
    def target_us(self) -> float | None:
        return TARGET_US.get(self.route)

    @property
    def met(self) -> bool | None:
        target = self.target_us
        return None if target is None else self.us <= target


def measure(config: Config, route: str, payloads: Sequence[str], passes: int = 3) -> PythonCost:
    pipeline = pipeline_for(config, dry_sinks(config))
    samples: dict[str, list[float]] = {name: [] for name in ("whole", "json.loads", *STAGES)}
    records = 0
    for _ in range(passes):
        spent = dict.fromkeys(samples, 0.0)
        records = 0
        for payload in payloads:
            with paused_collector():  # as pipeline.process runs: the floor under the same conditions
                start = time.process_time()
                event = json.loads(payload)
                spent["json.loads"] += time.process_time() - start
            records += len(event["Records"])
            _stages(pipeline, event, spent)
            event = json.loads(payload)  # young objects again, as the handler gets them
            start = time.process_time()
            pipeline.process(event)
            spent["whole"] += time.process_time() - start
        for name, seconds in spent.items():
            samples[name].append(seconds / records * 1e6)
    median = {name: statistics.median(values) for name, values in samples.items()}
    return PythonCost(route, median["whole"], median["json.loads"], {s: median[s] for s in STAGES}, records, passes)


def dry_sinks(config: Config) -> dict[str, DrySink]:
    return {name: DrySink(sink_config, [r for r in config.routes.values() if r.sink == name])
            for name, sink_config in config.sinks.items()}


def _stages(pipeline: Pipeline, event: Any, spent: dict[str, float]) -> None:
    """What ``pipeline.process`` does for a batch without failures, stage by stage."""
    with paused_collector():
        clock = time.process_time()
        records = pipeline.parse(event)
        spent["parse"] += (now := time.process_time()) - clock
        plan = pipeline._plan(records)
        for transform in pipeline.transforms.values():
            transform.tally.drain()
        spent["transform"] += (clock := time.process_time()) - now
        batches = _batches(reduce_changes(plan.changes), plan.dead_letters)
        spent["reduce"] += (now := time.process_time()) - clock
        for batch in batches:
            if batch.changes:
                statements.encode_rows(batch.route, batch.changes)
        spent["encode"] += time.process_time() - now


def describe(costs: Sequence[PythonCost]) -> list[str]:
    """The report's lines: per route the whole, the floor, the target; then the stages."""
    lines = ["Python side, no database (parse, route, transform, reduce, encode), CPU us/record, median of "
             f"{costs[0].passes if costs else 0} passes; json.loads of the same events: the floor"]
    for cost in costs:
        target = "" if cost.target_us is None else \
            f"; target <= {cost.target_us:g}: {'met' if cost.met else 'NOT MET'}"
        stages = ", ".join(f"{name} {us:.1f}" for name, us in cost.stages.items())
        lines.append(f"  {cost.route:<10} {cost.us:6.1f} (json.loads {cost.json_loads_us:.1f}, "
                     f"{cost.us / cost.json_loads_us:.1f}x){target}   stages: {stages}")
    return lines


def document(costs: Sequence[PythonCost]) -> dict[str, Any]:
    return {cost.route: {"us": cost.us, "json_loads_us": cost.json_loads_us, "stages": cost.stages,
                         "target_us": cost.target_us, "met": cost.met, "records": cost.records,
                         "passes": cost.passes} for cost in costs}
