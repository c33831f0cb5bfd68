"""``MemoryEnv``: the template-method base of every agemem-gym task.

The base class owns the long-term memory (:class:`~agemem_gym.memory.LongTermMemory`), the
context (:class:`~agemem_gym.memory.ShortTermMemory`), the three stages, the budgets, the
tool execution, the reward and ``info``. A task subclass says which tasks exist and what
one looks like (:meth:`MemoryEnv._num_tasks`, :meth:`MemoryEnv._make_task`) and how an
answer is graded (:meth:`MemoryEnv._grade`); interactive tasks also override the Stage-3
hooks.

Episode flow::

    reset → system prompt, Stage-1 material (one message per item with an automatic
            retrieval of related memories, or everything in one message)
    Stage 1  per incoming message up to max_rounds turns; <answer> moves on
    context reset (the long-term memory persists)
    Stage 2  N distractor messages (fixed per task), same turn rule
    Stage 3  the query is appended (no reset); the episode ends with <answer> or when
             max_rounds turns pass without one (P_rounds)

Running out of rounds on a Stage-1/2 message moves on to the next message without a
penalty by default: the paper's Algorithms 3 and 4 loop ``t = 1..N_max`` and go on, and
P_rounds (``N_rounds > N_max``, Eq. 26) is the task loop ending unanswered. Every stage whose
cap was hit is recorded in ``info["rounds_exceeded_stages"]``, and
``RewardConfig.rounds_penalty_early_stages`` charges P_rounds (once) for Stages 1-2 too.

A turn with tool calls runs the calls (their results come back as ``tool`` messages) and
stays on the current message; every bad input becomes a ``tool`` message, a counted
``info["invalid_calls"]`` and the configured penalty. The turn itself is run by a
:class:`~agemem_gym.turns.TurnEngine`, the same one each agent of the PettingZoo team env uses.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections import deque
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import gymnasium as gym
import numpy as np

from agemem_gym.config import REWARD_PRESETS, EnvConfig, MemoryConfig, RewardConfig, coerce_config
from agemem_gym.distractors import CorpusDistractors, DistractorSource
from agemem_gym.error import InvalidConfig, ResetNeeded, unknown_name
from agemem_gym.graders.attribution import memory_attribution
from agemem_gym.graders.facts import memory_quality
from agemem_gym.graders.judges import AnswerJudge, MemoryJudge, make_judge, make_memory_judge
from agemem_gym.graders.memory_terms import judge_memory_terms
from agemem_gym.memory.context_ops import ContextFilter, CosineFilter, ExtractiveSummarizer, Summarizer
from agemem_gym.memory.embedders import make_embedder
from agemem_gym.memory.ltm import LongTermMemory
from agemem_gym.memory.stm import ApproxTokenCounter, HFTokenCounter, ShortTermMemory, TokenCounter
from agemem_gym.rewards import EpisodeTrace, RewardBreakdown, compute_reward, record_call
from agemem_gym.seeding import stable_seed
from agemem_gym.snapshot import SnapshotMixin
from agemem_gym.spaces import UnicodeText, chat_space
from agemem_gym.task import Task
from agemem_gym.tools import DEFAULT_TOOLS, ParsedTurn, ToolCall, ToolExecutor, ToolResult, ToolTable, system_prompt
from agemem_gym.tools.memory_ids import live_memory_ids
from agemem_gym.turns import Observation, TurnEngine, TurnOutcome, turn_info
from agemem_gym.typecheck import checked_init

__all__ = ["MemoryEnv", "Observation"]

_ENV_FIELDS = {f.name for f in dataclasses.fields(EnvConfig)}
_MEMORY_FIELDS = {f.name for f in dataclasses.fields(MemoryConfig)}
_OPTIONS = {"task_id", "reset_mask"}
# fields that do not shape spaces, the system prompt or the context's token accounting
_RECONFIGURABLE = {
    "stage1_mode",
    "num_distractors",
    "max_rounds",
    "max_context_tokens",
    "max_calls_per_turn",
    "privileged_info",
    "overflow_notice",
}


class MemoryEnv(SnapshotMixin, gym.Env[Observation, str]):
    """Base class: a memory-managing agent's episode over one task.

    Args:
        config: :class:`EnvConfig` (or a dict of its fields).
        memory: :class:`MemoryConfig` (or a dict of its fields).
        reward: :class:`RewardConfig`, a dict of its fields, or a preset name
            (``"paper"``, ``"released_code"``, ``"answer_only"``).
        embedder: ``"hashing"`` (default), ``"minilm"``, an embedder object or a callable.
        judge: Answer judge: ``"f1"`` (default), ``"em"``, ``"hf:MODEL"``, ``"openai:MODEL"``
            or an object (e.g. ``LLMJudge``).
        memory_judge: Memory judge: memory quality and the reward's storage and relevance
            terms. ``"fact-f1"`` (default: offline, from the gold facts), ``"hf:MODEL"``,
            ``"openai:MODEL"`` or an object (see
            :func:`~agemem_gym.graders.judges.make_memory_judge`). A judge that fails leaves
            a line in the final ``info["judge_notes"]``.
        summarizer: ``Summary_context`` executor (default: extractive, offline).
        context_filter: ``Filter_context`` executor (default: embedding cosine ≥ θ_f).
        distractors: Stage-2 distractor source (default: the bundled corpus).
        tools: The tool table (default: :data:`~agemem_gym.tools.DEFAULT_TOOLS`, the six tools).
        tokenizer: A Hugging Face tokenizer to count tokens with (default: 4 bytes per token).
        render_mode: ``None`` or ``"ansi"``.
        **overrides: Any :class:`EnvConfig` or :class:`MemoryConfig` field by name.

    ``info`` on every step holds ``stage``, ``round``, ``step``, ``task_id``, ``tool_calls``
    (counts per tool), ``invalid_calls``, ``step_invalid_calls``, ``prompt_tokens``,
    ``context_tokens``, ``overflow``, ``ltm_size``, ``memory_ids`` (the live LTM ids, sorted;
    the newest :data:`~agemem_gym.tools.memory_ids.MEMORY_IDS_CAP` of a larger store) and
    ``turn``; the last step adds the answer, the grade, memory quality, the reward breakdown
    and ``rounds_exceeded_stages`` (the stages in which a message's round cap was hit without
    an ``<answer>``; P_rounds is charged for Stage 3 only unless
    ``RewardConfig.rounds_penalty_early_stages``) and ``memory_attribution``: one record per
    memory, ``{"id", "added_step", "stage", "updated_step", "live", "retrieved_in_stage3",
    "holds_gold_fact", "gold_facts"}`` (see :func:`~agemem_gym.graders.attribution.memory_attribution`).
    ``snapshot()``/``restore()`` save and restore the whole episode state
    (:mod:`agemem_gym.snapshot`). ``info["turn"]`` says what the env made of
    the step's turn (small and JSON-serialisable; reset's ``info`` has none)::

        {"kind": "tool_call" | "answer" | "action" | "invalid",
         "calls": [{"name": str, "arguments": {...},   # each valid call, in order
                    "ok": bool,                        # False: failed, counted as invalid
                    "memory_op": "added" | "updated" | "deleted" | None,
                    "memory_ids": [str],               # the id written, or the ids retrieved
                    "message": str}],                  # the result as the agent sees it
         "errors": [str],       # format errors (a cut turn first), then hook rejections
         "cut": bool,           # the turn was longer than max_response_tokens
         "answer": str,         # only when the turn answered
         "action": str}         # only when the turn acted (interactive tasks)

    ``step_invalid_calls`` = failed calls + ``len(errors)``.
    """

    metadata: dict[str, Any] = {"render_modes": ["ansi"], "render_fps": 1}
    interactive: ClassVar[bool] = False
    task_note: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Every env checks its constructor's arguments against its type hints (:mod:`agemem_gym.typecheck`)."""
        super().__init_subclass__(**kwargs)
        checked_init(cls, _owner)

    def __init__(
        self,
        *,
        config: EnvConfig | Mapping[str, Any] | None = None,
        memory: MemoryConfig | Mapping[str, Any] | None = None,
        reward: RewardConfig | Mapping[str, Any] | str | None = None,
        embedder: Any = "hashing",
        judge: AnswerJudge | str | None = None,
        memory_judge: MemoryJudge | str | None = None,
        summarizer: Summarizer | None = None,
        context_filter: ContextFilter | None = None,
        distractors: DistractorSource | None = None,
        tools: ToolTable | None = None,
        tokenizer: Any = None,
        render_mode: Literal["ansi"] | None = None,
        **overrides: Any,
    ) -> None:
        self.config, self.memory_config = _split_overrides(config, memory, overrides)
        self.reward_config: RewardConfig = coerce_config(RewardConfig, reward, REWARD_PRESETS)
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise InvalidConfig(
                f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}"
            )
        self.render_mode = render_mode
        self.tools = DEFAULT_TOOLS if tools is None else tools  # the executor checks its type
        self.embedder = make_embedder(embedder)
        self.judge = make_judge(judge)
        self.memory_judge = make_memory_judge(memory_judge)
        self.counter: TokenCounter = HFTokenCounter(tokenizer) if tokenizer is not None else ApproxTokenCounter()
        self.distractor_source = distractors or CorpusDistractors()
        self.ltm = LongTermMemory(
            self.embedder, backend=self.memory_config.backend, max_entries=self.memory_config.max_entries
        )
        self.stm = ShortTermMemory(self.counter, message_overhead=self.config.message_overhead)
        self.executor = ToolExecutor(
            self.ltm,
            self.stm,
            self.memory_config,
            summarizer or ExtractiveSummarizer(self.counter),
            context_filter or CosineFilter(self.embedder, threshold=self.memory_config.filter_threshold),
            self.tools,
        )
        self.turns = TurnEngine(self.stm, self.executor, self.counter, self.config, interactive=self.interactive)
        self.action_space = UnicodeText(max_length=8 * self.config.max_response_tokens)
        self.observation_space = chat_space()
        self._system_prompt = system_prompt(
            self.tools,
            include_schemas=self.config.tools_in_system_prompt,
            interactive=self.interactive,
            task_note=self.task_note,
            tool_prompt=self.config.tool_prompt,
        )
        self._task: Task | None = None
        self._done = True

    # ================================================================ task hooks
    def _num_tasks(self) -> int:
        """Number of tasks in the panel."""
        raise NotImplementedError

    def _task_key(self, index: int) -> str:
        """The id of task ``index`` (used for ``options={"task_id": ...}`` lookups)."""
        return str(index)

    def _make_task(self, index: int) -> Task:
        """Build task ``index`` (deterministic: it may only depend on ``index``)."""
        raise NotImplementedError

    def _grade(self, task: Task, answer: str) -> dict[str, float]:
        """Grade an answer: ``{"task_score", "success", ...}``; the default uses the judge."""
        score = self.judge.score(answer, task.answers, task.query)
        return {"task_score": float(score), "success": float(score >= 1.0)}

    def _stage1_messages(self, task: Task) -> list[str]:
        if not task.material:
            return []
        if self.config.stage1_mode == "single":
            return [task.single_material or "\n\n".join(task.material)]
        return list(task.material)

    def _distractor_messages(self, task: Task) -> list[str]:
        n = self.config.num_distractors
        if n == 0:
            return []
        return self.distractor_source.generate(task.query, n, stable_seed("distractors", task.task_id))

    def _begin_stage3(self, task: Task) -> None:
        """Append the Stage-3 messages (the query, pinned)."""
        self.stm.append("user", task.query, pinned=True, kind="query", stage=3)

    def _on_action(self, action: str) -> bool:
        """Handle an ``<action>`` (interactive tasks); return True when the episode ends."""
        raise NotImplementedError  # unreachable: the parser rejects <action> when not interactive

    # ================================================================ public API
    @property
    def task_ids(self) -> list[str]:
        """The ids of every task, in panel order."""
        return [self._task_key(i) for i in range(self._num_tasks())]

    @property
    def task(self) -> Task | None:
        """The current task (``None`` before the first reset)."""
        return self._task

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Observation, dict[str, Any]]:
        """Start an episode.

        Args:
            seed: Seeds everything the episode draws (task choice, memory ids).
            options: ``{"task_id": int index or str id}`` pins the task, so the K rollouts
                of a GRPO group share it (and its distractors).

        Returns:
            The first observation and ``info``.
        """
        super().reset(seed=seed)
        index = self._choose_task(options or {})
        self._task = self._make_task(index)
        self.ltm.clear(seed=int(self.np_random.integers(2**31)))
        self.stm.clear()
        self.stm.append("system", self._system_prompt, pinned=True, kind="system", stage=1)
        self._trace = EpisodeTrace()
        self._stage, self._round, self._step = 1, 0, 0
        self._queue: deque[str] = deque(self._stage1_messages(self._task))
        self._done = False
        self._prompt_tokens: list[int] = []
        self._potential = 0.0
        self._invalid_paid = 0.0
        self._final: dict[str, Any] = {}
        self._step_invalid = 0
        self._truncated = False
        self._last_turn: TurnOutcome | None = None
        self._rejected: list[str] = []
        self.turns.reset()
        self._advance()
        obs = self._observe()
        return obs, self._info(step_invalid=0)

    def step(self, action: Any) -> tuple[Observation, float, bool, bool, dict[str, Any]]:
        """Take one assistant turn.

        Args:
            action: The turn text in the paper's grammar, or a structured action (a dict or
                list of ``{"name", "arguments"}``, ``{"answer": ...}``, ``{"action": ...}``).

        Returns:
            ``(observation, reward, terminated, truncated, info)``; the reward is 0 until the
            last step in ``terminal`` mode.
        """
        if self._task is None or self._done:
            raise ResetNeeded("call reset() before step() (the episode has ended or never started)")
        self._step += 1
        self._round += 1
        self._trace.turns += 1
        self._rejected = []
        # context pressure when the turn began, for R_preventive (what the environment delivered unasked)
        self._pressure = self.turns.delivered_tokens() / self.config.max_context_tokens
        outcome = self.turns.take_turn(action, stage=self._stage, step=self._step, on_result=self._record)
        self._last_turn = outcome
        self._trace.tool_calls.update(call.name for call in outcome.parsed.calls)
        self._step_invalid = outcome.invalid
        # counted before _dispatch: an ending turn computes the reward there, and its own
        # invalid calls must be in it (a hook's rejection counts itself, in _reject)
        self._trace.invalid_calls += outcome.invalid
        self._truncated = False
        ended = self._dispatch(outcome.parsed)
        obs = self._observe()
        reward = self._step_reward(ended)
        info = self._info(step_invalid=self._step_invalid)
        info["turn"] = turn_info(outcome, self._rejected)
        if ended:
            self._done = True
            info.update(self._final)
        return obs, reward, ended and not self._truncated, ended and self._truncated, info

    def _dispatch(self, parsed: ParsedTurn) -> bool:
        """Act on the parsed turn; return True when the episode ends."""
        if parsed.kind == "answer" and self._stage == 3:
            self._finish(parsed.answer or "")
            return True
        if parsed.kind == "action" and self._on_action(parsed.action or ""):
            return True
        if parsed.kind != "answer" and self._round >= self.config.max_rounds:
            self._note_rounds_exceeded()
        if self._stage < 3 and (parsed.kind == "answer" or self._round >= self.config.max_rounds):
            self._advance()  # an <answer> in Stage 1/2 is the reply to the user: the next message comes
        elif self._stage == 3 and self._round >= self.config.max_rounds:
            self._trace.rounds_exceeded = True
            self._finish(None)
            return True
        return False

    def _note_rounds_exceeded(self) -> None:
        """Record that this stage's round cap was hit without an ``<answer>`` (once per stage)."""
        if self._stage not in self._trace.rounds_exceeded_stages:
            self._trace.rounds_exceeded_stages.append(self._stage)

    def _reject(self, message: str) -> None:
        """Answer a bad agent input from a hook: a tool message and one counted invalid call."""
        self.turns.reject(message, stage=self._stage)
        self._rejected.append(message)
        self._step_invalid += 1
        self._trace.invalid_calls += 1

    def grade(self, task: Task, answer: str | None) -> dict[str, Any]:
        """Grade an answer to ``task`` as the episode's end does.

        Args:
            task: The task (e.g. :attr:`task`).
            answer: The answer text, or ``None`` when the episode ended without one.

        Returns:
            ``{"task_score", "success", ...}``; ``task_score`` is ``None`` for an unanswered
            question-answering task (the reward then uses its no-answer value).
        """
        return self._grade(task, answer) if answer is not None else self._grade_unanswered(task)

    def configure(self, **overrides: Any) -> None:
        """Change :class:`EnvConfig` fields between episodes (e.g. a curriculum's distractor count).

        Takes effect at the next ``reset``; memory limits and the reward are fixed at construction.

        Args:
            **overrides: ``EnvConfig`` fields.
        """
        bad = set(overrides) - _RECONFIGURABLE
        if bad:
            raise unknown_name("reconfigurable EnvConfig field", sorted(bad)[0], _RECONFIGURABLE)
        self.config = dataclasses.replace(self.config, **overrides)
        self.turns.config = self.config

    def render(self) -> str | None:
        """``ansi``: the full context as a transcript (what the memory looks like is in ``info``)."""
        if self.render_mode != "ansi":
            return None
        lines = [
            f"=== {self.spec.id if self.spec else type(self).__name__} | stage {getattr(self, '_stage', 0)} "
            f"| step {getattr(self, '_step', 0)} | LTM {len(self.ltm)} entries ==="
        ]
        lines += self.turns.transcript_lines()
        return "\n".join(lines) + "\n"

    # ================================================================ internals
    def _choose_task(self, options: Mapping[str, Any]) -> int:
        bad = set(options) - _OPTIONS
        if bad:
            raise InvalidConfig(
                f"unknown reset option(s) {sorted(bad)}; supported: {sorted(_OPTIONS - {'reset_mask'})}"
            )
        n = self._num_tasks()
        if n < 1:
            raise InvalidConfig(f"{type(self).__name__} has no tasks")
        if "task_id" not in options or options["task_id"] is None:
            return int(self.np_random.integers(n))
        tid = options["task_id"]
        if isinstance(tid, (int, np.integer)) and not isinstance(tid, bool):
            if not 0 <= int(tid) < n:
                raise InvalidConfig(f"task_id index {tid} is out of range for {n} tasks")
            return int(tid)
        if isinstance(tid, str):
            ids = self._id_index()
            if tid not in ids:
                raise unknown_name("task_id", tid, list(ids)[:2000])
            return ids[tid]
        raise InvalidConfig(f"task_id must be an int index or a str id, got {type(tid).__name__}")

    def _id_index(self) -> dict[str, int]:
        if not hasattr(self, "_ids_cache"):
            self._ids_cache = {self._task_key(i): i for i in range(self._num_tasks())}
        return self._ids_cache

    @property
    def last_turn(self) -> TurnOutcome | None:
        """The last step's turn as the env ran it (``None`` before the first step of an episode).

        Its results and messages are kept also when a stage change has already cleared them
        from the context.
        """
        return getattr(self, "_last_turn", None)

    @property
    def last_tool_results(self) -> tuple[ToolResult, ...]:
        """The results of the last step's tool calls, in call order."""
        turn = self.last_turn
        return turn.results if turn is not None else ()

    def _record(self, call: ToolCall, result: ToolResult) -> None:
        record_call(self._trace, result, stage=self._stage, step=self._step, pressure=self._pressure)

    def _advance(self) -> None:
        """Deliver the next incoming message, moving to the next stage when one runs out."""
        self._round = 0
        while not self._queue:
            if self._stage == 1:
                self._enter_stage(2)  # context reset; distractors queued (maybe none)
            elif self._stage == 2:
                self._enter_stage(3)
                return
            else:
                return
        self._deliver(self._queue.popleft())

    def _enter_stage(self, stage: int) -> None:
        task = self._task
        assert task is not None
        if stage == 2:
            self._stage = 2
            self.stm.clear(keep_system=True)  # the context reset; the LTM persists
            self._queue.extend(self._distractor_messages(task))
        elif stage == 3:
            self._stage = 3
            self._begin_stage3(task)

    def _deliver(self, content: str) -> None:
        stage1 = self._stage == 1
        # Stage-1 material one message at a time comes with what is already stored about it
        k = self.memory_config.auto_retrieve_k if stage1 and self.config.stage1_mode == "per_message" else 0
        self.turns.deliver(content, kind="material" if stage1 else "distractor", stage=self._stage, auto_retrieve_k=k)

    def _observe(self) -> Observation:
        obs, self._packed = self.turns.observe(self.config.max_context_tokens, stage=self._stage)
        self._prompt_tokens.append(self._packed.tokens)
        if self.stm.tokens > self.config.max_context_tokens and self._trace.first_overflow_step is None:
            self._trace.first_overflow_step = self._step
        return obs

    def _grade_unanswered(self, task: Task) -> dict[str, Any]:
        """Grade an episode that ended without an answer (QA: no score, R_task = no-answer value)."""
        return {"task_score": None, "success": 0.0}

    def _finish(self, answer: str | None) -> None:
        task = self._task
        assert task is not None
        trace = self._trace
        trace.answer = answer
        turn = self._last_turn
        assert turn is not None  # an episode ends on a step
        # what the agent saw when it produced the last turn: T_used and the preservation check
        trace.answer_context_tokens, trace.answer_context = turn.seen_tokens, list(turn.seen_contents)
        trace.stage3_rounds = self._round
        grade = self.grade(task, answer)
        terms = judge_memory_terms(
            self.memory_judge,
            trace.stage1_added,
            list(trace.retrieved_stage3.values()),
            question=task.query,
            answers=task.answers,
            facts=task.facts,
        )
        breakdown = compute_reward(
            trace,
            self.reward_config,
            task_score=grade["task_score"],
            question=task.query,
            facts=task.facts,
            max_context_tokens=self.config.max_context_tokens,
            max_rounds=self.config.max_rounds,
            memory_terms=terms,
            stale=task.stale,
        )
        memories = [m.content for m in self.ltm]
        mq = memory_quality(memories, task.facts) if task.facts else None
        judged_mq = (
            self.memory_judge.score(memories, task.facts, task.query, "; ".join(task.answers)) if task.facts else None
        )
        self._breakdown = breakdown
        self._final = {
            "answer": answer,
            **{k: v for k, v in grade.items()},
            "memory_quality": judged_mq,
            "mq_precision": None if mq is None else mq.precision,
            "mq_recall": None if mq is None else mq.recall,
            "reward_components": breakdown.components(),
            "penalties": breakdown.penalties(),
            "episode_reward": breakdown.total,
            "prompt_tokens_mean": float(
                np.mean(self._prompt_tokens + [self.stm.pack(self.config.max_context_tokens).tokens])
            ),
            "prompt_tokens_total": int(sum(self._prompt_tokens)),
            "turns": trace.turns,
            "rounds_exceeded_stages": list(trace.rounds_exceeded_stages),
            "memory_attribution": memory_attribution(self.ltm, trace.retrieved_stage3, task.facts),
            **({"judge_notes": list(terms.notes)} if terms.notes else {}),
        }

    def _step_reward(self, ended: bool) -> float:
        cfg = self.reward_config
        if cfg.mode == "terminal":
            return self._breakdown.total if ended else 0.0
        # dense: invalid-call penalties when they happen + potential-based shaping on memory
        # quality; the final step settles the rest so the episode sum equals the terminal total
        paid = max(cfg.invalid_penalty_floor, cfg.invalid_call_penalty * self._trace.invalid_calls)
        reward = paid - self._invalid_paid
        self._invalid_paid = paid
        task = self._task
        new_potential = 0.0
        if task is not None and task.facts and not ended:
            new_potential = cfg.shaping_coef * memory_quality([m.content for m in self.ltm], task.facts).f1
        reward += new_potential - self._potential
        self._potential = new_potential
        if ended:
            reward += self._breakdown.total - paid
        return float(reward)

    def _info(self, step_invalid: int) -> dict[str, Any]:
        packed = self._packed
        info: dict[str, Any] = {
            "task_id": self._task.task_id if self._task else "",
            "stage": self._stage,
            "round": self._round,
            # turns left in this stage before the round cap (a constrained policy answers on the last)
            "rounds_left": max(0, int(self.config.max_rounds) - self._round),
            "step": self._step,
            "tool_calls": {name: int(self._trace.tool_calls[name]) for name in self.tools.names},
            "invalid_calls": int(self._trace.invalid_calls),
            "step_invalid_calls": int(step_invalid),
            "prompt_tokens": int(packed.tokens),
            "context_tokens": int(self.stm.tokens),
            "overflow": bool(self.stm.tokens > self.config.max_context_tokens),
            "ltm_size": len(self.ltm),
            "memory_ids": live_memory_ids(self.ltm),
        }
        if self.config.privileged_info and self._task is not None:
            info["privileged"] = {"answers": list(self._task.answers), "facts": list(self._task.facts or ())}
        return info

    def episode_breakdown(self) -> RewardBreakdown | None:
        """The reward breakdown of the last finished episode."""
        return getattr(self, "_breakdown", None) if self._done and self._final else None


def _split_overrides(
    config: EnvConfig | Mapping[str, Any] | None,
    memory: MemoryConfig | Mapping[str, Any] | None,
    overrides: Mapping[str, Any],
) -> tuple[EnvConfig, MemoryConfig]:
    env_cfg = coerce_config(EnvConfig, config)
    mem_cfg = coerce_config(MemoryConfig, memory)
    env_kw = {k: v for k, v in overrides.items() if k in _ENV_FIELDS}
    mem_kw = {k: v for k, v in overrides.items() if k in _MEMORY_FIELDS}
    unknown = set(overrides) - set(env_kw) - set(mem_kw)
    if unknown:
        name = sorted(unknown)[0]
        arguments = set(inspect.signature(MemoryEnv.__init__).parameters) - {"self", "overrides"}
        raise unknown_name("environment argument", name, _ENV_FIELDS | _MEMORY_FIELDS | arguments)
    return dataclasses.replace(env_cfg, **env_kw), dataclasses.replace(mem_cfg, **mem_kw)


def _owner(env: MemoryEnv) -> str:
    return type(env).__name__


checked_init(MemoryEnv, _owner)
