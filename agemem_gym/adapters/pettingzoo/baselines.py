"""Scripted team baselines and an evaluation loop for :class:`TeamMemoryEnv`.

Each agent is driven by an ordinary ``Policy`` (``act(observation, info) -> str`` in the
turn grammar), so every team decision goes through the real parser and tools.

Teams (:data:`TEAMS`):

* ``oracle`` (cooperative oracle): readers store exactly the gold facts found in their
  material (privileged); the answerer waits for the readers, retrieves with the question
  and answers with the extractive reader. The memory channel's upper bound for this reader.
* ``store-all``: readers store every piece whole; the same answerer.
* ``vigilant``: ``store-all`` readers that also delete memories that are corrupted copies
  of their own material (someone else wrote them, they echo a sentence the reader read,
  but the reader never read them), and keep sweeping the memory after their material ends.
  Without provenance it cannot tell another reader's honest memory from a planted one
  when both restate the same sentence: with three readers and no saboteur it deletes
  about one honest memory per episode.
* ``trusting``: ``store-all`` readers; the answerer retrieves only memories whose author is
  a reader (the env's ``provenance=True`` stamps authors).
* ``no-communication``: readers store nothing and the answerer answers at once from the
  question alone: the floor.

Saboteurs, when the env has them, always play :class:`SaboteurPolicy` (one corrupted copy
of a gold fact per cycle: the answer swapped for another name or a shifted number).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from agemem_gym.adapters.pettingzoo.roles import READERS_DONE
from agemem_gym.adapters.pettingzoo.team import TeamMemoryEnv
from agemem_gym.error import InvalidConfig, unknown_name
from agemem_gym.graders.facts import sentence_matches
from agemem_gym.policies.base import BasePolicy, Observation, last_message, messages_since_last_turn
from agemem_gym.policies.reader import ExtractiveReader
from agemem_gym.text import find_stated, normalize_answer, split_sentences
from agemem_gym.tools import (
    ADD_MEMORY,
    DELETE_MEMORY,
    RETRIEVE_MEMORY,
    SUMMARY_CONTEXT,
    format_answer,
    format_tool_call,
)
from agemem_gym.tools.results import added_memory_ids

__all__ = [
    "ReaderPolicy",
    "AnswererPolicy",
    "SaboteurPolicy",
    "TEAMS",
    "make_team",
    "TeamEpisode",
    "run_team_episode",
    "evaluate_team",
]

ACK = "Got it."
_NUMBER = re.compile(r"\b\d{1,4}\b")
_NAME = re.compile(r"(?<=[a-z,;] )[A-Z][\w'’-]+(?: [A-Z][\w'’-]+)*")


def _retrieved_items(messages: Sequence[Mapping[str, str]]) -> list[tuple[str, str]]:
    """``(id, content)`` of the memories listed in retrieval results among ``messages``."""
    out = []
    for m in messages:
        if m["role"] == "tool" and m["content"].startswith("[retrieved memories]"):
            for line in m["content"].splitlines()[1:]:
                if line.startswith("- ") and " (Memory ID: " in line:
                    content, mid = line[2:].rsplit(" (Memory ID: ", 1)
                    out.append((mid.rstrip(")"), content))
    return out


def _call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"name": name, "arguments": arguments}


class ReaderPolicy(BasePolicy):
    """A scripted reader: ``store-all``, ``oracle``, ``vigilant`` or ``silent``.

    Args:
        mode: What to store (see the module docstring).
        sweep_top_k: Memories per sweep retrieval of a ``vigilant`` reader.
    """

    name = "reader"
    _MODES = ("store-all", "oracle", "vigilant", "silent")

    def __init__(self, mode: str = "store-all", sweep_top_k: int = 5) -> None:
        if mode not in self._MODES:
            raise unknown_name("reader mode", mode, self._MODES)
        self.mode = mode
        self.sweep_top_k = int(sweep_top_k)
        self.needs_privileged_info = mode == "oracle"
        self.reset()

    def reset(self) -> None:
        """Forget the episode."""
        self._material: list[str] = []
        self._own: set[str] = set()
        self._deleted: set[str] = set()
        self._sweep = 0

    def act(self, observation: Observation, info: Mapping[str, Any]) -> str:
        """The next turn."""
        if int(info.get("cycle", 0)) == 0:
            self.reset()
        recent = messages_since_last_turn(observation)
        for m in recent:
            self._own.update(added_memory_ids(m["content"]) if m["role"] == "tool" else ())
        calls = self._deletions(recent) if self.mode == "vigilant" else []
        fresh = int(info.get("round", 0)) == 0 and not info.get("finished_reading", False)
        piece = last_message(observation, "user")
        if fresh and piece not in self._material:
            self._material.append(piece)
            calls += self._store(piece, info)
            if self.mode == "vigilant":  # look around the new piece for planted copies of it
                calls.append(_call(RETRIEVE_MEMORY, query=piece[:1500], top_k=self.sweep_top_k))
        if info.get("finished_reading") and self.mode == "vigilant" and self._material:
            # keep sweeping: retrieve around one piece per turn, delete what it turns up next turn
            query = self._material[self._sweep % len(self._material)][:1500]
            self._sweep += 1
            calls.append(_call(RETRIEVE_MEMORY, query=query, top_k=self.sweep_top_k))
        if calls:
            return format_tool_call(calls, "Store what I read; remove what contradicts it.")
        return format_answer(ACK, "Next, please.")

    def _store(self, piece: str, info: Mapping[str, Any]) -> list[dict[str, Any]]:
        if self.mode == "silent":
            return []
        if self.mode == "oracle":
            priv = info.get("privileged")
            if not isinstance(priv, Mapping):
                raise RuntimeError("the oracle reader needs the env created with privileged_info=True")
            # the facts as this piece words them (case and spacing may differ from the gold list)
            stated = [find_stated(str(f), piece) for f in priv.get("facts", []) if f]
            return [_call(ADD_MEMORY, content=f, memory_type="knowledge") for f in dict.fromkeys(stated) if f]
        return [_call(ADD_MEMORY, content=piece, memory_type="knowledge")]

    def _deletions(self, recent: Sequence[Mapping[str, str]]) -> list[dict[str, Any]]:
        sentences = [s for piece in self._material for s in split_sentences(piece)]
        read = normalize_answer(" ".join(self._material))
        calls = []
        for mid, content in _retrieved_items(recent):
            if mid in self._own or mid in self._deleted or normalize_answer(content) in read:
                continue
            if any(sentence_matches(s, content) for s in sentences):
                self._deleted.add(mid)
                calls.append(_call(DELETE_MEMORY, memory_id=mid, confirmation=True))
        return calls


class AnswererPolicy(BasePolicy):
    """A scripted answerer.

    Args:
        wait: Wait for the readers' notice (polling the memory with a one-item retrieval),
            then retrieve and answer; ``False`` answers at once from the question alone.
        top_k: Memories retrieved with the question.
        trust: ``None`` (any memory) or a list of author names to retrieve from (needs the
            env's ``provenance=True``: one filtered retrieval per author).
        compact_at: While waiting, summarise the own context once it holds more than this
            many tokens (long reading phases would otherwise overflow it with polls).
    """

    name = "answerer"

    def __init__(
        self, wait: bool = True, top_k: int = 5, trust: Sequence[str] | None = None, compact_at: int = 2048
    ) -> None:
        self.wait = bool(wait)
        self.compact_at = int(compact_at)
        self.top_k = int(top_k)
        self.trust = list(trust) if trust is not None else None
        self.reader = ExtractiveReader()
        self._asked = False

    def act(self, observation: Observation, info: Mapping[str, Any]) -> str:
        """The next turn."""
        if int(info.get("cycle", 0)) == 0:
            self._asked = False
        question = next((m["content"] for m in observation if m["role"] == "user"), "")
        if not self.wait:
            return format_answer(self.reader.answer(question, []), "I cannot see anything else.")
        if not any(m["content"] == READERS_DONE for m in observation):
            if int(info.get("context_tokens", 0)) > self.compact_at:
                return format_tool_call([_call(SUMMARY_CONTEXT, span="all")], "Waiting; compact the context.")
            return format_tool_call([_call(RETRIEVE_MEMORY, query=question, top_k=1)], "Waiting for the readers.")
        if not self._asked:
            self._asked = True
            if self.trust is None:
                calls = [_call(RETRIEVE_MEMORY, query=question, top_k=self.top_k)]
            else:
                calls = [
                    _call(RETRIEVE_MEMORY, query=question, top_k=self.top_k, metadata_filter={"author": who})
                    for who in self.trust
                ]
            return format_tool_call(calls, "The readers are done: recall.")
        passages = [content for _, content in _retrieved_items(messages_since_last_turn(observation))]
        return format_answer(self.reader.answer(question, passages), "Answer from the shared memory.")


class SaboteurPolicy(BasePolicy):
    """Writes one corrupted copy of a gold fact (or of a question-related sentence) per cycle.

    Args:
        seed: Seeds the choice of decoys.
    """

    name = "saboteur"

    def __init__(self, seed: int = 0) -> None:
        self.seed = int(seed)
        self.rng = np.random.default_rng(seed)
        self._next = 0

    def act(self, observation: Observation, info: Mapping[str, Any]) -> str:
        """The next turn."""
        if int(info.get("cycle", 0)) == 0:
            self.rng, self._next = np.random.default_rng(self.seed), 0
        brief = next((m["content"] for m in observation if m["role"] == "user"), "")
        question, _, material = brief.partition("\n\nMaterial:\n")
        given = info.get("privileged")
        priv = given if isinstance(given, Mapping) else {}
        answers = [a for a in priv.get("answers", []) if a]
        targets = [f for f in priv.get("facts", []) if f] or self._related(question, material)
        if not targets:
            return format_answer(ACK, "Nothing to spoil.")
        target = targets[self._next % len(targets)]
        self._next += 1
        fake = self._corrupt(target, answers, material)
        return format_tool_call([_call(ADD_MEMORY, content=fake, memory_type="knowledge")], "Plant a decoy.")

    def _related(self, question: str, material: str) -> list[str]:
        qwords = set(normalize_answer(question).split())
        scored = [(len(qwords & set(normalize_answer(s).split())), s) for s in split_sentences(material)]
        return [s for score, s in sorted(scored, key=lambda x: -x[0])[:4] if score > 1]

    def _corrupt(self, sentence: str, answers: Sequence[str], material: str) -> str:
        names = sorted({m.group() for m in _NAME.finditer(material)} - set(answers))
        for answer in answers:
            if answer in sentence and answer.lower() not in ("yes", "no"):
                if _NUMBER.fullmatch(answer):
                    return sentence.replace(answer, str(int(answer) + int(self.rng.integers(2, 9))))
                if names:
                    return sentence.replace(answer, names[int(self.rng.integers(len(names)))])
        number = _NUMBER.search(sentence)
        if number:
            shifted = str(int(number.group()) + int(self.rng.integers(2, 9)))
            return sentence[: number.start()] + shifted + sentence[number.end() :]
        own = _NAME.search(sentence)
        if own and names:
            return sentence.replace(own.group(), names[int(self.rng.integers(len(names)))])
        return re.sub(r"\b(is|was|are|were)\b", r"\1 not", sentence, count=1)


TEAMS: dict[str, dict[str, Any]] = {
    "oracle": {"reader": "oracle"},
    "store-all": {"reader": "store-all"},
    "vigilant": {"reader": "vigilant"},
    "trusting": {"reader": "store-all", "trust": True},
    "no-communication": {"reader": "silent", "wait": False},
}
"""Scripted teams: the readers' mode and the answerer's settings (saboteurs play :class:`SaboteurPolicy`).
``trusting`` retrieves only memories whose author is a reader (needs ``provenance=True``)."""


def make_team(name: str, env: TeamMemoryEnv, seed: int = 0) -> dict[str, BasePolicy]:
    """One policy per agent of ``env`` for the scripted team ``name``."""
    if name not in TEAMS:
        raise unknown_name("team", name, TEAMS)
    spec = TEAMS[name]
    readers = [a for a in env.possible_agents if env.roles[a] == "reader"]
    if spec.get("trust") and not env.provenance:
        raise InvalidConfig(f"the {name!r} team filters memories by author: create the env with provenance=True")
    out: dict[str, BasePolicy] = {}
    for i, agent in enumerate(env.possible_agents):
        role = env.roles[agent]
        if role == "saboteur":
            out[agent] = SaboteurPolicy(seed=seed + i)
        elif role == "reader":
            out[agent] = ReaderPolicy(spec["reader"])
        else:
            out[agent] = AnswererPolicy(wait=spec.get("wait", True), trust=readers if spec.get("trust") else None)
    return out


@dataclasses.dataclass(frozen=True)
class TeamEpisode:
    """The end of one team episode."""

    task_id: str
    seed: int
    team_reward: float
    rewards: dict[str, float]
    task_score: float
    memory_quality: float
    cycles: int
    misleading_memories: int
    misleading_retrieved: int
    answered: bool


def run_team_episode(
    env: TeamMemoryEnv, policies: Mapping[str, Any], *, seed: int, options: Mapping[str, Any] | None = None
) -> TeamEpisode:
    """Play one episode with one policy per agent."""
    observations, infos = env.reset(seed=seed, options=dict(options or {}))
    for policy in policies.values():
        if hasattr(policy, "reset"):
            policy.reset()
    final: dict[str, Any] = {}
    rewards: dict[str, float] = {}
    while env.agents:
        actions = {a: policies[a].act(observations[a], infos[a]) for a in env.agents}
        observations, rewards, _, _, infos = env.step(actions)
        final = infos["answerer_0"]
    task = env.task
    return TeamEpisode(
        task_id=task.task_id if task else "",
        seed=seed,
        team_reward=float(final["team_reward"]),
        rewards={k: float(v) for k, v in rewards.items()},
        task_score=float(final.get("task_score") or 0.0),
        memory_quality=float(final.get("memory_quality") or 0.0),
        cycles=int(final["cycle"]),
        misleading_memories=int(final["misleading_memories"]),
        misleading_retrieved=int(final["misleading_retrieved"]),
        answered=final.get("answer") is not None,
    )


def evaluate_team(
    env: TeamMemoryEnv, team: str, *, episodes: int, seed: int = 0
) -> tuple[dict[str, float], list[TeamEpisode]]:
    """Run a scripted team on tasks ``0 .. episodes-1`` (seeds ``seed + i``) and average.

    Returns:
        Means (team reward, task score, MQ, cycles, misleading counts, reward per agent)
        and the episodes.
    """
    if episodes < 1:
        raise InvalidConfig(f"episodes must be >= 1, got {episodes}")
    if team == "oracle" and not env.config.privileged_info:
        raise InvalidConfig("the oracle team needs the env created with privileged_info=True")
    n_tasks = len(env.source.task_ids)
    eps = []
    for i in range(episodes):
        policies = make_team(team, env, seed=seed + i)
        eps.append(run_team_episode(env, policies, seed=seed + i, options={"task_id": i % n_tasks}))
    fields = ("team_reward", "task_score", "memory_quality", "cycles", "misleading_memories", "misleading_retrieved")
    summary = {k: float(np.mean([getattr(e, k) for e in eps])) for k in fields}
    for agent in env.possible_agents:
        summary[f"reward/{agent}"] = float(np.mean([e.rewards[agent] for e in eps]))
    return summary, eps
