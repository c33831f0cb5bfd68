"""Text the PDDL env shows: the operator manual, states, goals and solution logs."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from agemem_gym.envs.pddl.strips import Atom, Domain, GroundAction, Operator, format_action, format_atom

__all__ = ["atoms_text", "manual", "solution_log", "static_predicates"]


def static_predicates(domain: Domain) -> frozenset[str]:
    """Predicates no operator changes (road maps, adjacency...): shown once, not every step."""
    changed = {atom[0] for op in domain.operators for atom in (*op.add, *op.delete)}
    used = {atom[0] for op in domain.operators for atom in (*op.pre_pos, *op.pre_neg)}
    return frozenset(used - changed)


def atoms_text(atoms: Iterable[Atom]) -> str:
    """Sorted atoms as ``(on a b), (clear a)``; ``nothing`` when empty."""
    items = sorted(atoms)
    return ", ".join(format_atom(a) for a in items) if items else "nothing"


def _operator_line(op: Operator) -> str:
    head = "(" + " ".join((op.name, *op.params)) + ")"
    needs = [format_atom(a) for a in op.pre_pos] + [f"not {format_atom(a)}" for a in op.pre_neg]
    needs += [f"{a} = {b}" for a, b in op.equal] + [f"{a} != {b}" for a, b in op.not_equal]
    parts = [f"{head} needs {', '.join(needs) if needs else 'nothing'}"]
    if op.add:
        parts.append(f"it makes {', '.join(format_atom(a) for a in op.add)} true")
    if op.delete:
        parts.append(f"it makes {', '.join(format_atom(a) for a in op.delete)} false")
    return "; ".join(parts) + "."


def manual(domain: Domain) -> str:
    """The domain's operator manual in plain words (one line per operator)."""
    lines = [
        f"Operator manual for the {domain.name} domain. An action is written as the operator name followed by "
        f"objects in place of its ?parameters, e.g. {_example(domain.operators[0])}."
    ]
    lines += [_operator_line(op) for op in domain.operators]
    return "\n".join(lines)


def _example(op: Operator) -> str:
    return "(" + " ".join((op.name, *(p.lstrip("?") for p in op.params))) + ")"


def solution_log(label: str, goal: Sequence[Atom], plan: Sequence[GroundAction]) -> tuple[str, str]:
    """A previous run's log: the message and the line holding the plan (the fact worth storing).

    The plan line is a ``;``-separated action list on a line of its own, so a reader (or a
    scripted policy) can replay it action by action.
    """
    plan_line = "; ".join(format_action(a) for a in plan)
    message = (
        f"Solution log from an earlier run of {label}. That run reached the goal {atoms_text(goal)} "
        f"in {len(plan)} actions. The actions, in order:\n{plan_line}"
    )
    return message, plan_line
