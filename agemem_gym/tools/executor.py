"""Runs validated tool calls through the tool table's handlers."""

from __future__ import annotations

import dataclasses

from agemem_gym.config import MemoryConfig
from agemem_gym.error import InvalidConfig, MemoryFull
from agemem_gym.memory.context_ops import ContextFilter, Summarizer
from agemem_gym.memory.ltm import LongTermMemory
from agemem_gym.memory.stm import Message, ShortTermMemory
from agemem_gym.tools.context import ToolContext
from agemem_gym.tools.handlers import memory_full
from agemem_gym.tools.results import ToolResult
from agemem_gym.tools.table import DEFAULT_TOOLS, ToolTable
from agemem_gym.tools.validation import ToolCall

__all__ = ["ToolExecutor"]


class ToolExecutor:
    """Executes the tools of a table against one long-term memory and one context.

    Args:
        ltm: The long-term memory.
        stm: The context.
        config: Limits and defaults.
        summarizer: Runs ``Summary_context``.
        context_filter: Runs ``Filter_context``.
        tools: The tool table (default: the six tools).
    """

    def __init__(
        self,
        ltm: LongTermMemory,
        stm: ShortTermMemory,
        config: MemoryConfig,
        summarizer: Summarizer,
        context_filter: ContextFilter,
        tools: ToolTable = DEFAULT_TOOLS,
    ) -> None:
        if not isinstance(tools, ToolTable):
            raise InvalidConfig(f"tools must be a ToolTable, got {type(tools).__name__}")
        self.ltm = ltm
        self.stm = stm
        self.config = config
        self.summarizer = summarizer
        self.context_filter = context_filter
        self.tools = tools

    def run(self, call: ToolCall, *, stage: int, step: int, turn: Message) -> ToolResult:
        """Run one call.

        Args:
            call: A call validated by the parser (against the same table).
            stage: Current stage (stored in memory metadata).
            step: Current env step (stored as the memory's time, instead of a clock).
            turn: The assistant message that issued the call; context tools act only on
                messages before it.

        Returns:
            The result, its ``touches`` taken from the tool's declaration.
        """
        tool = self.tools[call.name]
        ctx = ToolContext(
            name=tool.name,
            ltm=self.ltm,
            stm=self.stm,
            config=self.config,
            summarizer=self.summarizer,
            context_filter=self.context_filter,
            stage=stage,
            step=step,
            turn=turn,
        )
        try:
            result = tool.handler(ctx, **call.arguments)
        except MemoryFull:  # another agent filled a shared memory since the handler's check
            result = memory_full(ctx)
        return dataclasses.replace(result, touches=tool.touches)
