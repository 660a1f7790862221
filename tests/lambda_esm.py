"""Lambda's event source mapping for one DynamoDB stream shard, simulated for tests.

What Lambda does with a shard (the AWS guide "Using Lambda with DynamoDB", sections on
batching, ReportBatchItemFailures and BisectBatchOnFunctionError):

- it reads a batch from the checkpoint, invokes the function, and on success moves the
  checkpoint past the batch;
- a response naming an item in ``batchItemFailures`` moves the checkpoint to that item:
  the next invocation starts there (with the rest of the batch, or a batch read afresh);
- a function error (here: a timeout after the function committed, so the response is
  lost) retries the same batch, or with bisection splits it in two and retries each half;
- delivery is at least once: a batch may arrive twice, and records already processed
  may be delivered again later.

A schedule is a list of ``Step``s consumed one per invocation; when it runs out, plain
steps (no faults, nothing lost) let every schedule finish.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

Record = dict[str, Any]


@dataclass(frozen=True)
class Step:
    size: int = 10                  # records to read from the checkpoint
    duplicate: bool = False         # deliver the batch twice in a row
    lost: bool = False              # the function ran (and committed) but Lambda saw a timeout
    bisect: bool = False            # on a function error, split the batch in two (else retry it whole)
    reread: bool = False            # after a reported item, read a new batch from it (else retry the rest)
    replay: int = 0                 # first re-deliver this many records from before the checkpoint
    fault: str | None = None        # a fault the test arms for this invocation (see the test)
    fault_at: int = 0               # which record of the batch the fault aims at (modulo its size)
    fault_for: int = 1              # how many invocations the fault lasts


Invoke = Callable[[Sequence[Record], Step], dict[str, Any]]
MAX_INVOCATIONS = 150  # a schedule's faults expire; still stuck after this many calls is a stuck stream


class Shard:
    """Deliver ``records`` to ``invoke`` until the checkpoint passes the last one."""

    def __init__(self, records: Sequence[Record], invoke: Invoke, steps: Sequence[Step]):
        self.records, self.invoke = list(records), invoke
        self._steps: Iterator[Step] = iter(steps)
        self.invocations = 0

    def run(self) -> None:
        position = 0
        while position < len(self.records):
            step = self._step()
            if step.replay:
                stale = self.records[max(0, position - step.replay):position]
                if stale:
                    self._call(stale, Step())  # a redelivery: its outcome changes no checkpoint
            position += self._deliver(self.records[position:position + step.size], step, can_reread=True)

    def _step(self) -> Step:
        return next(self._steps, Step())

    def _deliver(self, batch: list[Record], step: Step, can_reread: bool) -> int:
        """Invoke until all of ``batch`` is checkpointed (or a re-read is due); return how far it moved."""
        moved = 0
        while batch:
            failed = self._invoke(batch, step)
            if failed is None and step.bisect and len(batch) > 1:
                half = len(batch) // 2
                return (moved + self._deliver(batch[:half], self._step(), False)
                        + self._deliver(batch[half:], self._step(), False))
            if failed is not None:
                moved, batch = moved + failed, batch[failed:]
                if batch and step.reread and can_reread:
                    return moved
            step = self._step()
        return moved

    def _invoke(self, batch: list[Record], step: Step) -> int | None:
        """Index of the first failed record (``len(batch)`` on success), or None for a function error."""
        response = self._call(batch, step)
        if step.duplicate:
            response = self._call(batch, Step())
        return None if step.lost else failed_index(batch, response)

    def _call(self, batch: list[Record], step: Step) -> dict[str, Any]:
        self.invocations += 1
        response = self.invoke(batch, step)
        assert self.invocations < MAX_INVOCATIONS, f"the stream is stuck: {self.invocations} invocations, last {response}"
        return response


def failed_index(batch: Sequence[Record], response: dict[str, Any]) -> int:
    """Where Lambda resumes after ``response``; a response it could not act on fails the test."""
    failures = response["batchItemFailures"]
    if not failures:
        return len(batch)
    assert len(failures) == 1, f"more than one batchItemFailures entry: {failures}"
    sequence_numbers = [record["dynamodb"]["SequenceNumber"] for record in batch]
    identifier = failures[0]["itemIdentifier"]
    assert identifier in sequence_numbers, f"itemIdentifier {identifier} is not in the batch"
    return sequence_numbers.index(identifier)
