"""Reading a table's items page by page, segments in parallel, for the backfill and verify.

A source (a parallel Scan, a DynamoDB export) is split into segments, each read as a
sequence of pages; a page carries the position where reading its segment goes on, so
that a reader can stop after any page and start again there. ``PageReader`` reads the
segments in worker threads and hands the pages to one consumer (the sink's connection is
not shared between threads), at most ``in_flight`` pages ahead of it: that bounds the
memory, and with ``in_flight=1`` nothing is read while the consumer works on a page.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

_DONE = object()  # a worker has no segment left


@dataclass
class Page:
    segment: str
    items: list[dict[str, Any]]    # DynamoDB items in the wire format ({"S": ...})
    position: Any = None           # JSON-able: where the segment goes on after this page
    finished: bool = False         # the segment's last page


class Source(Protocol):
    """Where items come from: a Scan of the live table, or an export to S3."""

    name: str                      # identity of the checkpoints: the same name resumes them
    table: str                     # the DynamoDB table the items belong to
    segments: tuple[str, ...]
    estimated_items: int | None

    def read(self, segment: str, position: Any) -> Iterator[Page]:
        """The pages of ``segment`` from ``position`` (None: its start); each read happens on ``next``."""
        ...


class PageReader:
    """Pages of many segments from worker threads, in the consumer's thread; ``close`` stops the workers."""

    def __init__(self, source: Source, positions: Mapping[str, Any], workers: int, in_flight: int):
        self.source = source
        self._todo: queue.SimpleQueue[str] = queue.SimpleQueue()
        for segment in positions:
            self._todo.put(segment)
        self._positions = dict(positions)
        self._pages: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._slots = threading.Semaphore(max(in_flight, 1))
        self._stop = threading.Event()
        count = max(1, min(workers, len(positions)))
        self._threads = [threading.Thread(target=self._work, name=f"reader-{n}", daemon=True) for n in range(count)]
        for thread in self._threads:
            thread.start()

    def __iter__(self) -> Iterator[Page]:
        running = len(self._threads)
        while running:
            page = self._pages.get()
            if page is _DONE:
                running -= 1
            elif isinstance(page, BaseException):
                raise page
            else:
                try:
                    yield page
                finally:  # the page is written (or abandoned): a worker may read the next one
                    self._slots.release()

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def __enter__(self) -> PageReader:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def _work(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    segment = self._todo.get_nowait()
                except queue.Empty:
                    break
                self._read(segment)
        except BaseException as exc:  # handed to the consumer, which raises it
            self._stop.set()
            self._pages.put(exc)
        self._pages.put(_DONE)

    def _read(self, segment: str) -> None:
        pages = self.source.read(segment, self._positions[segment])
        while self._acquire():
            page = next(pages, None)
            if page is None:
                self._slots.release()
                return
            self._pages.put(page)

    def _acquire(self) -> bool:
        """Wait for a free slot; False once the reader is closed."""
        while not self._stop.is_set():
            if self._slots.acquire(timeout=0.1):
                if not self._stop.is_set():
                    return True
                self._slots.release()
        return False
