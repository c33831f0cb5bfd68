"""Output paths of the commands, checked before any work starts.

A run that plays every episode and then cannot write its results has lost them, so each
command checks its output files and folders first: a folder where a file is expected (or
the other way round), a place that cannot be written, and an existing file that would be
replaced silently are all refused with one line (an :class:`~agemem_gym.error.InvalidConfig`).
The rule is the one ``agemem eval --out`` and ``agemem train --output-dir`` follow: nothing
is replaced without ``--overwrite``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from agemem_gym.error import InvalidConfig

__all__ = ["check_output_file", "check_output_dir", "recordings_in"]


def check_output_file(
    given: str | os.PathLike[str], option: str, *, overwrite: bool, example: str = "out.json"
) -> Path:
    """Check that a file can be written at ``given`` without losing anything; returns the path.

    Args:
        given: The path the user gave.
        option: The option that gave it, for the message (``--json``).
        overwrite: ``--overwrite`` was given: an existing file may be replaced.
        example: A file name for the message's example.

    Raises:
        InvalidConfig: ``given`` is (or names) a folder, exists without ``overwrite``, or its
            folder cannot be made or written.
    """
    text = os.fspath(given)
    path = Path(text)
    if path.is_dir() or text.endswith(("/", os.sep)):
        raise InvalidConfig(f"{option} {text} is a folder; give a file path, e.g. {path / example}")
    if path.exists() and not overwrite:
        raise InvalidConfig(f"{option} {text} already exists; pass --overwrite to replace it, or give another path")
    _check_writable(path.parent, option, text)
    if path.exists() and not os.access(path, os.W_OK):
        raise InvalidConfig(f"{option} {text} is read-only; give another path")
    return path


def check_output_dir(given: str | os.PathLike[str], option: str) -> Path:
    """Check that ``given`` is, or can become, a folder that can be written; returns the path.

    Args:
        given: The path the user gave.
        option: The option that gave it, for the message (``--out``).

    Raises:
        InvalidConfig: ``given`` is a file, lies under one, or cannot be made or written.
    """
    text = os.fspath(given)
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise InvalidConfig(f"{option} {text} is a file, not a folder; give a folder path")
    _check_writable(path, option, text)
    return path


def _check_writable(folder: Path, option: str, given: str) -> None:
    """The nearest existing folder of ``folder`` (itself or an ancestor) takes a new file."""
    existing = folder if str(folder) else Path(".")
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise InvalidConfig(f"{option} {given}: {existing} is a file, so no folder can be made there")
    try:  # as root os.access says yes to everything; a real (nameless, removed) file is the test
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise InvalidConfig(f"{option} {given}: cannot write in {existing} ({exc.strerror or exc})") from None


def recordings_in(folder: str | os.PathLike[str]) -> list[Path]:
    """The episode recordings (``*.jsonl``) directly in ``folder``."""
    path = Path(folder)
    return sorted(path.glob("*.jsonl")) if path.is_dir() else []
