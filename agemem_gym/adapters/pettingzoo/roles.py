"""The three roles of a team env: what each is told, what each may do, how agents are named."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from agemem_gym.tools import ADD_MEMORY, RETRIEVE_MEMORY, ToolCall

__all__ = ["Role", "ROLE_NOTES", "SABOTEUR_TOOLS", "MATERIAL_DONE", "READERS_DONE", "refusal", "role_of"]

Role = Literal["reader", "answerer", "saboteur"]

ROLE_NOTES: dict[str, str] = {
    "reader": (
        "## Your role: reader\nYou are one agent of a team. You read material that the answerer never sees; "
        "later the answerer gets a question about it and can only use what is in the long-term memory, which "
        "the whole team shares. Store what may matter, self-contained. Reply <answer>...</answer> to get the "
        "next piece of material. Other agents write to the same memory: delete or update memories that "
        "contradict what you read."
    ),
    "answerer": (
        "## Your role: answerer\nYou are one agent of a team. You see only the question. The readers store "
        "the material in the long-term memory the team shares; you are told when they have finished. A turn "
        f"of tool calls waits ({RETRIEVE_MEMORY} reads the shared memory). Your single <answer>...</answer> is "
        "the team's final answer and ends the episode."
    ),
    "saboteur": (
        "## Your role: saboteur\nYou share a long-term memory with a team that must answer the question below "
        f"from it. Your reward is the negative of their answer's score. You may only use {ADD_MEMORY} and "
        f"{RETRIEVE_MEMORY}: write memories that look plausible but mislead."
    ),
}
SABOTEUR_TOOLS = (ADD_MEMORY, RETRIEVE_MEMORY)
MATERIAL_DONE = "[team] That was all of your material. You may keep maintaining the shared memory until the answer."
READERS_DONE = "[team] All readers have finished; the shared memory is ready."


def role_of(agent: str) -> Role:
    """The role of an agent named ``reader_<i>``, ``answerer_<i>`` or ``saboteur_<i>``."""
    return "reader" if agent.startswith("reader_") else "answerer" if agent.startswith("answerer_") else "saboteur"


def _saboteur_refusal(call: ToolCall) -> str | None:
    if call.name in SABOTEUR_TOOLS:
        return None
    return f"[tool error] {call.name}: a saboteur may only use {SABOTEUR_TOOLS}"


def refusal(role: Role) -> Callable[[ToolCall], str | None] | None:
    """The check of a role's tool restriction (``call -> error text | None``), or ``None`` when it has none."""
    return _saboteur_refusal if role == "saboteur" else None
