"""The system prompt (the paper's instructions in our own words) and the HF ``tools=`` schemas."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from agemem_gym.tools.table import DEFAULT_TOOLS, ToolTable, as_table

__all__ = ["system_prompt", "tool_schemas"]


def tool_schemas(names: Sequence[str] | None = None, tools: ToolTable = DEFAULT_TOOLS) -> list[dict[str, Any]]:
    """Tool schemas in the format HF chat templates take as ``tools=``.

    Args:
        names: Which tools (default: every tool of ``tools``).
        tools: The tool table.

    Returns:
        A fresh list of schema dicts.
    """
    return tools.schemas(names)


_PROMPT = """You are an assistant that manages its own memory while it helps the user.
You have a long-term memory that persists across the whole conversation and a short-term \
context (this conversation) that can be cleared, summarised or filtered. Use the tools \
below to store what will matter later, to keep the context small and on topic, and to \
bring stored knowledge back when you need it.

## Available tools
{tools}

## How to reply
Every reply starts with <think>...</think>, where you reason and decide what to do.
After </think> write exactly one of:
- <tool_call>[...]</tool_call> with a JSON array of one or more calls, each \
{{"name": <tool name>, "arguments": {{...}}}}, for example
  <tool_call>[{{"name": "Retrieve_memory", "arguments": {{"query": "capital of France", "top_k": 3}}}}, \
{{"name": "Add_memory", "arguments": {{"content": "Paris is the capital of France.", \
"memory_type": "knowledge"}}}}]</tool_call>
- <answer>...</answer> with your reply to the user.{action_line}
Never write both in one reply and never write text outside the tags. Tool results come \
back as tool messages; memory ids (like mem_3fa2c1d0) appear there and are what \
Update_memory and Delete_memory need.

## Guidelines
- Think first and be brief.
- Manage memory actively: add what is worth keeping, update or delete what changed, \
retrieve before you answer, summarise or filter the context when it fills with noise.
- Answer a question with <answer> once you know it; answer as briefly as the question allows.
"""

_ACTION_LINE = "\n- <action>...</action> with one action to take in the world (one of the valid actions listed)."


def system_prompt(
    tools: ToolTable | Iterable[str] = DEFAULT_TOOLS,
    *,
    include_schemas: bool = True,
    interactive: bool = False,
    task_note: str = "",
) -> str:
    """The system prompt: the paper's instructions in our own words, with the tool schemas.

    Args:
        tools: The tools to list: a :class:`~agemem_gym.tools.ToolTable`, or names of the
            default tools.
        include_schemas: Include the JSON schemas (turn off when the chat template receives
            them through ``tools=``).
        interactive: Mention ``<action>`` for tasks with a world to act in.
        task_note: Extra task-specific text appended at the end.

    Returns:
        The prompt text.
    """
    table = as_table(tools)
    if include_schemas:
        listed = "\n".join(json.dumps(s["function"], separators=(",", ":")) for s in table.schemas())
    else:
        listed = ", ".join(table.names)
    text = _PROMPT.format(tools=listed, action_line=_ACTION_LINE if interactive else "")
    return text + (f"\n{task_note.strip()}\n" if task_note else "")
