"""Play AgeMem episodes into single token sequences (:mod:`agemem_gym.adapters.episode_tokens`).

* :func:`play_tokenized` plays a plan of ``(task_id, seed)`` episodes on a vector env of
  slots with :func:`agemem_gym.runner.play_episodes` (the loop of ``agemem run`` and the
  GRPO trainer) and a batched turn source (``HFPolicy.generate``), assembling each episode
  as it plays. The TRL bridge is built on it.
* :class:`TextPolicyTurns` makes any text policy (the scripted baselines) such a turn source
  by rendering the observation with a tokenizer's chat template and tokenising its action.
* :func:`measure_rewrites` reports how many turns' training context differs from their
  sampling context under the single-sequence rule, for a task and a policy.
* :func:`play_episode_async` plays one episode with an ``async`` token generator, the core
  of the verl agent-loop recipe (``docs/verl-recipe.md``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import gymnasium as gym

from agemem_gym.adapters.episode_tokens import EpisodeAssembler, EpisodeTokens, alignment_summary
from agemem_gym.error import InvalidConfig
from agemem_gym.policies.llm.hf_policy import TurnRecord, render_prompt
from agemem_gym.runner import EpisodeEnd, SlotEnvs, env_kwargs_for, play_episodes
from agemem_gym.vector import make_slot_envs

__all__ = ["TokenEpisode", "TextPolicyTurns", "play_tokenized", "measure_rewrites", "play_episode_async"]

Generate = Callable[[Sequence[Any], Sequence[Mapping[str, Any]]], Sequence[TurnRecord]]
"""``generate(observations, infos) -> records``: one turn per observation (``HFPolicy.generate``)."""


@dataclasses.dataclass(frozen=True)
class TokenEpisode:
    """One played episode: its assembled tokens and how it ended."""

    tokens: EpisodeTokens
    end: EpisodeEnd


class TextPolicyTurns:
    """A text policy (``act(observation, info) -> str``) as a turn source with token ids.

    The prompt ids are the observation rendered with the tokenizer's chat template (as
    :class:`~agemem_gym.policies.llm.hf_policy.HFPolicy` renders it) and the response ids
    the action text tokenised; log-probs are 0. Used to measure the rewrite rule with
    scripted policies, which (unlike a tiny random model) do call the context tools.

    Args:
        policy: The text policy; reset before each episode by :func:`play_tokenized`.
        tokenizer: A tokenizer with a chat template.
        tools: ``render_prompt``'s ``tools`` argument.
    """

    def __init__(self, policy: Any, tokenizer: Any, tools: bool | str = "auto") -> None:
        self.policy, self.tokenizer, self.tools = policy, tokenizer, tools

    def reset(self) -> None:
        """Reset the wrapped policy (a new episode starts)."""
        reset = getattr(self.policy, "reset", None)
        if callable(reset):
            reset()

    def generate(self, observations: Sequence[Any], infos: Sequence[Mapping[str, Any]]) -> list[TurnRecord]:
        """One record per observation: rendered prompt ids and the tokenised action."""
        records = []
        for obs, info in zip(observations, infos):
            text = self.policy.act(obs, info)
            prompt = self.tokenizer(render_prompt(self.tokenizer, obs, self.tools), add_special_tokens=False)
            response = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            records.append(TurnRecord(tuple(prompt["input_ids"]), tuple(response), (0.0,) * len(response), text, True))
        return records


def play_tokenized(
    envs: SlotEnvs,
    plan: Sequence[tuple[Any, int]],
    generate: Generate,
    tokenizer: Any,
    *,
    end_token: int | None = None,
    on_start: Callable[[int, int], None] | None = None,
    max_turns: int = 10_000,
) -> list[TokenEpisode]:
    """Play every episode of ``plan`` and assemble each into one token sequence.

    Args:
        envs: A vector env of slots (:func:`agemem_gym.vector.make_slot_envs`).
        plan: ``(task_id, seed)`` per episode.
        generate: The batched turn source (``HFPolicy.generate`` or :class:`TextPolicyTurns`).
        tokenizer: The policy's tokenizer.
        end_token: :class:`~agemem_gym.adapters.episode_tokens.EpisodeAssembler`'s ``end_token``.
        on_start: Called with ``(slot, index)`` before a slot starts episode ``index``.
        max_turns: Safety cap on turns per episode.

    Returns:
        One :class:`TokenEpisode` per planned episode, in plan order.
    """
    assemblers = [EpisodeAssembler(tokenizer, end_token) for _ in range(envs.num_envs)]
    done: dict[int, TokenEpisode] = {}

    def start(slot: int, index: int) -> None:
        assemblers[slot] = EpisodeAssembler(tokenizer, end_token)
        if on_start is not None:
            on_start(slot, index)

    def act(slots: Sequence[int], observations: Sequence[Any], infos: Sequence[dict[str, Any]]) -> list[str]:
        records = generate(list(observations), list(infos))
        for slot, rec in zip(slots, records):
            assemblers[slot].add_turn(rec.prompt_ids, rec.response_ids, rec.logprobs)
        return [rec.text for rec in records]

    def end(e: EpisodeEnd) -> None:
        done[e.index] = TokenEpisode(assemblers[e.slot].finish(), e)

    play_episodes(envs, plan, act, on_start=start, on_end=end, max_steps=max_turns)
    return [done[i] for i in range(len(plan))]


def measure_rewrites(
    env_id: str,
    policy: Any,
    tokenizer: Any,
    *,
    episodes: int = 4,
    seed: int = 0,
    env_kwargs: Mapping[str, Any] | None = None,
    max_turns: int = 200,
) -> dict[str, Any]:
    """How many turns' training context differs from their sampling context, for one task.

    Args:
        env_id: A registered AgeMem id.
        policy: An object with ``generate`` (``HFPolicy``) or a text policy (``act``).
        tokenizer: The tokenizer that renders and tokenises (the policy's own for ``HFPolicy``).
        episodes: Episodes to play (tasks ``0..episodes-1``, seeds ``seed + i``).
        seed: First seed.
        env_kwargs: ``gym.make`` arguments (the tokenizer is added so budgets count its tokens).
        max_turns: Safety cap on turns per episode.

    Returns:
        :func:`~agemem_gym.adapters.episode_tokens.alignment_summary` plus ``env_id``,
        ``policy`` and ``mean_completion_tokens``.
    """
    if episodes < 1:
        raise InvalidConfig(f"episodes must be >= 1, got {episodes}")
    source = policy if hasattr(policy, "generate") else TextPolicyTurns(policy, tokenizer)
    kwargs = env_kwargs_for(source, {"tokenizer": tokenizer, **dict(env_kwargs or {})})
    if getattr(policy, "needs_privileged_info", False):
        kwargs["privileged_info"] = True
    envs = make_slot_envs(lambda: gym.make(env_id, **kwargs), num_envs=1)
    reset = getattr(source, "reset", None)
    try:
        played = play_tokenized(
            envs,
            [(i, seed + i) for i in range(episodes)],
            source.generate,
            tokenizer,
            on_start=(lambda slot, index: reset()) if callable(reset) else None,
            max_turns=max_turns,
        )
    finally:
        envs.close()
    summary: dict[str, Any] = dict(alignment_summary(ep.tokens.turns for ep in played))
    summary["env_id"] = env_id
    summary["policy"] = str(getattr(policy, "name", type(policy).__name__))
    summary["mean_completion_tokens"] = sum(len(ep.tokens.completion_ids) for ep in played) / len(played)
    return summary


async def play_episode_async(
    env: gym.Env,
    generate: Callable[[list[int]], Awaitable[tuple[Sequence[int], Sequence[float]]]],
    tokenizer: Any,
    *,
    task_id: Any = None,
    seed: int | None = None,
    max_turns: int = 200,
    tools: bool | str = "auto",
) -> tuple[EpisodeTokens, float, dict[str, Any]]:
    """Play one episode with an async token generator (verl's ``server_manager.generate``).

    Args:
        env: An AgeMem env (``gym.make`` it with ``tokenizer=`` so budgets count its tokens).
        generate: ``await generate(prompt_ids) -> (response_ids, logprobs)``.
        tokenizer: Renders observations (chat template) and decodes responses into actions.
        task_id: Pins the task (``options={"task_id": ...}``).
        seed: The reset seed.
        max_turns: Safety cap on turns.
        tools: ``render_prompt``'s ``tools`` argument.

    Returns:
        ``(tokens, episode return, last info)``.
    """
    options = {"task_id": task_id} if task_id is not None else None
    obs, info = env.reset(seed=seed, options=options)
    assembler = EpisodeAssembler(tokenizer)
    total = 0.0
    for _ in range(max_turns):
        prompt = list(tokenizer(render_prompt(tokenizer, obs, tools), add_special_tokens=False)["input_ids"])
        response, logprobs = await generate(prompt)
        assembler.add_turn(prompt, response, logprobs)
        eos = {tokenizer.eos_token_id}
        action = tokenizer.decode([t for t in response if t not in eos], skip_special_tokens=False)
        obs, reward, terminated, truncated, info = env.step(action)
        total += float(reward)
        if terminated or truncated:
            break
    return assembler.finish(), total, dict(info)
