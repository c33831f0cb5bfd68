"""One run per output folder: an exclusive lock that the operating system releases with its process.

``agemem eval --out`` and ``agemem train --output-dir`` take it before they look at the folder,
so a second run on the same folder is refused in one line instead of overwriting the first
run's files or crashing it. The lock is ``fcntl.flock`` on ``DIR/.agemem.lock``: the kernel
drops it when the holding process ends, however it ends (SIGKILL included), so a lock file a
dead process left behind is never mistaken for a live run. Where ``fcntl`` does not exist
(Windows) runs are not locked.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from agemem_gym.error import InvalidConfig

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]  # no flock there: runs are not locked

__all__ = ["LOCK_NAME", "folder_lock"]

LOCK_NAME = ".agemem.lock"


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike[str], option: str) -> Iterator[None]:
    """Hold the run lock of ``folder`` (created when missing) for the ``with`` block.

    Args:
        folder: The output folder.
        option: The option that named it, for the message (``--out``).

    Raises:
        InvalidConfig: Another live process holds the lock (the message gives its pid).
    """
    if fcntl is None:
        yield
        return
    path = Path(folder)
    created = not path.exists()
    path.mkdir(parents=True, exist_ok=True)
    handle = _acquire(path / LOCK_NAME, option)
    try:
        yield
    finally:
        _release(handle, path, created)


def _acquire(lock: Path, option: str) -> IO[str]:
    """Open and lock ``lock``; retried when the file was replaced between the open and the lock."""
    while True:
        handle = open(lock, "a+", encoding="utf-8")  # noqa: SIM115 - held until _release
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _holder(handle)
            handle.close()
            raise InvalidConfig(
                f"{option} {lock.parent} is in use by another agemem run{holder}; wait for it to end, "
                "or give another folder"
            ) from None
        if _same_file(handle, lock):
            break
        handle.close()  # the holder removed the file as we opened it: lock the new one
    handle.seek(0)
    handle.truncate()
    started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    handle.write(f"{os.getpid()} {started}\n")
    handle.flush()
    return handle


def _holder(handle: IO[str]) -> str:
    """`` (pid N, since T)`` from the lock file, or nothing when it is unreadable."""
    handle.seek(0)
    fields = handle.read(200).split()
    return f" (pid {fields[0]}, since {fields[1]})" if len(fields) >= 2 else ""


def _same_file(handle: IO[str], lock: Path) -> bool:
    """Whether ``lock`` still names the file ``handle`` locked (a releasing run removes it)."""
    try:
        held, named = os.fstat(handle.fileno()), os.stat(lock)
    except OSError:
        return False
    return (held.st_dev, held.st_ino) == (named.st_dev, named.st_ino)


def _release(handle: IO[str], folder: Path, created: bool) -> None:
    """Remove the lock file (still holding it), unlock, and remove the folder if this run made it empty."""
    try:
        (folder / LOCK_NAME).unlink(missing_ok=True)
    finally:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        handle.close()
    if created:
        with contextlib.suppress(OSError):
            folder.rmdir()  # only when empty: a run refused before writing leaves no folder behind
