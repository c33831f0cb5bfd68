"""``AgeMem/ALFWorld-v0``: ALFWorld household tasks (TextWorld PDDL games) with memory tools."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, ClassVar

from agemem_gym.envs.alfworld.engine import ALFWorldEngine, require_alfworld
from agemem_gym.envs.alfworld.games import TASK_TYPES, Game, find_games, game_data, game_details, load_sample
from agemem_gym.error import InvalidConfig
from agemem_gym.interactive import InteractiveMemoryEnv, WorldStep
from agemem_gym.seeding import stable_seed
from agemem_gym.task import Task

__all__ = ["ALFWorldEnv"]

_PRIORS = ("same", "related")
_STEPS_PER_LINE = 3


def _step_lines(commands: Sequence[str]) -> list[str]:
    """Commands as lines of a few ``;``-separated commands (each line is one gold fact)."""
    return ["; ".join(commands[i : i + _STEPS_PER_LINE]) for i in range(0, len(commands), _STEPS_PER_LINE)]


def _interleave(games: list[Game]) -> list[Game]:
    """Round-robin over task types (each in path order), so a prefix covers every type."""
    by_type: dict[str, list[Game]] = {}
    for g in games:
        by_type.setdefault(g.task_type, []).append(g)
    queues = [by_type[t] for t in sorted(by_type)]
    out: list[Game] = []
    for i in range(max(len(q) for q in queues)):
        out += [q[i] for q in queues if i < len(q)]
    return out


class ALFWorldEnv(InteractiveMemoryEnv):
    """ALFWorld household tasks (Shridhar et al., 2021) as text games, with memory tools.

    ## Description

    Each task is one ALFWorld game (a room, objects in it, and a goal such as "clean some
    bowl and put it in cabinet"), played through TextWorld's PDDL backend with ALFWorld's
    object names; one engine per env is reused across resets.

    * **Stage 1** (prior material worth storing), in an order fixed per task: notes from an
      earlier visit to this same room with the same chore (the game file's walkthrough, a
      few ``;``-separated commands per line), and a friend's walkthrough of another game of
      the same task type in another room (it competes for retrieval and only partly
      transfers: same recipe, other places). With ``prior="related"`` only the friend's
      walkthrough is shown (a transfer setting).
    * **Stage 2**: ``num_distractors`` unrelated casual messages.
    * **Stage 3**: the goal (pinned), the room description, then one ``<action>`` per
      turn; every observation lists the admissible commands. Memory tool calls do not
      advance the game but spend a round.

    ``plain=True`` skips Stages 1 and 2 (the task alone with the memory tools: the paper's
    zero-shot setting). ``Task.facts`` (for memory quality) are the walkthrough lines Stage 1
    shows: this game's (``prior="same"``) or the friend's.

    By default the panel is the bundled sample: 18 games of the ``valid_unseen`` split,
    three per task type (pick and place, examine in light, clean, heat, cool, pick two).
    ``data_dir=`` reads any folder of ``game.tw-pddl`` files, e.g. the full ``valid_unseen``
    (134 games, AgentBoard's and ReAct's test set) or ``valid_seen`` (140).

    ## Action Space

    One assistant turn as text: ``<think>…</think>`` then one of ``<tool_call>[…]</tool_call>``,
    ``<answer>…</answer>`` (in Stage 3 it ends the episode) or ``<action>…</action>`` with a
    command (``go to countertop 1``, ``take bowl 1 from countertop 1``, ``clean bowl 1 with
    sinkbasin 1``...). A command that is not admissible does nothing ("Nothing happens.").

    ## Observation Space

    The packed context as chat messages; Stage-3 observations are the game's text followed
    by ``Valid actions: ...`` (also in ``info["valid_actions"]``).

    ## Rewards

    The paper's trajectory reward on the last step, with the task score = 1 when the goal
    holds (ALFWorld's success), else 0.

    ## Starting State

    The system prompt and the first Stage-1 message (or, with ``plain=True``, the goal and
    the room). The game is drawn from the panel with ``np_random`` or pinned with
    ``reset(options={"task_id": index or game name})``.

    ## Episode End

    Terminated when the goal holds, when the agent answers in Stage 3, or after
    ``max_rounds`` Stage-3 turns without an action; truncated after ``max_world_steps``
    commands (ALFWorld's usual 50).

    ## Arguments

    * ``data_dir``: a folder of ALFWorld ``game.tw-pddl`` files (searched recursively);
      default: the bundled sample (MIT).
    * ``task_types``: keep only these task types (see ``games.TASK_TYPES``).
    * ``num_tasks``: keep the first N games after interleaving the task types.
    * ``prior``: ``"same"`` or ``"related"`` (see Description).
    * ``replan_expert``: plan the expert action with Fast Downward off the walkthrough (see
      Notes).
    * ``plain``, ``max_world_steps`` (default 50), ``show_valid_actions``,
      ``max_listed_actions`` and every :class:`~agemem_gym.core.MemoryEnv` argument.

    ## Notes

    The engine is deterministic (same game and commands, same text). Pickling drops it; the
    copy rebuilds one on first use and replays the episode's commands. Loading another
    game costs 1–4 s (Fast Downward translates the PDDL problem); a reset of the loaded
    game about 0.2 s (the translation is memoised).

    ``info["privileged"]["expert_action"]`` is the walkthrough's next command while the
    episode follows it (commands that change nothing, such as an inadmissible one or
    ``look``, do not count as leaving it), else ``None``; with ``replan_expert=True`` it is
    then the first command of a Fast Downward plan from the current state. Off by default:
    a plan takes 0.05 s to over a minute (70 s for a pick-two game on 2 cores), and it
    would be computed on every step. Needs ``pip install "agemem-gym[envs]"``.

    ## Registered Configurations

    * ``AgeMem/ALFWorld-v0``: the bundled sample, ``prior="same"``, 50 steps.

    ## Version History

    * v0: initial release.
    """

    # snapshots restore the textworld game by replaying _history (see agemem_gym.snapshot)
    _snapshot_fields: ClassVar[tuple[str, ...]] = ("_game", "_history", "_effective", "_won", "_valid", "_plan")
    _snapshot_replay: ClassVar[bool] = True
    task_note: ClassVar[str] = (
        "In the household, act with one of the valid actions listed after each observation, "
        "e.g. <action>go to countertop 1</action>."
    )

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        task_types: Sequence[str] | None = None,
        num_tasks: int | None = None,
        prior: str = "same",
        replan_expert: bool = False,
        max_world_steps: int = 50,
        **kwargs: Any,
    ) -> None:
        require_alfworld()
        if prior not in _PRIORS:
            raise InvalidConfig(f"prior must be one of {_PRIORS}, got {prior!r}")
        if num_tasks is not None and (not isinstance(num_tasks, int) or num_tasks < 1):
            raise InvalidConfig(f"num_tasks must be a positive int or None, got {num_tasks!r}")
        games = load_sample() if data_dir is None else find_games(data_dir)
        if task_types is not None:
            wanted = {task_types} if isinstance(task_types, str) else set(task_types)
            bad = wanted - set(TASK_TYPES)
            if bad:
                raise InvalidConfig(f"unknown ALFWorld task type(s) {sorted(bad)}; known: {', '.join(TASK_TYPES)}")
            games = [g for g in games if g.task_type in wanted]
            if not games:
                raise InvalidConfig(f"no game of task type(s) {sorted(wanted)} in the panel")
        self.data_dir = None if data_dir is None else str(data_dir)
        self.prior = prior
        self.replan_expert = bool(replan_expert)
        self.games: list[Game] = _interleave(games)[:num_tasks]
        self._pool = games  # related walkthroughs may come from games left out by num_tasks
        self._engine: ALFWorldEngine | None = None
        self._loaded: str | None = None
        self._game: Game | None = None
        self._history: list[str] = []
        self._effective: list[str] = []  # the commands that changed the world
        self._won = False
        self._valid: list[str] | None = None
        self._plan: tuple[int, list[str]] | None = None  # (len(history) when planned, plan)
        self._needs_replay = False
        super().__init__(max_world_steps=max_world_steps, **kwargs)

    # ================================================================ tasks
    def _num_tasks(self) -> int:
        return len(self.games)

    def _task_key(self, index: int) -> str:
        return self.games[index].name

    def _related(self, game: Game) -> Game | None:
        """Another game of the same task type, from another task folder where there is one."""
        same_type = [g for g in self._pool if g.task_type == game.task_type and g != game]
        others = [g for g in same_type if g.folder != game.folder] or same_type
        return others[stable_seed("alfworld-related", game.name) % len(others)] if others else None

    def _make_task(self, index: int) -> Task:
        game = self.games[index]
        goal, walkthrough = game_details(game)
        related = self._related(game)
        notes = (
            f"Notes from an earlier visit to this same room, when I had the same chore ({goal}). "
            "What I did, in order:\n" + "\n".join(_step_lines(walkthrough))
        )
        material, facts = [notes], _step_lines(walkthrough)
        if related is not None:
            r_goal, r_walkthrough = game_details(related)
            friend = (
                f"A friend did a similar chore in another house (their task: {r_goal}). "
                "Their steps, in order:\n" + "\n".join(_step_lines(r_walkthrough))
            )
            if self.prior == "related":
                material, facts = [friend], _step_lines(r_walkthrough)
            else:
                material = [notes, friend] if stable_seed("alfworld-order", game.name) % 2 else [friend, notes]
        elif self.prior == "related":
            material, facts = [], []
        return Task(
            task_id=game.name,
            query=f"Your task is to: {goal}",
            material=tuple(material),
            facts=tuple(facts) or None,
            extra={
                "task_type": game.task_type,
                "walkthrough": walkthrough,
                "related": None if related is None else related.name,
            },
        )

    # ================================================================ world
    def _engine_running(self) -> ALFWorldEngine:
        if self._engine is None:
            self._engine, self._loaded = ALFWorldEngine(), None
        return self._engine

    def _restart(self) -> str:
        """Load the episode's game (when another is loaded) and reset it."""
        engine, game = self._engine_running(), self._game
        assert game is not None
        if self._loaded != game.name:
            engine.load(game_data(game))
            self._loaded = game.name
        return engine.reset()

    def _running(self) -> ALFWorldEngine:
        """The engine, with the current episode restored after unpickling or close()."""
        if self._engine is None or self._needs_replay:
            self._restart()
            for command in self._history:
                self._engine_running().step(command)
            self._needs_replay = False
        assert self._engine is not None
        return self._engine

    def _world_reset(self, task: Task) -> str:
        self._game = self.games[self._id_index()[task.task_id]]
        self._history, self._effective, self._won, self._valid, self._plan = [], [], False, None, None
        self._needs_replay = False
        return self._restart()

    def _world_step(self, action: str) -> WorldStep:
        observation, won, changed = self._running().step(action)
        self._history.append(action)
        if changed:
            self._effective.append(action)
        self._won, self._valid = won, None
        return WorldStep(observation, done=won, success=won, score=float(won))

    def _valid_actions(self) -> list[str] | None:
        if self._game is None:
            return None
        if self._valid is None:
            self._valid = self._running().admissible()
        return self._valid

    def _world_grade(self) -> dict[str, Any]:
        return {"task_score": float(self._won), "success": float(self._won)}

    def _expert_action(self) -> str | None:
        """The walkthrough's next command while the episode follows it, else a plan's first or ``None``."""
        if self._task is None or self._won:
            return None
        walkthrough, k = self._task.extra["walkthrough"], len(self._effective)
        if k < len(walkthrough) and list(walkthrough[:k]) == self._effective:
            return walkthrough[k]
        if not self.replan_expert:
            return None
        if self._plan is None or self._plan[0] != len(self._history):
            self._plan = (len(self._history), self._running().replan())
        return self._plan[1][0] if self._plan[1] else None

    def _world_close(self) -> None:
        if self._engine is not None:
            self._engine.close()
        self._engine, self._loaded = None, None
        self._needs_replay = self._game is not None

    def _snapshot_restored(self) -> None:
        self._needs_replay = self._game is not None  # the next use resets the game and replays

    # ================================================================ pickling
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_engine"], state["_loaded"] = None, None  # the engine holds a C library: the copy replays
        state["_needs_replay"] = self._game is not None
        return state
