"""The synthetic dialogue generator: facts about invented people, revealed, changed and retracted.

A script is drawn from one seed: a cast of people, a few facts each, then a stream of
events (a fact stated; a later statement that replaces it; a retraction) spread over
``horizon`` casual user messages with small talk in between, and one question about a
*target* fact at the end. The generator knows the truth, so the answer (exact match) and
the gold memory are exact:

* the answer is the target's latest value, or ``unknown`` when its last event retracts it;
* ``facts`` (for memory quality) is the sentence that states the current truth: the
  latest statement, or the retraction;
* ``revisions`` say which stored sentence each later statement replaces (or deletes), so
  an oracle can keep a memory current with ``Update_memory`` / ``Delete_memory``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Literal

import numpy as np

from agemem_gym.envs.synthetic.vocab import (
    ATTRIBUTES,
    FIRST_NAMES,
    RETRACT_LEADS,
    REVEAL_LEADS,
    SURNAMES,
    UPDATE_LEADS,
    Attribute,
)
from agemem_gym.error import InvalidConfig

__all__ = ["DIFFICULTIES", "Difficulty", "Revision", "Script", "generate", "UNKNOWN"]

UNKNOWN = "unknown"
Family = Literal["fact_update", "long_recall"]


@dataclasses.dataclass(frozen=True)
class Difficulty:
    """How hard a script is.

    Attributes:
        people: Size of the cast.
        attributes: Facts per person.
        noise_updates: Changes to facts other than the target (they make stale memories
            plausible everywhere, not only on the asked fact).
        target_changes: Inclusive range of changes to the target fact (FactUpdate only).
        p_retract: Probability that the target's last change is a retraction (FactUpdate only).
        shared_names: People may share a first name or a surname (confusable names).
    """

    people: int
    attributes: int
    noise_updates: int
    target_changes: tuple[int, int]
    p_retract: float
    shared_names: bool


DIFFICULTIES: dict[str, Difficulty] = {
    "easy": Difficulty(
        people=3, attributes=2, noise_updates=1, target_changes=(1, 1), p_retract=0.2, shared_names=False
    ),
    "medium": Difficulty(
        people=5, attributes=3, noise_updates=3, target_changes=(1, 2), p_retract=0.25, shared_names=False
    ),
    "hard": Difficulty(
        people=8, attributes=4, noise_updates=6, target_changes=(2, 3), p_retract=0.3, shared_names=True
    ),
}


@dataclasses.dataclass(frozen=True)
class Revision:
    """A later statement that makes a stored one stale.

    Attributes:
        trigger: Text of the message sentence that announces the change.
        old: The sentence that was true until then.
        new: The sentence that replaces it, or ``None`` when the fact is withdrawn.
    """

    trigger: str
    old: str
    new: str | None


@dataclasses.dataclass(frozen=True)
class Script:
    """One generated episode.

    Attributes:
        messages: The Stage-1 user messages, in order.
        question: The Stage-3 question.
        answer: The exact-match answer (``unknown`` for a retracted fact).
        facts: The sentence(s) stating the current truth about the target.
        revisions: The changes to the target fact, in order.
        target: ``(person, attribute key)`` asked about.
        changes: Number of changes to the target.
        retracted: Whether the target was withdrawn.
    """

    messages: tuple[str, ...]
    question: str
    answer: str
    facts: tuple[str, ...]
    revisions: tuple[Revision, ...]
    target: tuple[str, str]
    changes: int
    retracted: bool


@dataclasses.dataclass
class _Event:
    person: str
    attribute: Attribute
    kind: Literal["state", "update", "retract"]
    sentence: str
    value: str | None


def _cast(rng: np.random.Generator, n: int, shared: bool) -> list[str]:
    firsts = list(rng.permutation(FIRST_NAMES))
    lasts = list(rng.permutation(SURNAMES))
    names: list[str] = []
    for i in range(n):
        first = firsts[i]
        last = lasts[i]
        if shared and i % 3 == 2:  # every third person shares a name part with someone earlier
            first, last = (firsts[i - 1], last) if i % 2 else (first, lasts[i - 2])
        name = f"{first} {last}"
        while name in names:
            last = lasts[(lasts.index(last) + 1) % len(lasts)]
            name = f"{first} {last}"
        names.append(name)
    return names


def _value(rng: np.random.Generator, attribute: Attribute, avoid: set[str], current: str | None = None) -> str:
    """A value not used yet for this attribute (once all are used: any but ``current``)."""
    pool = attribute.values if attribute.values is not None else tuple(str(v) for v in range(100, 1000))
    fresh = [v for v in pool if v not in avoid] or [v for v in pool if v != current]
    return str(fresh[int(rng.integers(len(fresh)))])


def _changes(rng: np.random.Generator, first: _Event, count: int, retract_last: bool, used: set[str]) -> list[_Event]:
    chain, attribute, current = [], first.attribute, first.value
    for k in range(count):
        if retract_last and k == count - 1:
            chain.append(_Event(first.person, attribute, "retract", attribute.retract.format(n=first.person), None))
        else:
            value = _value(rng, attribute, used, current)
            current = value
            used.add(value)
            sentence = attribute.update.format(n=first.person, v=value)
            chain.append(_Event(first.person, attribute, "update", sentence, value))
    return chain


def _insert_after(rng: np.random.Generator, events: list[_Event], chain: Sequence[_Event], anchor: _Event) -> None:
    """Insert ``chain`` in order, each event somewhere after the previous one."""
    previous = anchor
    for event in chain:
        start = next(i for i, e in enumerate(events) if e is previous) + 1
        events.insert(int(rng.integers(start, len(events) + 1)), event)
        previous = event


def _messages(rng: np.random.Generator, events: Sequence[_Event], horizon: int, filler: Sequence[str]) -> list[str]:
    """Spread the events over ``horizon`` messages in order; small talk fills the rest."""
    if len(events) <= horizon:
        slots = sorted(rng.choice(horizon, size=len(events), replace=False).tolist())
        groups: list[list[_Event]] = [[] for _ in range(horizon)]
        for slot, event in zip(slots, events):
            groups[slot].append(event)
    else:  # more events than messages: several facts per message, still in order
        bounds = np.linspace(0, len(events), horizon + 1).astype(int)
        groups = [list(events[bounds[i] : bounds[i + 1]]) for i in range(horizon)]
    out = []
    for group in groups:
        if not group:
            out.append(str(filler[int(rng.integers(len(filler)))]))
            continue
        kind = group[0].kind
        leads = {"state": REVEAL_LEADS, "update": UPDATE_LEADS, "retract": RETRACT_LEADS}[kind]
        lead = str(leads[int(rng.integers(len(leads)))])
        out.append(" ".join(([lead] if lead else []) + [e.sentence for e in group]))
    return out


def generate(family: Family, seed: int, horizon: int, difficulty: Difficulty, filler: Sequence[str]) -> Script:
    """Draw one script.

    Args:
        family: ``"fact_update"`` (the target changes, maybe is withdrawn) or
            ``"long_recall"`` (the target is stated early and never changes).
        seed: Everything is drawn from it.
        horizon: Number of Stage-1 messages.
        difficulty: Cast size, facts per person, changes.
        filler: Small-talk lines for messages without a fact.

    Returns:
        The script.
    """
    if horizon < 1:
        raise InvalidConfig(f"horizon must be >= 1, got {horizon}")
    rng = np.random.default_rng(seed)
    people = _cast(rng, difficulty.people, difficulty.shared_names)
    states: list[_Event] = []
    used: dict[str, set[str]] = {a.key: set() for a in ATTRIBUTES}
    for person in people:
        for index in rng.choice(len(ATTRIBUTES), size=min(difficulty.attributes, len(ATTRIBUTES)), replace=False):
            attribute = ATTRIBUTES[int(index)]
            value = _value(rng, attribute, used[attribute.key])
            used[attribute.key].add(value)
            states.append(_Event(person, attribute, "state", attribute.state.format(n=person, v=value), value))
    events = [states[i] for i in rng.permutation(len(states))]
    # LongRecall asks about something said in the first quarter; FactUpdate about the first half
    early = max(1, len(events) // (4 if family == "long_recall" else 2))
    target = events[int(rng.integers(early))]
    chain: list[_Event] = []
    if family == "fact_update":
        low, high = difficulty.target_changes
        count = int(rng.integers(low, high + 1))
        chain = _changes(rng, target, count, bool(rng.random() < difficulty.p_retract), used[target.attribute.key])
        _insert_after(rng, events, chain, target)
    others = [e for e in states if e is not target]
    for index in rng.permutation(len(others))[: difficulty.noise_updates]:
        noise = others[int(index)]
        _insert_after(rng, events, _changes(rng, noise, 1, False, used[noise.attribute.key]), noise)
    history = [target, *chain]
    revisions = tuple(
        Revision(trigger=new.sentence, old=old.sentence, new=None if new.kind == "retract" else new.sentence)
        for old, new in zip(history, history[1:])
        if old.kind != "retract"
    )
    last = history[-1]
    return Script(
        messages=tuple(_messages(rng, events, horizon, filler)),
        question=target.attribute.question.format(n=target.person),
        answer=UNKNOWN if last.kind == "retract" else str(last.value),
        facts=(last.sentence,),
        revisions=revisions,
        target=(target.person, target.attribute.key),
        changes=len(chain),
        retracted=last.kind == "retract",
    )
