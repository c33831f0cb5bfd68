"""The shape of each record of an episode recording, checked before anything reads it.

:func:`~agemem_gym.wrappers.episode.read_episode` and the viewer index into the records
(``header["reset"]["tokens"]``, ``step["calls"][i]["name"]``). A file that a person edited,
another program wrote, or a disk damaged can hold any JSON there: a list for a line, a string
for a count. :func:`check_shape` compares a record against the specs below, which mirror the
schema in :mod:`agemem_gym.wrappers.record`, so a malformed file is refused with the line and
the field at fault instead of failing somewhere later.

A spec is a type (``int`` never accepts ``bool``), a tuple of types (``type(None)`` allows
``null``), ``[spec]`` for a list of items, or ``{"key": spec}`` for an object; a key ending
in ``?`` may be left out (the recorder drops empty optional keys).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agemem_gym.error import DataFormatError

__all__ = ["HEADER", "STEP", "END", "check_shape"]

_NUMBER = (int, float)
_MEMORY = {"id": str, "content": str, "metadata": dict}
_MESSAGE = {"n": int, "role": str, "kind": str, "stage": int, "tokens": int, "content?": str, "of?": str}
_CALL = {"name": str, "arguments": dict, "ok": (bool, type(None)), "result": (str, type(None)), "retrieved?": [str]}

HEADER: dict[str, Any] = {
    "env_id": str,
    "budget": int,
    "metadata?": dict,
    "task": {"facts?": ([str], type(None)), "answers?": list},
    "reset": {
        "messages": [_MESSAGE],
        "ltm?": [_MEMORY],
        "tokens": int,
        "prompt_tokens": int,
        "stage?": (int, type(None)),
    },
}
"""The header record (first line)."""

STEP: dict[str, Any] = {
    "t": int,
    "stage": int,
    "round": int,
    "action": str,
    "parsed": {"kind": str},
    "calls": [_CALL],
    "errors?": [str],
    "context": {"added": [_MESSAGE | {"pos": int}], "removed?": [int], "tokens": int, "prompt_tokens": int},
    "ltm?": {"add?": [_MEMORY], "update?": [_MEMORY], "delete?": [str]},
    "reward": _NUMBER,
    "terminated": bool,
    "truncated": bool,
}
"""A step record."""

END: dict[str, Any] = {"complete?": bool, "return?": _NUMBER, "final?": dict}
"""The end record."""

_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    dict: "an object",
    list: "a list",
    type(None): "null",
}


def _describe(spec: Any) -> str:
    if isinstance(spec, tuple):
        return " or ".join(dict.fromkeys(_describe(s) for s in spec))
    if isinstance(spec, list):
        return f"a list whose items are {_describe(spec[0])}"
    if isinstance(spec, Mapping):
        return "an object"
    return _NAMES.get(spec, spec.__name__)


def _matches(value: Any, spec: Any) -> bool:
    """Whether ``value`` has the outer type of ``spec`` (items and keys are checked by the caller)."""
    if isinstance(spec, tuple):
        return any(_matches(value, s) for s in spec)
    if isinstance(spec, list):
        return isinstance(value, list)
    if isinstance(spec, Mapping):
        return isinstance(value, dict)
    if isinstance(value, bool) and spec is not bool:
        return False
    return isinstance(value, spec)


def check_shape(value: Any, spec: Any, where: str, field: str = "the line") -> None:
    """Raise :class:`DataFormatError` naming ``where`` and the field when ``value`` does not fit ``spec``.

    Args:
        value: The parsed JSON.
        spec: :data:`HEADER`, :data:`STEP`, :data:`END` or a part of one.
        where: ``path:line`` for the message.
        field: The dotted name of ``value`` in the record.

    Raises:
        DataFormatError: The first field that is missing or of another type.

    Example:
        >>> check_shape({"t": "1"}, {"t": int}, "ep.jsonl:2")
        Traceback (most recent call last):
        ...
        agemem_gym.error.DataFormatError: ep.jsonl:2: not a valid agemem recording: t should be an integer, not str
    """
    if not _matches(value, spec):
        raise DataFormatError(
            f"{where}: not a valid agemem recording: {field} should be {_describe(spec)}, not {type(value).__name__}"
        )
    if isinstance(spec, tuple):
        spec = next(s for s in spec if _matches(value, s))
    prefix = "" if field.startswith("the ") else f"{field}."
    if isinstance(spec, list):
        for i, item in enumerate(value):
            check_shape(item, spec[0], where, f"{field}[{i}]")
    elif isinstance(spec, Mapping):
        for key, sub in spec.items():
            name = key.rstrip("?")
            if name in value:
                check_shape(value[name], sub, where, prefix + name)
            elif not key.endswith("?"):
                raise DataFormatError(f"{where}: not a valid agemem recording: {prefix + name} is missing")
