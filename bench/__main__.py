"""``python -m bench``: the write path benchmark, against the Postgres at DATABASE_URL.

For each route, batch size and prefill: the Lambda handler end to end, the reference
article's per-record Lambda (Employees), and the database's COPY and staged COPY upsert
ceilings on the same batches; then the Python side alone and the cold start. Prints one
table, writes JSON (``--json``). Everything lives in a schema of its own (``--schema``),
dropped at the end. ``--quick`` is a smoke run with tiny sizes.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "bench" / "tables.yaml"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    sizes = lambda text: [int(x) for x in text.split(",")]  # noqa: E731
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny batches and tables")
    parser.add_argument("--routes", type=lambda t: t.split(","), default=["employees", "kinesis", "wide"],
                        help="kinesis: the employees route's changes through Kinesis Data Streams")
    parser.add_argument("--batch-sizes", type=sizes, default=[100, 1_000, 10_000])
    parser.add_argument("--prefill", type=sizes, default=[0, 100_000, 1_000_000], help="rows already in the table")
    parser.add_argument("--records", type=int, default=30_000, help="records per measurement (at least 3 batches)")
    parser.add_argument("--reference-budget", type=float, default=10.0,
                        help="seconds after which the per-record comparison stops (it is slow on big tables)")
    parser.add_argument("--writers", type=sizes, default=[1, 2, 4],
                        help="concurrent writers of the concurrency section (0: skip it)")
    parser.add_argument("--writer-batches", type=int, default=30, help="batches of 1,000 per writer in that section")
    parser.add_argument("--targets", action="store_true",
                        help="issue 19's comparison alone: employees and wide at batch 1,000 on a 1,000,000-row table, "
                             "and the concurrency section")
    parser.add_argument("--schema", default="cdc_bench", help="schema of its own, dropped at the end")
    parser.add_argument("--json", type=Path, default=Path("bench-results.json"), help="where to write the results")
    args = parser.parse_args(argv)
    args.writer_batch, args.writer_prefill = 1_000, 100_000
    if args.targets:
        args.routes, args.batch_sizes, args.prefill = ["employees", "wide"], [1_000], [1_000_000]
    if args.quick:
        args.batch_sizes, args.prefill, args.records, args.reference_budget = [10, 50], [0, 500], 100, 0.5
        args.writers, args.writer_batches, args.writer_batch, args.writer_prefill = [1, 2], 2, 50, 500
    args.writers = [w for w in args.writers if w > 0]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    url = os.environ.get("DATABASE_URL")
    if not url:
        print("python -m bench needs DATABASE_URL=postgresql://... (the benchmark creates and drops its own schema)",
              file=sys.stderr)
        return 2
    os.environ.update(CDC_BENCH_SCHEMA=args.schema, CDC_ROUTER_CONFIG=str(CONFIG))
    from bench.run import Bench  # after the environment: it imports the handler, which reads the config

    bench = Bench(url, args)
    try:
        bench.run()
    finally:
        bench.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
