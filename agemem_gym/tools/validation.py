"""Validation of one tool call against its declaration in the tool table.

Lenient where the intent is unambiguous: ``"arguments"`` may be a JSON string (OpenAI style)
and ``"parameters"`` is read as ``"arguments"``; argument aliases (``confirmed`` ->
``confirmation``) and value aliases (span ``"full"`` -> ``"all"``) come from the table;
integers and booleans written as strings are converted. Object arguments must be plain JSON
nested at most :data:`MAX_ARGUMENT_DEPTH` deep and integers have at most 18 digits. Every
problem is an error message (never an exception) that says what is expected.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import re
from collections.abc import Mapping
from typing import Any

from agemem_gym.tools.table import Tool, ToolTable

__all__ = ["ToolCall", "MAX_ARGUMENT_DEPTH", "EXPECTED", "validate_call"]

EXPECTED = 'a JSON array of {"name": <tool>, "arguments": {...}} objects'
_TYPES = {"string": str, "object": dict, "integer": int, "boolean": bool}
_MAX_INT = 10**18 - 1
MAX_ARGUMENT_DEPTH = 8
"""Deepest nesting of an object argument (``metadata``, ``metadata_filter``) the parser accepts."""


@dataclasses.dataclass(frozen=True)
class ToolCall:
    """One validated tool call."""

    name: str
    arguments: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """The call as ``{"name", "arguments"}``."""
        return {"name": self.name, "arguments": self.arguments}


def validate_call(item: Any, index: int, tools: ToolTable) -> tuple[ToolCall | None, str | None]:
    """Check item ``index`` of a tool-call turn: ``(call, None)`` or ``(None, error message)``."""
    where = f"call {index + 1}"
    if not isinstance(item, Mapping):
        return None, f"[tool error] {where} is a {type(item).__name__}, not an object; expected {EXPECTED}."
    name = item.get("name")
    if not isinstance(name, str):
        return None, f'[tool error] {where} has no string "name"; expected {EXPECTED}.'
    if name not in tools:
        close = difflib.get_close_matches(name, tools.names, n=1)
        hint = f" Did you mean {close[0]}?" if close else ""
        return None, f"[tool error] unknown tool {name[:80]!r}.{hint} Tools: {', '.join(tools.names)}."
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
    return _check_arguments(tools[name], dict(args))


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


def _argument_problem(tool: Tool, args: dict[str, Any]) -> str | None:
    """Unknown or missing argument names (aliases already applied)."""
    unexpected = [k for k in args if k not in tool.parameters]
    if unexpected:
        shown = ", ".join(repr(k[:40] if isinstance(k, str) else k)[:44] for k in unexpected[:5])
        return f"[tool error] {tool.name}: unexpected argument(s) {shown}; expected {tool.signature()}."
    missing = [k for k in tool.required if k not in args]
    if missing:
        return (
            f"[tool error] {tool.name}: missing required argument(s) {', '.join(missing)}; expected {tool.signature()}."
        )
    return None


def _check_value(tool: Tool, key: str, value: Any) -> tuple[Any, str | None]:
    """One argument converted to its declared type: ``(value, None)`` or ``(value, error)``."""
    kind = tool.parameters[key]["type"]
    converted, ok = _coerce(value, kind)
    if not ok:
        return value, (
            f"[tool error] {tool.name}: argument {key!r} must be {kind}, got {type(value).__name__}; "
            f"expected {tool.signature()}."
        )
    if kind == "integer" and abs(converted) > _MAX_INT:
        return value, f"[tool error] {tool.name}: argument {key!r} is out of range (more than 18 digits)."
    if kind == "object":
        problem = _json_object_problem(converted)
        if problem:
            return value, f"[tool error] {tool.name}: argument {key!r} {problem}; expected {tool.signature()}."
    aliases = tool.value_aliases.get(key)
    if aliases and converted.strip().lower() in aliases:
        converted = aliases[converted.strip().lower()]
    return converted, None


def _check_arguments(tool: Tool, args: dict[str, Any]) -> tuple[ToolCall | None, str | None]:
    for alias, real in tool.aliases.items():
        if alias in args and real not in args:
            args[real] = args.pop(alias)
    problem = _argument_problem(tool, args)
    if problem:
        return None, problem
    out: dict[str, Any] = {}
    for key, value in args.items():
        if value is None and key not in tool.required:
            continue
        converted, error = _check_value(tool, key, value)
        if error:
            return None, error
        out[key] = converted
    return ToolCall(tool.name, out), None
