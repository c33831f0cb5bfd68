"""Loader for LongMemEval's official files (``longmemeval_oracle.json``, ``_s.json``, ``_m.json``).

Each file is a JSON list of questions with ``question_id`` (ending in ``_abs`` for an
abstention question, whose right answer is that the history does not say), ``question_type``
(one of :data:`QUESTION_TYPES`), ``question``, ``answer``, ``question_date``,
``haystack_session_ids``, ``haystack_dates`` (``"2023/05/20 (Sat) 02:21"``),
``haystack_sessions`` (a list of sessions; each a list of turns ``{"role": "user" |
"assistant", "content", "has_answer"?}``, ``has_answer`` marking evidence turns) and
``answer_session_ids``. Nothing is bundled: get the files from
https://github.com/xiaowu0162/LongMemEval (MIT licence; data on Hugging Face,
``xiaowu0162/longmemeval-cleaned``) and pass one with ``data_path=`` or
``$AGEMEM_LONGMEMEVAL``.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
from pathlib import Path
from typing import Any

from agemem_gym.data.paths import resolve_data_file
from agemem_gym.error import DataFormatError

__all__ = [
    "LONGMEMEVAL_ENV_VAR",
    "QUESTION_TYPES",
    "LongMemEvalQuestion",
    "LongMemEvalSession",
    "LongMemEvalTurn",
    "load_longmemeval",
    "resolve_longmemeval_path",
    "session_order",
]

LONGMEMEVAL_ENV_VAR = "AGEMEM_LONGMEMEVAL"
# the six types of the official files; abstention is marked by the id, not the type
QUESTION_TYPES = (
    "single-session-user",
    "single-session-assistant",
    "single-session-preference",
    "multi-session",
    "temporal-reasoning",
    "knowledge-update",
)
_DATE_FORMAT = "%Y/%m/%d (%a) %H:%M"
_WHERE = (
    "LongMemEval is not bundled. Download longmemeval_oracle.json, longmemeval_s.json or longmemeval_m.json "
    "(https://github.com/xiaowu0162/LongMemEval, data at https://huggingface.co/datasets/xiaowu0162/"
    "longmemeval-cleaned) and pass data_path=... to the env (or set the "
    f"{LONGMEMEVAL_ENV_VAR} environment variable to the file)."
)


@dataclasses.dataclass(frozen=True)
class LongMemEvalTurn:
    """One chat turn: ``role`` (``"user"`` or ``"assistant"``), ``content``, and whether it is evidence."""

    role: str
    content: str
    has_answer: bool = False


@dataclasses.dataclass(frozen=True)
class LongMemEvalSession:
    """One history session: its id, its date string and its turns."""

    session_id: str
    date: str
    turns: tuple[LongMemEvalTurn, ...]


@dataclasses.dataclass(frozen=True)
class LongMemEvalQuestion:
    """One question with its own chat history.

    Attributes:
        question_id: The official id (``_abs`` suffix: abstention).
        question_type: One of :data:`QUESTION_TYPES`.
        question: The question.
        answer: The official answer (for abstention questions, an explanation of what is missing).
        question_date: When the question is asked.
        sessions: The history, oldest first when the dates parse (the oracle file is unsorted).
        answer_session_ids: The evidence sessions.
    """

    question_id: str
    question_type: str
    question: str
    answer: str
    question_date: str
    sessions: tuple[LongMemEvalSession, ...]
    answer_session_ids: tuple[str, ...]

    @property
    def abstention(self) -> bool:
        """Whether the right answer is to say the history does not hold the information."""
        return self.question_id.endswith("_abs")


def resolve_longmemeval_path(data_path: str | os.PathLike[str] | None) -> Path:
    """The file to read: ``data_path``, else ``$AGEMEM_LONGMEMEVAL``; a clear error when neither exists."""
    return resolve_data_file(data_path, LONGMEMEVAL_ENV_VAR, "LongMemEval", _WHERE)


def session_order(dates: list[str]) -> list[int]:
    """Indices of the sessions oldest first; file order when any date does not parse.

    Example:
        >>> session_order(["2023/05/21 (Sun) 10:00", "2023/05/20 (Sat) 02:21"])
        [1, 0]
    """
    try:
        stamps = [datetime.datetime.strptime(d.strip(), _DATE_FORMAT) for d in dates]
    except ValueError:
        return list(range(len(dates)))
    return sorted(range(len(dates)), key=lambda i: stamps[i])  # stable: ties keep file order


def _turn(raw: Any, where: str) -> LongMemEvalTurn:
    if (
        not isinstance(raw, dict)
        or raw.get("role") not in ("user", "assistant")
        or not isinstance(raw.get("content"), str)
    ):
        raise DataFormatError(f"{where}: each turn needs role 'user' or 'assistant' and a string content")
    return LongMemEvalTurn(raw["role"], raw["content"].strip(), bool(raw.get("has_answer", False)))


def _strings(raw: dict[str, Any], key: str, where: str) -> list[str]:
    value = raw.get(key)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DataFormatError(f"{where}: {key} must be a list of strings")
    return value


def _sessions(raw: dict[str, Any], where: str) -> tuple[LongMemEvalSession, ...]:
    ids, dates = _strings(raw, "haystack_session_ids", where), _strings(raw, "haystack_dates", where)
    sessions = raw.get("haystack_sessions")
    if not isinstance(sessions, list) or not all(isinstance(s, list) for s in sessions):
        raise DataFormatError(f"{where}: haystack_sessions must be a list of sessions (lists of turns)")
    if not len(ids) == len(dates) == len(sessions):
        raise DataFormatError(
            f"{where}: haystack_session_ids, haystack_dates and haystack_sessions must have the same length, "
            f"got {len(ids)}, {len(dates)} and {len(sessions)}"
        )
    out = []
    for k in session_order(dates):
        turns = tuple(_turn(t, f"{where} haystack_sessions[{k}][{j}]") for j, t in enumerate(sessions[k]))
        out.append(LongMemEvalSession(ids[k], dates[k].strip(), turns))
    return tuple(out)


def _question(raw: Any, where: str) -> LongMemEvalQuestion:
    if not isinstance(raw, dict):
        raise DataFormatError(f"{where}: each item must be a question object")
    for key in ("question_id", "question", "question_date"):
        if not isinstance(raw.get(key), str):
            raise DataFormatError(f"{where}: {key} must be a string")
    qtype = raw.get("question_type")
    if qtype not in QUESTION_TYPES:
        raise DataFormatError(f"{where}: question_type must be one of {list(QUESTION_TYPES)}, got {qtype!r}")
    answer = raw.get("answer")
    if answer is None or isinstance(answer, (dict, list, bool)):
        raise DataFormatError(f"{where}: answer must be a string or a number")  # the official file has ints
    return LongMemEvalQuestion(
        question_id=raw["question_id"].strip(),
        question_type=qtype,
        question=raw["question"].strip(),
        answer=str(answer).strip(),
        question_date=raw["question_date"].strip(),
        sessions=_sessions(raw, where),
        answer_session_ids=tuple(raw.get("answer_session_ids") or ()),
    )


def load_longmemeval(data_path: str | os.PathLike[str] | None = None) -> list[LongMemEvalQuestion]:
    """Read and validate a LongMemEval file.

    Args:
        data_path: ``longmemeval_oracle.json``, ``longmemeval_s.json`` or ``longmemeval_m.json``
            (or a file in their format); ``None`` reads ``$AGEMEM_LONGMEMEVAL``.

    Returns:
        The questions, in file order.
    """
    path = resolve_longmemeval_path(data_path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise DataFormatError(f"cannot read {path} as UTF-8 text: {exc}") from exc
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, over-long integers, deep nesting
        raise DataFormatError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(data, list) or not data:
        raise DataFormatError(f"{path}: expected a non-empty JSON list of questions (longmemeval_*.json's format)")
    out = [_question(q, f"{path.name}[{i}]") for i, q in enumerate(data)]
    seen: set[str] = set()
    for q in out:
        if q.question_id in seen:
            raise DataFormatError(f"{path.name}: question_id {q.question_id!r} appears twice")
        seen.add(q.question_id)
    return out
