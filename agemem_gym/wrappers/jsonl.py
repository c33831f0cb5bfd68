"""The JSON Lines records of one episode, for :class:`~agemem_gym.wrappers.record.RecordEpisode`.

JSON-safe copies of any value, the tracker that diffs the live context and long-term memory
between steps, and the builders of the pieces of a ``step`` record (schema in
:mod:`agemem_gym.wrappers.record` and ``docs/recording-schema.md``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import IO, TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from agemem_gym.core import MemoryEnv
    from agemem_gym.memory.stm import Message
    from agemem_gym.turns import TurnOutcome

__all__ = [
    "EpisodeTracker",
    "added_json",
    "call_json",
    "compact",
    "compact_step",
    "context_json",
    "dumps_line",
    "jsonable",
    "message_json",
    "parsed_json",
]


# ====================================================================== JSON helpers
_MAX_DEPTH = 64  # deeper (or cyclic) structures in a structured action are cut there
_MAX_INT_BITS = 4096  # far below Python's int-to-text digit limit


def jsonable(value: Any, depth: int = 0) -> Any:
    """A JSON-safe copy of ``value``: numpy scalars become numbers, unknown objects their type name.

    Never ``repr`` (it may hold a memory address, which would make files differ run to run).
    Nesting past ``_MAX_DEPTH`` levels (a cycle, say) and integers too long to write become
    placeholder strings too, so any structured action can be recorded.
    """
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > _MAX_INT_BITS:
        return f"<int of {value.bit_length()} bits>"
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, np.generic):
        return jsonable(value.item(), depth)
    if depth >= _MAX_DEPTH and isinstance(value, (Mapping, list, tuple, np.ndarray)):
        return f"<{type(value).__name__} nested deeper than {_MAX_DEPTH}>"
    if isinstance(value, Mapping):
        return {
            k if isinstance(k, str) else str(jsonable(k, depth + 1)): jsonable(v, depth + 1) for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [jsonable(v, depth + 1) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist(), depth)
    return f"<{type(value).__name__}>"


def dumps_line(record: Mapping[str, Any]) -> str:
    """One compact JSON line: UTF-8 text, with JSON escapes only for what UTF-8 cannot hold."""
    line = json.dumps(record, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates (fuzzed text) have no UTF-8 form: escape them as \udXXX
        line = json.dumps(record, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return line + "\n"


def compact(record: dict[str, Any]) -> dict[str, Any]:
    """Drop optional keys whose value is empty, ``None`` or ``False``."""
    return {k: v for k, v in record.items() if v is not None and v is not False and v != [] and v != {}}


# ====================================================================== live tracking
class EpisodeTracker:
    """Diffs the live context and LTM between steps and writes the records of one episode."""

    def __init__(self, handle: IO[str], base: MemoryEnv) -> None:
        self.handle = handle
        self.base = base
        self.steps = 0
        self.total = 0.0
        self._next_n = 0
        self._prev: tuple[Any, ...] = ()  # keeps the previous messages alive so their id()s stay unique
        self._numbers: dict[int, int] = {}
        self._ltm: dict[str, dict[str, Any]] = {}

    def write(self, record: Mapping[str, Any]) -> None:
        """Append one record as a line."""
        self.handle.write(dumps_line(record))

    # -- context ------------------------------------------------------------------------
    def context_changes(self) -> tuple[list[tuple[int, int, Any]], list[int]]:
        """New messages as ``(n, pos, message)`` and the numbers of the removed ones."""
        current = self.base.stm.messages
        seen = {id(m) for m in current}
        removed = [self._numbers[id(m)] for m in self._prev if id(m) not in seen]
        added: list[tuple[int, int, Any]] = []
        numbers: dict[int, int] = {}
        for pos, msg in enumerate(current):
            n = self._numbers.get(id(msg))
            if n is None:
                n, self._next_n = self._next_n, self._next_n + 1
                added.append((n, pos, msg))
            numbers[id(msg)] = n
        self._prev, self._numbers = current, numbers
        return added, removed

    # -- long-term memory ---------------------------------------------------------------
    def ltm_changes(self) -> dict[str, Any]:
        """The LTM diff since the last call (full new values for added and updated entries)."""
        current = {m.id: {"id": m.id, "content": m.content, "metadata": jsonable(m.metadata)} for m in self.base.ltm}
        prev = self._ltm
        diff = {
            "add": [e for mid, e in current.items() if mid not in prev],
            "update": [e for mid, e in current.items() if mid in prev and prev[mid] != e],
            "delete": [mid for mid in prev if mid not in current],
        }
        self._ltm = current
        return compact(diff)

    def ltm_list(self) -> list[dict[str, Any]]:
        """The LTM entries as of the last :meth:`ltm_changes`."""
        return list(self._ltm.values())


def message_json(n: int, pos: int, msg: Message, of: str | None = None) -> dict[str, Any]:
    """A context message record; ``of`` names where its text is written instead of ``content``."""
    record = {"n": n, "pos": pos, "role": msg.role, "kind": msg.kind, "stage": msg.stage, "tokens": msg.tokens}
    if of is None:
        record["content"] = msg.content
    else:
        record["of"] = of
    return record


def context_json(info: Mapping[str, Any], size: int) -> dict[str, Any]:
    """Token counts, overflow and size of the context, from the step's ``info``."""
    return {
        "tokens": int(info.get("context_tokens", 0)),
        "prompt_tokens": int(info.get("prompt_tokens", 0)),
        "overflow": bool(info.get("overflow", False)),
        "size": size,
    }


def added_json(added: list[tuple[int, int, Message]], turn: TurnOutcome) -> list[dict[str, Any]]:
    """The messages that entered the context; the turn's own text and call results by reference."""
    of = {id(turn.message): "action"} | {id(m): f"call:{i}" for i, m in enumerate(turn.result_messages)}
    return [message_json(n, pos, m, of.get(id(m))) for n, pos, m in added]


def parsed_json(report: Mapping[str, Any], turn: TurnOutcome) -> dict[str, Any]:
    """The step's ``parsed`` record: the env's reading of the turn (``info["turn"]``) and its think text."""
    return compact(
        {
            "kind": report["kind"],
            "think": turn.parsed.think,
            "answer": report.get("answer"),
            "act": report.get("action"),
            "notes": list(turn.parsed.notes),
        }
    )


def call_json(call: Mapping[str, Any]) -> dict[str, Any]:
    """One call of ``info["turn"]["calls"]`` as recorded."""
    record: dict[str, Any] = {
        "name": call["name"],
        "arguments": jsonable(call["arguments"]),
        "ok": bool(call["ok"]),
        "result": call["message"],
    }
    if call["memory_op"] is None and call["memory_ids"]:  # ids without a write: the memories read
        record["retrieved"] = list(call["memory_ids"])
    return record


_OPTIONAL_STEP_KEYS = ("structured", "errors", "ltm", "timing")


def compact_step(record: dict[str, Any]) -> dict[str, Any]:
    """Drop a step record's optional keys that are empty, ``None`` or false."""
    out = {k: v for k, v in record.items() if k not in _OPTIONAL_STEP_KEYS or v not in (None, False, [], {})}
    if not out["context"]["removed"]:
        del out["context"]["removed"]
    return out
