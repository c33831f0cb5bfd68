"""A bridge to TRL: train on AgeMem episodes with ``GRPOTrainer(rollout_func=...)``.

TRL's ``rollout_func(prompts, trainer)`` hook returns one ``prompt + completion`` token
sequence per prompt, with ``env_mask`` keeping the environment's tokens out of the loss.
:class:`AgeMemRollout` is such a function: each prompt names an AgeMem task and seed
(:func:`make_dataset` writes them), and it plays that whole episode with
:class:`~agemem_gym.policies.llm.hf_policy.HFPolicy` on the trainer's current model
(grammar-constrained turns with ``constrained=True``), batching the turns of all the
prompts it is given through :func:`agemem_gym.runner.play_episodes`. TRL hands it each
prompt already repeated ``num_generations`` times, so the K rollouts of a group play the
same task with the same seed and differ only by sampling.

Context rewrites (the Stage-2 reset, ``Summary_context`` / ``Filter_context``, packing)
follow the single-sequence rule of :mod:`agemem_gym.adapters.episode_tokens`: appended
context is the env's actual new messages as the policy saw them; after a rewrite the
sequence restarts with the whole rewritten context, so the model trains on every turn
after the exact context it sampled in **preceded by the stale earlier segments**.
:func:`agemem_gym.adapters.token_episodes.measure_rewrites` measures how many turns that
affects per task; the per-turn trainer (``agemem train``, :mod:`agemem_gym.adapters.grpo`)
has no such gap. The returned ``logprobs`` are only read by TRL's vLLM importance-sampling
correction; grammar-masked sampling is not corrected without vLLM.

Example:
    >>> from trl import GRPOConfig, GRPOTrainer  # doctest: +SKIP
    >>> from agemem_gym.adapters.trl import AgeMemRollout, env_reward, make_dataset  # doctest: +SKIP
    >>> trainer = GRPOTrainer(  # doctest: +SKIP
    ...     model=model, processing_class=tokenizer, reward_funcs=[env_reward],
    ...     train_dataset=make_dataset(range(64)), args=GRPOConfig(num_generations=4, ...),
    ...     rollout_func=AgeMemRollout("AgeMem/HotpotQA-v0", constrained=True),
    ... )
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from agemem_gym.adapters.episode_tokens import alignment_summary
from agemem_gym.error import InvalidConfig, missing_dependency

__all__ = ["AgeMemRollout", "make_dataset", "task_prompt", "parse_task_prompt", "env_reward", "task_score"]

_KEY = "agemem_task"


def _require_trl() -> Any:
    try:
        import datasets  # noqa: F401
        import trl
    except ImportError as exc:
        raise missing_dependency("trl / datasets", "trl") from exc
    return trl


def task_prompt(task_id: Any, seed: int) -> str:
    """The dataset prompt that names an episode: ``{"agemem_task": task_id, "seed": seed}`` as JSON."""
    if not isinstance(task_id, (int, str)) or isinstance(task_id, bool):
        raise InvalidConfig(f"task_id must be an int index or a str id, got {task_id!r}")
    return json.dumps({_KEY: task_id, "seed": int(seed)})


def parse_task_prompt(prompt: Any) -> tuple[Any, int]:
    """``(task_id, seed)`` from a :func:`task_prompt` string.

    Raises:
        InvalidConfig: The prompt is not one (the dataset was not made by :func:`make_dataset`).
    """
    try:
        spec: Any = json.loads(prompt) if isinstance(prompt, str) else None
        return spec[_KEY], int(spec["seed"])
    except (ValueError, TypeError, KeyError) as exc:
        raise InvalidConfig(
            f"a prompt for AgeMemRollout must be a task_prompt() string like "
            f'\'{{"{_KEY}": 3, "seed": 0}}\' (build the dataset with make_dataset), got {prompt!r:.120}'
        ) from exc


def make_dataset(task_ids: Iterable[Any], seeds: Iterable[int] | int = 0) -> Any:
    """A ``datasets.Dataset`` with one row per task: ``prompt``, ``task_id``, ``seed``.

    Args:
        task_ids: Task indices (``int``) or ids (``str``) of the env.
        seeds: One seed per task, or one for all.

    Returns:
        The dataset (TRL repeats each row ``num_generations`` times itself).
    """
    _require_trl()
    from datasets import Dataset

    tasks = list(task_ids)
    seed_list = [int(seeds)] * len(tasks) if isinstance(seeds, int) else [int(s) for s in seeds]
    if len(seed_list) != len(tasks) or not tasks:
        raise InvalidConfig(
            f"need one seed per task and at least one task; got {len(tasks)} tasks, {len(seed_list)} seeds"
        )
    return Dataset.from_dict(
        {
            "prompt": [task_prompt(t, s) for t, s in zip(tasks, seed_list)],
            "task_id": [str(t) for t in tasks],
            "seed": seed_list,
        }
    )


class AgeMemRollout:
    """TRL's ``rollout_func``: plays one AgeMem episode per prompt on the trainer's model.

    Args:
        env_id: A registered AgeMem id.
        env_kwargs: ``gym.make`` arguments (the policy's tokenizer is added for budgets).
        max_new_tokens: Longest turn.
        temperature: Sampling temperature (TRL's ``GRPOConfig.temperature`` should match:
            it divides the logits by it when it scores the completions).
        constrained: Grammar-constrained turns (:mod:`agemem_gym.policies.llm.constrained`).
        tools: ``HFPolicy``'s ``tools`` argument.
        max_turns: Safety cap on turns per episode.
        seed: Sampling seed; each call reseeds with ``seed`` plus the call count.
        policy_kwargs: Other :class:`~agemem_gym.policies.llm.hf_policy.HFPolicy` arguments.

    Attributes:
        last_alignment: The :func:`~agemem_gym.adapters.episode_tokens.alignment_summary`
            of the last call's episodes.
    """

    def __init__(
        self,
        env_id: str,
        *,
        env_kwargs: Mapping[str, Any] | None = None,
        max_new_tokens: int = 128,
        temperature: float = 1.0,
        constrained: bool = False,
        tools: bool | str = "auto",
        max_turns: int = 64,
        seed: int = 0,
        policy_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        if max_turns < 1:
            raise InvalidConfig(f"max_turns must be >= 1, got {max_turns}")
        self.env_id = env_id
        self.env_kwargs = dict(env_kwargs or {})
        self.policy_kwargs = {
            "max_new_tokens": max_new_tokens,
            "temperature": temperature,
            "constrained": constrained,
            "tools": tools,
            **dict(policy_kwargs or {}),
        }
        self.max_turns = int(max_turns)
        self.seed = int(seed)
        self.calls = 0
        self.policy: Any = None
        self._envs: Any = None
        self.last_alignment: dict[str, float] = {}

    def _policy(self, trainer: Any) -> Any:
        from agemem_gym.policies.llm.hf_policy import HFPolicy

        model = trainer.accelerator.unwrap_model(trainer.model)
        if self.policy is None or self.policy.model is not model:
            self.policy = HFPolicy(model, trainer.processing_class, seed=self.seed, **self.policy_kwargs)
        return self.policy

    def _env_slots(self, n: int) -> Any:
        from agemem_gym.adapters.grpo.rollout import make_rollout_envs
        from agemem_gym.runner import env_kwargs_for

        if self._envs is None or self._envs.num_envs != n:
            self.close()
            self._envs = make_rollout_envs(self.env_id, n, env_kwargs_for(self.policy, self.env_kwargs))
        return self._envs

    def __call__(self, prompts: Sequence[Any], trainer: Any) -> dict[str, list[Any]]:
        """Play one episode per prompt and return TRL's rollout fields.

        Returns:
            ``prompt_ids``, ``completion_ids``, ``logprobs``, ``env_mask`` (one list per
            prompt) and, for the reward functions, ``env_reward`` (the episode's return),
            ``task_score`` and ``context_differs`` (the fraction of the episode's turns whose
            training context differs from their sampling context).
        """
        from agemem_gym.adapters.token_episodes import play_tokenized

        plan = [parse_task_prompt(p) for p in prompts]
        policy = self._policy(trainer)
        policy.reseed(self.seed + self.calls)
        self.calls += 1
        envs = self._env_slots(len(plan))
        model, training = policy.model, policy.model.training
        model.eval()  # no dropout while sampling; TRL scores in train mode afterwards
        try:
            played = play_tokenized(
                envs,
                plan,
                policy.generate,
                policy.tokenizer,
                end_token=policy.tokenizer.eos_token_id,
                max_turns=self.max_turns,
            )
        finally:
            model.train(training)
        self.last_alignment = alignment_summary(ep.tokens.turns for ep in played)
        return {
            "prompt_ids": [ep.tokens.prompt_ids for ep in played],
            "completion_ids": [ep.tokens.completion_ids for ep in played],
            "logprobs": [ep.tokens.logprobs for ep in played],
            "env_mask": [ep.tokens.env_mask for ep in played],
            "env_reward": [float(ep.end.episode_return) for ep in played],
            "task_score": [float(ep.end.info.get("task_score") or 0.0) for ep in played],
            "context_differs": [alignment_summary([ep.tokens.turns])["fraction_differs"] for ep in played],
        }

    def close(self) -> None:
        """Close the env slots (rebuilt on the next call)."""
        if self._envs is not None:
            self._envs.close()
            self._envs = None


def env_reward(completions: Sequence[Any], env_reward: Sequence[float] | None = None, **kwargs: Any) -> list[float]:
    """TRL reward function: the episode's environment return that :class:`AgeMemRollout` returned.

    Also logs the mean ``task_score`` and ``context_differs`` through TRL's ``log_metric``
    (``agemem/task_score``, ``agemem/context_differs``) when the trainer passes it.
    """
    if env_reward is None:
        raise InvalidConfig("env_reward needs the 'env_reward' field: use rollout_func=AgeMemRollout(...)")
    log = kwargs.get("log_metric")
    if callable(log):
        for key in ("task_score", "context_differs"):
            values = kwargs.get(key)
            if values:
                log(f"agemem/{key}", sum(values) / len(values))
    return [float(r) for r in env_reward]


def task_score(completions: Sequence[Any], task_score: Sequence[float] | None = None, **kwargs: Any) -> list[float]:
    """TRL reward function: the episode's task score (give it weight 0 to log it without training on it)."""
    if task_score is None:
        raise InvalidConfig("task_score needs the 'task_score' field: use rollout_func=AgeMemRollout(...)")
    return [float(s) for s in task_score]
