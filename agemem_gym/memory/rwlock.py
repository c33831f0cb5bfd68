"""A small readers-writer lock (many concurrent readers, one writer, writers preferred).

An uncontended reader (no writer holding or waiting for the lock) takes and releases it
with one plain mutex section each: it never touches the condition variable, whose
Python-level ``wait`` / ``notify_all`` machinery cost more than a whole search's result
building. Only contended paths (a writer active or queued) use the condition variable.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import TracebackType

__all__ = ["RWLock"]


class _Guard:
    """A reusable, stateless ``with`` block around an acquire / release pair.

    The lock's state lives in the :class:`RWLock`, so one guard serves every thread at once;
    a class with ``__enter__`` / ``__exit__`` costs a fraction of a ``@contextmanager``
    generator per use.
    """

    __slots__ = ("_acquire", "_release")

    def __init__(self, acquire: Callable[[], None], release: Callable[[], None]) -> None:
        self._acquire = acquire
        self._release = release

    def __enter__(self) -> None:
        self._acquire()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._release()


class RWLock:
    """Readers-writer lock, fair in both directions.

    hnswlib allows concurrent queries but not a query concurrent with an insert or a
    resize, so the long-term memory takes the read side for searches and the write side
    for every mutation. Waiting writers block new readers, so a steady stream of searches
    cannot starve an insert; and when a writer releases the lock while readers wait, those
    readers go first, so a thread that writes in a loop cannot starve a search or a
    ``save`` either (it would re-acquire before the woken readers get the interpreter).

    Use ``with lock.read():`` / ``with lock.write():``, or the explicit
    :meth:`acquire_read` / :meth:`release_read` pair on a hot path (in ``try`` / ``finally``).
    """

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._cond = threading.Condition(self._mutex)
        self._readers = 0
        self._writer = False
        self._waiting_writers = 0
        self._waiting_readers = 0
        self._readers_turn = False  # set by a releasing writer that saw readers waiting
        self._read_guard = _Guard(self.acquire_read, self.release_read)
        self._write_guard = _Guard(self.acquire_write, self.release_write)

    def read(self) -> _Guard:
        """A ``with`` block holding the lock for reading."""
        return self._read_guard

    def write(self) -> _Guard:
        """A ``with`` block holding the lock for writing (exclusive)."""
        return self._write_guard

    def acquire_read(self) -> None:
        """Take the lock for reading; pair with :meth:`release_read`."""
        with self._mutex:
            # Nobody writes or queues to write: the slow path's wait loop would not run and
            # its waiting-reader bookkeeping would cancel out (``_readers_turn`` is only ever
            # set while readers wait, which needs a writer or a queued one), so skip both.
            if not self._writer and not self._waiting_writers:
                self._readers += 1
                return
        self._acquire_read_slow()

    def _acquire_read_slow(self) -> None:
        with self._cond:
            self._waiting_readers += 1
            while self._writer or (self._waiting_writers and not self._readers_turn):
                self._cond.wait()
            self._waiting_readers -= 1
            if not self._waiting_readers:
                self._readers_turn = False
            self._readers += 1

    def release_read(self) -> None:
        """Release a read hold taken with :meth:`acquire_read`."""
        with self._mutex:
            self._readers -= 1
            # Only writers wait for the readers to drain; readers never wait on readers.
            if not self._readers and self._waiting_writers:
                self._cond.notify_all()

    def acquire_write(self) -> None:
        """Take the lock for writing; pair with :meth:`release_write`."""
        with self._cond:
            self._waiting_writers += 1
            while self._writer or self._readers or self._readers_turn:
                self._cond.wait()
            self._waiting_writers -= 1
            self._writer = True

    def release_write(self) -> None:
        """Release a write hold taken with :meth:`acquire_write`."""
        with self._cond:
            self._writer = False
            if self._waiting_readers:
                self._readers_turn = True
            self._cond.notify_all()
