"""``TeamMemoryEnv``: agents with their own contexts and one shared long-term memory.

The task comes from any non-interactive ``MemoryEnv`` (``AgeMem/HotpotQA-v0`` by
default): its Stage-1 material goes to the readers, its question to the answerer, and
the only channel between them is the shared :class:`~agemem_gym.memory.LongTermMemory`,
so the team's score measures the quality of what was stored. Every agent speaks the
same turn grammar and runs the same parser, tools, context packer and reward as a
single-agent episode.
"""

from __future__ import annotations

import dataclasses
import functools
from collections import deque
from collections.abc import Mapping
from typing import Any, Literal

import gymnasium as gym
from gymnasium.utils import seeding
from pettingzoo import ParallelEnv

from agemem_gym.adapters.pettingzoo.roles import MATERIAL_DONE, READERS_DONE, ROLE_NOTES, Role, refusal, role_of
from agemem_gym.adapters.pettingzoo.scoring import AgentRecord, score_team
from agemem_gym.core import MemoryEnv
from agemem_gym.error import InvalidConfig, ResetNeeded
from agemem_gym.memory.context_ops import CosineFilter, ExtractiveSummarizer
from agemem_gym.memory.ltm import LongTermMemory
from agemem_gym.memory.stm import ShortTermMemory
from agemem_gym.seeding import stable_seed
from agemem_gym.spaces import UnicodeText, chat_space
from agemem_gym.task import Task
from agemem_gym.tools import ToolCall, ToolExecutor, ToolResult, system_prompt
from agemem_gym.tools.memory_ids import live_memory_ids
from agemem_gym.turns import Observation, TurnEngine, TurnOutcome, turn_info
from agemem_gym.typecheck import checked_init

__all__ = ["TeamMemoryEnv"]


@dataclasses.dataclass
class _Agent:
    name: str
    role: Role
    turns: TurnEngine
    record: AgentRecord
    queue: deque[str] = dataclasses.field(default_factory=deque)
    round: int = 0
    finished: bool = False
    step_invalid: int = 0
    packed_tokens: int = 0
    last_turn: TurnOutcome | None = None  # this cycle's turn (None: not applied)
    pressure: float = 0.0  # delivered tokens over the budget when the turn began (R_preventive)

    @property
    def stm(self) -> ShortTermMemory:
        return self.turns.stm

    @property
    def stage(self) -> int:
        """The stage the agent's turns belong to: the answerer's are Stage 3, the others' Stage 1."""
        return 3 if self.role == "answerer" else 1


class TeamMemoryEnv(ParallelEnv[str, Observation, str]):
    """A PettingZoo ``ParallelEnv`` of agents sharing one long-term memory.

    Agents (``possible_agents``, in the order their turns are applied each cycle):
    ``reader_0 … reader_{n-1}`` split the task's Stage-1 material round-robin and receive it
    one piece at a time (as Stage 1 of a ``MemoryEnv``: tool calls stay on the piece for at
    most ``max_rounds`` turns, ``<answer>`` asks for the next one, each new piece comes with
    an automatic retrieval of related shared memories); ``answerer_0`` sees only the
    question, is told when all readers have finished, and ends the episode with its
    ``<answer>``; ``saboteur_0 …`` (optional) see the question and all the material, may
    only use ``Add_memory`` and ``Retrieve_memory``, and are paid the negative of the
    team's answer score.

    Turns of one cycle are applied in agent order, so the same seed and actions give the
    same episode; the answerer's ``<answer>`` ends the episode at once (a saboteur's turn
    later in that cycle is not applied). The memory's readers-writer lock also keeps it consistent when agent
    turns run from several threads (see the tests).

    Observation space: each agent's own packed context, a tuple of chat messages
    (``agemem_gym.spaces.chat_space()``); action space: one turn of text
    (``UnicodeText``). This passes ``pettingzoo.test.parallel_api_test``. The AEC form
    (:func:`~agemem_gym.adapters.pettingzoo.aec_env`, PettingZoo's ``parallel_to_aec``)
    keeps these text observations, which PettingZoo's AEC ``api_test`` cannot handle (it
    expects NumPy observations); it is checked by this project's own AEC tests instead.

    Rewards: 0 until the episode ends; then the paper's trajectory reward of the team
    (the readers' additions are the storage; the answerer's context and its retrievals
    after the readers' notice are Stage 3) mixed with each agent's individual term by ``team_weight``, plus the agent's
    own invalid-call penalty. ``infos[agent]`` then holds the paper's components
    (``reward_components``, ``penalties``, ``task_score``, ``memory_quality``...), the
    ``team_reward`` and the adversarial counts (``misleading_memories`` left in the store,
    ``misleading_retrieved`` by the answerer). After every step, ``infos[agent]["turn"]``
    says what the agent's turn did, in ``MemoryEnv``'s ``info["turn"]`` form (``None`` when
    the answer ended the cycle before the agent's turn).

    Args:
        task_env: A registered non-interactive id, or a ``MemoryEnv`` instance, that
            supplies tasks, grading, configs and the embedder.
        num_readers: Readers (>= 1).
        num_saboteurs: Saboteurs (>= 0).
        max_cycles: Cycles before the episode is truncated (default: time for each reader
            to spend ``max_rounds`` turns on every piece, plus ``2 * max_rounds``; no answer: the paper's
            no-answer and rounds penalties).
        team_weight: Share of the team reward in a cooperative agent's reward (1: fully
            shared; 0: individual terms only).
        provenance: Stamp ``metadata["author"]`` on every memory an agent adds or updates,
            so agents can filter by author (off: trust must be inferred from content).
        render_mode: ``None`` or ``"ansi"``.
        **env_kwargs: Passed to ``gym.make(task_env, ...)`` (e.g. ``num_distractors``,
            ``max_rounds``, ``privileged_info=True`` for scripted oracles).
    """

    metadata: dict[str, Any] = {"name": "agemem_team_v0", "render_modes": ["ansi"], "is_parallelizable": True}

    def __init__(
        self,
        task_env: str | MemoryEnv = "AgeMem/HotpotQA-v0",
        *,
        num_readers: int = 1,
        num_saboteurs: int = 0,
        max_cycles: int | None = None,
        team_weight: float = 1.0,
        provenance: bool = False,
        render_mode: Literal["ansi"] | None = None,
        **env_kwargs: Any,
    ) -> None:
        self.source = _make_source(task_env, env_kwargs)
        for name, value, low in (("num_readers", num_readers, 1), ("num_saboteurs", num_saboteurs, 0)):
            if not isinstance(value, int) or not low <= value <= 16:
                raise InvalidConfig(f"{name} must be an int in [{low}, 16], got {value!r}")
        if max_cycles is not None and (not isinstance(max_cycles, int) or max_cycles < 1):
            raise InvalidConfig(f"max_cycles must be a positive int or None, got {max_cycles!r}")
        if not 0.0 <= float(team_weight) <= 1.0:
            raise InvalidConfig(f"team_weight must be in [0, 1], got {team_weight!r}")
        if render_mode not in (None, "ansi"):
            raise InvalidConfig(f"render_mode must be None or 'ansi', got {render_mode!r}")
        self.render_mode = render_mode
        self.max_cycles = max_cycles
        self.team_weight = float(team_weight)
        self.provenance = bool(provenance)
        self.config, self.memory_config = self.source.config, self.source.memory_config
        self.possible_agents = (
            [f"reader_{i}" for i in range(num_readers)]
            + ["answerer_0"]
            + [f"saboteur_{i}" for i in range(num_saboteurs)]
        )
        self.roles: dict[str, Role] = {a: role_of(a) for a in self.possible_agents}
        self.ltm = LongTermMemory(
            self.source.embedder, backend=self.memory_config.backend, max_entries=self.memory_config.max_entries
        )
        obs_space, act_space = chat_space(), UnicodeText(max_length=8 * self.config.max_response_tokens)
        self.observation_spaces = dict.fromkeys(self.possible_agents, obs_space)
        self.action_spaces = dict.fromkeys(self.possible_agents, act_space)
        self._prompts = {
            role: system_prompt(
                include_schemas=self.config.tools_in_system_prompt, task_note=note, tool_prompt=self.config.tool_prompt
            )
            for role, note in ROLE_NOTES.items()
        }
        self.agents: list[str] = []
        self.np_random, _ = seeding.np_random()
        self._task: Task | None = None

    # ------------------------------------------------------------------ spaces
    def observation_space(self, agent: str) -> gym.Space:
        """The agent's observation space (the same object on every call)."""
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> gym.Space:
        """The agent's action space (the same object on every call)."""
        return self.action_spaces[agent]

    @property
    def task(self) -> Task | None:
        """The current task."""
        return self._task

    # ------------------------------------------------------------------ reset
    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Observation], dict[str, dict[str, Any]]]:
        """Start an episode.

        Args:
            seed: Seeds the task draw and the memory ids.
            options: ``{"task_id": index or id}`` pins the task; other keys are ignored
                (PettingZoo's API test passes arbitrary ones).

        Returns:
            Observations and infos of every agent.
        """
        if seed is not None:
            self.np_random, _ = seeding.np_random(seed)
        task_id = (options or {}).get("task_id")
        if task_id is None:
            task_id = int(self.np_random.integers(len(self.source.task_ids)))
        self.source.reset(seed=stable_seed("team-task", task_id), options={"task_id": task_id})
        self._task = task = self.source.task
        assert task is not None
        self.ltm.clear(seed=int(self.np_random.integers(2**31)))
        self._writers: dict[str, str] = {}
        self._retrieved_writers: dict[str, str] = {}
        self._cycle = 0
        self._answer: str | None = None
        self._readers_done = False
        self._final: dict[str, Any] = {}
        self.agents = list(self.possible_agents)
        self._state = {name: self._new_agent(name) for name in self.agents}
        readers = [s for s in self._state.values() if s.role == "reader"]
        for j, piece in enumerate(task.material):
            readers[j % len(readers)].queue.append(piece)
        for state in self._state.values():
            self._start(state, task)
        self._check_readers_done()
        return self._observations(), self._infos()

    def _new_agent(self, name: str) -> _Agent:
        role = self.roles[name]
        stm = ShortTermMemory(self.source.counter, message_overhead=self.config.message_overhead)
        executor = ToolExecutor(
            self.ltm,
            stm,
            self.memory_config,
            ExtractiveSummarizer(self.source.counter),
            CosineFilter(self.source.embedder, threshold=self.memory_config.filter_threshold),
        )
        turns = TurnEngine(stm, executor, self.source.counter, self.config, refuse=refusal(role))
        stm.append("system", self._prompts[role], pinned=True, kind="system", stage=1)
        return _Agent(name, role, turns, AgentRecord(role))

    def _start(self, state: _Agent, task: Task) -> None:
        if state.role == "answerer":
            state.stm.append("user", task.query, pinned=True, kind="query", stage=3)
        elif state.role == "saboteur":
            brief = "Question: " + task.query + "\n\nMaterial:\n" + "\n".join(task.material)
            state.turns.deliver(brief, kind="material", stage=1)
        else:
            self._advance(state)

    # ------------------------------------------------------------------ step
    def step(
        self, actions: Mapping[str, Any]
    ) -> tuple[
        dict[str, Observation],
        dict[str, float],
        dict[str, bool],
        dict[str, bool],
        dict[str, dict[str, Any]],
    ]:
        """Apply one turn per live agent (in agent order) and return the per-agent results.

        Args:
            actions: ``{agent: turn}`` for every live agent; a turn is text in the turn
                grammar or a structured action.

        Returns:
            ``(observations, rewards, terminations, truncations, infos)`` keyed by agent.
        """
        if not self.agents:
            raise ResetNeeded("call reset() before step() (the episode has ended or never started)")
        missing = [a for a in self.agents if a not in actions]
        extra = [a for a in actions if a not in self.agents]
        if missing or extra:
            raise InvalidConfig(
                f"step() needs one action per live agent {self.agents}; missing {missing}, extra {extra}"
            )
        self._cycle += 1
        for name in self.agents:
            self._state[name].last_turn = None
        for name in self.agents:
            self._act(self._state[name], actions[name])
            if self._answer is not None:
                break  # the answer ends the cycle: later agents' turns are not applied
        self._check_readers_done()
        answered = self._answer is not None
        out_of_time = not answered and self._cycle >= self._cycle_limit()
        observations, live = self._observations(), list(self.agents)
        rewards = dict.fromkeys(live, 0.0)
        if answered or out_of_time:
            rewards = self._finish()
        infos = self._step_infos()
        terminations = dict.fromkeys(live, answered)
        truncations = dict.fromkeys(live, out_of_time)
        if answered or out_of_time:
            self.agents = []
        return observations, rewards, terminations, truncations, infos

    def _cycle_limit(self) -> int:
        if self.max_cycles is not None:
            return self.max_cycles
        readers = sum(role == "reader" for role in self.roles.values())
        pieces = -(-len(self._task.material) // readers) if self._task is not None else 0
        return (pieces + 2) * self.config.max_rounds

    def _act(self, state: _Agent, action: Any) -> None:
        outcome = self.run_turn(state.name, action)
        parsed = outcome.parsed
        state.record.turns += 1
        if state.role == "answerer":
            if parsed.kind == "answer":
                self._answer = parsed.answer or ""
                state.record.answer_context_tokens = outcome.seen_tokens
                state.record.answer_context = list(outcome.seen_contents)
        elif state.role == "reader" and not state.finished:
            state.round += 1
            if parsed.kind == "answer" or state.round >= self.config.max_rounds:
                self._advance(state)

    def run_turn(self, agent: str, action: Any) -> TurnOutcome:
        """Parse and execute one turn of ``agent`` against its context and the shared memory.

        Thread-safe with respect to the shared memory (its readers-writer lock); one agent's
        context must not be used from two threads at once.

        Args:
            agent: A live agent.
            action: The turn.

        Returns:
            What the turn did (the parsed turn, the call results, what the agent saw before it).
        """
        state = self._state[agent]
        record = functools.partial(self._record, state)
        state.pressure = state.turns.delivered_tokens() / self.config.max_context_tokens
        outcome = state.turns.take_turn(action, stage=state.stage, step=self._cycle, on_result=record)
        state.record.tool_calls.update(call.name for call in outcome.parsed.calls)
        state.step_invalid = outcome.invalid
        state.record.invalid_calls += state.step_invalid
        state.last_turn = outcome
        return outcome

    def _record(self, state: _Agent, call: ToolCall, result: ToolResult) -> None:
        """Note what one call did: the agent's record, who wrote each memory, what the answerer read."""
        rec = state.record
        mid = result.memory_id
        if not result.ok:
            return
        if result.memory_op in ("added", "updated") and mid:
            if result.memory_op == "added":
                rec.added.append(str(result.content))
            elif result.changed:
                rec.updates += 1
                rec.revisions.append((result.previous or "", str(result.content)))
            else:
                rec.noop_updates += 1
            self._writers[mid] = state.name
            if self.provenance:
                self.ltm.update(mid, metadata={"author": state.name})
        elif result.memory_op == "deleted" and mid:
            rec.deletes += 1
            rec.revisions.append((result.previous or "", None))
            self._writers.pop(mid, None)
        elif "ltm_read" in result.touches:
            if state.role == "answerer" and self._readers_done:
                # the team's Stage 3 starts when the readers are done: earlier retrievals only poll
                for item in result.retrieved:
                    if item.id not in rec.retrieved:
                        rec.retrieved[item.id] = item.content
                        self._retrieved_writers[item.id] = self._writers.get(item.id, "")
        elif "context" in result.touches and result.reduced:
            rec.reductions.append((self._cycle, state.pressure))

    def _advance(self, state: _Agent) -> None:
        """Give a reader its next piece of material (with related shared memories), or the end notice."""
        state.round = 0
        if not state.queue:
            if not state.finished:
                state.finished = True
                state.stm.append("user", MATERIAL_DONE, kind="notice", stage=1)
            return
        k = self.memory_config.auto_retrieve_k
        state.turns.deliver(state.queue.popleft(), kind="material", stage=1, auto_retrieve_k=k)

    def _check_readers_done(self) -> None:
        if self._readers_done or not all(s.finished for s in self._state.values() if s.role == "reader"):
            return
        self._readers_done = True
        answerer = self._state["answerer_0"]
        answerer.stm.append("user", READERS_DONE, kind="notice", stage=3)

    # ------------------------------------------------------------------ outputs
    def _observations(self) -> dict[str, Observation]:
        out = {}
        budget = self.config.max_context_tokens
        for name in self.agents:
            state = self._state[name]
            out[name], packed = state.turns.observe(budget, stage=state.stage)
            state.packed_tokens = packed.tokens
            if state.stm.tokens > budget and state.record.first_overflow is None:
                state.record.first_overflow = self._cycle
        return out

    def _step_infos(self) -> dict[str, dict[str, Any]]:
        """Infos after a step: each agent's also says what its turn did (``None``: not applied)."""
        infos = self._infos()
        for name, info in infos.items():
            turn = self._state[name].last_turn
            info["turn"] = turn_info(turn) if turn is not None else None
        return infos

    def _infos(self) -> dict[str, dict[str, Any]]:
        infos = {}
        memory_ids = live_memory_ids(self.ltm)  # the shared LTM: one list for every agent
        for name in self.agents:
            s = self._state[name]
            info: dict[str, Any] = {
                "role": s.role,
                "cycle": self._cycle,
                "round": s.round,
                "finished_reading": s.finished,
                "readers_finished": self._readers_done,
                "tool_calls": dict(s.record.tool_calls),
                "invalid_calls": s.record.invalid_calls,
                "step_invalid_calls": s.step_invalid,
                "prompt_tokens": s.packed_tokens,
                "context_tokens": s.stm.tokens,
                "overflow": s.stm.tokens > self.config.max_context_tokens,
                "ltm_size": len(self.ltm),
                "memory_ids": list(memory_ids),
            }
            if self.config.privileged_info and self._task is not None:
                info["privileged"] = {"answers": list(self._task.answers), "facts": list(self._task.facts or ())}
            if self._final:
                info.update(self._final)
                info["agent_reward"] = self._final_rewards[name]
            infos[name] = info
        return infos

    def _finish(self) -> dict[str, float]:
        task = self._task
        assert task is not None
        answer = self._answer
        grade = self.source.grade(task, answer)
        outcome = score_team(
            {name: s.record for name, s in self._state.items()},
            answerer="answerer_0",
            answer=answer,
            grade=grade,
            question=task.query,
            facts=task.facts,
            memories=[(m.content, self._writers.get(m.id, "")) for m in self.ltm],
            retrieved_writers=self._retrieved_writers,
            config=self.source.reward_config,
            max_context_tokens=self.config.max_context_tokens,
            max_rounds=self.config.max_rounds,
            cycles=self._cycle,
            team_weight=self.team_weight,
            memory_judge=self.source.memory_judge,  # the task env's judge scores storage and relevance too
            answers=task.answers,
            stale=task.stale,
        )
        self._final = outcome.info
        self._final_rewards = outcome.rewards
        return {name: float(outcome.rewards[name]) for name in self.agents}

    def render(self) -> str | None:
        """``ansi``: each agent's context and the shared memory."""
        if self.render_mode != "ansi":
            return None
        lines = [f"=== team | cycle {getattr(self, '_cycle', 0)} | shared LTM {len(self.ltm)} entries ==="]
        for mem in self.ltm:
            lines.append(f"  {mem.id} [{getattr(self, '_writers', {}).get(mem.id, '?')}] {mem.content[:100]}")
        for name, state in getattr(self, "_state", {}).items():
            lines.append(f"--- {name} ({state.role}) ---")
            lines += state.turns.transcript_lines()
        return "\n".join(lines) + "\n"

    def close(self) -> None:
        """Close the task source."""
        self.source.close()


def _make_source(task_env: str | MemoryEnv, env_kwargs: Mapping[str, Any]) -> MemoryEnv:
    if isinstance(task_env, str):
        import agemem_gym  # noqa: F401 - registers the ids

        source = gym.make(task_env, **dict(env_kwargs)).unwrapped
    else:
        if env_kwargs:
            raise InvalidConfig("pass env_kwargs only with a task_env id, not with an env instance")
        source = task_env
    if not isinstance(source, MemoryEnv):
        raise InvalidConfig(f"task_env must be a MemoryEnv id or instance, got {type(source).__name__}")
    if source.interactive:
        raise InvalidConfig(f"{type(source).__name__} is interactive; TeamMemoryEnv needs question-answering tasks")
    if not source.task_ids:
        raise InvalidConfig(f"{type(source).__name__} has no tasks")
    return source


checked_init(TeamMemoryEnv, lambda env: type(env).__name__)  # arguments checked against the hints above
