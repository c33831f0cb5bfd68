r"""The handlers of the six memory tools: functions of a :class:`ToolContext` and the arguments.

Every result is a ``tool`` message in a fixed format (below); a call that cannot run
(unknown id, content too long, bad span, full memory...) produces a ``[tool error]`` message
saying what was wrong and what is expected, and counts as invalid. No agent input raises.

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

The tool table (:mod:`agemem_gym.tools.table`) pairs each handler with its name and schema;
a handler names its own tool through ``ctx.name``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from agemem_gym.tools.context import ToolContext
from agemem_gym.tools.results import ToolResult, format_retrieved, tool_error

__all__ = [
    "add_memory",
    "update_memory",
    "delete_memory",
    "retrieve_memory",
    "summary_context",
    "filter_context",
    "memory_full",
]

_SPAN_N = re.compile(r"^\s*(\d{1,6})\s*$")
_SPAN_RANGE = re.compile(r"^\s*(\d{1,6})\s*-\s*(\d{1,6})\s*$")
_WORDS = re.compile(r"\w+")


# ------------------------------------------------------------------------ checks
def memory_full(ctx: ToolContext) -> ToolResult:
    """The error of an add into a full long-term memory (the executor's answer to :class:`MemoryFull`)."""
    return tool_error(
        ctx.name,
        f"long-term memory is full ({ctx.config.max_entries} entries); delete or update memories instead of adding",
    )


def _check_text(ctx: ToolContext, field: str, value: str, limit: int) -> ToolResult | None:
    if not value.strip():
        return tool_error(ctx.name, f"{field} is empty; expected non-empty text")
    if len(value) > limit:
        return tool_error(
            ctx.name,
            f"{field} has {len(value)} characters, more than the limit of {limit}; store shorter, self-contained facts",
        )
    return None


def _check_meta(ctx: ToolContext, field: str, value: dict[str, Any] | None) -> ToolResult | None:
    if not value:
        return None
    try:
        size = len(json.dumps(value))
    except (TypeError, ValueError):
        return tool_error(ctx.name, f"{field} must be a JSON object")
    limit = ctx.config.max_metadata_chars
    if size > limit:
        return tool_error(ctx.name, f"{field} is {size} characters of JSON, more than the limit of {limit}")
    if any(not isinstance(k, str) for k in value):
        return tool_error(ctx.name, f"{field} keys must be strings")
    return None


def _check_id(ctx: ToolContext, memory_id: str) -> ToolResult | None:
    if memory_id in ctx.ltm:
        return None
    # imported here: the table imports this module to declare the tools
    from agemem_gym.tools.table import ADD_MEMORY, RETRIEVE_MEMORY

    shown = memory_id if len(memory_id) <= 40 else memory_id[:40] + "..."
    return tool_error(
        ctx.name,
        f"unknown memory_id {shown!r}; use an id returned by {ADD_MEMORY} or shown "
        f"by {RETRIEVE_MEMORY} (like 'mem_3fa2c1d0')",
    )


# ------------------------------------------------------------------------ LTM tools
def add_memory(
    ctx: ToolContext, *, content: str, metadata: dict[str, Any] | None = None, memory_type: str | None = None
) -> ToolResult:
    """Store ``content`` (with ``metadata`` and a ``memory_type``) as a new memory."""
    problem = _check_text(ctx, "content", content, ctx.config.max_content_chars) or _check_meta(
        ctx, "metadata", metadata
    )
    if problem:
        return problem
    if memory_type is not None and (not memory_type.strip() or len(memory_type) > 64):
        return tool_error(ctx.name, "memory_type must be a short non-empty string such as 'knowledge'")
    if len(ctx.ltm) >= ctx.config.max_entries:
        return memory_full(ctx)
    meta = dict(metadata or {})
    meta.update({"type": memory_type or meta.get("type", "general"), "stage": ctx.stage, "step": ctx.step})
    mid = ctx.ltm.add(content, meta)  # MemoryFull (another agent filled a shared memory): the executor answers
    return ToolResult(
        ctx.name, True, f"[memory tool result]\nmemory_added: {mid}", memory_id=mid, memory_op="added", content=content
    )


def update_memory(
    ctx: ToolContext, *, memory_id: str, content: str, metadata: dict[str, Any] | None = None
) -> ToolResult:
    """Replace the content of memory ``memory_id`` and merge ``metadata`` into its metadata."""
    problem = (
        _check_id(ctx, memory_id)
        or _check_text(ctx, "content", content, ctx.config.max_content_chars)
        or _check_meta(ctx, "metadata", metadata)
    )
    if problem:
        return problem
    before = ctx.ltm.get(memory_id)
    meta = dict(metadata or {})
    meta["updated_step"] = ctx.step
    if not ctx.ltm.update(memory_id, content, meta):  # deleted by another agent meanwhile
        return _check_id(ctx, memory_id) or tool_error(ctx.name, f"memory {memory_id} could not be updated")
    return ToolResult(
        ctx.name,
        True,
        f"[memory tool result]\nmemory_updated: {memory_id}",
        memory_id=memory_id,
        memory_op="updated",
        content=content,
        changed=before is None or _words(content) != _words(before.content),
        previous=None if before is None else before.content,
    )


def _words(text: str) -> list[str]:
    """The words of ``text`` in order, lower-cased: what an update must change to change a memory.

    Case, punctuation, whitespace and metadata are left out: appending " ." or tagging a
    memory keeps nothing more current, so it must not earn the maintenance reward.
    """
    return _WORDS.findall(text.lower())


def delete_memory(ctx: ToolContext, *, memory_id: str, confirmation: bool) -> ToolResult:
    """Delete memory ``memory_id`` when ``confirmation`` is true (otherwise a cancelled no-op)."""
    problem = _check_id(ctx, memory_id)
    if problem:
        return problem
    if not confirmation:
        return ToolResult(ctx.name, True, "[memory tool result]\nmemory_deletion_cancelled: confirmation_required")
    before = ctx.ltm.get(memory_id)
    if not ctx.ltm.delete(memory_id):  # deleted by another agent meanwhile
        return _check_id(ctx, memory_id) or tool_error(ctx.name, f"memory {memory_id} could not be deleted")
    return ToolResult(
        ctx.name,
        True,
        f"[memory tool result]\nmemory_deleted: {memory_id}",
        memory_id=memory_id,
        memory_op="deleted",
        previous=None if before is None else before.content,
    )


# ------------------------------------------------------------------------ STM tools
def retrieve_memory(
    ctx: ToolContext, *, query: str, top_k: int | None = None, metadata_filter: dict[str, Any] | None = None
) -> ToolResult:
    """Search the long-term memory for ``query`` and show the ``top_k`` best matches with their ids."""
    problem = _check_text(ctx, "query", query, ctx.config.max_query_chars) or _check_meta(
        ctx, "metadata_filter", metadata_filter
    )
    if problem:
        return problem
    k = ctx.config.default_top_k if top_k is None else top_k
    if not 1 <= k <= ctx.config.max_top_k:
        return tool_error(ctx.name, f"top_k must be between 1 and {ctx.config.max_top_k}, got {k}")
    items = ctx.ltm.search(query, top_k=k, metadata_filter=metadata_filter)
    items = [m for m in items if m.score > 0.0]  # as the paper's code: only positive similarity
    return ToolResult(ctx.name, True, format_retrieved(items), retrieved=tuple(items))


def _eligible(ctx: ToolContext) -> list[int]:
    """Indices of messages context tools may touch: before the calling turn, not system, not pinned."""
    out = []
    for i, m in enumerate(ctx.stm.messages):
        if m is ctx.turn:
            break
        if m.role != "system" and not m.pinned:
            out.append(i)
    return out


def _span(ctx: ToolContext, span: str) -> list[int] | str:
    """Resolve a span to context indices, or return an error text."""
    messages = ctx.stm.messages
    numbered = [i for i, m in enumerate(messages) if m.role != "system"]
    cut = next((k for k, i in enumerate(numbered) if messages[i] is ctx.turn), len(numbered))
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
    eligible = set(_eligible(ctx))
    return [i for i in chosen if i in eligible]


def summary_context(ctx: ToolContext, *, span: str) -> ToolResult:
    """Replace the messages of ``span`` (before the calling turn) by one summary message."""
    chosen = _span(ctx, span)
    if isinstance(chosen, str):
        return tool_error(ctx.name, chosen)
    if not chosen:
        return ToolResult(ctx.name, True, "[context tool result]\nsummary_context_applied: nothing to summarise")
    originals = [ctx.stm.messages[i] for i in chosen]
    text = ctx.summarizer.summarize(originals, ctx.config.summary_max_tokens)
    summary = ctx.stm.make("tool", f"[summary of {len(chosen)} messages]\n{text}", kind="summary", stage=ctx.stage)
    before = sum(m.tokens for m in originals)
    ctx.stm.replace(chosen, summary)
    return ToolResult(
        ctx.name,
        True,
        f"[context tool result]\nsummary_context_applied: {len(chosen)} messages ({before} tokens) -> "
        f"{summary.tokens} tokens",
        reduced=summary.tokens < before,
    )


def filter_context(ctx: ToolContext, *, criteria: str) -> ToolResult:
    """Remove the messages (before the calling turn) that match ``criteria``."""
    problem = _check_text(ctx, "criteria", criteria, ctx.config.max_query_chars)
    if problem:
        return problem
    eligible = _eligible(ctx)
    mask = ctx.context_filter.select([ctx.stm.messages[i] for i in eligible], criteria)
    drop = [i for i, hit in zip(eligible, mask) if hit]
    if drop:
        ctx.stm.remove(drop)
    return ToolResult(
        ctx.name,
        True,
        f"[context tool result]\nfilter_context_applied: removed {len(drop)} messages",
        reduced=bool(drop),
    )
