"""Parser glue: PDDL text → the simulator's plain data, through the maintained ``pddl`` parser.

Two quirks of the PDDLGym files are handled here:

* several problems put ``(:goal …)`` before ``(:init …)``, which ``pddl`` rejects: the goal
  block is moved to the end before parsing;
* PDDLGym adds one "action predicate" per agent action (``(pickup ?x)``), lists them in a
  comment ``; (:actions pickup putdown …)`` and enumerates their ground literals in every
  ``:init``. Those atoms are stripped from preconditions and states: the problems list
  them completely, so stripping never changes which actions apply, and they would only
  clutter what the agent reads.

Names are lower-cased (PDDL is case-insensitive; ``pddl`` keeps the file's case).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from agemem_gym.envs.pddl.strips import Atom, Domain, Operator, Problem
from agemem_gym.error import DataFormatError, missing_dependency

__all__ = ["action_predicates", "goal_last", "parse_domain", "parse_problem", "require_parser"]

_ACTIONS_COMMENT = re.compile(r";\s*\(:actions([^)]*)\)", re.I)
_COMMENT = re.compile(r";[^\n]*")


def action_predicates(domain_text: str) -> frozenset[str]:
    r"""The PDDLGym action predicates named in ``; (:actions …)`` (empty when absent).

    Example:
        >>> sorted(action_predicates("(define (domain d)\n  ; (:actions pickup stack)\n)"))
        ['pickup', 'stack']
    """
    found = _ACTIONS_COMMENT.search(domain_text)
    return frozenset(found.group(1).lower().split()) if found else frozenset()


def _balanced_block(text: str, key: str) -> tuple[int, int] | None:
    """Start and end (exclusive) of the parenthesised block opening with ``(key``."""
    found = re.search(r"\(\s*" + re.escape(key) + r"\b", text, re.I)
    if found is None:
        return None
    depth = 0
    for i in range(found.start(), len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return found.start(), i + 1
    raise DataFormatError(f"unbalanced parentheses in the {key} block of a PDDL problem")


def goal_last(problem_text: str) -> str:
    r"""The problem text without comments and with its ``(:goal …)`` block moved to the end.

    Example:
        >>> goal_last("(define (problem p) (:goal (a)) (:init (b)))")
        '(define (problem p)  (:init (b))\n(:goal (a)))'
    """
    text = _COMMENT.sub("", problem_text)
    span = _balanced_block(text, ":goal")
    if span is None:
        raise DataFormatError("the PDDL problem has no (:goal ...) block")
    goal = text[span[0] : span[1]]
    rest = (text[: span[0]] + text[span[1] :]).rstrip()
    if not rest.endswith(")"):
        raise DataFormatError("a PDDL problem must end with the ')' that closes (define ...)")
    return rest[:-1].rstrip() + "\n" + goal + ")"


def _parsers() -> tuple[Any, Any, tuple[type[Exception], ...]]:
    """The ``pddl`` domain and problem parsers and the exceptions they raise on bad input."""
    try:
        from lark.exceptions import LarkError
        from pddl.exceptions import PDDLError
        from pddl.parser.domain import DomainParser
        from pddl.parser.problem import ProblemParser
    except ImportError as exc:
        raise missing_dependency("pddl", "envs") from exc
    return DomainParser(), ProblemParser(), (LarkError, PDDLError)


def require_parser() -> None:
    """Raise :class:`~agemem_gym.error.DependencyNotInstalled` now when ``pddl`` is missing."""
    _parsers()


def _type_closure(parents: Mapping[str, str | None]) -> dict[str, frozenset[str]]:
    """Each declared type → itself, its ancestors and ``object``."""
    out: dict[str, frozenset[str]] = {}
    for name in parents:
        seen, current = {name, "object"}, name
        while parents.get(current):
            current = str(parents[current])
            if current in seen:
                break
            seen.add(current)
        out[name] = frozenset(seen)
    return out


def _types_of(tags: Iterable[Any], closure: Mapping[str, frozenset[str]]) -> frozenset[str]:
    names = [str(t).lower() for t in tags]
    if not names:
        return frozenset({"object"})
    return frozenset().union(*(closure.get(n, frozenset({n, "object"})) for n in names))


def _term(term: Any) -> str:
    from pddl.logic.terms import Variable

    return f"?{term.name}".lower() if isinstance(term, Variable) else str(term.name).lower()


def _literals(formula: Any, where: str) -> tuple[list[Atom], list[Atom], list[tuple[str, str]], list[tuple[str, str]]]:
    """Split a conjunction of literals into positive atoms, negative atoms, ``=`` and ``not =`` pairs."""
    from pddl.logic.base import And, Not
    from pddl.logic.predicates import EqualTo, Predicate

    pos: list[Atom] = []
    neg: list[Atom] = []
    eq: list[tuple[str, str]] = []
    neq: list[tuple[str, str]] = []
    if formula is None:
        return pos, neg, eq, neq
    for part in formula.operands if isinstance(formula, And) else (formula,):
        negated = isinstance(part, Not)
        inner = part.argument if negated else part
        if isinstance(inner, Predicate):
            (neg if negated else pos).append((str(inner.name).lower(), *(_term(t) for t in inner.terms)))
        elif isinstance(inner, EqualTo):
            (neq if negated else eq).append((_term(inner.left), _term(inner.right)))
        else:
            raise DataFormatError(
                f"unsupported PDDL construct in {where}: {part}; the simulator handles STRIPS conjunctions of "
                f"(possibly negated) atoms and equalities"
            )
    return pos, neg, eq, neq


def parse_domain(text: str) -> tuple[Domain, dict[str, frozenset[str]]]:
    """Parse a domain.

    Args:
        text: The domain file's text.

    Returns:
        The domain and its type closure (type → itself plus supertypes), which
        :func:`parse_problem` needs.
    """
    domain_parser, _, errors = _parsers()
    hidden = action_predicates(text)
    try:
        parsed = domain_parser(_COMMENT.sub("", text))
    except errors as exc:
        raise DataFormatError(f"cannot parse the PDDL domain: {exc}") from exc
    parents = {str(k).lower(): (str(v).lower() if v else None) for k, v in parsed.types.items()}
    closure = _type_closure(parents)
    operators = []
    for action in sorted(parsed.actions, key=lambda a: str(a.name).lower()):
        name = str(action.name).lower()
        pos, neg, eq, neq = _literals(action.precondition, f"the precondition of {name}")
        add, delete, _, _ = _literals(action.effect, f"the effect of {name}")
        operators.append(
            Operator(
                name=name,
                params=tuple(_term(p) for p in action.parameters),
                param_types=tuple(_types_of(p.type_tags, closure) for p in action.parameters),
                pre_pos=tuple(a for a in pos if a[0] not in hidden),
                pre_neg=tuple(neg),
                equal=tuple(eq),
                not_equal=tuple(neq),
                add=tuple(add),
                delete=tuple(delete),
            )
        )
    constants = {str(c.name).lower(): _types_of(c.type_tags, closure) for c in parsed.constants}
    domain = Domain(str(parsed.name).lower(), tuple(operators), constants, hidden)
    return domain, closure


def parse_problem(text: str, domain: Domain, closure: Mapping[str, frozenset[str]]) -> Problem:
    """Parse a problem of ``domain`` (goal-before-init files are reordered first).

    Args:
        text: The problem file's text.
        domain: The parsed domain.
        closure: The domain's type closure from :func:`parse_domain`.

    Returns:
        The problem, with the domain's action predicates stripped from its initial state.
    """
    _, problem_parser, errors = _parsers()
    reordered = goal_last(text)
    try:
        parsed = problem_parser(reordered)
    except errors as exc:
        raise DataFormatError(f"cannot parse the PDDL problem: {exc}") from exc
    objects = dict(domain.constants)
    objects.update({str(o.name).lower(): _types_of(o.type_tags, closure) for o in parsed.objects})
    init_pos, _, _, _ = _literals(_conjunction(parsed.init), "the initial state")
    init = frozenset(a for a in init_pos if a[0] not in domain.hidden)
    goal_pos, goal_neg, _, _ = _literals(parsed.goal, "the goal")
    return Problem(str(parsed.name).lower(), objects, init, tuple(goal_pos), tuple(goal_neg))


def _conjunction(atoms: Iterable[Any]) -> Any:
    from pddl.logic.base import And

    items = sorted(atoms, key=str)
    return And(*items) if len(items) > 1 else (items[0] if items else None)
