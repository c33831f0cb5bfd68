"""BabyAI as text: action names, the egocentric 7×7 view, and a map of the whole level.

Minigrid encodes each visible cell as ``(object, colour, state)``; the agent sits at column
3, row 6 of its view, facing row 0. Positions are given relative to the agent: "2 ahead
and 1 to the left". Walls and empty floor are not listed; what blocks the way ahead is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import numpy as np

__all__ = ["ACTION_NAMES", "parse_action", "describe_view", "describe_layout", "object_phrase", "offset_phrase"]

# minigrid's Actions enum, in order: left, right, forward, pickup, drop, toggle, done
ACTION_NAMES = ("turn left", "turn right", "go forward", "pick up", "drop", "toggle", "done")
_ALIASES = {
    "left": 0,
    "turn left": 0,
    "rotate left": 0,
    "right": 1,
    "turn right": 1,
    "rotate right": 1,
    "forward": 2,
    "go forward": 2,
    "move forward": 2,
    "move": 2,
    "pick up": 3,
    "pickup": 3,
    "pick": 3,
    "drop": 4,
    "put down": 4,
    "toggle": 5,
    "open": 5,
    "done": 6,
}
_OBJECTS = ("unseen", "empty", "wall", "floor", "door", "key", "ball", "box", "goal", "lava", "agent")
_COLORS = ("red", "green", "blue", "purple", "yellow", "grey")
_DOOR_STATES = ("open", "closed", "locked")
_SKIP = {"unseen", "empty", "wall", "floor", "agent"}
_PASSABLE = {"empty", "floor", "goal"}


def parse_action(text: str) -> int | None:
    """An action index from text ("turn left", "Go forward.", "pickup"...), or ``None``.

    Example:
        >>> parse_action("Go forward."), parse_action("PICKUP"), parse_action("jump")
        (2, 3, None)
    """
    key = " ".join(re.sub(r"[^a-z ]", " ", text.lower()).split())
    return _ALIASES.get(key)


def object_phrase(obj: str, color: str, state: int = 0) -> str:
    """``("door", "red", 1)`` → ``"a closed red door"``; ``("key", "blue")`` → ``"a blue key"``."""
    if obj == "door":
        return f"an open {color} door" if state == 0 else f"a {_DOOR_STATES[state]} {color} door"
    return f"a {color} {obj}"


def offset_phrase(forward: int, right: int) -> str:
    """Where a cell is relative to the agent: ``(2, -1)`` → ``"2 ahead and 1 to the left"``."""
    parts = []
    if forward:
        parts.append(f"{forward} ahead" if forward > 0 else f"{-forward} behind")
    if right:
        parts.append(f"{right} to the right" if right > 0 else f"{-right} to the left")
    return " and ".join(parts) if parts else "where you stand"


def _cell(image: np.ndarray, x: int, y: int) -> tuple[str, str, int]:
    obj, color, state = (int(v) for v in image[x, y])
    return _OBJECTS[obj], _COLORS[color] if color < len(_COLORS) else "grey", state


def describe_view(image: np.ndarray, carrying: Any = None) -> str:
    """The egocentric view as sentences: what is ahead, the open space, objects seen, what is carried.

    Args:
        image: Minigrid's ``obs["image"]`` (7×7×3, indexed ``[x, y]``).
        carrying: The object the agent holds (``env.carrying``) or ``None``.

    Returns:
        E.g. ``"Ahead: a closed red door. Open floor ahead: 0 cells. You see: a green ball 2 ahead
        and 1 to the left. You carry nothing."``
    """
    width, height = image.shape[0], image.shape[1]
    ax, ay = width // 2, height - 1
    obj, color, state = _cell(image, ax, ay - 1)
    ahead = "empty floor" if obj in _PASSABLE else ("a wall" if obj == "wall" else object_phrase(obj, color, state))
    if obj == "unseen":
        ahead = "something you cannot see"
    free = 0
    for y in range(ay - 1, -1, -1):
        name, _, door_state = _cell(image, ax, y)
        if not (name in _PASSABLE or (name == "door" and door_state == 0)):
            break
        free += 1
    seen = []
    for x in range(width):
        for y in range(height):
            name, color, state = _cell(image, x, y)
            if name in _SKIP or (x, y) == (ax, ay):
                continue
            seen.append(
                (
                    abs(ay - y) + abs(x - ax),
                    x,
                    y,
                    f"{object_phrase(name, color, state)} {offset_phrase(ay - y, x - ax)}",
                )
            )
    listed = "; ".join(item[-1] for item in sorted(seen)) or "no objects"
    held = f"a {carrying.color} {carrying.type}" if carrying is not None else "nothing"
    return f"Ahead: {ahead}. Open floor ahead: {free} cells. You see: {listed}. You carry {held}."


def _cells(grid: Any) -> Iterable[tuple[int, int, Any]]:
    for j in range(grid.height):
        for i in range(grid.width):
            cell = grid.get(i, j)
            if cell is not None and cell.type not in _SKIP:
                yield i, j, cell


def describe_layout(env: Any) -> str:
    """Every object and door of a level, relative to the agent's current position and heading.

    Args:
        env: An unwrapped minigrid env, just reset.

    Returns:
        E.g. ``"a green ball 3 ahead and 1 to the left; a closed red door 5 to the right"``,
        nearest first.
    """
    ax, ay = (int(v) for v in env.agent_pos)
    dx, dy = (int(v) for v in env.dir_vec)
    items = []
    for i, j, cell in _cells(env.grid):
        rx, ry = i - ax, j - ay
        forward, right = rx * dx + ry * dy, rx * -dy + ry * dx  # minigrid's right_vec is (-dy, dx)
        state = 0 if cell.type != "door" else (2 if cell.is_locked else (0 if cell.is_open else 1))
        items.append(
            (
                abs(forward) + abs(right),
                j,
                i,
                f"{object_phrase(cell.type, cell.color, state)} {offset_phrase(forward, right)}",
            )
        )
    return "; ".join(item[-1] for item in sorted(items)) or "no objects"
