"""``AgeMem/SciWorld-v0``: ScienceWorld experiments with memory tools."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from agemem_gym.envs.sciworld.engine import DEFAULT_HEAP_MB, ScienceWorldEngine, require_scienceworld
from agemem_gym.envs.sciworld.panel import (
    DEFAULT_TASKS,
    PanelEntry,
    PanelSpec,
    Variation,
    load_bundled,
    select_entries,
)
from agemem_gym.error import InvalidConfig
from agemem_gym.interactive import InteractiveMemoryEnv, WorldStep
from agemem_gym.seeding import stable_seed
from agemem_gym.task import Task

__all__ = ["SciWorldEnv"]

_PRIORS = ("same", "related")
_STEPS_PER_LINE = 5
# The simulator's action templates, as ScienceWorld agents are usually prompted with them.
_COMMANDS = (
    "look around, look at OBJ, look in OBJ, inventory, task, open OBJ, close OBJ, go to LOC, pick up OBJ, "
    "put down OBJ, move OBJ to OBJ, pour OBJ in OBJ, dunk OBJ in OBJ, mix OBJ, activate OBJ, deactivate OBJ, "
    "use OBJ on OBJ, connect OBJ to OBJ, disconnect OBJ, eat OBJ, flush OBJ, read OBJ, focus on OBJ, wait, wait1"
)


def _goal_line(description: str) -> str:
    """The first sentence of a task description, without "Your task is to"."""
    first = description.strip().split(". ", 1)[0].rstrip(".")
    prefix = "Your task is to "
    return first[len(prefix) :] if first.startswith(prefix) else first


def _step_lines(gold: Sequence[str]) -> list[str]:
    """The gold path as lines of a few ``;``-separated actions (each line is one gold fact)."""
    return ["; ".join(gold[i : i + _STEPS_PER_LINE]) for i in range(0, len(gold), _STEPS_PER_LINE)]


def _walkthrough(v: Variation, same: bool) -> str:
    if same:
        head = (
            "Notes from an earlier run of this very experiment, in this same lab "
            f"(the task: {_goal_line(v.description)}). What I did, in order:"
        )
    else:
        head = (
            f"A friend ran the same kind of experiment in a different setup (their task: "
            f"{_goal_line(v.description)}). Their steps, in order:"
        )
    return "\n".join([head, *_step_lines(v.gold)])


class SciWorldEnv(InteractiveMemoryEnv):
    """ScienceWorld science experiments (Wang et al., 2022) with memory tools.

    ## Description

    Each task is one variation of a ScienceWorld task (``"use-thermometer/503"``); the
    simulator runs in a Java VM that starts when the first episode reaches the world and
    is reused across resets (about 2 s to start; 170–350 MB with the default heap cap).

    * **Stage 1** (prior material worth storing), in an order fixed per task: notes from an
      earlier run of this very experiment in the same world (its gold path, a few
      ``;``-separated actions per line), and a friend's run of the same task in another
      variation (the gold path of a train-split variation, which competes for retrieval
      and only partly transfers). With ``prior="related"`` only the friend's run is shown
      (a transfer setting).
    * **Stage 2**: ``num_distractors`` unrelated casual messages.
    * **Stage 3**: the task description (pinned) and the first observation (``look
      around``), then one ``<action>`` per turn. Memory tool calls do not advance the
      simulator but spend a round.

    ``plain=True`` skips Stages 1 and 2 (the task alone with the memory tools: the paper's
    zero-shot setting). ``Task.facts`` (for memory quality) are the lines of the gold path
    that Stage 1 shows: this variation's (``prior="same"``) or the related one's.

    The default panel is 10 tasks × 3 test variations whose gold paths have at most 40
    actions (chemistry, classification, biology, measurement and electricity tasks; the
    panel and its gold paths ship precomputed); ``tasks=`` (or another ``split``,
    ``variations_per_task``, ``max_gold_steps`` or ``simplifications``) selects another
    panel with the same rule from the simulator, generating gold paths on first use
    (0.1–3 s each; cached per env).

    ## Action Space

    One assistant turn as text: ``<think>…</think>`` then one of ``<tool_call>[…]</tool_call>``,
    ``<answer>…</answer>`` (in Stage 3 it ends the episode) or ``<action>…</action>`` with a
    ScienceWorld command (``open door to kitchen``, ``focus on thermometer``...). The
    command templates are listed in the system prompt. Input the simulator does not
    understand leaves the world unchanged ("No known action matches that input.").

    Valid actions are **not** listed by default: the simulator's list of "valid
    action-object combinations" holds 400–3,000 strings, includes ones its own parser
    rejects ("move apple to sewer") and misses phrasings it accepts (the gold path's "open
    door to hallway"), and costs 20–270 ms per step. ``valid_actions=True`` puts it (sorted)
    into ``info["valid_actions"]`` and, with ``show_valid_actions``, into the observation.

    ## Observation Space

    The packed context as chat messages; Stage-3 observations are the simulator's text.

    ## Rewards

    The paper's trajectory reward on the last step, with the task score = ScienceWorld's
    score / 100 (0 when the task failed). ``info`` then holds ``success`` (score 100),
    ``task_score`` (progress in [0, 1]) and ``sciworld_score`` (−100 to 100).

    ## Starting State

    The system prompt and the first Stage-1 message (or, with ``plain=True``, the task
    and the first observation). The task is drawn from the panel with ``np_random`` or
    pinned with ``reset(options={"task_id": index or "task/variation"})``.

    ## Episode End

    Terminated when the task is solved (score 100) or failed (score −100, e.g. focusing
    on the wrong object), when the agent answers in Stage 3, or after ``max_rounds``
    Stage-3 turns without an action; truncated after ``max_world_steps`` actions.

    ## Arguments

    * ``tasks``: ScienceWorld task names; default: the ten tasks of the bundled panel.
    * ``split``: where the episode variations come from (``"train"``, ``"dev"``, ``"test"``).
    * ``variations_per_task``: variations per task (default 3).
    * ``max_gold_steps``: skip variations whose gold path is longer (default 40).
    * ``prior``: ``"same"`` or ``"related"`` (see Description).
    * ``simplifications``: ScienceWorld simplifications (``"easy"``, ``"openDoors"``...).
    * ``valid_actions``: list the simulator's valid action-object combinations.
    * ``deterministic``: start the JVM so that episodes are reproducible (see below).
    * ``jvm_heap_mb``: the JVM's maximum heap (default 256 MB; the process then stays
      near 350 MB over any number of resets).
    * ``plain``, ``max_world_steps`` (default 60), ``show_valid_actions`` and every
      :class:`~agemem_gym.core.MemoryEnv` argument.

    ## Notes

    **Determinism.** The simulator lists objects in the order of Java hash sets keyed by
    identity hash codes, which differ on every reset; the JVM therefore runs with
    ``-XX:hashCode=2`` (constant identity hashes), which makes every observation
    reproducible (checked on all 28 non-genetics tasks across resets, reloads and
    processes). ``deterministic=False`` drops the flag.

    **Pickling** drops the JVM; the copy starts its own on first use and replays the
    episode's actions to restore the world. ``close()`` shuts the JVM down.

    Needs ``pip install "agemem-gym[envs]"`` and a Java runtime on PATH.

    ## Registered Configurations

    * ``AgeMem/SciWorld-v0``: the default panel, ``prior="same"``, 60 steps.

    ## Version History

    * v0: initial release.
    """

    # snapshots restore the JVM's world by replaying _history (see agemem_gym.snapshot)
    _snapshot_fields: ClassVar[tuple[str, ...]] = ("_entry", "_history", "_score", "_valid")
    _snapshot_replay: ClassVar[bool] = True
    task_note: ClassVar[str] = (
        "In ScienceWorld, act with one command per <action>, e.g. <action>open door to kitchen</action>. "
        f"Commands (OBJ and LOC are things you can see): {_COMMANDS}. 'focus on OBJ' marks the object the task is "
        "about: focusing on the wrong one fails the task."
    )

    def __init__(
        self,
        tasks: Sequence[str] | None = None,
        split: str = "test",
        variations_per_task: int = 3,
        max_gold_steps: int = 40,
        prior: str = "same",
        simplifications: str = "",
        valid_actions: bool = False,
        deterministic: bool = True,
        jvm_heap_mb: int = DEFAULT_HEAP_MB,
        max_world_steps: int = 60,
        **kwargs: Any,
    ) -> None:
        require_scienceworld()
        from scienceworld.constants import ID2TASK

        self.tasks = tuple(DEFAULT_TASKS if tasks is None else ([tasks] if isinstance(tasks, str) else tasks))
        known = set(ID2TASK.values())
        for name in self.tasks:
            if name not in known:
                raise InvalidConfig(f"unknown ScienceWorld task {name!r}; known: {', '.join(sorted(known))}")
        if not self.tasks:
            raise InvalidConfig("tasks must name at least one ScienceWorld task")
        if prior not in _PRIORS:
            raise InvalidConfig(f"prior must be one of {_PRIORS}, got {prior!r}")
        self.panel_spec = PanelSpec(split, variations_per_task, max_gold_steps, simplifications)
        self.prior = prior
        self.valid_actions = bool(valid_actions)
        self.deterministic = bool(deterministic)
        if not isinstance(jvm_heap_mb, int) or jvm_heap_mb < 64:
            raise InvalidConfig(f"jvm_heap_mb must be an int >= 64, got {jvm_heap_mb!r}")
        self.jvm_heap_mb = jvm_heap_mb
        self._entries: dict[str, list[PanelEntry]] = {}
        self._variations: dict[tuple[str, int], Variation] = {}
        bundled_spec, entries, variations = load_bundled()
        if bundled_spec == self.panel_spec:
            for e in entries:
                if e.task in self.tasks:
                    self._entries.setdefault(e.task, []).append(e)
            self._variations.update(variations)
        self._engine: ScienceWorldEngine | None = None
        self._loaded: tuple[str, int] | None = None
        self._entry: PanelEntry | None = None
        self._history: list[str] = []
        self._score = 0
        self._valid: list[str] | None = None
        self._needs_replay = False
        super().__init__(max_world_steps=max_world_steps, **kwargs)

    # ================================================================ panel
    def _engine_running(self) -> ScienceWorldEngine:
        if self._engine is None:
            self._engine = ScienceWorldEngine(deterministic=self.deterministic, heap_mb=self.jvm_heap_mb)
            self._loaded = None
        return self._engine

    def _entry_at(self, index: int) -> PanelEntry:
        # interleaved, so the first len(tasks) indices cover every task once
        task = self.tasks[index % len(self.tasks)]
        if task not in self._entries:
            entries, variations = select_entries(self._engine_running(), task, self.panel_spec)
            self._entries[task] = entries
            self._variations.update(variations)
            self._loaded = None  # selection loaded other variations
        return self._entries[task][index // len(self.tasks)]

    def _variation(self, task: str, variation: int) -> Variation:
        key = (task, variation)
        if key not in self._variations:
            engine = self._engine_running()
            engine.load(task, variation, self.panel_spec.simplifications, gold=True)
            self._variations[key] = Variation(task, variation, engine.description(), tuple(engine.gold_path()))
            self._loaded = None
        return self._variations[key]

    # ================================================================ tasks
    def _num_tasks(self) -> int:
        return len(self.tasks) * self.panel_spec.per_task

    def _task_key(self, index: int) -> str:
        return self._entry_at(index).key

    def _make_task(self, index: int) -> Task:
        entry = self._entry_at(index)
        current = self._variation(entry.task, entry.variation)
        related = self._variation(entry.task, entry.related)
        same_notes, friend_notes = _walkthrough(current, same=True), _walkthrough(related, same=False)
        if self.prior == "same":
            material = [same_notes, friend_notes]
            if stable_seed("sciworld-order", entry.key) % 2:
                material.reverse()
            facts = _step_lines(current.gold)
        else:
            material, facts = [friend_notes], _step_lines(related.gold)
        return Task(
            task_id=entry.key,
            query=current.description.strip(),
            material=tuple(material),
            facts=tuple(facts),
            extra={"task": entry.task, "variation": entry.variation, "related": entry.related, "gold": current.gold},
        )

    # ================================================================ world
    def _world_reset(self, task: Task) -> str:
        self._entry = PanelEntry(task.extra["task"], task.extra["variation"], task.extra["related"])
        self._history, self._valid, self._needs_replay = [], None, False
        observation = self._restart()
        self._score = self._running().score()
        return observation

    def _restart(self) -> str:
        """Load the entry's variation (when another is loaded) and go back to its start."""
        engine, entry = self._engine_running(), self._entry
        assert entry is not None
        if self._loaded != (entry.task, entry.variation):
            engine.load(entry.task, entry.variation, self.panel_spec.simplifications)
            self._loaded = (entry.task, entry.variation)
        return engine.reset()

    def _running(self) -> ScienceWorldEngine:
        """The engine, with the current episode's world restored after unpickling or close()."""
        if self._engine is None or self._needs_replay:
            self._restart()
            for action in self._history:
                self._engine_running().step(action)
            self._needs_replay = False
        assert self._engine is not None
        return self._engine

    def _world_step(self, action: str) -> WorldStep:
        observation, score = self._running().step(action)
        self._history.append(action)
        self._score, self._valid = score, None
        return WorldStep(observation, done=score >= 100 or score < 0, success=score >= 100, score=max(score, 0) / 100)

    def _valid_actions(self) -> list[str] | None:
        if not self.valid_actions or self._entry is None:
            return None
        if self._valid is None:
            self._valid = self._running().valid_actions()
        return self._valid

    def _world_grade(self) -> dict[str, Any]:
        return {
            "task_score": max(self._score, 0) / 100,
            "success": float(self._score >= 100),
            "sciworld_score": self._score,
        }

    def _expert_action(self) -> str | None:
        """The next gold action while the episode has followed the gold path exactly, else ``None``.

        (Gold paths contain commands the parser rejects, e.g. "connect block terminal 1 to
        orange wire terminal 2" in test-conductivity, so "changed nothing" cannot be told
        from the text: any other action leaves the path.)
        """
        if self._task is None:
            return None
        gold, k = self._task.extra["gold"], len(self._history)
        return gold[k] if k < len(gold) and list(gold[:k]) == self._history else None

    def _world_close(self) -> None:
        if self._engine is not None:
            self._engine.close()
        self._engine, self._loaded = None, None
        self._needs_replay = self._entry is not None

    def _snapshot_restored(self) -> None:
        self._needs_replay = self._entry is not None  # the next use resets the world and replays

    # ================================================================ pickling
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_engine"], state["_loaded"] = None, None  # a JVM cannot be pickled: the copy replays
        state["_needs_replay"] = self._entry is not None
        return state
