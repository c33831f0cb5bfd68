"""The tool table: every tool declared once (name, schema, handler, what it touches).

Everything else derives from the table: the system prompt, the parser's validation, the
executor's dispatch, the ``info["tool_calls"]`` histogram, the constrained-decoding grammar,
the random policy and the report columns. A new tool is one :class:`Tool` declaration and
``DEFAULT_TOOLS.with_tools(tool)``; pass the table to the env with ``tools=``.

Example:
    >>> from agemem_gym.tools import DEFAULT_TOOLS, Tool, ToolResult
    >>> def count(ctx, **_):
    ...     return ToolResult(ctx.name, True, f"memories: {len(ctx.ltm)}")
    >>> table = DEFAULT_TOOLS.with_tools(
    ...     Tool("Count_memory", "How many memories are stored.", handler=count, touches=frozenset({"ltm_read"}))
    ... )
    >>> table.names[-1], table.touching("ltm_read")
    ('Count_memory', ('Retrieve_memory', 'Count_memory'))
"""

from __future__ import annotations

import dataclasses
import json
import re
import types
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from agemem_gym.error import InvalidConfig, unknown_name
from agemem_gym.tools import handlers
from agemem_gym.tools.results import ToolResult

__all__ = [
    "ADD_MEMORY",
    "UPDATE_MEMORY",
    "DELETE_MEMORY",
    "RETRIEVE_MEMORY",
    "SUMMARY_CONTEXT",
    "FILTER_CONTEXT",
    "TOUCH_KINDS",
    "ARGUMENT_TYPES",
    "Tool",
    "ToolTable",
    "DEFAULT_TOOLS",
    "TOOL_NAMES",
    "LTM_TOOLS",
    "STM_TOOLS",
    "TOOL_SCHEMAS",
    "as_table",
    "histogram_names",
]

ADD_MEMORY = "Add_memory"
UPDATE_MEMORY = "Update_memory"
DELETE_MEMORY = "Delete_memory"
RETRIEVE_MEMORY = "Retrieve_memory"
SUMMARY_CONTEXT = "Summary_context"
FILTER_CONTEXT = "Filter_context"

TOUCH_KINDS = ("ltm_write", "ltm_read", "context")
"""What a tool may touch: write the long-term memory, read it, change the context."""
ARGUMENT_TYPES = ("string", "integer", "boolean", "object")
"""The JSON-schema argument types the parser validates (and the grammar constrains)."""

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")

Handler = Callable[..., ToolResult]
"""``handler(ctx: ToolContext, **arguments) -> ToolResult``."""


def _frozen(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    """A read-only deep copy (JSON values only), so a declaration cannot change after the fact."""
    return types.MappingProxyType(json.loads(json.dumps(dict(mapping))))


@dataclasses.dataclass(frozen=True)
class Tool:
    """One tool: what the agent sees (name, description, arguments) and what runs.

    Attributes:
        name: The tool name the agent writes (``"Add_memory"``).
        description: One or two sentences for the system prompt.
        parameters: JSON-schema ``properties``: argument name -> ``{"type": ..., "description": ...}``;
            types are those of :data:`ARGUMENT_TYPES`.
        required: Arguments that must be given.
        handler: ``handler(ctx: ToolContext, **arguments) -> ToolResult``; called only with
            validated arguments (the optional ones the agent left out are not passed).
        touches: Subset of :data:`TOUCH_KINDS`: ``"ltm_write"``, ``"ltm_read"``, ``"context"``.
        aliases: Argument names read as another (``{"confirmed": "confirmation"}``).
        value_aliases: String values read as another, per argument, ignoring case and
            surrounding space (``{"span": {"full": "all"}}``).
        memory_ids: String arguments whose value must be the id of a live memory
            (``("memory_id",)``). The constrained-decoding grammar limits them to the env's
            ``info["memory_ids"]`` and offers a tool that *requires* one only when the
            long-term memory is not empty.
        patterns: Regular expressions (JSON-schema ``pattern`` syntax) that a string
            argument's whole value must match under constrained decoding (``{"span":
            "^(all|[0-9]+)$"}``). They shape only the grammar: the handler stays the judge of
            what is valid, and the prompt's schema is unchanged.

    Raises:
        InvalidConfig: When the declaration is inconsistent (an unknown type, a required
            argument that is not a parameter, an unknown touch kind...).
    """

    name: str
    description: str
    parameters: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    required: tuple[str, ...] = ()
    _: dataclasses.KW_ONLY
    handler: Handler
    touches: frozenset[str]
    aliases: Mapping[str, str] = dataclasses.field(default_factory=dict)
    value_aliases: Mapping[str, Mapping[str, str]] = dataclasses.field(default_factory=dict)
    memory_ids: tuple[str, ...] = ()
    patterns: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise InvalidConfig(f"a tool name must match {_NAME.pattern}, got {self.name!r}")
        if not callable(self.handler):
            raise InvalidConfig(f"{self.name}: handler must be callable, got {type(self.handler).__name__}")
        set_ = object.__setattr__  # frozen: normalise the declared values once, here
        set_(self, "parameters", _frozen(self.parameters))
        set_(self, "required", tuple(self.required))
        set_(self, "touches", frozenset(self.touches))
        set_(self, "memory_ids", tuple(self.memory_ids))
        set_(self, "aliases", types.MappingProxyType(dict(self.aliases)))
        set_(self, "patterns", types.MappingProxyType(dict(self.patterns)))
        set_(
            self,
            "value_aliases",
            types.MappingProxyType({k: {a.lower(): v for a, v in m.items()} for k, m in self.value_aliases.items()}),
        )
        problem = self._problem()
        if problem:
            raise InvalidConfig(f"tool {self.name}: {problem}")

    def _problem(self) -> str | None:
        for key, spec in self.parameters.items():
            if not isinstance(spec, Mapping) or spec.get("type") not in ARGUMENT_TYPES:
                return f"parameter {key!r} needs a type among {ARGUMENT_TYPES}"
        if any(r not in self.parameters for r in self.required):
            return f"required {list(self.required)} must all be parameters"
        if not self.touches <= set(TOUCH_KINDS):
            return f"touches must be a subset of {TOUCH_KINDS}, got {sorted(self.touches)}"
        if any(a in self.parameters or r not in self.parameters for a, r in self.aliases.items()):
            return "aliases must map names that are not parameters to parameters"
        if any(self.parameters.get(k, {}).get("type") != "string" for k in self.value_aliases):
            return "value_aliases must name string parameters"
        if any(self.parameters.get(k, {}).get("type") != "string" for k in self.memory_ids):
            return "memory_ids must name string parameters"
        if any(self.parameters.get(k, {}).get("type") != "string" for k in self.patterns):
            return "patterns must name string parameters"
        return None

    def __hash__(self) -> int:
        return hash((self.name, self.handler))

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # read-only mappings do not pickle: rebuild from plain dicts (vector envs pickle their env's arguments)
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for key in ("parameters", "aliases", "value_aliases", "patterns"):
            fields[key] = json.loads(json.dumps(dict(fields[key])))
        return _rebuild_tool, (fields,)

    def schema(self) -> dict[str, Any]:
        """The tool in the format HF chat templates take as ``tools=`` (a fresh copy)."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": {
                    "type": "object",
                    "properties": json.loads(json.dumps(dict(self.parameters))),
                    "required": list(self.required),
                },
            },
        }

    def signature(self) -> str:
        """``Name(required, optional?)``, as error messages show the expected call."""
        args = (p if p in self.required else f"{p}?" for p in self.parameters)
        return f"{self.name}(" + ", ".join(args) + ")"


def _rebuild_tool(fields: dict[str, Any]) -> Tool:
    """Unpickle a :class:`Tool`."""
    return Tool(**fields)


class ToolTable:
    """An immutable, ordered table of tools, looked up by name.

    Args:
        tools: The tools, in the order the prompt lists them.

    Raises:
        InvalidConfig: When an item is not a :class:`Tool` or two tools share a name.
    """

    __slots__ = ("_tools", "_by_name")

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        listed = tuple(tools)
        for tool in listed:
            if not isinstance(tool, Tool):
                raise InvalidConfig(f"a tool table holds Tool objects, got {type(tool).__name__}")
        by_name = {t.name: t for t in listed}
        if len(by_name) != len(listed):
            raise InvalidConfig(f"tool names must be unique, got {[t.name for t in listed]}")
        self._tools = listed
        self._by_name: Mapping[str, Tool] = types.MappingProxyType(by_name)

    @property
    def names(self) -> tuple[str, ...]:
        """The tool names, in order."""
        return tuple(self._by_name)

    def __getitem__(self, name: str) -> Tool:
        try:
            return self._by_name[name]
        except KeyError:
            raise unknown_name("tool", name, self._by_name) from None

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[Tool]:
        return iter(self._tools)

    def __len__(self) -> int:
        return len(self._tools)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ToolTable) and self._tools == other._tools

    def __hash__(self) -> int:
        return hash(self._tools)

    def __repr__(self) -> str:
        return f"ToolTable({list(self.names)})"

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return ToolTable, (self._tools,)

    def schemas(self, names: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """HF ``tools=`` schemas of ``names`` (default: every tool), fresh copies."""
        return [self[n].schema() for n in (self.names if names is None else names)]

    def with_tools(self, *tools: Tool) -> ToolTable:
        """A new table with ``tools`` added at the end (a tool of an existing name replaces it in place)."""
        new = {t.name: t for t in tools}
        kept = [new.pop(t.name, t) for t in self._tools]
        return ToolTable([*kept, *new.values()])

    def select(self, names: Iterable[str]) -> ToolTable:
        """A new table of the tools ``names``, in that order."""
        return ToolTable(self[n] for n in names)

    def touching(self, kind: str) -> tuple[str, ...]:
        """Names of the tools that touch ``kind`` (one of :data:`TOUCH_KINDS`), in order."""
        if kind not in TOUCH_KINDS:
            raise unknown_name("touch kind", kind, TOUCH_KINDS)
        return tuple(t.name for t in self._tools if kind in t.touches)


def as_table(tools: ToolTable | Iterable[str]) -> ToolTable:
    """``tools`` as a table: a table itself, or names picked from :data:`DEFAULT_TOOLS`."""
    return tools if isinstance(tools, ToolTable) else DEFAULT_TOOLS.select(tools)


def histogram_names(histograms: Iterable[Mapping[str, Any]], tools: ToolTable | None = None) -> tuple[str, ...]:
    """The tool names to report for some ``tool_calls`` histograms.

    The table's names first, in order (so the six always have a row), then any other name the
    histograms hold (a tool of a custom table), in first-seen order.

    Args:
        histograms: ``info["tool_calls"]``-shaped mappings.
        tools: The table (default: :data:`DEFAULT_TOOLS`).

    Returns:
        The names.
    """
    names = dict.fromkeys((tools or DEFAULT_TOOLS).names)
    for histogram in histograms:
        names.update(dict.fromkeys(histogram))
    return tuple(names)


DEFAULT_TOOLS = ToolTable(
    [
        Tool(
            ADD_MEMORY,
            "Store a piece of information in long-term memory so it can be retrieved later. "
            "Returns the new memory's id.",
            {
                "content": {"type": "string", "description": "The information to store, self-contained."},
                "metadata": {"type": "object", "description": 'Optional tags, e.g. {"topic": "geography"}.'},
                "memory_type": {
                    "type": "string",
                    "description": "Optional kind of memory, e.g. 'knowledge', 'user_info', 'preference', "
                    "'chat_info', 'task_pipeline'.",
                },
            },
            ("content",),
            handler=handlers.add_memory,
            touches=frozenset({"ltm_write"}),
        ),
        Tool(
            UPDATE_MEMORY,
            f"Replace the content of an existing memory (id from {ADD_MEMORY} or {RETRIEVE_MEMORY}); "
            "metadata is merged.",
            {
                "memory_id": {"type": "string", "description": "Id of the memory, e.g. 'mem_3fa2c1d0'."},
                "content": {"type": "string", "description": "The new content; replaces the old one."},
                "metadata": {"type": "object", "description": "Tags to merge into the memory's metadata."},
            },
            ("memory_id", "content"),
            handler=handlers.update_memory,
            touches=frozenset({"ltm_write"}),
            memory_ids=("memory_id",),
        ),
        Tool(
            DELETE_MEMORY,
            "Permanently delete a memory that is wrong or no longer useful. Requires confirmation=true.",
            {
                "memory_id": {"type": "string", "description": "Id of the memory to delete."},
                "confirmation": {"type": "boolean", "description": "Must be true to delete."},
            },
            ("memory_id", "confirmation"),
            handler=handlers.delete_memory,
            touches=frozenset({"ltm_write"}),
            aliases={"confirmed": "confirmation"},
            memory_ids=("memory_id",),
        ),
        Tool(
            RETRIEVE_MEMORY,
            "Search long-term memory and add the most relevant memories (with their ids) to the context.",
            {
                "query": {"type": "string", "description": "What to look for."},
                "top_k": {"type": "integer", "description": "How many memories to return (default 3)."},
                "metadata_filter": {
                    "type": "object",
                    "description": 'Only memories whose metadata has these exact values, e.g. {"type": "knowledge"}.',
                },
            },
            ("query",),
            handler=handlers.retrieve_memory,
            touches=frozenset({"ltm_read"}),
        ),
        Tool(
            SUMMARY_CONTEXT,
            "Replace a span of the conversation with a short summary to save tokens.",
            {
                "span": {
                    "type": "string",
                    "description": "'all' for every message, 'N' for the last N messages, or 'a-b' for "
                    "messages a to b (1-based, system prompt excluded).",
                }
            },
            ("span",),
            handler=handlers.summary_context,
            touches=frozenset({"context"}),
            value_aliases={"span": {"full": "all"}},
            # what the handler's span parser accepts, so a constrained turn never writes another span
            patterns={"span": "^(all|full|[0-9]{1,6}|[0-9]{1,6}-[0-9]{1,6})$"},
        ),
        Tool(
            FILTER_CONTEXT,
            "Remove messages from the context that match a description of content to remove.",
            {"criteria": {"type": "string", "description": "Description of the content to remove."}},
            ("criteria",),
            handler=handlers.filter_context,
            touches=frozenset({"context"}),
        ),
    ]
)
"""The paper's six tools, in the paper's order (three LTM tools, then three STM tools)."""

TOOL_NAMES = DEFAULT_TOOLS.names
LTM_TOOLS = DEFAULT_TOOLS.touching("ltm_write")
STM_TOOLS = tuple(n for n in TOOL_NAMES if n not in LTM_TOOLS)
TOOL_SCHEMAS: tuple[dict[str, Any], ...] = tuple(DEFAULT_TOOLS.schemas())
