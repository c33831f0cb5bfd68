"""The memory tools: one table declares them; the prompt, parser and executor derive from it.

* :mod:`~agemem_gym.tools.table`: :class:`Tool`, :class:`ToolTable`, :data:`DEFAULT_TOOLS`
  (the paper's six tools) and the name constants;
* :mod:`~agemem_gym.tools.handlers`: what each of the six does (functions of a
  :class:`ToolContext`); :mod:`~agemem_gym.tools.executor`: :class:`ToolExecutor`;
* :mod:`~agemem_gym.tools.parser` / :mod:`~agemem_gym.tools.validation`: one assistant turn
  into validated :class:`ToolCall` s;
* :mod:`~agemem_gym.tools.prompt`: the system prompt (tools listed ``full`` or ``compact``);
  :mod:`~agemem_gym.tools.formatting`: writing turns in the grammar.
"""

from agemem_gym.tools.context import ToolContext
from agemem_gym.tools.executor import ToolExecutor
from agemem_gym.tools.formatting import format_action, format_answer, format_tool_call, turn_text
from agemem_gym.tools.parser import READ_FACTOR, ParsedTurn, parse_turn
from agemem_gym.tools.prompt import TOOL_PROMPTS, compact_tool_list, lists_tools, system_prompt, tool_schemas
from agemem_gym.tools.results import ToolResult, format_retrieved
from agemem_gym.tools.table import (
    ADD_MEMORY,
    ARGUMENT_TYPES,
    DEFAULT_TOOLS,
    DELETE_MEMORY,
    FILTER_CONTEXT,
    LTM_TOOLS,
    RETRIEVE_MEMORY,
    STM_TOOLS,
    SUMMARY_CONTEXT,
    TOOL_NAMES,
    TOOL_SCHEMAS,
    TOUCH_KINDS,
    UPDATE_MEMORY,
    Tool,
    ToolTable,
    histogram_names,
)
from agemem_gym.tools.validation import MAX_ARGUMENT_DEPTH, ToolCall

__all__ = [
    "ADD_MEMORY",
    "UPDATE_MEMORY",
    "DELETE_MEMORY",
    "RETRIEVE_MEMORY",
    "SUMMARY_CONTEXT",
    "FILTER_CONTEXT",
    "TOOL_NAMES",
    "LTM_TOOLS",
    "STM_TOOLS",
    "TOOL_SCHEMAS",
    "DEFAULT_TOOLS",
    "TOUCH_KINDS",
    "ARGUMENT_TYPES",
    "Tool",
    "ToolTable",
    "ToolContext",
    "ToolResult",
    "ToolExecutor",
    "format_retrieved",
    "histogram_names",
    "tool_schemas",
    "system_prompt",
    "compact_tool_list",
    "lists_tools",
    "TOOL_PROMPTS",
    "ToolCall",
    "ParsedTurn",
    "parse_turn",
    "format_tool_call",
    "format_answer",
    "format_action",
    "turn_text",
    "MAX_ARGUMENT_DEPTH",
    "READ_FACTOR",
]
