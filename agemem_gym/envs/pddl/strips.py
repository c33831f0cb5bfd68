"""A small typed-STRIPS simulator: applicable ground actions, successor states, progress rate.

States are frozensets of ground atoms, each a tuple ``("on", "a", "b")``. Operators come
from :mod:`agemem_gym.envs.pddl.parsing` as plain data (no parser objects), so a simulator
is cheap to pickle and copy. Supported: typed parameters, positive and negative
preconditions, ``=`` and ``not =``, add and delete effects (deletes apply before adds, as
in PDDL). Grounding is lazy: :meth:`StripsSimulator.applicable` joins the positive
preconditions against the state (most-bound literal first, then the rarest predicate), so
only actions that can fire are enumerated.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator, Mapping

__all__ = [
    "Atom",
    "State",
    "GroundAction",
    "Operator",
    "Domain",
    "Problem",
    "StripsSimulator",
    "format_action",
    "format_atom",
    "parse_action",
]

Atom = tuple[str, ...]
State = frozenset[Atom]
GroundAction = tuple[str, tuple[str, ...]]


def is_variable(term: str) -> bool:
    """Whether a term of an operator's atom is a parameter (``?x``)."""
    return term.startswith("?")


@dataclasses.dataclass(frozen=True)
class Operator:
    """One lifted action schema.

    Attributes:
        name: Lower-case name, e.g. ``"pick-up"``.
        params: Parameter names in order, each starting with ``?``.
        param_types: For each parameter, the type names an argument may have.
        pre_pos: Atoms that must hold (terms are parameters or constants).
        pre_neg: Atoms that must not hold.
        equal: Parameter pairs that must be the same object.
        not_equal: Parameter pairs that must differ.
        add: Atoms made true.
        delete: Atoms made false.
    """

    name: str
    params: tuple[str, ...]
    param_types: tuple[frozenset[str], ...]
    pre_pos: tuple[Atom, ...]
    pre_neg: tuple[Atom, ...] = ()
    equal: tuple[tuple[str, str], ...] = ()
    not_equal: tuple[tuple[str, str], ...] = ()
    add: tuple[Atom, ...] = ()
    delete: tuple[Atom, ...] = ()


@dataclasses.dataclass(frozen=True)
class Domain:
    """A parsed domain.

    Attributes:
        name: Lower-case domain name.
        operators: Operators sorted by name.
        constants: Domain constants and their types (with supertypes).
        hidden: PDDLGym "action predicates" removed from preconditions and states.
    """

    name: str
    operators: tuple[Operator, ...]
    constants: Mapping[str, frozenset[str]] = dataclasses.field(default_factory=dict)
    hidden: frozenset[str] = frozenset()


@dataclasses.dataclass(frozen=True)
class Problem:
    """A parsed problem.

    Attributes:
        name: The problem's name.
        objects: Every object (constants included) and its types (with supertypes).
        init: The initial state.
        goal_pos: Goal atoms that must hold.
        goal_neg: Goal atoms that must not hold.
    """

    name: str
    objects: Mapping[str, frozenset[str]]
    init: State
    goal_pos: tuple[Atom, ...]
    goal_neg: tuple[Atom, ...] = ()


def _ground(atom: Atom, binding: Mapping[str, str]) -> Atom:
    return (atom[0], *(binding[t] if is_variable(t) else t for t in atom[1:]))


class StripsSimulator:
    """Applies ground actions of one problem.

    Args:
        domain: The domain.
        problem: A problem of that domain.

    Example:
        >>> from agemem_gym.envs.pddl.strips import Domain, Operator, Problem, StripsSimulator
        >>> flip = Operator("flip", ("?c",), (frozenset({"coin"}),), pre_pos=(("tails", "?c"),),
        ...                 add=(("heads", "?c"),), delete=(("tails", "?c"),))
        >>> sim = StripsSimulator(Domain("coins", (flip,)),
        ...                       Problem("p", {"c1": frozenset({"coin"})}, frozenset({("tails", "c1")}),
        ...                               goal_pos=(("heads", "c1"),)))
        >>> sim.applicable(sim.init)
        [('flip', ('c1',))]
        >>> sim.progress(sim.apply(sim.init, ("flip", ("c1",))))
        1.0
    """

    def __init__(self, domain: Domain, problem: Problem) -> None:
        self.domain = domain
        self.problem = problem
        self.operators = {op.name: op for op in domain.operators}
        self.objects = dict(problem.objects)
        self._by_type: dict[frozenset[str], tuple[str, ...]] = {}
        self._orders: dict[str, tuple[Atom, ...]] = {}

    @property
    def init(self) -> State:
        """The initial state."""
        return self.problem.init

    # ------------------------------------------------------------------ grounding
    def _objects_of(self, types: frozenset[str]) -> tuple[str, ...]:
        if types not in self._by_type:
            self._by_type[types] = tuple(sorted(o for o, ts in self.objects.items() if ts & types))
        return self._by_type[types]

    def _join_order(self, op: Operator) -> tuple[Atom, ...]:
        """The positive preconditions in join order: most already-bound terms first (computed once)."""
        if op.name not in self._orders:
            pending, order = list(op.pre_pos), []
            bound: set[str] = set()
            while pending:
                best = max(pending, key=lambda a: sum(not is_variable(t) or t in bound for t in a[1:]))
                pending.remove(best)
                order.append(best)
                bound.update(t for t in best[1:] if is_variable(t))
            self._orders[op.name] = tuple(order)
        return self._orders[op.name]

    def _join(
        self, literals: tuple[Atom, ...], index: Mapping[str, list[Atom]], binding: dict[str, str]
    ) -> Iterator[dict]:
        """Every extension of ``binding`` under which all ``literals`` are in the indexed state."""
        if not literals:
            yield binding
            return
        lit, rest = literals[0], literals[1:]
        arity = len(lit)
        for fact in index.get(lit[0], ()):
            if len(fact) != arity:
                continue
            extended = binding
            for term, value in zip(lit[1:], fact[1:]):
                if term[0] == "?":
                    known = extended.get(term)
                    if known is None:
                        extended = {**extended, term: value}
                    elif known != value:
                        break
                elif term != value:
                    break
            else:
                yield from self._join(rest, index, extended)

    def _fits(self, op: Operator, binding: Mapping[str, str], state: State) -> bool:
        objects = self.objects
        for param, types in zip(op.params, op.param_types):
            if not objects.get(binding[param], frozenset()) & types:
                return False
        if any(binding[a] != binding[b] for a, b in op.equal):
            return False
        if any(binding[a] == binding[b] for a, b in op.not_equal):
            return False
        return not any(_ground(atom, binding) in state for atom in op.pre_neg)

    def applicable(self, state: State) -> list[GroundAction]:
        """Every ground action whose preconditions hold in ``state``, sorted."""
        index: dict[str, list[Atom]] = {}
        for fact in state:
            index.setdefault(fact[0], []).append(fact)
        found: set[GroundAction] = set()
        for op in self.domain.operators:
            for binding in self._join(self._join_order(op), index, {}):
                free = [
                    self._objects_of(t) if p not in binding else (binding[p],)
                    for p, t in zip(op.params, op.param_types)
                ]
                for args in itertools.product(*free):
                    full = dict(zip(op.params, args))
                    if self._fits(op, full, state):
                        found.add((op.name, args))
        return sorted(found)

    def is_applicable(self, state: State, action: GroundAction) -> bool:
        """Whether ``action`` can fire in ``state`` (a direct check, no enumeration)."""
        op = self.operators.get(action[0])
        if op is None or len(action[1]) != len(op.params):
            return False
        binding = dict(zip(op.params, action[1]))
        if any(a not in self.objects for a in action[1]):
            return False
        return all(_ground(atom, binding) in state for atom in op.pre_pos) and self._fits(op, binding, state)

    def apply(self, state: State, action: GroundAction) -> State:
        """The successor state (the caller checks applicability)."""
        op = self.operators[action[0]]
        binding = dict(zip(op.params, action[1]))
        removed = {_ground(atom, binding) for atom in op.delete}
        added = {_ground(atom, binding) for atom in op.add}
        return frozenset((state - removed) | added)

    # ------------------------------------------------------------------ goal
    def satisfied_goals(self, state: State) -> int:
        """Number of goal atoms that hold in ``state``."""
        return sum(g in state for g in self.problem.goal_pos) + sum(g not in state for g in self.problem.goal_neg)

    @property
    def num_goals(self) -> int:
        """Number of goal atoms."""
        return len(self.problem.goal_pos) + len(self.problem.goal_neg)

    def progress(self, state: State) -> float:
        """AgentBoard's progress rate: the fraction of goal atoms that hold (1.0 = solved)."""
        n = self.num_goals
        return self.satisfied_goals(state) / n if n else 1.0

    def is_goal(self, state: State) -> bool:
        """Whether every goal atom holds."""
        return self.satisfied_goals(state) == self.num_goals


def format_action(action: GroundAction) -> str:
    """``("stack", ("b", "a", "robot"))`` → ``"(stack b a robot)"``."""
    return "(" + " ".join((action[0], *action[1])) + ")"


def format_atom(atom: Atom) -> str:
    """``("on", "a", "b")`` → ``"(on a b)"``."""
    return "(" + " ".join(atom) + ")"


def parse_action(text: str) -> GroundAction | None:
    """Read ``"(stack b a robot)"`` (parentheses optional, any case); ``None`` when empty."""
    words = text.strip().strip("()").lower().replace("(", " ").replace(")", " ").split()
    if not words:
        return None
    return words[0], tuple(words[1:])
