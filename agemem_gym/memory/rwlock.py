"""A small readers-writer lock (many concurrent readers, one writer, writers preferred)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["RWLock"]


class RWLock:
    """Readers-writer lock, fair in both directions.

    hnswlib allows concurrent queries but not a query concurrent with an insert or a
    resize, so the long-term memory takes the read side for searches and the write side
    for every mutation. Waiting writers block new readers, so a steady stream of searches
    cannot starve an insert; and when a writer releases the lock while readers wait, those
    readers go first, so a thread that writes in a loop cannot starve a search or a
    ``save`` either (it would re-acquire before the woken readers get the interpreter).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False
        self._waiting_writers = 0
        self._waiting_readers = 0
        self._readers_turn = False  # set by a releasing writer that saw readers waiting

    @contextmanager
    def read(self) -> Iterator[None]:
        """Hold the lock for reading."""
        with self._cond:
            self._waiting_readers += 1
            while self._writer or (self._waiting_writers and not self._readers_turn):
                self._cond.wait()
            self._waiting_readers -= 1
            if not self._waiting_readers:
                self._readers_turn = False
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if self._readers == 0:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        """Hold the lock for writing (exclusive)."""
        with self._cond:
            self._waiting_writers += 1
            while self._writer or self._readers or self._readers_turn:
                self._cond.wait()
            self._waiting_writers -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                if self._waiting_readers:
                    self._readers_turn = True
                self._cond.notify_all()
