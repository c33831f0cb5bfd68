"""The system prompt (the paper's instructions in our own words) and the HF ``tools=`` schemas.

The tools are listed in one of two forms, both derived from the tool table: ``full`` (each
tool's JSON schema on one line, as the paper's prompt does) or ``compact`` (one signature
line per tool, for small models whose context and attention the schemas crowd).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from agemem_gym.error import unknown_name
from agemem_gym.tools.table import DEFAULT_TOOLS, Tool, ToolTable, as_table

__all__ = [
    "TOOL_PROMPTS",
    "ToolPrompt",
    "system_prompt",
    "tool_schemas",
    "compact_tool_line",
    "compact_tool_list",
    "lists_tools",
]

ToolPrompt = Literal["full", "compact"]
TOOL_PROMPTS: tuple[ToolPrompt, ...] = ("full", "compact")
"""How the system prompt lists the tools: JSON schemas, or one signature line per tool."""


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


_COMPACT_HEAD = (
    'One tool per line, as Name(argument: type, optional?: type): what it does. A call is {"name": "Name", '
    '"arguments": {"argument": value}}; leave out the optional arguments you do not need.'
)
_SCHEMA_PROBE = '{"name":"'
"""How a full list's lines start (``json.dumps`` without spaces); the reply example writes ``"name": "``."""


def compact_tool_line(tool: Tool) -> str:
    """One tool as ``- Name(required: type, optional?: type): description``.

    An argument whose value has a fixed format (a ``Tool.patterns`` entry, such as a span)
    keeps its description, since its type alone does not say what to write.

    Example:
        >>> compact_tool_line(DEFAULT_TOOLS["Filter_context"])[:50]
        '- Filter_context(criteria: string): Remove message'
    """
    args = ", ".join(
        f"{name}{'' if name in tool.required else '?'}: {spec['type']}" for name, spec in tool.parameters.items()
    )
    formats = "".join(
        f" {name}: {tool.parameters[name]['description']}"
        for name in tool.patterns
        if tool.parameters[name].get("description")
    )
    return f"- {tool.name}({args}): {tool.description}{formats}"


def compact_tool_list(tools: ToolTable | Iterable[str] = DEFAULT_TOOLS) -> str:
    """The compact tool list: how to read it and write a call, then one line per tool of the table.

    Args:
        tools: A :class:`~agemem_gym.tools.ToolTable`, or names of the default tools.

    Returns:
        The list (no trailing newline).
    """
    return "\n".join([_COMPACT_HEAD, *(compact_tool_line(t) for t in as_table(tools))])


def lists_tools(system_text: str) -> bool:
    """Whether a system prompt already lists the tools, as JSON schemas or in the compact form.

    A chat template then needs no ``tools=`` schemas on top (they would repeat the list).
    A prompt built with ``include_schemas=False`` names the tools only, and gets ``False``.

    Args:
        system_text: The system message's content.

    Returns:
        ``True`` when :func:`system_prompt` listed the tools in it.
    """
    return _SCHEMA_PROBE in system_text or _COMPACT_HEAD in system_text


def _tool_list(table: ToolTable, include_schemas: bool, tool_prompt: str) -> str:
    """The ``## Available tools`` section's body."""
    if tool_prompt not in TOOL_PROMPTS:
        raise unknown_name("tool prompt", tool_prompt, TOOL_PROMPTS)
    if not include_schemas:
        return ", ".join(table.names)
    if tool_prompt == "compact":
        return compact_tool_list(table)
    return "\n".join(json.dumps(s["function"], separators=(",", ":")) for s in table.schemas())


def system_prompt(
    tools: ToolTable | Iterable[str] = DEFAULT_TOOLS,
    *,
    include_schemas: bool = True,
    interactive: bool = False,
    task_note: str = "",
    tool_prompt: ToolPrompt = "full",
) -> str:
    """The system prompt: the paper's instructions in our own words, with the tool list.

    Args:
        tools: The tools to list: a :class:`~agemem_gym.tools.ToolTable`, or names of the
            default tools.
        include_schemas: List the tools with their arguments (turn off when the chat
            template receives the schemas through ``tools=``; only the names are listed then).
        interactive: Mention ``<action>`` for tasks with a world to act in.
        task_note: Extra task-specific text appended at the end.
        tool_prompt: ``"full"``: each tool's JSON schema; ``"compact"``: one
            ``Name(argument: type, optional?: type): description`` line per tool, about
            half the tokens (see :func:`compact_tool_list`).

    Returns:
        The prompt text.

    Raises:
        UnknownName: ``tool_prompt`` is not one of :data:`TOOL_PROMPTS`.
    """
    listed = _tool_list(as_table(tools), include_schemas, tool_prompt)
    text = _PROMPT.format(tools=listed, action_line=_ACTION_LINE if interactive else "")
    return text + (f"\n{task_note.strip()}\n" if task_note else "")
