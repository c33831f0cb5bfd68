"""Read an episode recorded by :class:`~agemem_gym.wrappers.record.RecordEpisode`.

:func:`read_episode` parses a ``.jsonl`` file (schema ``agemem-episode/1``, documented in
:mod:`agemem_gym.wrappers.record` and ``docs/recording-schema.md``) into an :class:`Episode`
and replays the LTM and context diffs, so the memory and the context after any step are one
call away (:meth:`Episode.ltm`, :meth:`Episode.context`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from agemem_gym.error import DataFormatError
from agemem_gym.wrappers.episode_shape import END, HEADER, STEP, check_shape

__all__ = ["SCHEMA", "Episode", "StepRecord", "CallRecord", "MemoryRecord", "MessageRecord", "read_episode"]

SCHEMA = "agemem-episode/1"
"""The schema id written in every header (``name/major``; readers refuse other majors)."""


@dataclasses.dataclass(frozen=True)
class MemoryRecord:
    """One LTM entry as recorded."""

    id: str
    content: str
    metadata: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class MessageRecord:
    """One context message as recorded (``n`` numbers messages in order of arrival)."""

    n: int
    role: str
    kind: str
    stage: int
    tokens: int
    content: str


@dataclasses.dataclass(frozen=True)
class CallRecord:
    """One tool call of a step: its arguments, whether it worked, the text it returned, the ids it read.

    ``ok`` and ``result`` are ``None`` only in files of earlier versions, which could lose the
    results of a turn that ended Stage 1.
    """

    name: str
    arguments: dict[str, Any]
    ok: bool | None
    result: str | None
    retrieved: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class StepRecord:
    """One step as recorded; ``raw`` is the JSON object of the line.

    Attributes:
        t: Step number (1-based).
        stage: The stage in which the agent acted.
        round: The round of that turn (1-based, within the message being answered).
        action: The turn text as it entered the context.
        kind: ``tool_call``, ``answer``, ``action`` or ``invalid``.
        calls: The tool calls with their results.
        errors: The step's invalid inputs other than failed calls (format errors, hook
            rejections), one per problem.
        added: Messages that entered the context during the step.
        removed: Numbers of the messages that left it.
        context_tokens: Tokens of the full context after the step.
        prompt_tokens: Tokens of the packed context the policy sees next.
        reward: The reward ``step`` returned.
        terminated: Whether the episode ended.
        truncated: Whether the episode was cut.
        raw: The record as read.
    """

    t: int
    stage: int
    round: int
    action: str
    kind: str
    calls: tuple[CallRecord, ...]
    errors: tuple[str, ...]
    added: tuple[MessageRecord, ...]
    removed: tuple[int, ...]
    context_tokens: int
    prompt_tokens: int
    reward: float
    terminated: bool
    truncated: bool
    raw: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Episode:
    """A recorded episode; :meth:`ltm` and :meth:`context` rebuild the state after any step.

    Attributes:
        path: The file it was read from.
        header: The header record (env, task with gold data, config, reset state).
        steps: The steps in order.
        end: The end record, or ``None`` when the file stops early (a crash).
        ltm_history: The LTM after each step (index 0: after reset).
        context_history: The full context after each step (index 0: after reset).
    """

    path: Path | None
    header: dict[str, Any]
    steps: tuple[StepRecord, ...]
    end: dict[str, Any] | None
    ltm_history: tuple[tuple[MemoryRecord, ...], ...]
    context_history: tuple[tuple[MessageRecord, ...], ...]

    @property
    def env_id(self) -> str:
        """The env id."""
        return str(self.header["env_id"])

    @property
    def task(self) -> dict[str, Any]:
        """``task_id``, ``query``, ``answers`` and ``facts`` (gold data)."""
        return dict(self.header["task"])

    @property
    def budget(self) -> int:
        """The context budget (``max_context_tokens``)."""
        return int(self.header["budget"])

    @property
    def complete(self) -> bool:
        """Whether the episode ran to its end."""
        return bool(self.end and self.end.get("complete"))

    @property
    def final(self) -> dict[str, Any]:
        """The last ``info`` (scores, MQ, reward components); empty when incomplete."""
        return dict((self.end or {}).get("final") or {})

    def __len__(self) -> int:
        return len(self.steps)

    def ltm(self, t: int) -> list[MemoryRecord]:
        """The LTM after step ``t`` (``t=0``: after reset), in insertion order."""
        return list(self.ltm_history[self._check_t(t)])

    def context(self, t: int) -> list[MessageRecord]:
        """The full (unpacked) context after step ``t`` (``t=0``: after reset)."""
        return list(self.context_history[self._check_t(t)])

    def _check_t(self, t: int) -> int:
        if not 0 <= t <= len(self.steps):
            raise IndexError(f"step {t} is out of range: the episode has steps 0..{len(self.steps)}")
        return t


def _check_schema(header: Any, where: str) -> None:
    if not isinstance(header, dict):
        raise DataFormatError(f"{where}: not an agemem episode recording (first line must be its header object)")
    schema = str(header.get("schema", ""))
    name, _, major = schema.partition("/")
    if header.get("type") != "header" or name != "agemem-episode":
        raise DataFormatError(f"{where}: not an agemem episode recording (first line must be its header)")
    if major.split(".")[0] != SCHEMA.split("/")[1]:
        raise DataFormatError(f"{where}: schema {schema!r} is not supported by this reader ({SCHEMA})")
    check_shape(header, HEADER, where, "the header")


def _apply_ltm(ltm: dict[str, MemoryRecord], diff: Mapping[str, Any], where: str) -> None:
    for mid in diff.get("delete", ()):
        if ltm.pop(mid, None) is None:
            raise DataFormatError(f"{where}: deletes unknown memory {mid!r}")
    for e in diff.get("update", ()):
        if e["id"] not in ltm:
            raise DataFormatError(f"{where}: updates unknown memory {e['id']!r}")
        ltm[e["id"]] = MemoryRecord(e["id"], e["content"], dict(e["metadata"]))
    for e in diff.get("add", ()):
        if e["id"] in ltm:
            raise DataFormatError(f"{where}: adds memory {e['id']!r} twice")
        ltm[e["id"]] = MemoryRecord(e["id"], e["content"], dict(e["metadata"]))


def _message(raw: Mapping[str, Any], content: str | None) -> MessageRecord:
    text = raw.get("content", content)
    return MessageRecord(int(raw["n"]), raw["role"], raw["kind"], int(raw["stage"]), int(raw["tokens"]), text or "")


def _apply_context(
    context: list[MessageRecord], added: Sequence[MessageRecord], positions: Sequence[int], removed: Sequence[int]
) -> list[MessageRecord]:
    gone = set(removed)
    out = [m for m in context if m.n not in gone]
    for pos, msg in sorted(zip(positions, added), key=lambda p: p[0]):
        out.insert(pos, msg)
    return out


def _step(raw: dict[str, Any]) -> StepRecord:
    calls = tuple(
        CallRecord(c["name"], dict(c["arguments"]), c["ok"], c["result"], tuple(c.get("retrieved", ())))
        for c in raw["calls"]
    )
    resolved = {"action": raw["action"]} | {f"call:{i}": c.result for i, c in enumerate(calls)}
    added = tuple(_message(m, resolved.get(m.get("of", ""))) for m in raw["context"]["added"])
    return StepRecord(
        t=int(raw["t"]),
        stage=int(raw["stage"]),
        round=int(raw["round"]),
        action=raw["action"],
        kind=raw["parsed"]["kind"],
        calls=calls,
        errors=tuple(raw.get("errors", ())),
        added=added,
        removed=tuple(raw["context"].get("removed", ())),
        context_tokens=int(raw["context"]["tokens"]),
        prompt_tokens=int(raw["context"]["prompt_tokens"]),
        reward=float(raw["reward"]),
        terminated=bool(raw["terminated"]),
        truncated=bool(raw["truncated"]),
        raw=raw,
    )


def _lines(path: Path) -> Iterator[tuple[int, Any]]:
    try:
        yield from _json_lines(path)
    except UnicodeDecodeError as exc:
        raise DataFormatError(f"{path} is not UTF-8 text (an agemem episode file is JSON Lines): {exc}") from exc


def _no_constant(name: str) -> None:
    """``NaN`` and ``Infinity`` are not JSON; the recorder never writes them (``allow_nan=False``)."""
    raise ValueError(f"{name} is not a JSON value")


def _json_lines(path: Path) -> Iterator[tuple[int, Any]]:
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line, parse_constant=_no_constant)
            except (ValueError, RecursionError) as exc:  # JSONDecodeError, over-long integers, deep nesting
                if line.endswith("\n"):
                    raise DataFormatError(f"{path}:{number}: not valid JSON ({exc})") from exc
                return  # a last line cut by a crash: read what came before it
            yield number, record


def read_episode(path: str | Path) -> Episode:
    """Read a file written by :class:`RecordEpisode` and rebuild the LTM and context at every step.

    Args:
        path: The ``.jsonl`` file.

    Returns:
        The :class:`Episode`.

    Raises:
        DataFormatError: The file is not a recording, has another schema major version, holds
            a record of another shape (a list for a line, a string for a count, ``NaN``), or
            is inconsistent (a diff that refers to a memory or message that does not exist).
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: no such file")
    records = _lines(path)
    first = next(records, None)
    if first is None:
        raise DataFormatError(f"{path}: empty file")
    header = first[1]
    _check_schema(header, f"{path}:1")
    reset = header["reset"]
    ltm: dict[str, MemoryRecord] = {}
    _apply_ltm(ltm, {"add": reset.get("ltm", ())}, f"{path}:1")
    context = [_message(m, None) for m in reset["messages"]]
    ltm_history, context_history = [tuple(ltm.values())], [tuple(context)]
    steps: list[StepRecord] = []
    end = None
    for number, raw in records:
        where = f"{path}:{number}"
        check_shape(raw, {"type": str}, where)
        if raw["type"] == "end":
            check_shape(raw, END, where)
            end = raw
            break
        if raw["type"] != "step" or raw.get("t") != len(steps) + 1:
            raise DataFormatError(f"{where}: expected the record of step {len(steps) + 1}")
        check_shape(raw, STEP, where)
        step = _step(raw)
        known = {m.n for m in context}
        if not set(step.removed) <= known:
            raise DataFormatError(f"{where}: removes messages that are not in the context")
        positions = [int(m["pos"]) for m in raw["context"]["added"]]
        context = _apply_context(context, step.added, positions, step.removed)
        _apply_ltm(ltm, raw.get("ltm", {}), where)
        steps.append(step)
        ltm_history.append(tuple(ltm.values()))
        context_history.append(tuple(context))
    return Episode(path, header, tuple(steps), end, tuple(ltm_history), tuple(context_history))
