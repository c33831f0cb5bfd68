"""Writing turns in the grammar (for scripted policies) and the text a turn leaves in the context."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from agemem_gym.tools.validation import ToolCall

__all__ = ["format_tool_call", "format_answer", "format_action", "turn_text"]


def turn_text(action: Any) -> str:
    """The text a turn leaves in the context: the string itself, or a structured action as JSON.

    Never raises: an action that JSON cannot write (a cycle, nesting past the interpreter's
    recursion limit, an integer past Python's digit limit) falls back to ``repr``, and when
    even that fails to a short description of its type.

    Args:
        action: Whatever the agent sent.

    Returns:
        The text.
    """
    if isinstance(action, str):
        return action
    try:
        return json.dumps(action, ensure_ascii=False, default=str)
    except Exception:  # noqa: BLE001 - default=str runs the objects' own __str__, which may raise anything
        pass
    try:
        return repr(action)[:10_000]
    except Exception:  # noqa: BLE001 - any object's __repr__ may fail; the agent still gets an answer
        return f"<unprintable {type(action).__name__} action>"


def format_tool_call(calls: Sequence[ToolCall | Mapping[str, Any]], think: str = "") -> str:
    """Write a tool-call turn in the grammar (used by scripted policies).

    Example:
        >>> format_tool_call([{"name": "Filter_context", "arguments": {"criteria": "cake"}}], "clean up")
        '<think>clean up</think><tool_call>[{"name": "Filter_context", "arguments": {"criteria": "cake"}}]</tool_call>'
    """
    payload = [c.to_json() if isinstance(c, ToolCall) else dict(c) for c in calls]
    return f"<think>{think}</think><tool_call>{json.dumps(payload, ensure_ascii=False)}</tool_call>"


def format_answer(answer: str, think: str = "") -> str:
    """Write an answer turn in the grammar."""
    return f"<think>{think}</think><answer>{answer}</answer>"


def format_action(action: str, think: str = "") -> str:
    """Write an action turn in the grammar (interactive tasks)."""
    return f"<think>{think}</think><action>{action}</action>"
