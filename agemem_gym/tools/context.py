"""What a tool handler may act on: :class:`ToolContext`."""

from __future__ import annotations

import dataclasses

from agemem_gym.config import MemoryConfig
from agemem_gym.memory.context_ops import ContextFilter, Summarizer
from agemem_gym.memory.ltm import LongTermMemory
from agemem_gym.memory.stm import Message, ShortTermMemory

__all__ = ["ToolContext"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class ToolContext:
    """Everything one call's handler may read or change (built by the executor per call).

    Attributes:
        name: The tool being run (its messages name it).
        ltm: The long-term memory.
        stm: The context.
        config: Memory limits and defaults.
        summarizer: Runs summaries (``Summary_context``).
        context_filter: Selects messages to remove (``Filter_context``).
        stage: Current stage (stored in memory metadata).
        step: Current env step (stored as the memory's time, instead of a clock).
        turn: The assistant message that issued the call; context tools act only on the
            messages before it.
    """

    name: str
    ltm: LongTermMemory
    stm: ShortTermMemory
    config: MemoryConfig
    summarizer: Summarizer
    context_filter: ContextFilter
    stage: int
    step: int
    turn: Message
