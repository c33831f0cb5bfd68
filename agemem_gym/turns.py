"""One agent's turn loop: the single engine behind ``MemoryEnv`` and the PettingZoo team env.

A :class:`TurnEngine` owns what one agent's context needs: its
:class:`~agemem_gym.memory.ShortTermMemory`, its
:class:`~agemem_gym.tools.ToolExecutor` (over a long-term memory that may be shared), the
token counter and the overflow-notice state. It does the work every agent's turn needs, in
one place:

* :meth:`TurnEngine.take_turn`: cut the turn to ``max_response_tokens`` -> parse it -> put it
  in the context -> run its tool calls (each result a ``tool`` message) -> report the format
  errors (one ``tool`` message) -> a :class:`TurnOutcome`;
* :meth:`TurnEngine.deliver`: an incoming user message, with the automatic retrieval of
  related memories;
* :meth:`TurnEngine.observe`: the overflow notice and the packed context the agent sees;
* :meth:`TurnEngine.environment_view`: what the *environment* put in the context (the
  answer-time context the preservation reward checks). Text the agent wrote reaches the
  context again through summaries and retrieved memories; the engine keeps, for each summary
  and each memory, the words of it that the environment had shown the agent
  (:func:`shared_words`), so the agent's own words never count as the environment's however
  they travel (turn → memory → retrieval → summary).

What a turn *means* (moving to the next message, ending the episode, rewards, team roles)
stays with the env. :func:`turn_info` turns an outcome into the small JSON-able
``info["turn"]`` entry every step returns.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from typing import Any

from agemem_gym.config import EnvConfig
from agemem_gym.memory.ltm import MemoryItem
from agemem_gym.memory.stm import Message, PackedContext, ShortTermMemory, TokenCounter
from agemem_gym.tools import (
    FILTER_CONTEXT,
    SUMMARY_CONTEXT,
    ParsedTurn,
    ToolCall,
    ToolExecutor,
    ToolResult,
    format_retrieved,
    parse_turn,
    turn_text,
)
from agemem_gym.tools.results import TOOL_ERROR_PREFIX

__all__ = ["TurnEngine", "TurnOutcome", "cut_turn", "overflow_notice", "turn_info"]

Observation = tuple[dict[str, str], ...]
OnResult = Callable[[ToolCall, ToolResult], None]
"""Called after each call of a turn, before the next one runs (recording hooks)."""
Refuse = Callable[[ToolCall], str | None]
"""Returns the error text for a call this agent may not make, or ``None`` to run it."""

AUTO_RETRIEVAL_HEADER = "[retrieved memories] (related memories already stored)"

# messages with no environment content: the agent's own turns, the system prompt, the live
# query (pinned, so it would always "preserve" itself) and format errors (they quote the turn)
_NOT_ENVIRONMENT = frozenset({"turn", "system", "query", "error"})
_WORD = re.compile(r"[\w'’.,-]+")


def shared_words(text: str, source: str) -> str:
    """The words of ``text`` that also occur in ``source`` (case-insensitive), in ``text``'s order.

    A summary's or a memory's environment content: what it kept of the environment messages
    it was made from, so question words copied from the agent's own turns do not count as
    preserved.

    Example:
        >>> shared_words("assistant: Who is Gutzon Borglum? user: Borglum carved it.", "Borglum carved Rushmore")
        'Borglum Borglum carved'
    """
    vocab = {w.strip(".,").lower() for w in _WORD.findall(source)}
    words = (w.strip(".,") for w in _WORD.findall(text))
    return " ".join(w for w in words if w and w.lower() in vocab)


def cut_turn(action: Any, limit: int, counter: TokenCounter) -> tuple[str, bool]:
    """The text a turn leaves in the context, cut to ``limit`` tokens; and whether it was cut."""
    text = turn_text(action)
    # cheap character pre-cut so a megabyte turn is never tokenized whole
    rough = text[: limit * 16]
    if len(rough) < len(text) or counter.count(rough) > limit:
        return counter.truncate(rough, limit), True
    return text, False


def overflow_notice(tokens: int, budget: int) -> str:
    """The ``tool`` message an agent gets when its context first grows past the token budget."""
    return (
        f"[context notice] the context holds {tokens} tokens, more than max_context_tokens={budget}: you now "
        "see only the pinned, newest and highest-priority messages, and answering while over the budget pays "
        f"the overflow penalty. Shrink it with {SUMMARY_CONTEXT} or {FILTER_CONTEXT}."
    )


def cut_notice(limit: int) -> str:
    """The format error a turn longer than ``max_response_tokens`` gets."""
    return f"[format error] the turn exceeded max_response_tokens={limit} and was cut; keep replies shorter."


def message_kind(result: ToolResult) -> str:
    """The context ``kind`` of a call's result: ``"retrieval"`` for memories read, else ``"tool"``.

    A failed read is an error report, not retrieved memories, so it is a plain ``"tool"``
    message (viewers mark gold facts in ``"retrieval"`` messages).
    """
    return "retrieval" if result.ok and "ltm_read" in result.touches else "tool"


@dataclasses.dataclass(frozen=True)
class TurnOutcome:
    """What one turn did.

    Attributes:
        parsed: The parsed turn.
        text: The turn as it entered the context (cut when too long).
        cut: Whether the turn was cut to ``max_response_tokens``.
        message: The turn's ``assistant`` message in the context.
        results: The results of its tool calls, in call order.
        result_messages: The ``tool`` messages of those results, in the same order.
        errors: Its format errors (the cut notice first), each one an invalid call.
        seen_tokens: Context tokens when the agent produced the turn (T_used for the reward).
        seen_contents: What the environment had put in the context then
            (:meth:`TurnEngine.environment_view`: user and tool messages, retrieved memories,
            summaries; never the agent's own turns, the system prompt or the query), for
            the preservation reward.
    """

    parsed: ParsedTurn
    text: str
    cut: bool
    message: Message
    results: tuple[ToolResult, ...]
    result_messages: tuple[Message, ...]
    errors: tuple[str, ...]
    seen_tokens: int
    seen_contents: tuple[str, ...]

    @property
    def invalid(self) -> int:
        """Invalid calls of the turn: failed calls plus format errors."""
        return sum(not r.ok for r in self.results) + len(self.errors)


class TurnEngine:
    """The turn loop of one agent's context.

    Args:
        stm: The agent's context.
        executor: Runs the tools against ``stm`` and a long-term memory.
        counter: Counts tokens (cuts long turns).
        config: Limits (``max_response_tokens``, ``max_calls_per_turn``, ``overflow_notice``);
            the env may replace it between episodes.
        interactive: Whether ``<action>`` is part of the grammar.
        refuse: Optional ``call -> error text | None`` for calls this agent may not make
            (e.g. a saboteur's restricted tools); a refused call fails without running.
    """

    def __init__(
        self,
        stm: ShortTermMemory,
        executor: ToolExecutor,
        counter: TokenCounter,
        config: EnvConfig,
        *,
        interactive: bool = False,
        refuse: Refuse | None = None,
    ) -> None:
        self.stm = stm
        self.executor = executor
        self.counter = counter
        self.config = config
        self.interactive = interactive
        self.refuse = refuse
        self.overflow_noticed = False
        # id(summary or retrieval message) -> (the message, kept alive so the id stays unique;
        # its environment content)
        self.message_views: dict[int, tuple[Message, str]] = {}
        # memory id -> the words of its content the environment had shown this agent
        self.memory_views: dict[str, str] = {}

    def reset(self) -> None:
        """Forget the overflow-notice state and the provenance of summaries and memories (a new episode)."""
        self.overflow_noticed = False
        self.message_views.clear()
        self.memory_views.clear()

    # ------------------------------------------------------------------ turns
    def take_turn(self, action: Any, *, stage: int, step: int, on_result: OnResult | None = None) -> TurnOutcome:
        """Parse and run one turn in the context.

        Args:
            action: The turn text, or a structured action.
            stage: The stage the turn belongs to (message and memory metadata).
            step: The env step (the memory's time).
            on_result: Called after each call, before the next one runs.

        Returns:
            The :class:`TurnOutcome`.
        """
        seen_tokens = self.stm.tokens
        seen = self.environment_view()
        text, cut = cut_turn(action, self.config.max_response_tokens, self.counter)
        parsed = parse_turn(
            text if isinstance(action, str) else action,
            allow_action=self.interactive,
            max_calls=self.config.max_calls_per_turn,
            tools=self.executor.tools,  # the table the executor runs: one source for parsing and running
        )
        message = self.stm.append("assistant", text, kind="turn", stage=stage)
        results, shown = self._run_calls(parsed, message, stage, step, on_result)
        errors = self._report_errors(parsed, cut, stage)
        return TurnOutcome(parsed, text, cut, message, results, shown, errors, seen_tokens, seen)

    def _run_calls(
        self, parsed: ParsedTurn, turn: Message, stage: int, step: int, on_result: OnResult | None
    ) -> tuple[tuple[ToolResult, ...], tuple[Message, ...]]:
        results: list[ToolResult] = []
        shown: list[Message] = []
        for call in parsed.calls:
            refusal = self.refuse(call) if self.refuse is not None else None
            if refusal is not None:
                result = ToolResult(call.name, False, refusal)
            else:
                before = self.stm.messages
                result = self.executor.run(call, stage=stage, step=step, turn=turn)
                if result.ok and "context" in result.touches:
                    self._note_summaries(before)
                self._note_memory(result)
                if on_result is not None:
                    on_result(call, result)
            results.append(result)
            message = self.stm.append("tool", result.message, kind=message_kind(result), stage=stage)
            if message.kind == "retrieval":
                self._note_retrieval(message, result.retrieved)
            shown.append(message)
        return tuple(results), tuple(shown)

    def _note_memory(self, result: ToolResult) -> None:
        """Record which words of a memory the agent just wrote it had seen from the environment."""
        mid = result.memory_id
        if not result.ok or mid is None:
            return
        if result.memory_op == "deleted":
            self.memory_views.pop(mid, None)
        elif result.memory_op in ("added", "updated") and result.content is not None:
            # an update may keep words of the old content, whose sources may have left the context
            source = "\n".join((*self.environment_view(), self.memory_views.get(mid, "")))
            self.memory_views[mid] = shared_words(result.content, source)

    def _note_retrieval(self, message: Message, items: Sequence[MemoryItem]) -> None:
        """A retrieval message's environment content: the environment's words of each memory shown."""
        # a memory this engine did not write (a teammate's, a store loaded from a file) is not this agent's text
        text = "\n".join(self.memory_views.get(item.id, item.content) for item in items)
        self.message_views[id(message)] = (message, text)

    def _note_summaries(self, before: Sequence[Message]) -> None:
        """Give each summary a context tool just made its environment content (see :func:`shared_words`)."""
        after = self.stm.messages
        kept = {id(m) for m in after}
        old = {id(m) for m in before}
        replaced = [m for m in before if id(m) not in kept]
        for m in after:
            if m.kind == "summary" and id(m) not in old:
                source = "\n".join(self._environment_text(r) for r in replaced)
                self.message_views[id(m)] = (m, shared_words(m.content, source))

    def _environment_text(self, message: Message) -> str:
        """The part of ``message`` the environment wrote ("" for the agent's own text)."""
        if message.kind in _NOT_ENVIRONMENT or message.role in ("assistant", "system"):
            return ""
        if message.kind in ("summary", "retrieval") and id(message) in self.message_views:
            return self.message_views[id(message)][1]
        if message.role == "tool" and message.content.startswith(TOOL_ERROR_PREFIX):
            return ""  # a failed call's error quotes the agent's arguments back
        return message.content

    def environment_view(self) -> tuple[str, ...]:
        """What the environment put in the context: user and tool messages, retrieved memories, summaries.

        The agent's own turns, the system prompt, the live query and the error reports that
        quote the agent are left out; a summary counts for the words it kept of the
        environment messages it replaced, a retrieved memory for the words its writer had seen
        from the environment. This is the answer-time context R_preservation checks: repeating
        the question in a turn, a summary or a memory preserves nothing.
        """
        return tuple(text for m in self.stm.messages if (text := self._environment_text(m)))

    def delivered_tokens(self) -> int:
        """Tokens of what the environment delivered unasked: the system prompt and the user messages.

        The context pressure R_preventive weighs a reduction by: the agent cannot raise it
        with its own turns or retrievals.
        """
        return sum(m.tokens for m in self.stm.messages if m.role in ("system", "user"))

    def _report_errors(self, parsed: ParsedTurn, cut: bool, stage: int) -> tuple[str, ...]:
        errors = ((cut_notice(self.config.max_response_tokens),) if cut else ()) + parsed.errors
        if errors:
            self.stm.append("tool", "\n".join(errors), kind="error", stage=stage)
        return errors

    def reject(self, message: str, *, stage: int) -> None:
        """Answer a bad agent input found after the turn ran (an env hook's check)."""
        self.stm.append("tool", message, kind="error", stage=stage)

    # ------------------------------------------------------------------ incoming messages
    def deliver(self, content: str, *, kind: str, stage: int, auto_retrieve_k: int = 0) -> None:
        """Append an incoming user message, with up to ``auto_retrieve_k`` related memories.

        The related memories (positive similarity only) follow as one ``retrieval`` message,
        when the long-term memory holds any.
        """
        self.stm.append("user", content, kind=kind, stage=stage)
        ltm = self.executor.ltm
        if auto_retrieve_k and len(ltm):
            items = [m for m in ltm.search(content, top_k=auto_retrieve_k) if m.score > 0.0]
            if items:
                text = format_retrieved(items, AUTO_RETRIEVAL_HEADER)
                self._note_retrieval(self.stm.append("tool", text, kind="retrieval", stage=stage), items)

    # ------------------------------------------------------------------ what the agent sees
    def observe(self, budget: int, *, stage: int) -> tuple[Observation, PackedContext]:
        """The packed context for ``budget`` tokens, after a one-time overflow notice.

        The notice comes when the context first grows past the budget (``config.overflow_notice``)
        and is re-armed once the context fits again.

        Returns:
            The observation (chat messages) and the packed context.
        """
        over = self.stm.tokens > budget
        if over and self.config.overflow_notice and not self.overflow_noticed:
            self.stm.append("tool", overflow_notice(self.stm.tokens, budget), kind="notice", stage=stage)
        self.overflow_noticed = over
        packed = self.stm.pack(budget)
        return packed.as_chat(), packed

    def transcript_lines(self) -> list[str]:
        """The context as ``[role] content`` lines (``*`` marks pinned; the system prompt shortened)."""
        lines = []
        for m in self.stm.messages:
            body = m.content if m.kind != "system" else m.content.splitlines()[0] + " [...]"
            lines.append(f"[{m.role}{'*' if m.pinned else ''}] {body}")
        return lines


# ---------------------------------------------------------------------- info["turn"]
def call_info(call: ToolCall, result: ToolResult) -> dict[str, Any]:
    """One call of ``info["turn"]["calls"]``: what ran, whether it worked, the memory ids involved."""
    if result.memory_id is not None:
        ids = [result.memory_id]
    else:
        ids = [item.id for item in result.retrieved]
    return {
        "name": call.name,
        "arguments": dict(call.arguments),
        "ok": result.ok,
        "memory_op": result.memory_op,
        "memory_ids": ids,
        "message": result.message,
    }


def turn_info(outcome: TurnOutcome, rejected: Sequence[str] = ()) -> dict[str, Any]:
    """The ``info["turn"]`` entry of a step: the turn as the env understood and ran it.

    Args:
        outcome: The turn.
        rejected: Errors the env's hooks found after the turn ran (e.g. an ``<action>``
            before Stage 3); they count as invalid calls too.

    Returns:
        ``{"kind", "calls", "errors", "cut"}`` plus ``"answer"`` / ``"action"`` when the
        turn had one (see :class:`~agemem_gym.core.MemoryEnv`).
    """
    parsed = outcome.parsed
    info: dict[str, Any] = {
        "kind": parsed.kind,
        "calls": [call_info(c, r) for c, r in zip(parsed.calls, outcome.results)],
        "errors": [*outcome.errors, *rejected],
        "cut": outcome.cut,
    }
    if parsed.answer is not None:
        info["answer"] = parsed.answer
    if parsed.action is not None:
        info["action"] = parsed.action
    return info
