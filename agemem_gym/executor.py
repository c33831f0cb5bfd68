r"""Runs validated tool calls against the long-term memory and the context.

Every result is a ``tool`` message in a fixed format (documented below); a call that
cannot run (unknown id, content too long, bad span, full memory...) produces a
``[tool error]`` message saying what was wrong and what is expected, and counts as invalid.
No agent input raises.

Result formats::

    Add_memory       [memory tool result]\nmemory_added: mem_3fa2c1d0
    Update_memory    [memory tool result]\nmemory_updated: mem_3fa2c1d0
    Delete_memory    [memory tool result]\nmemory_deleted: mem_3fa2c1d0
                     [memory tool result]\nmemory_deletion_cancelled: confirmation_required
    Retrieve_memory  [retrieved memories]\n- <content> (Memory ID: mem_3fa2c1d0)\n...
                     [no related memories found]
    Summary_context  [summary of K messages]\n<summary>      (replaces the summarised span)
                     [context tool result]\nsummary_context_applied: K messages -> T tokens
    Filter_context   [context tool result]\nfilter_context_applied: removed N messages
    errors           [tool error] <Tool>: <what was wrong>; <what is expected>
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from typing import Any, Literal

from agemem_gym.config import MemoryConfig
from agemem_gym.error import MemoryFull
from agemem_gym.memory.context_ops import ContextFilter, Summarizer
from agemem_gym.memory.ltm import LongTermMemory, MemoryItem
from agemem_gym.memory.stm import Message, ShortTermMemory
from agemem_gym.tools import ToolCall

__all__ = ["ToolResult", "ToolExecutor", "format_retrieved"]

MemoryOp = Literal["added", "updated", "deleted"]

_SPAN_N = re.compile(r"^\s*(\d{1,6})\s*$")
_SPAN_RANGE = re.compile(r"^\s*(\d{1,6})\s*-\s*(\d{1,6})\s*$")


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
        touches: What the tool may touch, from its declaration: ``"ltm_write"``,
            ``"ltm_read"``, ``"context"``.
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


def format_retrieved(items: list[MemoryItem], header: str = "[retrieved memories]") -> str:
    """Format retrieval results with their ids (how agents learn ids to update or delete)."""
    if not items:
        return "[no related memories found]"
    return header + "\n" + "\n".join(f"- {m.content} (Memory ID: {m.id})" for m in items)


# what each tool may touch (the tool table will own this)
_TOUCHES: dict[str, frozenset[str]] = {
    "Add_memory": frozenset({"ltm_write"}),
    "Update_memory": frozenset({"ltm_write"}),
    "Delete_memory": frozenset({"ltm_write"}),
    "Retrieve_memory": frozenset({"ltm_read"}),
    "Summary_context": frozenset({"context"}),
    "Filter_context": frozenset({"context"}),
}


def _error(name: str, problem: str) -> ToolResult:
    return ToolResult(name, False, f"[tool error] {name}: {problem}")


class ToolExecutor:
    """Executes the six tools.

    Args:
        ltm: The long-term memory.
        stm: The context.
        config: Limits and defaults.
        summarizer: Runs ``Summary_context``.
        context_filter: Runs ``Filter_context``.
    """

    def __init__(
        self,
        ltm: LongTermMemory,
        stm: ShortTermMemory,
        config: MemoryConfig,
        summarizer: Summarizer,
        context_filter: ContextFilter,
    ) -> None:
        self.ltm = ltm
        self.stm = stm
        self.config = config
        self.summarizer = summarizer
        self.context_filter = context_filter
        self._handlers: dict[str, Callable[..., ToolResult]] = {
            "Add_memory": self._add,
            "Update_memory": self._update,
            "Delete_memory": self._delete,
            "Retrieve_memory": self._retrieve,
            "Summary_context": self._summary,
            "Filter_context": self._filter,
        }

    def run(self, call: ToolCall, *, stage: int, step: int, turn: Message) -> ToolResult:
        """Run one call.

        Args:
            call: A call validated by the parser.
            stage: Current stage (stored in memory metadata).
            step: Current env step (stored as the memory's time, instead of a clock).
            turn: The assistant message that issued the call; context tools act only on
                messages before it.

        Returns:
            The result.
        """
        result = self._handlers[call.name](stage=stage, step=step, turn=turn, **call.arguments)
        return dataclasses.replace(result, touches=_TOUCHES[call.name])

    # -------------------------------------------------------------------- checks
    def _check_text(self, name: str, field: str, value: str, limit: int) -> ToolResult | None:
        if not value.strip():
            return _error(name, f"{field} is empty; expected non-empty text")
        if len(value) > limit:
            return _error(
                name,
                f"{field} has {len(value)} characters, more than the limit of {limit}; "
                f"store shorter, self-contained facts",
            )
        return None

    def _check_meta(self, name: str, field: str, value: dict[str, Any]) -> ToolResult | None:
        try:
            size = len(json.dumps(value))
        except (TypeError, ValueError):
            return _error(name, f"{field} must be a JSON object")
        if size > self.config.max_metadata_chars:
            return _error(
                name, f"{field} is {size} characters of JSON, more than the limit of {self.config.max_metadata_chars}"
            )
        if any(not isinstance(k, str) for k in value):
            return _error(name, f"{field} keys must be strings")
        return None

    def _check_id(self, name: str, memory_id: str) -> ToolResult | None:
        if memory_id not in self.ltm:
            shown = memory_id if len(memory_id) <= 40 else memory_id[:40] + "..."
            return _error(
                name,
                f"unknown memory_id {shown!r}; use an id returned by Add_memory or shown "
                f"by Retrieve_memory (like 'mem_3fa2c1d0')",
            )
        return None

    # -------------------------------------------------------------------- LTM tools
    def _add(
        self,
        *,
        stage: int,
        step: int,
        turn: Message,
        content: str,
        metadata: dict[str, Any] | None = None,
        memory_type: str | None = None,
    ) -> ToolResult:
        name = "Add_memory"
        problem = self._check_text(name, "content", content, self.config.max_content_chars)
        problem = problem or (self._check_meta(name, "metadata", metadata) if metadata else None)
        if problem:
            return problem
        if memory_type is not None and (not memory_type.strip() or len(memory_type) > 64):
            return _error(name, "memory_type must be a short non-empty string such as 'knowledge'")
        full = _error(
            name,
            f"long-term memory is full ({self.config.max_entries} entries); "
            f"delete or update memories instead of adding",
        )
        if len(self.ltm) >= self.config.max_entries:
            return full
        meta = dict(metadata or {})
        meta.update({"type": memory_type or meta.get("type", "general"), "stage": stage, "step": step})
        try:
            mid = self.ltm.add(content, meta)
        except MemoryFull:  # another agent filled a shared memory since the check above
            return full
        return ToolResult(
            name, True, f"[memory tool result]\nmemory_added: {mid}", memory_id=mid, memory_op="added", content=content
        )

    def _update(
        self,
        *,
        stage: int,
        step: int,
        turn: Message,
        memory_id: str,
        content: str,
        metadata: dict[str, Any] | None = None,
    ) -> ToolResult:
        name = "Update_memory"
        problem = self._check_id(name, memory_id) or self._check_text(
            name, "content", content, self.config.max_content_chars
        )
        problem = problem or (self._check_meta(name, "metadata", metadata) if metadata else None)
        if problem:
            return problem
        meta = dict(metadata or {})
        meta["updated_step"] = step
        if not self.ltm.update(memory_id, content, meta):  # deleted by another agent meanwhile
            return self._check_id(name, memory_id) or _error(name, f"memory {memory_id} could not be updated")
        return ToolResult(
            name,
            True,
            f"[memory tool result]\nmemory_updated: {memory_id}",
            memory_id=memory_id,
            memory_op="updated",
            content=content,
        )

    def _delete(self, *, stage: int, step: int, turn: Message, memory_id: str, confirmation: bool) -> ToolResult:
        name = "Delete_memory"
        problem = self._check_id(name, memory_id)
        if problem:
            return problem
        if not confirmation:
            return ToolResult(name, True, "[memory tool result]\nmemory_deletion_cancelled: confirmation_required")
        if not self.ltm.delete(memory_id):  # deleted by another agent meanwhile
            return self._check_id(name, memory_id) or _error(name, f"memory {memory_id} could not be deleted")
        return ToolResult(
            name, True, f"[memory tool result]\nmemory_deleted: {memory_id}", memory_id=memory_id, memory_op="deleted"
        )

    # -------------------------------------------------------------------- STM tools
    def _retrieve(
        self,
        *,
        stage: int,
        step: int,
        turn: Message,
        query: str,
        top_k: int | None = None,
        metadata_filter: dict[str, Any] | None = None,
    ) -> ToolResult:
        name = "Retrieve_memory"
        problem = self._check_text(name, "query", query, self.config.max_query_chars)
        problem = problem or (self._check_meta(name, "metadata_filter", metadata_filter) if metadata_filter else None)
        if problem:
            return problem
        k = self.config.default_top_k if top_k is None else top_k
        if not 1 <= k <= self.config.max_top_k:
            return _error(name, f"top_k must be between 1 and {self.config.max_top_k}, got {k}")
        items = self.ltm.search(query, top_k=k, metadata_filter=metadata_filter)
        items = [m for m in items if m.score > 0.0]  # as the paper's code: only positive similarity
        return ToolResult(name, True, format_retrieved(items), retrieved=tuple(items))

    def _eligible(self, turn: Message) -> list[int]:
        """Indices of messages context tools may touch: before the calling turn, not system, not pinned."""
        out = []
        for i, m in enumerate(self.stm.messages):
            if m is turn:
                break
            if m.role != "system" and not m.pinned:
                out.append(i)
        return out

    def _span(self, span: str, turn: Message) -> list[int] | str:
        """Resolve a span to context indices, or return an error text."""
        numbered = [i for i, m in enumerate(self.stm.messages) if m.role != "system"]
        cut = next((k for k, i in enumerate(numbered) if self.stm.messages[i] is turn), len(numbered))
        numbered = numbered[:cut]  # positions 1..cut, the calling turn excluded
        text = span.strip().lower()
        if text == "all":
            chosen = numbered
        elif m := _SPAN_N.match(text):
            n = int(m.group(1))
            if n < 1:
                return "span 'N' needs N >= 1"
            chosen = numbered[-n:]
        elif m := _SPAN_RANGE.match(text):
            a, b = int(m.group(1)), int(m.group(2))
            if not 1 <= a <= b:
                return f"span 'a-b' needs 1 <= a <= b, got {span!r}"
            chosen = numbered[a - 1 : b]
        else:
            return f"span must be 'all', a number N (the last N messages) or a range 'a-b', got {span[:40]!r}"
        eligible = set(self._eligible(turn))
        return [i for i in chosen if i in eligible]

    def _summary(self, *, stage: int, step: int, turn: Message, span: str) -> ToolResult:
        name = "Summary_context"
        chosen = self._span(span, turn)
        if isinstance(chosen, str):
            return _error(name, chosen)
        if not chosen:
            return ToolResult(name, True, "[context tool result]\nsummary_context_applied: nothing to summarise")
        originals = [self.stm.messages[i] for i in chosen]
        text = self.summarizer.summarize(originals, self.config.summary_max_tokens)
        summary = self.stm.make("tool", f"[summary of {len(chosen)} messages]\n{text}", kind="summary", stage=stage)
        before = sum(m.tokens for m in originals)
        self.stm.replace(chosen, summary)
        return ToolResult(
            name,
            True,
            f"[context tool result]\nsummary_context_applied: {len(chosen)} messages ({before} tokens) -> "
            f"{summary.tokens} tokens",
            reduced=summary.tokens < before,
        )

    def _filter(self, *, stage: int, step: int, turn: Message, criteria: str) -> ToolResult:
        name = "Filter_context"
        problem = self._check_text(name, "criteria", criteria, self.config.max_query_chars)
        if problem:
            return problem
        eligible = self._eligible(turn)
        mask = self.context_filter.select([self.stm.messages[i] for i in eligible], criteria)
        drop = [i for i, hit in zip(eligible, mask) if hit]
        if drop:
            self.stm.remove(drop)
        return ToolResult(
            name,
            True,
            f"[context tool result]\nfilter_context_applied: removed {len(drop)} messages",
            reduced=bool(drop),
        )
