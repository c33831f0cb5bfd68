"""One ALFWorld game engine: TextWorld's PDDL backend with ALFWorld's object names.

ALFWorld's own ``AlfredTWEnv`` and ``AlfredExpert`` need the ALFRED ``traj_data.json`` files
next to each game; the game files alone are enough for TextWorld's PDDL backend
(``textworld.envs.pddl.PddlEnv``) wrapped in ALFWorld's ``AlfredDemangler`` (which turns
PDDL ids into "bowl 1"). Both are deterministic: the same game and commands give the same
text in every run and process (object numbers come from sorted ids; the text grammar
has no random choices).

Costs (measured on 2 busy cores): loading a game 0.7–1.9 s and, in TextWorld, every reset
as much again: both translate the PDDL problem to Fast Downward's SAS format (twice: once
for the simulator, once for the planner). The translation depends only on the domain and
problem text, so the engine memoises it for the loaded game while it calls TextWorld: a
reset of the loaded game then takes a median 0.19 s instead of 1.6 s
(``benchmarks/bench_engine_speed.py``). A step costs 0.05–0.4 s (TextWorld derives every
admissible command after each one).

Two things the engine guards against: Fast Downward's translator overwrites ``sys.argv``
(the engine puts it back), and each TextWorld PDDL environment loads its own copy of Fast
Downward's shared library, which cannot be unloaded (it stays mapped until the process
exits, 3–10 MB each): reuse one engine for many games (``load``) instead of creating one per
game.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator, Mapping
from typing import Any

from agemem_gym.error import missing_dependency

__all__ = ["ALFWorldEngine", "require_alfworld"]

_BANNER = "-= Welcome to TextWorld, ALFRED! =-"
_DISTRIBUTIONS = {"fast_downward": "fast-downward-textworld"}  # import name -> what pip installs


def require_alfworld() -> tuple[Any, Any, Any]:
    """Import TextWorld's PDDL backend and ALFWorld's demangler (called at construction).

    Returns:
        ``(textworld, PddlEnv, AlfredDemangler)``.

    Raises:
        DependencyNotInstalled: Naming the extra to install.
    """
    # Importing alfworld creates $ALFWORLD_DATA (default ~/.cache/alfworld) as a side effect;
    # we read nothing from it, so point it at a scratch folder unless the user set it.
    os.environ.setdefault("ALFWORLD_DATA", os.path.join(tempfile.gettempdir(), "agemem-gym-alfworld"))
    try:
        import fast_downward  # noqa: F401  (textworld's PDDL backend degrades silently without it)
        import textworld
        from alfworld.agents.environment.alfred_tw_env import AlfredDemangler
        from textworld.envs.pddl.pddl import PddlEnv
    except ImportError as exc:
        module = (getattr(exc, "name", None) or "alfworld").split(".")[0]
        raise missing_dependency(_DISTRIBUTIONS.get(module, module), "envs") from exc
    return textworld, PddlEnv, AlfredDemangler


class _MemoisedTranslation:
    """Stands in for the ``fast_downward`` module inside TextWorld's PDDL logic during our calls.

    ``pddl2sas`` is a pure function of its text arguments; results are kept for one game.
    """

    def __init__(self, module: Any) -> None:
        self._module = module
        self._cache: dict[tuple[str, str, bool], Any] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)

    def pddl2sas(self, domain: str, problem: str, verbose: bool = False, optimize: bool = False) -> Any:
        key = (domain, problem, bool(optimize))
        if key not in self._cache:
            self._cache[key] = self._module.pddl2sas(domain, problem, verbose=verbose, optimize=optimize)
        return self._cache[key]

    def forget(self) -> None:
        self._cache.clear()


class ALFWorldEngine:
    """A TextWorld PDDL environment that plays one ALFWorld game at a time."""

    def __init__(self) -> None:
        textworld, pddl_env, demangler = require_alfworld()
        import fast_downward
        from textworld.envs.pddl import logic

        infos = textworld.EnvInfos(admissible_commands=True, won=True)
        self._logic = logic
        self._translation = _MemoisedTranslation(fast_downward)
        with self._calling():
            self._env: Any = demangler(pddl_env(infos))
        self._state: Any = None

    @contextlib.contextmanager
    def _calling(self) -> Iterator[None]:
        """Memoise the PDDL translation and keep ``sys.argv`` intact while TextWorld runs."""
        argv = sys.argv
        original = getattr(self._logic, "fast_downward", None)
        if original is not None:
            self._logic.fast_downward = self._translation
        try:
            yield
        finally:
            if original is not None:
                self._logic.fast_downward = original
            sys.argv = argv

    def load(self, game: Mapping[str, Any]) -> None:
        """Load a game (the content of a ``game.tw-pddl`` file)."""
        self._translation.forget()
        with self._calling():
            self._env.load(dict(game))
        self._state = None

    def reset(self) -> str:
        """Start the loaded game; return the room description (without banner and task line)."""
        with self._calling():
            self._state = self._env.reset()
        text = str(self._state.feedback).replace(_BANNER, "")
        return text.split("Your task is to:", 1)[0].strip()

    def step(self, command: str) -> tuple[str, bool, bool]:
        """Apply one command (anything not admissible: "Nothing happens.").

        Returns:
            The text, ``won``, and whether the command changed the world (ignoring the
            ``checked`` facts that ``look``, ``inventory`` and ``examine`` set).
        """
        before = self._world_facts()
        self._state, _, _ = self._env.step(command)
        after = self._world_facts()
        changed = before is None or after is None or before != after
        return str(self._state.feedback).strip(), bool(self._state["won"]), changed

    def _world_facts(self) -> frozenset[Any] | None:
        facts = None if self._state is None else self._state.get("_facts")
        if facts is None:  # another TextWorld version: treat every command as a change
            return None
        return frozenset(f for f in facts if f.name != "checked")

    def admissible(self) -> list[str]:
        """The admissible commands now (sorted)."""
        return list(self._state["admissible_commands"]) if self._state is not None else []

    @property
    def won(self) -> bool:
        """Whether the goal holds now."""
        return bool(self._state is not None and self._state["won"])

    def replan(self) -> list[str]:
        """A Fast Downward plan from the current state (empty when none is found)."""
        pddl = self._env.unwrapped
        return [str(c) for c in pddl._pddl_state.replan(pddl._entity_infos)]

    def close(self) -> None:
        """Release the game (the planner library copy stays mapped, see the module docstring)."""
        if self._env is not None:
            self._env.close()
        self._env = self._state = None
        self._translation.forget()
