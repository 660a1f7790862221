"""How often each column of a route took its ``default`` or ``fallback`` in a batch (issue 12).

A misspelled ``from`` (``empNmae``) with ``fallback: NA`` replicates NA forever and every check
passes; these counts make it visible: per route and column in the batch's stats (a metric, and
the output of ``replay`` and ``verify``), and a warning, once per container, when a column's
attribute was absent from every row a route wrote in a batch.
"""

from __future__ import annotations

from collections import Counter


class Tally:
    """One route's counts, filled by its transform and drained by the pipeline after each batch."""

    def __init__(self) -> None:
        self.defaults: Counter[str] = Counter()   # column -> rows that took its default (attribute absent)
        self.fallbacks: Counter[str] = Counter()  # column -> rows that took its fallback (absent, NULL, not castable)
        self.absent: Counter[str] = Counter()     # column -> rows whose image lacked the attribute
        self.rows = 0                             # upserts transformed

    def drain(self) -> Tally:
        """The counts so far; this tally starts over."""
        drained = Tally()
        drained.defaults, drained.fallbacks, drained.absent, drained.rows = (
            self.defaults, self.fallbacks, self.absent, self.rows)
        self.defaults, self.fallbacks, self.absent, self.rows = Counter(), Counter(), Counter(), 0
        return drained

    def never_present(self) -> list[str]:
        """Columns whose attribute no row of the batch had."""
        return [column for column, count in self.absent.items() if self.rows and count == self.rows]
