"""What one tool call did: :class:`ToolResult`, and the retrieval message format."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import Literal

from agemem_gym.memory.ltm import MemoryItem
from agemem_gym.memory.ltm_file import ID_PATTERN

__all__ = [
    "MemoryOp",
    "TOOL_ERROR_PREFIX",
    "ToolResult",
    "added_memory_ids",
    "format_retrieved",
    "retrieved_items",
    "tool_error",
]

TOOL_ERROR_PREFIX = "[tool error]"
"""How every failed call's message starts."""

MemoryOp = Literal["added", "updated", "deleted"]


@dataclasses.dataclass(frozen=True)
class ToolResult:
    """The outcome of one call.

    Attributes:
        name: Tool name.
        ok: False when the call was invalid (counted in ``invalid_calls``).
        message: The ``tool`` message text appended to the context.
        retrieved: Items a ``Retrieve_memory`` call returned.
        memory_id: The id added, updated or deleted.
        reduced: Whether the context shrank (a Summary or Filter that did something).
        memory_op: What the call did to the long-term memory: ``"added"``, ``"updated"``,
            ``"deleted"`` or ``None`` (read-only, context-only, cancelled or failed).
        content: The text a successful add or update stored.
        touches: What the tool may touch, from its declaration in the tool table:
            ``"ltm_write"``, ``"ltm_read"``, ``"context"``.
        changed: For a successful update: whether it changed the memory's words (case,
            punctuation, whitespace and metadata do not count). An update that rewrites a
            memory as it was, re-punctuates it or only tags it is still
            ``memory_op="updated"`` (the agent sees the same result), but ``changed=False``
            keeps it out of the maintenance reward.
        previous: For a successful update or delete: the memory's content before the call
            (the maintenance reward checks whether the call removed a stale statement).
    """

    name: str
    ok: bool
    message: str
    retrieved: tuple[MemoryItem, ...] = ()
    memory_id: str | None = None
    reduced: bool = False
    memory_op: MemoryOp | None = None
    content: str | None = None
    touches: frozenset[str] = frozenset()
    changed: bool = True
    previous: str | None = None


def tool_error(name: str, problem: str) -> ToolResult:
    """A failed call: ``[tool error] <name>: <problem>``, counted as invalid.

    Args:
        name: The tool.
        problem: What was wrong and what is expected.

    Returns:
        The result.
    """
    return ToolResult(name, False, f"{TOOL_ERROR_PREFIX} {name}: {problem}")


def format_retrieved(items: Sequence[MemoryItem], header: str = "[retrieved memories]") -> str:
    """Format retrieval results with their ids (how agents learn ids to update or delete)."""
    if not items:
        return "[no related memories found]"
    return header + "\n" + "\n".join(f"- {m.content} (Memory ID: {m.id})" for m in items)


_ADDED = re.compile(rf"memory_added: ({ID_PATTERN})")
# one retrieved item as format_retrieved writes it: "- <content, possibly several lines> (Memory ID: mem_...)"
_ITEM = re.compile(rf"^- (.*?) \(Memory ID: ({ID_PATTERN})\)$", re.S | re.M)


def added_memory_ids(text: str) -> list[str]:
    """The ids a ``tool`` message reports ``Add_memory`` created, in call order (what policies read back)."""
    return _ADDED.findall(text)


def retrieved_items(text: str) -> list[tuple[str, str]]:
    """``(id, content)`` of each memory a :func:`format_retrieved` message shows ([] for any other message)."""
    if not text.startswith("[retrieved memories]") or "\n" not in text:
        return []
    return [(m.group(2), m.group(1)) for m in _ITEM.finditer(text.split("\n", 1)[1])]
