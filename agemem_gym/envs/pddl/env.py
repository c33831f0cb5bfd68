"""``AgeMem/PDDL-v0``: classical planning problems played action by action, with memory."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from agemem_gym.envs.pddl.describe import atoms_text, manual, solution_log, static_predicates
from agemem_gym.envs.pddl.panel import DATA_DIR, bundled_problems, domain_of, load_problem, split_of
from agemem_gym.envs.pddl.parsing import require_parser
from agemem_gym.envs.pddl.plans import PLANS_FILE, load_plans
from agemem_gym.envs.pddl.search import greedy_plan
from agemem_gym.envs.pddl.strips import GroundAction, State, StripsSimulator, format_action, parse_action
from agemem_gym.error import DataNotFound, InvalidConfig
from agemem_gym.interactive import InteractiveMemoryEnv, WorldStep
from agemem_gym.seeding import stable_seed
from agemem_gym.task import Task

__all__ = ["PDDLEnv"]

_SPLITS = ("train", "test", "all")
_RECOVERY_EXPANSIONS = 20_000


class PDDLEnv(InteractiveMemoryEnv):
    """Symbolic planning (PDDLGym's domains) simulated by our STRIPS engine, with memory tools.

    ## Description

    Each task is one PDDL problem (blocks, elevator, ferry, gripper, hanoi, travel; 46
    problems bundled from PDDLGym, MIT licence), simulated by
    :class:`~agemem_gym.envs.pddl.strips.StripsSimulator` on the maintained ``pddl`` parser.

    * **Stage 1** (prior material worth storing), in an order fixed per task: the domain's
      operator manual; the solution log of an earlier run of *this* problem (the plan that
      reached the goal, one ``;``-separated line); and the solution logs of
      ``num_related`` other problems of the same domain, which compete for retrieval.
    * **Stage 2**: ``num_distractors`` unrelated casual messages.
    * **Stage 3**: the problem itself: the goal (pinned), then the state after each action.
      Memory tool calls do not move the world but spend a round.

    ``plain=True`` skips Stages 1 and 2 (the problem alone, memory tools available: the
    paper's zero-shot setting). The gold fact (``Task.facts``, for memory quality) is the
    plan line of this problem.

    ## Action Space

    One assistant turn as text: ``<think>…</think>`` then one of ``<tool_call>[…]</tool_call>``,
    ``<answer>…</answer>`` (in Stage 3: "I am done", the world is graded as it stands) or
    ``<action>(stack b a robot)</action>``: an operator and its objects, parentheses and case
    optional. A well-formed action whose preconditions do not hold does nothing; an unknown
    operator, unknown object or wrong number of objects also does nothing and counts as an
    invalid call.

    ## Observation Space

    The packed context as chat messages. Stage-3 observations list the static facts once
    (road maps, adjacency), then the changing facts of the state, the goal atoms satisfied
    and the valid (applicable) actions.

    ## Rewards

    The paper's trajectory reward on the last step, with ``task_score`` = AgentBoard's
    progress rate (the highest fraction of goal atoms satisfied during the episode).

    ## Starting State

    The system prompt and the first Stage-1 message (Stage 3's first observation with
    ``plain=True``). Tasks are drawn with ``np_random`` or pinned with
    ``reset(options={"task_id": index or "blocks/problem1"})``.

    ## Episode End

    Terminated when the goal holds (success), at a dead end (no applicable action), when
    the agent answers in Stage 3 or spends ``max_rounds`` turns without acting; truncated
    after ``max_world_steps`` actions. ``info`` then holds ``task_score`` (progress rate),
    ``success``, ``progress_final``, ``progress_start`` and the reward terms.

    ## Arguments

    * ``domains``: domain names to keep (default: all bundled ones).
    * ``split``: ``"train"``, ``"test"`` or ``"all"`` (default) of PDDLGym's problem sets.
    * ``num_related``: other problems' solution logs in Stage 1 (default 2).
    * ``data_dir``: a folder in PDDLGym's layout (``<domain>.pddl``, ``<domain>/*.pddl``,
      ``<domain>_test/*.pddl``, optionally ``plans.json`` as written by
      ``python -m agemem_gym.envs.pddl.plans``) instead of the bundled one; problems without a
      plan there are planned in the simulator (greedy best-first on the goal count).
    * ``plain``, ``max_world_steps`` (default 60), ``show_valid_actions``,
      ``max_listed_actions`` (see :class:`~agemem_gym.interactive.InteractiveMemoryEnv`)
      and every :class:`~agemem_gym.core.MemoryEnv` argument.

    ## Version History

    * v0: initial release.
    """

    _snapshot_fields: ClassVar[tuple[str, ...]] = (
        "_sim",
        "_state",
        "_applicable",
        "_progress_start",
        "_progress_best",
        "_expert",
    )
    task_note: ClassVar[str] = (
        "In the planning task, act with one action per turn, written like the listed valid actions, "
        "e.g. <action>(pick-up a robot)</action>."
    )

    def __init__(
        self,
        domains: str | list[str] | tuple[str, ...] | None = None,
        split: str = "all",
        num_related: int = 2,
        data_dir: str | os.PathLike[str] | None = None,
        max_world_steps: int = 60,
        **kwargs: Any,
    ) -> None:
        require_parser()  # fail at make, not at the first reset, when the extra is missing
        if split not in _SPLITS:
            raise InvalidConfig(f"split must be one of {_SPLITS}, got {split!r}")
        if not isinstance(num_related, int) or num_related < 0:
            raise InvalidConfig(f"num_related must be an int >= 0, got {num_related!r}")
        self.data_dir = DATA_DIR if data_dir is None else Path(data_dir)
        if not self.data_dir.is_dir():
            raise DataNotFound(f"PDDL data_dir {self.data_dir} does not exist")
        self.keys = self._select(domains, split)
        self.num_related = num_related
        plans_file = self.data_dir / PLANS_FILE.name
        self._plans = load_plans(plans_file) if plans_file.is_file() else {}
        super().__init__(max_world_steps=max_world_steps, **kwargs)

    def _select(self, domains: str | list[str] | tuple[str, ...] | None, split: str) -> list[str]:
        keys = bundled_problems(self.data_dir)
        available = sorted({domain_of(k) for k in keys})
        wanted = [domains] if isinstance(domains, str) else list(domains or available)
        unknown = sorted(set(wanted) - set(available))
        if unknown:
            raise InvalidConfig(f"unknown PDDL domain(s) {unknown}; available: {available}")
        keys = [k for k in keys if domain_of(k) in wanted and split in ("all", split_of(k))]
        if not keys:
            raise DataNotFound(f"no PDDL problems for domains={wanted} split={split!r} in {self.data_dir}")
        return keys

    # ================================================================ tasks
    def _num_tasks(self) -> int:
        return len(self.keys)

    def _task_key(self, index: int) -> str:
        return self.keys[index]

    def _plan(self, key: str) -> tuple[GroundAction, ...] | None:
        """The reference plan of ``key`` (bundled, or searched once); ``None`` when none was found."""
        if key not in self._plans:
            sim = load_problem(self.data_dir, key)
            found = greedy_plan(sim, sim.init, max_expansions=_RECOVERY_EXPANSIONS)
            self._plans[key] = {
                "planner": "greedy_plan",
                "plan": None if found is None else list(map(format_action, found)),
            }
        steps = self._plans[key]["plan"]
        if steps is None:
            return None
        return tuple(a for a in (parse_action(str(t)) for t in steps) if a is not None)

    @staticmethod
    def _label(key: str) -> str:
        return f"{domain_of(key)} {key.split('/', 1)[1]}"

    def _make_task(self, index: int) -> Task:
        key = self.keys[index]
        sim = load_problem(self.data_dir, key)
        rng = np.random.default_rng(stable_seed("pddl-material", key))
        material = [manual(sim.domain)]
        facts: tuple[str, ...] = ()
        plan = self._plan(key)
        if plan:
            message, plan_line = solution_log(self._label(key), sim.problem.goal_pos, plan)
            material.append(message)
            facts = (plan_line,)
        others = [k for k in self.keys if domain_of(k) == domain_of(key) and k != key]
        for other in [others[i] for i in sorted(rng.permutation(len(others))[: self.num_related])]:
            other_plan = self._plan(other)
            if other_plan:
                goal = load_problem(self.data_dir, other).problem.goal_pos
                material.append(solution_log(self._label(other), goal, other_plan)[0])
        material = [material[i] for i in rng.permutation(len(material))]
        query = (
            f"Planning task: {self._label(key)}. Reach a state where all of these hold: "
            f"{atoms_text(sim.problem.goal_pos)}"
            + (f" and none of these hold: {atoms_text(sim.problem.goal_neg)}" if sim.problem.goal_neg else "")
            + ". Act with one action per turn."
        )
        return Task(
            task_id=key,
            query=query,
            material=tuple(material),
            facts=facts or None,
            extra={"domain": domain_of(key), "split": split_of(key), "plan_length": len(plan or ())},
        )

    # ================================================================ world
    def _world_reset(self, task: Task) -> str:
        self._sim: StripsSimulator = load_problem(self.data_dir, task.task_id)
        self._set_state(self._sim.init)
        self._progress_start = self._progress_best = self._sim.progress(self._state)
        plan = self._plan(task.task_id)
        self._expert: list[GroundAction] | None = list(plan) if plan is not None else None
        statics = static_predicates(self._sim.domain)
        fixed = [a for a in self._state if a[0] in statics]
        intro = f"Fixed facts (they never change): {atoms_text(fixed)}\n" if fixed else ""
        return intro + self._describe()

    def _set_state(self, state: State) -> None:
        self._state = state
        self._applicable = self._sim.applicable(state)

    def _describe(self) -> str:
        statics = static_predicates(self._sim.domain)
        changing = [a for a in self._state if a[0] not in statics]
        done, total = self._sim.satisfied_goals(self._state), self._sim.num_goals
        return f"State: {atoms_text(changing)}\nGoal atoms satisfied: {done}/{total}."

    def _valid_actions(self) -> list[str] | None:
        return [format_action(a) for a in self._applicable]

    def _world_step(self, action: str) -> WorldStep:
        parsed = parse_action(action)
        problem = self._check_action(parsed)
        if problem or parsed is None:
            self._reject(f"[action error] {problem}")
            return WorldStep(f"Nothing happens: {problem}\n{self._describe()}")
        if parsed not in self._applicable:
            return WorldStep(
                f"Nothing happens: {format_action(parsed)} cannot be done now (its preconditions do not hold).\n"
                + self._describe()
            )
        if self._expert is not None:
            self._expert = self._expert[1:] if self._expert[:1] == [parsed] else None
        self._set_state(self._sim.apply(self._state, parsed))
        progress = self._sim.progress(self._state)
        self._progress_best = max(self._progress_best, progress)
        text = f"You did {format_action(parsed)}.\n{self._describe()}"
        if self._sim.is_goal(self._state):
            return WorldStep(text + "\nThe goal is reached.", done=True, success=True, score=progress)
        if not self._applicable:
            return WorldStep(text + "\nDead end: no action applies any more.", done=True, score=progress)
        return WorldStep(text, score=progress)

    def _check_action(self, parsed: GroundAction | None) -> str | None:
        """Why an action cannot even be tried (unknown operator or object), or ``None``."""
        if parsed is None:
            return "the action is empty; write an operator and its objects, e.g. one of the valid actions."
        op = self._sim.operators.get(parsed[0])
        if op is None:
            return f"unknown operator {parsed[0]!r}; operators: {', '.join(sorted(self._sim.operators))}."
        if len(parsed[1]) != len(op.params):
            return f"{parsed[0]} takes {len(op.params)} objects ({' '.join(op.params)}), got {len(parsed[1])}."
        unknown = [a for a in parsed[1] if a not in self._sim.objects]
        if unknown:
            return f"unknown object(s) {', '.join(unknown)}."
        return None

    def _world_grade(self) -> dict[str, Any]:
        progress = self._sim.progress(self._state)
        return {
            "task_score": float(self._progress_best),  # AgentBoard's progress rate: the best reached
            "success": float(self._sim.is_goal(self._state)),
            "progress_rate": float(self._progress_best),
            "progress_final": float(progress),
            "progress_start": float(self._progress_start),
        }

    def _expert_action(self) -> str | None:
        if self._sim.is_goal(self._state):
            return None
        if self._expert is None:  # the agent left the reference plan: replan from here, once
            self._expert = greedy_plan(self._sim, self._state, max_expansions=_RECOVERY_EXPANSIONS) or []
        return format_action(self._expert[0]) if self._expert else None
