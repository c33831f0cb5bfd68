"""Planning inside the simulator: greedy best-first search on the goal-count heuristic.

Used for the expert's recovery (a plan from wherever the agent left the world) and for
problems pyperplan cannot read (``travel`` has negative preconditions). Ties break by
insertion order, so a plan depends only on the problem and the start state.
"""

from __future__ import annotations

import heapq
import itertools

from agemem_gym.envs.pddl.strips import GroundAction, State, StripsSimulator

__all__ = ["greedy_plan"]


def greedy_plan(sim: StripsSimulator, start: State, max_expansions: int = 20_000) -> list[GroundAction] | None:
    """A plan from ``start`` to the goal, or ``None`` when none is found within the budget.

    Args:
        sim: The problem's simulator.
        start: The state to plan from.
        max_expansions: States expanded before giving up.

    Returns:
        The actions in order (empty when ``start`` already satisfies the goal).
    """
    order = itertools.count()
    # (unsatisfied goals, depth, tie-break, state): fewer open goals first, then shallower
    frontier: list[tuple[int, int, int, State]] = [(sim.num_goals - sim.satisfied_goals(start), 0, next(order), start)]
    parent: dict[State, tuple[State, GroundAction] | None] = {start: None}
    expansions = 0
    while frontier and expansions < max_expansions:
        _, depth, _, state = heapq.heappop(frontier)
        expansions += 1
        if sim.is_goal(state):
            return _unwind(parent, state)
        for action in sim.applicable(state):
            successor = sim.apply(state, action)
            if successor not in parent:
                parent[successor] = (state, action)
                open_goals = sim.num_goals - sim.satisfied_goals(successor)
                heapq.heappush(frontier, (open_goals, depth + 1, next(order), successor))
    return None


def _unwind(parent: dict[State, tuple[State, GroundAction] | None], state: State) -> list[GroundAction]:
    plan: list[GroundAction] = []
    link = parent[state]
    while link is not None:
        state, action = link
        plan.append(action)
        link = parent[state]
    return plan[::-1]
