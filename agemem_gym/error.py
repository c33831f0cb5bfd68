"""Exceptions raised by agemem-gym.

Mistakes made by a *program* (a bad constructor argument, ``step`` before ``reset``, a
missing optional dependency or data file) raise one of these. Mistakes made by an *agent*
(a malformed tool call, an unknown memory id) never raise: the environment answers them
with a message in the observation and a counted penalty.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class Error(Exception):
    """Base class of every agemem-gym exception."""


class DependencyNotInstalled(Error, ImportError):
    """An optional dependency is missing; the message names the install command."""


class ResetNeeded(Error, RuntimeError):
    """``step`` was called before ``reset`` or after the episode ended."""


class InvalidConfig(Error, ValueError):
    """A configuration value or constructor argument is out of range or of the wrong type."""


class MemoryFull(Error, RuntimeError):
    """The long-term memory already holds ``max_entries`` entries.

    Raised by :meth:`~agemem_gym.memory.LongTermMemory.add`; the tool executor turns it into
    an agent-facing ``[tool error]`` ("long-term memory is full"). It is not a configuration
    mistake, so it is not an :class:`InvalidConfig`: an embedder that returns the wrong shape
    raises ``InvalidConfig`` and reaches the program, never the agent.
    """


class DataNotFound(Error, FileNotFoundError):
    """A dataset or data directory is missing; the message says where to get it."""


class DataFormatError(Error, ValueError):
    """A data file exists but does not have the expected format."""


class MemoryFileError(Error, ValueError):
    """A saved memory file is truncated, corrupt or of another format/version."""


class EndpointError(Error, ConnectionError):
    """A model endpoint (an OpenAI-compatible server) failed: unreachable, unknown model, bad replies.

    An infrastructure or configuration fault, never the agent's: policies raise it instead of
    sending a turn to the env, and ``agemem eval`` stops on it (every later panel would fail the
    same way) rather than recording it as one benchmark's error.
    """


class UnknownName(Error, KeyError):
    """A name looked up in a table (a policy, an embedder, a preset) does not exist."""

    def __str__(self) -> str:  # KeyError would repr() the message; keep it readable
        return str(self.args[0]) if self.args else ""


def unknown_name(kind: str, name: str, known: Iterable[str]) -> UnknownName:
    """Build an :class:`UnknownName` error with a "did you mean" suggestion.

    Args:
        kind: What was looked up, e.g. ``"policy"``.
        name: The name that was asked for.
        known: The valid names.

    Returns:
        The exception, ready to raise.
    """
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return UnknownName(f"Unknown {kind} {name!r}.{hint} Known: {', '.join(known)}.")


def missing_dependency(package: str, extra: str) -> DependencyNotInstalled:
    """Build the error raised when an optional dependency cannot be imported.

    Args:
        package: The import name that failed.
        extra: The agemem-gym extra that provides it.

    Returns:
        The exception, ready to raise.
    """
    return DependencyNotInstalled(
        f'{package} is not installed; run `pip install "agemem-gym[{extra}]"`'
        + (
            " (install `torch==2.13.0` or another CPU build first to avoid a CUDA download)"
            if extra in {"train", "embed", "sb3"}
            else ""
        )
    )
