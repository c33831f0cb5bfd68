"""The six memory tools, the system prompt, and the parser for one assistant turn.

Turn grammar (the paper's, App. A.1)::

    <think> reasoning </think>
    then exactly one of
    <tool_call>[{"name": "Add_memory", "arguments": {"content": "..."}}, ...]</tool_call>
    <answer> the reply to the user </answer>
    <action> a move in the world </action>      (interactive tasks only)

The parser is lenient where the intent is unambiguous and strict where it is not:

* a single JSON object is accepted in place of an array; ``"arguments"`` may be a JSON
  string (OpenAI style) and ``"parameters"`` is read as ``"arguments"``;
* a ``<tool_call>`` cut off by the token limit is repaired when the calls that did
  complete can be recovered; a stray closing tag is read from the end of ``<think>``;
* duplicate calls in one turn are dropped; aliases ``confirmed`` → ``confirmation`` and
  span ``"full"`` → ``"all"`` are applied; integers and booleans written as strings are
  converted;
* a turn that mixes ``<tool_call>``, ``<answer>`` and ``<action>`` is invalid (the grammar
  says exactly one), as is a turn with none of them; tags inside ``<think>`` are reasoning,
  tags before or after it count.

Bounds (each violation is an error message, counted as invalid, never an exception): object
arguments must be plain JSON nested at most :data:`MAX_ARGUMENT_DEPTH` deep, integers have at
most 18 digits, and with ``max_calls`` a turn's first ``READ_FACTOR * max_calls`` items are
read, at most ``max_calls`` item errors listed and at most ``max_calls`` calls run.

Structured actions need no string building: ``{"name": ..., "arguments": {...}}`` or a list
of those is a tool call; ``{"answer": "..."}`` and ``{"action": "..."}`` are the other kinds.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

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
    "tool_schemas",
    "system_prompt",
    "ToolCall",
    "ParsedTurn",
    "parse_turn",
    "format_tool_call",
    "format_answer",
    "format_action",
    "turn_text",
]

ADD_MEMORY = "Add_memory"
UPDATE_MEMORY = "Update_memory"
DELETE_MEMORY = "Delete_memory"
RETRIEVE_MEMORY = "Retrieve_memory"
SUMMARY_CONTEXT = "Summary_context"
FILTER_CONTEXT = "Filter_context"
LTM_TOOLS = (ADD_MEMORY, UPDATE_MEMORY, DELETE_MEMORY)
STM_TOOLS = (RETRIEVE_MEMORY, SUMMARY_CONTEXT, FILTER_CONTEXT)
TOOL_NAMES = LTM_TOOLS + STM_TOOLS


def _fn(name: str, description: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {"type": "object", "properties": properties, "required": required},
        },
    }


TOOL_SCHEMAS: tuple[dict[str, Any], ...] = (
    _fn(
        "Add_memory",
        "Store a piece of information in long-term memory so it can be retrieved later. Returns the new memory's id.",
        {
            "content": {"type": "string", "description": "The information to store, self-contained."},
            "metadata": {"type": "object", "description": 'Optional tags, e.g. {"topic": "geography"}.'},
            "memory_type": {
                "type": "string",
                "description": "Optional kind of memory, e.g. 'knowledge', 'user_info', 'preference', "
                "'chat_info', 'task_pipeline'.",
            },
        },
        ["content"],
    ),
    _fn(
        "Update_memory",
        "Replace the content of an existing memory (id from Add_memory or Retrieve_memory); metadata is merged.",
        {
            "memory_id": {"type": "string", "description": "Id of the memory, e.g. 'mem_3fa2c1d0'."},
            "content": {"type": "string", "description": "The new content; replaces the old one."},
            "metadata": {"type": "object", "description": "Tags to merge into the memory's metadata."},
        },
        ["memory_id", "content"],
    ),
    _fn(
        "Delete_memory",
        "Permanently delete a memory that is wrong or no longer useful. Requires confirmation=true.",
        {
            "memory_id": {"type": "string", "description": "Id of the memory to delete."},
            "confirmation": {"type": "boolean", "description": "Must be true to delete."},
        },
        ["memory_id", "confirmation"],
    ),
    _fn(
        "Retrieve_memory",
        "Search long-term memory and add the most relevant memories (with their ids) to the context.",
        {
            "query": {"type": "string", "description": "What to look for."},
            "top_k": {"type": "integer", "description": "How many memories to return (default 3)."},
            "metadata_filter": {
                "type": "object",
                "description": 'Only memories whose metadata has these exact values, e.g. {"type": "knowledge"}.',
            },
        },
        ["query"],
    ),
    _fn(
        "Summary_context",
        "Replace a span of the conversation with a short summary to save tokens.",
        {
            "span": {
                "type": "string",
                "description": "'all' for every message, 'N' for the last N messages, or 'a-b' for "
                "messages a to b (1-based, system prompt excluded).",
            }
        },
        ["span"],
    ),
    _fn(
        "Filter_context",
        "Remove messages from the context that match a description of content to remove.",
        {"criteria": {"type": "string", "description": "Description of the content to remove."}},
        ["criteria"],
    ),
)

_SCHEMA_BY_NAME = {s["function"]["name"]: s["function"]["parameters"] for s in TOOL_SCHEMAS}
_ALIASES = {"Delete_memory": {"confirmed": "confirmation"}}


def tool_schemas(names: Sequence[str] = TOOL_NAMES) -> list[dict[str, Any]]:
    """Tool schemas in the format HF chat templates take as ``tools=``.

    Args:
        names: Which tools (default: all six).

    Returns:
        A fresh list of schema dicts.
    """
    by_name = {s["function"]["name"]: s for s in TOOL_SCHEMAS}
    return [json.loads(json.dumps(by_name[n])) for n in names]


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
    tools: Sequence[str] = TOOL_NAMES, *, include_schemas: bool = True, interactive: bool = False, task_note: str = ""
) -> str:
    """The system prompt: the paper's instructions in our own words, with the tool schemas.

    Args:
        tools: Tools to list.
        include_schemas: Include the JSON schemas (turn off when the chat template receives
            them through ``tools=``).
        interactive: Mention ``<action>`` for tasks with a world to act in.
        task_note: Extra task-specific text appended at the end.

    Returns:
        The prompt text.
    """
    if include_schemas:
        listed = "\n".join(json.dumps(s["function"], separators=(",", ":")) for s in tool_schemas(tools))
    else:
        listed = ", ".join(tools)
    text = _PROMPT.format(tools=listed, action_line=_ACTION_LINE if interactive else "")
    return text + (f"\n{task_note.strip()}\n" if task_note else "")


# ----------------------------------------------------------------------------------- parsing
@dataclasses.dataclass(frozen=True)
class ToolCall:
    """One validated tool call."""

    name: str
    arguments: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """The call as ``{"name", "arguments"}``."""
        return {"name": self.name, "arguments": self.arguments}


TurnKind = Literal["tool_call", "answer", "action", "invalid"]


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
_EXPECTED = 'a JSON array of {"name": <tool>, "arguments": {...}} objects'
_FORMAT_HELP = (
    "Write <think>...</think> and then exactly one of <tool_call>[...]</tool_call>, <answer>...</answer>{action}."
)


def _format_help(allow_action: bool) -> str:
    return _FORMAT_HELP.format(action=" or <action>...</action>" if allow_action else "")


def parse_turn(turn: Any, *, allow_action: bool = False, max_calls: int | None = None) -> ParsedTurn:
    """Parse one assistant turn (text or structured) into a :class:`ParsedTurn`.

    Never raises for any input.

    Args:
        turn: The turn text, or a structured action (dict / list of dicts).
        allow_action: Whether ``<action>`` is part of this task's grammar.
        max_calls: Execute at most this many calls; extra calls produce one error.

    Returns:
        The parsed turn.

    Example:
        >>> t = parse_turn('<think>store</think><tool_call>[{"name": "Add_memory", '
        ...                '"arguments": {"content": "x"}}]</tool_call>')
        >>> t.kind, t.calls[0].name
        ('tool_call', 'Add_memory')
    """
    if isinstance(turn, str):
        return _parse_text(turn, allow_action, max_calls)
    if isinstance(turn, (Mapping, list, tuple)):
        return _parse_structured(turn, allow_action, max_calls)
    return ParsedTurn(
        "invalid",
        errors=(
            f"[format error] a turn must be a string or a structured action (dict or list of dicts), "
            f"got {type(turn).__name__}.",
        ),
    )


def _parse_structured(turn: Any, allow_action: bool, max_calls: int | None) -> ParsedTurn:
    if isinstance(turn, Mapping) and set(turn) == {"answer"}:
        return _text_kind("answer", turn["answer"])
    if isinstance(turn, Mapping) and set(turn) == {"action"}:
        if not allow_action:
            return ParsedTurn("invalid", errors=("[format error] this task has no <action>; " + _format_help(False),))
        return _text_kind("action", turn["action"])
    items = [turn] if isinstance(turn, Mapping) else list(turn)
    return _calls_turn(items, None, (), max_calls)


def _text_kind(kind: Literal["answer", "action"], value: Any) -> ParsedTurn:
    if not isinstance(value, str):
        return ParsedTurn("invalid", errors=(f"[format error] {kind} must be a string, got {type(value).__name__}.",))
    return ParsedTurn(kind, **{kind: value.strip()})


def _parse_text(text: str, allow_action: bool, max_calls: int | None) -> ParsedTurn:
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
    if kind in ("answer", "action"):
        if len(found[kind]) > 1:
            notes.append(f"only the first of {len(found[kind])} <{kind}> blocks was used")
        return ParsedTurn(kind, think, **{kind: found[kind][0].strip()}, notes=tuple(notes))
    items: list[Any] = []
    errors: list[str] = []
    for block in found["tool_call"]:
        parsed, err, repaired = _load_json(block)
        if err:
            errors.append(err)
            continue
        if repaired:
            notes.append("repaired truncated JSON in <tool_call>")
        items.extend(parsed if isinstance(parsed, list) else [parsed])
    if errors and not items:
        return ParsedTurn("invalid", think, errors=tuple(errors), notes=tuple(notes))
    turn = _calls_turn(items, think, tuple(notes), max_calls)
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
        return None, f"[format error] empty <tool_call>; expected {_EXPECTED}.", False
    try:
        return json.loads(text), None, False
    except (ValueError, RecursionError) as exc:  # ValueError: JSONDecodeError and over-long integers
        first_error = exc
    repaired = _repair_json(text)
    if repaired is not None:
        return repaired, None, True
    detail = str(first_error)[:120]
    return None, f"[format error] malformed JSON in <tool_call> ({detail}); expected {_EXPECTED}.", False


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


READ_FACTOR = 4
"""With a ``max_calls`` limit, only the first ``READ_FACTOR * max_calls`` items of a turn are read."""


def _calls_turn(items: list[Any], think: str | None, notes: tuple[str, ...], max_calls: int | None) -> ParsedTurn:
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
        errors.append(f"[format error] <tool_call> holds no calls; expected {_EXPECTED}.")
    read = items if max_calls is None else items[: READ_FACTOR * max_calls]
    for i, item in enumerate(read):
        if max_calls is not None and len(calls) > max_calls:
            break  # already over the limit: the rest would not run anyway
        call, err = _validate_call(item, i)
        if err:
            if max_calls is not None and len(errors) >= max_calls:
                unlisted += 1
            else:
                errors.append(err)
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


def _signature(name: str) -> str:
    props = _SCHEMA_BY_NAME[name]["properties"]
    req = set(_SCHEMA_BY_NAME[name]["required"])
    return f"{name}(" + ", ".join(p if p in req else f"{p}?" for p in props) + ")"


def _validate_call(item: Any, index: int) -> tuple[ToolCall | None, str | None]:
    where = f"call {index + 1}"
    if not isinstance(item, Mapping):
        return None, f"[tool error] {where} is a {type(item).__name__}, not an object; expected {_EXPECTED}."
    name = item.get("name")
    if not isinstance(name, str):
        return None, f'[tool error] {where} has no string "name"; expected {_EXPECTED}.'
    if name not in _SCHEMA_BY_NAME:
        close = difflib.get_close_matches(name, TOOL_NAMES, n=1)
        hint = f" Did you mean {close[0]}?" if close else ""
        return None, f"[tool error] unknown tool {name[:80]!r}.{hint} Tools: {', '.join(TOOL_NAMES)}."
    args = item.get("arguments", item.get("parameters", {}))
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except (ValueError, RecursionError):
            return None, f'[tool error] {name}: "arguments" is a string that is not JSON; expected an object.'
    if args is None:
        args = {}
    if not isinstance(args, Mapping):
        return None, f'[tool error] {name}: "arguments" must be an object, got {type(args).__name__}.'
    return _check_arguments(name, dict(args))


_TYPES = {"string": str, "object": dict, "integer": int, "boolean": bool}


def _coerce(value: Any, kind: str) -> tuple[Any, bool]:
    """Convert ``value`` to the schema type when unambiguous: ``(value, ok)``."""
    if kind == "integer":
        if isinstance(value, bool):
            return value, False
        if isinstance(value, int):
            return value, True
        if isinstance(value, float) and value.is_integer():
            return int(value), True
        if isinstance(value, str) and re.fullmatch(r"\s*-?\d{1,9}\s*", value):
            return int(value), True
        return value, False
    if kind == "boolean":
        if isinstance(value, bool):
            return value, True
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true", True
        return value, False
    if kind == "string" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value), True  # e.g. span=5 for "5"
    return value, isinstance(value, _TYPES[kind])


_MAX_INT = 10**18 - 1
MAX_ARGUMENT_DEPTH = 8
"""Deepest nesting of an object argument (``metadata``, ``metadata_filter``) the parser accepts."""


def _json_object_problem(value: Any, depth: int = 1) -> str | None:
    """Why ``value`` is not a plain JSON object of bounded depth (``None`` when it is).

    Structured actions can hand the parser any Python object; only string keys and JSON
    values (``None``, bool, int, float, str, list, dict) nested at most
    :data:`MAX_ARGUMENT_DEPTH` deep are stored, so the memory always serialises.
    """
    if depth > MAX_ARGUMENT_DEPTH:
        return f"is nested more than {MAX_ARGUMENT_DEPTH} levels deep"
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            return "must have string keys only"
        children: Any = value.values()
    elif isinstance(value, (list, tuple)):
        children = value
    elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > _MAX_INT:
        return "holds an integer with more than 18 digits"
    elif value is None or isinstance(value, (bool, int, float, str)):
        return None
    else:
        return f"holds a {type(value).__name__}, which is not a JSON value"
    for child in children:
        problem = _json_object_problem(child, depth + 1)
        if problem:
            return problem
    return None


def _check_arguments(name: str, args: dict[str, Any]) -> tuple[ToolCall | None, str | None]:
    schema = _SCHEMA_BY_NAME[name]
    for alias, real in _ALIASES.get(name, {}).items():
        if alias in args and real not in args:
            args[real] = args.pop(alias)
    unexpected = [k for k in args if k not in schema["properties"]]
    if unexpected:
        shown = ", ".join(repr(k[:40] if isinstance(k, str) else k)[:44] for k in unexpected[:5])
        return None, f"[tool error] {name}: unexpected argument(s) {shown}; expected {_signature(name)}."
    missing = [k for k in schema["required"] if k not in args]
    if missing:
        return (
            None,
            f"[tool error] {name}: missing required argument(s) {', '.join(missing)}; expected {_signature(name)}.",
        )
    out: dict[str, Any] = {}
    for key, value in args.items():
        kind = schema["properties"][key]["type"]
        if value is None and key not in schema["required"]:
            continue
        converted, ok = _coerce(value, kind)
        if not ok:
            return None, (
                f"[tool error] {name}: argument {key!r} must be {kind}, got {type(value).__name__}; "
                f"expected {_signature(name)}."
            )
        if kind == "integer" and abs(converted) > _MAX_INT:
            return None, f"[tool error] {name}: argument {key!r} is out of range (more than 18 digits)."
        if kind == "object":
            problem = _json_object_problem(converted)
            if problem:
                return None, f"[tool error] {name}: argument {key!r} {problem}; expected {_signature(name)}."
        out[key] = converted
    if name == "Summary_context" and out.get("span", "").strip().lower() == "full":
        out["span"] = "all"
    return ToolCall(name, out), None


def turn_text(action: Any) -> str:
    """The text a turn leaves in the context: the string itself, or a structured action as JSON.

    Never raises: an action that JSON cannot write (a cycle, nesting past the interpreter's
    recursion limit, an integer past Python's digit limit) falls back to ``repr``, and when
    even that fails to a short description of its type.

    Args:
        action: Whatever the agent sent.

    Returns:
        The text.
    """
    if isinstance(action, str):
        return action
    try:
        return json.dumps(action, ensure_ascii=False, default=str)
    except Exception:  # noqa: BLE001 - default=str runs the objects' own __str__, which may raise anything
        pass
    try:
        return repr(action)[:10_000]
    except Exception:  # noqa: BLE001 - any object's __repr__ may fail; the agent still gets an answer
        return f"<unprintable {type(action).__name__} action>"


# ---------------------------------------------------------------------------- formatting
def format_tool_call(calls: Sequence[ToolCall | Mapping[str, Any]], think: str = "") -> str:
    """Write a tool-call turn in the grammar (used by scripted policies).

    Example:
        >>> format_tool_call([{"name": "Filter_context", "arguments": {"criteria": "cake"}}], "clean up")
        '<think>clean up</think><tool_call>[{"name": "Filter_context", "arguments": {"criteria": "cake"}}]</tool_call>'
    """
    payload = [c.to_json() if isinstance(c, ToolCall) else dict(c) for c in calls]
    return f"<think>{think}</think><tool_call>{json.dumps(payload, ensure_ascii=False)}</tool_call>"


def format_answer(answer: str, think: str = "") -> str:
    """Write an answer turn in the grammar."""
    return f"<think>{think}</think><answer>{answer}</answer>"


def format_action(action: str, think: str = "") -> str:
    """Write an action turn in the grammar (interactive tasks)."""
    return f"<think>{think}</think><action>{action}</action>"
