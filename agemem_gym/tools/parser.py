"""The parser of one assistant turn.

Turn grammar (the paper's, App. A.1)::

    <think> reasoning </think>
    then exactly one of
    <tool_call>[{"name": "Add_memory", "arguments": {"content": "..."}}, ...]</tool_call>
    <answer> the reply to the user </answer>
    <action> a move in the world </action>      (interactive tasks only)

The parser is lenient where the intent is unambiguous and strict where it is not:

* a single JSON object is accepted in place of an array; each call is validated against
  its declaration in the tool table (:mod:`agemem_gym.tools.validation`);
* a ``<tool_call>`` cut off by the token limit is repaired when the calls that did
  complete can be recovered; a stray closing tag is read from the end of ``<think>``;
* duplicate calls in one turn are dropped;
* a turn that mixes ``<tool_call>``, ``<answer>`` and ``<action>`` is invalid (the grammar
  says exactly one), as is a turn with none of them; tags inside ``<think>`` are reasoning,
  tags before or after it count.

Bounds (each violation is an error message, counted as invalid, never an exception): with
``max_calls`` a turn's first ``READ_FACTOR * max_calls`` items are read, at most
``max_calls`` item errors listed and at most ``max_calls`` calls run.

Structured actions need no string building: ``{"name": ..., "arguments": {...}}`` or a list
of those is a tool call; ``{"answer": "..."}`` and ``{"action": "..."}`` are the other kinds.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from typing import Any, Literal

from agemem_gym.tools.table import DEFAULT_TOOLS, ToolTable
from agemem_gym.tools.validation import EXPECTED, ToolCall, validate_call

__all__ = ["ParsedTurn", "TurnKind", "parse_turn", "READ_FACTOR"]

TurnKind = Literal["tool_call", "answer", "action", "invalid"]

READ_FACTOR = 4
"""With a ``max_calls`` limit, only the first ``READ_FACTOR * max_calls`` items of a turn are read."""


@dataclasses.dataclass(frozen=True)
class ParsedTurn:
    """The result of parsing one turn.

    Attributes:
        kind: ``tool_call``, ``answer``, ``action`` or ``invalid``.
        think: The ``<think>`` text, if any.
        calls: Valid tool calls, deduplicated, in order.
        answer: The ``<answer>`` text.
        action: The ``<action>`` text.
        errors: One message per invalid call or format problem; each counts as an invalid call.
        notes: Non-penalised remarks (repairs, dropped duplicates, ignored text).
    """

    kind: TurnKind
    think: str | None = None
    calls: tuple[ToolCall, ...] = ()
    answer: str | None = None
    action: str | None = None
    errors: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


_THINK = re.compile(r"<think>(.*?)</think>", re.S)
_BLOCKS = {
    "tool_call": re.compile(r"<tool_call>(.*?)</tool_call>", re.S),
    "answer": re.compile(r"<answer>(.*?)</answer>", re.S),
    "action": re.compile(r"<action>(.*?)</action>", re.S),
}
_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$")
_FORMAT_HELP = (
    "Write <think>...</think> and then exactly one of <tool_call>[...]</tool_call>, <answer>...</answer>{action}."
)


def _format_help(allow_action: bool) -> str:
    return _FORMAT_HELP.format(action=" or <action>...</action>" if allow_action else "")


def _text_turn(kind: str, think: str | None, text: str, notes: tuple[str, ...] = ()) -> ParsedTurn:
    """An ``answer`` turn, or else an ``action`` turn, of ``text``."""
    if kind == "answer":
        return ParsedTurn("answer", think, answer=text, notes=notes)
    return ParsedTurn("action", think, action=text, notes=notes)


def parse_turn(
    turn: Any, *, allow_action: bool = False, max_calls: int | None = None, tools: ToolTable = DEFAULT_TOOLS
) -> ParsedTurn:
    """Parse one assistant turn (text or structured) into a :class:`ParsedTurn`.

    Never raises for any input.

    Args:
        turn: The turn text, or a structured action (dict / list of dicts).
        allow_action: Whether ``<action>`` is part of this task's grammar.
        max_calls: Execute at most this many calls; extra calls produce one error.
        tools: The tool table calls are validated against.

    Returns:
        The parsed turn.

    Example:
        >>> t = parse_turn('<think>store</think><tool_call>[{"name": "Add_memory", '
        ...                '"arguments": {"content": "x"}}]</tool_call>')
        >>> t.kind, t.calls[0].name
        ('tool_call', 'Add_memory')
    """
    if isinstance(turn, str):
        return _parse_text(turn, allow_action, max_calls, tools)
    if isinstance(turn, (Mapping, list, tuple)):
        return _parse_structured(turn, allow_action, max_calls, tools)
    return ParsedTurn(
        "invalid",
        errors=(
            f"[format error] a turn must be a string or a structured action (dict or list of dicts), "
            f"got {type(turn).__name__}.",
        ),
    )


def _parse_structured(turn: Any, allow_action: bool, max_calls: int | None, tools: ToolTable) -> ParsedTurn:
    if isinstance(turn, Mapping) and set(turn) == {"answer"}:
        return _structured_text("answer", turn["answer"])
    if isinstance(turn, Mapping) and set(turn) == {"action"}:
        if not allow_action:
            return ParsedTurn("invalid", errors=("[format error] this task has no <action>; " + _format_help(False),))
        return _structured_text("action", turn["action"])
    items = [turn] if isinstance(turn, Mapping) else list(turn)
    return _calls_turn(items, None, (), max_calls, tools)


def _structured_text(kind: Literal["answer", "action"], value: Any) -> ParsedTurn:
    if not isinstance(value, str):
        return ParsedTurn("invalid", errors=(f"[format error] {kind} must be a string, got {type(value).__name__}.",))
    return _text_turn(kind, None, value.strip())


def _blocks(text: str) -> tuple[str | None, dict[str, list[str]], list[str]]:
    """``(think, blocks by kind outside <think>, notes)``, with an unclosed ``<tool_call>`` repaired."""
    think_m = _THINK.search(text)
    think = think_m.group(1).strip() if think_m else None
    # Tags inside <think> are reasoning, not commands: look for blocks outside it (before it
    # too, so an <answer> written ahead of <think> still makes a mixed turn invalid).
    body = text[: think_m.start()] + text[think_m.end() :] if think_m else text
    found = {kind: rx.findall(body) for kind, rx in _BLOCKS.items()}
    notes: list[str] = []
    if not found["tool_call"]:
        recovered = _recover_tool_call(body)
        if recovered is not None:
            found["tool_call"] = [recovered]
            notes.append("repaired an unclosed <tool_call> tag")
    return think, found, notes


def _parse_text(text: str, allow_action: bool, max_calls: int | None, tools: ToolTable) -> ParsedTurn:
    think, found, notes = _blocks(text)
    present = [k for k in ("tool_call", "answer", "action") if found[k]]
    if not allow_action and "action" in present:
        return ParsedTurn(
            "invalid", think, errors=("[format error] this task has no <action>. " + _format_help(False),)
        )
    if len(present) != 1:
        what = "none of" if not present else "more than one of"
        return ParsedTurn(
            "invalid",
            think,
            errors=(
                f"[format error] the turn contains {what} <tool_call>, <answer>"
                f"{', <action>' if allow_action else ''}. " + _format_help(allow_action),
            ),
            notes=tuple(notes),
        )
    kind = present[0]
    if kind == "answer" or kind == "action":
        if len(found[kind]) > 1:
            notes.append(f"only the first of {len(found[kind])} <{kind}> blocks was used")
        return _text_turn(kind, think, found[kind][0].strip(), tuple(notes))
    return _tool_call_blocks(found["tool_call"], think, notes, max_calls, tools)


def _tool_call_blocks(
    blocks: list[str], think: str | None, notes: list[str], max_calls: int | None, tools: ToolTable
) -> ParsedTurn:
    items: list[Any] = []
    errors: list[str] = []
    for block in blocks:
        parsed, err, repaired = _load_json(block)
        if err:
            errors.append(err)
            continue
        if repaired:
            notes.append("repaired truncated JSON in <tool_call>")
        items.extend(parsed if isinstance(parsed, list) else [parsed])
    if errors and not items:
        return ParsedTurn("invalid", think, errors=tuple(errors), notes=tuple(notes))
    turn = _calls_turn(items, think, tuple(notes), max_calls, tools)
    if errors:
        return dataclasses.replace(
            turn, kind="tool_call" if turn.calls else "invalid", errors=tuple(errors) + turn.errors
        )
    return turn


def _recover_tool_call(body: str) -> str | None:
    """Text of a ``<tool_call>`` with a missing closing or opening tag, if any."""
    if "<tool_call>" in body:  # opened, never closed: generation was cut
        return body.split("<tool_call>", 1)[1]
    if "</tool_call>" in body:  # closed, never opened
        return body.split("</tool_call>", 1)[0]
    return None


def _load_json(block: str) -> tuple[Any, str | None, bool]:
    """Parse the JSON of a tool_call block: ``(value, error, repaired)``."""
    text = _FENCE.sub("", block.strip())
    if not text:
        return None, f"[format error] empty <tool_call>; expected {EXPECTED}.", False
    try:
        return json.loads(text), None, False
    except (ValueError, RecursionError) as exc:  # ValueError: JSONDecodeError and over-long integers
        first_error = exc
    repaired = _repair_json(text)
    if repaired is not None:
        return repaired, None, True
    detail = str(first_error)[:120]
    return None, f"[format error] malformed JSON in <tool_call> ({detail}); expected {EXPECTED}.", False


def _repair_json(text: str) -> list[Any] | None:
    """Recover the complete objects of a truncated array, or objects missing the brackets.

    Only unambiguous repairs: complete top-level objects are kept, an incomplete last one is
    dropped. Returns ``None`` when nothing complete can be recovered.
    """
    if not text.startswith("["):
        if not text.startswith("{"):
            return None
        text = "[" + text
    decoder = json.JSONDecoder()
    items: list[Any] = []
    pos = 1
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(text) or text[pos] == "]":
            break
        try:
            value, pos = decoder.raw_decode(text, pos)
        except (ValueError, RecursionError):
            break
        items.append(value)
    return items or None


def _calls_turn(
    items: list[Any], think: str | None, notes: tuple[str, ...], max_calls: int | None, tools: ToolTable
) -> ParsedTurn:
    """Validate the items of a tool-call turn, within the per-turn bounds.

    With ``max_calls``, the work and the error text of one turn stay bounded however many
    items it holds: at most ``READ_FACTOR * max_calls`` items are read (room for duplicates and
    mistakes), at most ``max_calls`` item errors are listed (the rest are summarised in one
    error) and at most ``max_calls`` valid calls run (one error names the limit).
    """
    calls: list[ToolCall] = []
    errors: list[str] = []
    seen: set[str] = set()
    dupes = unlisted = 0
    if not items:
        errors.append(f"[format error] <tool_call> holds no calls; expected {EXPECTED}.")
    read = items if max_calls is None else items[: READ_FACTOR * max_calls]
    for i, item in enumerate(read):
        if max_calls is not None and len(calls) > max_calls:
            break  # already over the limit: the rest would not run anyway
        call, err = validate_call(item, i, tools)
        if call is None:
            if max_calls is not None and len(errors) >= max_calls:
                unlisted += 1
            else:
                errors.append(err or "")
            continue
        key = json.dumps(call.to_json(), sort_keys=True, default=str)
        if key in seen:
            dupes += 1
            continue
        seen.add(key)
        calls.append(call)
    extra_notes = list(notes)
    if dupes:
        extra_notes.append(f"dropped {dupes} duplicate call(s)")
    if unlisted:
        errors.append(f"[tool error] {unlisted} more invalid call(s) not listed.")
    if max_calls is not None and (len(calls) > max_calls or len(items) > len(read)):
        errors.append(
            f"[tool error] the turn holds {len(items)} calls, more than the limit of {max_calls} per turn; "
            f"only the first {min(len(calls), max_calls)} valid call(s) were run."
        )
        calls = calls[:max_calls]
    kind: TurnKind = "tool_call" if calls else "invalid"
    return ParsedTurn(kind, think, tuple(calls), errors=tuple(errors), notes=tuple(extra_notes))
