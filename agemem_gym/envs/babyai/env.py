"""``AgeMem/BabyAI-v0``: minigrid's BabyAI levels played through a text view, with memory."""

from __future__ import annotations

import contextlib
import io
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from agemem_gym.envs.babyai.text import ACTION_NAMES, describe_layout, describe_view, parse_action
from agemem_gym.error import InvalidConfig, missing_dependency
from agemem_gym.interactive import InteractiveMemoryEnv, WorldStep
from agemem_gym.seeding import stable_seed
from agemem_gym.task import Task

__all__ = ["BabyAIEnv", "DEFAULT_LEVELS"]

DEFAULT_LEVELS = ("GoToLocal", "PickupLoc", "PutNextLocal", "GoTo", "Open")
_SEED_TRIES = 64  # seeds tried per task for one whose expert solution fits in max_world_steps
_TASK_CACHE = 256


def _import_minigrid() -> tuple[Any, Any]:
    try:
        import gymnasium as gym
        import minigrid  # noqa: F401  (registers the BabyAI-* ids)
        from minigrid.utils.baby_ai_bot import BabyAIBot
    except ImportError as exc:
        raise missing_dependency("minigrid", "envs") from exc
    return gym, BabyAIBot


def _quiet_reset(env: Any, seed: int) -> dict[str, Any]:
    # level generation prints "Sampling rejected: unreachable object at ..." to stdout
    with contextlib.redirect_stdout(io.StringIO()):
        obs, _ = env.reset(seed=seed)
    return obs


def _walkthrough_message(level: str, seed: int, mission: str, actions: list[int]) -> tuple[str, str]:
    """A recorded run as a Stage-1 message, and its line of moves (one action name per step)."""
    moves = "; ".join(ACTION_NAMES[a] for a in actions)
    message = (
        f"Earlier visit to maze {seed} ({level}) with the mission '{mission}'. "
        f"These moves from the start accomplished it:\n{moves}"
    )
    return message, moves


class BabyAIEnv(InteractiveMemoryEnv):
    """BabyAI grid-world missions (minigrid) as text, with memory tools.

    ## Description

    Each task is one BabyAI level instance (a level name and a minigrid seed; the seed is
    also the maze's name, e.g. "maze 4821377"). Seeds whose expert solution
    (minigrid's ``BabyAIBot``) does not fit in ``max_world_steps`` are skipped, so every task
    is solvable within the step budget.

    * **Stage 1** (prior material worth storing), in an order fixed per task: notes on this
      maze (every object and door, relative to where the agent starts); the moves that
      solved this very mission in this maze on an earlier visit (one ``;``-separated line
      of action names, replayable); and ``num_other_walkthroughs`` walkthroughs of other
      mazes of the same level, which compete for retrieval.
    * **Stage 2**: ``num_distractors`` unrelated casual messages.
    * **Stage 3**: the mission (pinned) and the egocentric 7×7 view rendered as text after
      every action (what is ahead, the open floor ahead, the objects seen with their
      offsets, what the agent carries), with the valid actions. Memory tool calls do not
      move the world but spend a round.

    ``plain=True`` skips Stages 1 and 2 (the mission alone, memory tools available: the
    paper's zero-shot setting). ``Task.facts`` (for memory quality) are the maze notes and
    the winning moves.

    ## Action Space

    One assistant turn as text: ``<think>…</think>`` then one of ``<tool_call>[…]</tool_call>``,
    ``<answer>…</answer>`` (in Stage 3 it ends the episode) or ``<action>…</action>`` with one
    of ``turn left``, ``turn right``, ``go forward``, ``pick up``, ``drop``, ``toggle``,
    ``done`` (case and punctuation ignored; ``left``, ``forward``, ``pickup``, ``open`` are
    accepted too). Any other action does nothing and counts as an invalid call.

    ## Observation Space

    The packed context as chat messages; Stage-3 observations are the text view above.

    ## Rewards

    The paper's trajectory reward on the last step, with ``task_score`` = success (1 when
    the mission is accomplished). ``info["minigrid_reward"]`` keeps minigrid's own
    ``1 - 0.9 * steps / max_steps``.

    ## Starting State

    The system prompt and the first Stage-1 message (the mission and first view with
    ``plain=True``). Tasks are drawn with ``np_random`` or pinned with
    ``reset(options={"task_id": index or id})`` (ids like ``"GoToLocal/4821377"`` are listed
    in ``env.unwrapped.task_ids``).

    ## Episode End

    Terminated when the mission succeeds or fails for good, when the agent answers in
    Stage 3, or after ``max_rounds`` turns without acting; truncated after
    ``max_world_steps`` actions (or minigrid's own step limit). ``info`` then holds
    ``success``, ``task_score`` and ``minigrid_reward``.

    ## Arguments

    * ``level``: a BabyAI level name (``"GoToLocal"``, ``"BossLevel"``...; any
      ``BabyAI-<level>-v0`` minigrid registers) or a sequence of them (tasks cycle through
      the levels). Default: GoToLocal, PickupLoc, PutNextLocal, GoTo, Open.
    * ``num_tasks``: size of the task panel (default 1000).
    * ``num_other_walkthroughs``: other mazes' walkthroughs in Stage 1 (default 2).
    * ``plain``, ``max_world_steps`` (default 64), ``show_valid_actions`` (see
      :class:`~agemem_gym.interactive.InteractiveMemoryEnv`) and every
      :class:`~agemem_gym.core.MemoryEnv` argument.

    ## Registered Configurations

    * ``AgeMem/BabyAI-v0``: the five default levels, 64 steps.
    * ``AgeMem/BabyAI-GoToLocal-v0``, ``AgeMem/BabyAI-PickupLoc-v0``,
      ``AgeMem/BabyAI-PutNextLocal-v0``: one level each, 64 steps.
    * ``AgeMem/BabyAI-BossLevel-v0``: the hardest level, 128 steps.

    ## Version History

    * v0: initial release.
    """

    # the minigrid world and its bot are pickled together (the bot holds the world)
    _snapshot_fields: ClassVar[tuple[str, ...]] = (
        "_world",
        "_bot",
        "_obs",
        "_suggested",
        "_last_taken",
        "_won",
        "_minigrid_reward",
    )
    task_note: ClassVar[str] = (
        "In the grid world, act with exactly one of: " + ", ".join(ACTION_NAMES) + ", e.g. <action>turn left</action>."
    )

    def __init__(
        self,
        level: str | Sequence[str] = DEFAULT_LEVELS,
        num_tasks: int = 1000,
        num_other_walkthroughs: int = 2,
        max_world_steps: int = 64,
        **kwargs: Any,
    ) -> None:
        gym, self._bot_cls = _import_minigrid()
        self.levels = (level,) if isinstance(level, str) else tuple(level)
        if not self.levels:
            raise InvalidConfig("level must name at least one BabyAI level")
        for name in self.levels:
            if f"BabyAI-{name}-v0" not in gym.registry:
                known = sorted(k[len("BabyAI-") : -len("-v0")] for k in gym.registry if k.startswith("BabyAI-"))
                raise InvalidConfig(f"unknown BabyAI level {name!r}; minigrid registers: {', '.join(known)}")
        if not isinstance(num_tasks, int) or num_tasks < 1:
            raise InvalidConfig(f"num_tasks must be a positive int, got {num_tasks!r}")
        if not isinstance(num_other_walkthroughs, int) or num_other_walkthroughs < 0:
            raise InvalidConfig(f"num_other_walkthroughs must be an int >= 0, got {num_other_walkthroughs!r}")
        self.num_tasks = num_tasks
        self.num_other_walkthroughs = num_other_walkthroughs
        self._levels: dict[str, Any] = {}  # level name -> unwrapped minigrid env (the world)
        self._scratch: dict[str, Any] = {}  # level name -> env used to record walkthroughs
        self._tasks: OrderedDict[int, Task] = OrderedDict()
        self._world: Any = None
        self._bot: Any = None
        super().__init__(max_world_steps=max_world_steps, **kwargs)

    # ================================================================ engines
    def _engine(self, pool: dict[str, Any], level: str) -> Any:
        if level not in pool:
            gym, _ = _import_minigrid()
            pool[level] = gym.make(f"BabyAI-{level}-v0").unwrapped
        return pool[level]

    def _walkthrough(self, level: str, seed: int) -> tuple[str, str, list[int], bool]:
        """Play the expert on a scratch copy: (mission, layout at the start, actions, solved)."""
        env = self._engine(self._scratch, level)
        obs = _quiet_reset(env, seed)
        layout = describe_layout(env)
        bot = self._bot_cls(env)
        actions: list[int] = []
        solved = False
        for _ in range(self.max_world_steps):
            action = int(bot.replan())
            actions.append(action)
            _, reward, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                solved = bool(terminated and reward > 0)
                break
        return str(obs["mission"]), layout, actions, solved

    # ================================================================ tasks
    def _num_tasks(self) -> int:
        return self.num_tasks

    def _level_and_seed(self, index: int) -> tuple[str, int]:
        level = self.levels[index % len(self.levels)]
        return level, 1_000_000 + stable_seed("babyai", level, index // len(self.levels)) % 9_000_000

    def _task_key(self, index: int) -> str:
        level, seed = self._level_and_seed(index)
        return f"{level}/{seed}"

    def _make_task(self, index: int) -> Task:
        if index in self._tasks:
            self._tasks.move_to_end(index)
            return self._tasks[index]
        level, first = self._level_and_seed(index)
        seed, (mission, layout, actions, solved) = first, self._walkthrough(level, first)
        for offset in range(1, _SEED_TRIES):  # skip seeds the expert cannot solve within the budget
            if solved:
                break
            seed = first + offset
            mission, layout, actions, solved = self._walkthrough(level, seed)
        walkthrough, moves = _walkthrough_message(level, seed, mission, actions)
        notes = f"Notes on maze {seed} ({level}), as seen from where you start, facing the way you start: {layout}."
        material = [notes, walkthrough] + self._other_walkthroughs(level, seed)
        order = np.random.default_rng(stable_seed("babyai-material", level, seed)).permutation(len(material))
        task = Task(
            task_id=self._task_key(index),  # the panel's key, even when a later seed was used
            query=f"You are back in maze {seed} ({level}). Your mission: {mission}.",
            material=tuple(material[i] for i in order),
            facts=(notes, moves),
            extra={"level": level, "seed": seed, "mission": mission, "expert_steps": len(actions)},
        )
        self._tasks[index] = task
        if len(self._tasks) > _TASK_CACHE:
            self._tasks.popitem(last=False)
        return task

    def _other_walkthroughs(self, level: str, seed: int) -> list[str]:
        out = []
        for j in range(self.num_other_walkthroughs):
            other = 1_000_000 + stable_seed("babyai-other", level, seed, j) % 9_000_000
            mission, _, actions, solved = self._walkthrough(level, other)
            if solved:
                out.append(_walkthrough_message(level, other, mission, actions)[0])
        return out

    # ================================================================ world
    def _world_reset(self, task: Task) -> str:
        self._world = self._engine(self._levels, task.extra["level"])
        self._obs = _quiet_reset(self._world, task.extra["seed"])
        self._bot = self._bot_cls(self._world)
        self._suggested: int | None = None
        self._last_taken: int | None = None
        self._won = False
        self._minigrid_reward = 0.0
        return describe_view(self._obs["image"], self._world.carrying)

    def _valid_actions(self) -> list[str] | None:
        return list(ACTION_NAMES)

    def _world_step(self, action: str) -> WorldStep:
        index = parse_action(action)
        if index is None:
            self._reject(f"[action error] unknown action {action[:60]!r}; use one of: {', '.join(ACTION_NAMES)}.")
            return WorldStep("Nothing happens. " + describe_view(self._obs["image"], self._world.carrying))
        if self.config.privileged_info:
            self._expert_action()  # keep the expert in step with every world state it is asked about
        before = (tuple(self._world.agent_pos), self._world.carrying)
        self._obs, reward, terminated, truncated, _ = self._world.step(index)
        # the bot wants the action only when it differs from its own suggestion
        self._last_taken = None if index == self._suggested else index
        self._suggested = None
        self._won = bool(terminated and reward > 0)
        self._minigrid_reward = float(reward)
        text = f"{self._feedback(index, before)} {describe_view(self._obs['image'], self._world.carrying)}"
        if self._won:
            text += " Mission accomplished."
        return WorldStep(text, done=bool(terminated or truncated), success=self._won, score=float(self._won))

    def _feedback(self, index: int, before: tuple[tuple[int, int], Any]) -> str:
        pos, held = before
        if index == 2:
            return "You moved forward." if tuple(self._world.agent_pos) != pos else "You cannot move forward."
        if index == 3:
            picked = self._world.carrying
            return (
                f"You picked up a {picked.color} {picked.type}." if held is None and picked else "Nothing to pick up."
            )
        if index == 4:
            return "You dropped it." if held is not None and self._world.carrying is None else "Nothing to drop."
        return {0: "You turned left.", 1: "You turned right.", 5: "You toggled what is ahead.", 6: "Nothing happens."}[
            index
        ]

    def _world_grade(self) -> dict[str, Any]:
        return {"task_score": float(self._won), "success": float(self._won), "minigrid_reward": self._minigrid_reward}

    def _expert_action(self) -> str | None:
        if self._bot is None or self._won:
            return None
        if self._suggested is None:
            from minigrid.utils.baby_ai_bot import DisappearedBoxError

            try:
                self._suggested = int(self._bot.replan(self._last_taken))
            except (DisappearedBoxError, AssertionError):  # the agent made the mission impossible for the bot
                self._bot = None
                return None
        return ACTION_NAMES[self._suggested]

    def _world_close(self) -> None:
        for pool in (self._levels, self._scratch):
            for env in pool.values():
                env.close()
            pool.clear()
        self._world = self._bot = None
