"""A bridge to SkyRL: every AgeMem id as a ``skyrl_gym`` text environment.

:class:`AgeMemTextEnv` wraps one Gymnasium AgeMem env in skyrl-gym's
``BaseTextEnv`` (``init(prompt) -> (messages, metadata)``, ``step(action) ->
BaseTextEnvStepOutput``, ``get_metrics``, ``aggregate_metrics``, ``close``);
:func:`register_all` registers every ``AgeMem/*`` id with ``skyrl_gym.register`` under the
same id, so ``skyrl_gym.make("AgeMem/HotpotQA-v0", env_config=..., extras=row)`` works.

The env owns the conversation: the dataset row's ``extras["extra_info"]`` names the task
(``task_id``, an index or id) and the ``seed``, and the prompt SkyRL passes to ``init`` is
ignored (``init`` returns the env's own first context). ``extras["max_turns"]`` caps the
turns (the episode then ends with ``done=True``).

Observations are only the messages the env's context gained after the action, which is
what an append-only trainer history needs. AgeMem rewrites its context (the Stage-2
reset, ``Summary_context`` / ``Filter_context``, packing): then the observations are the
rewritten context's messages after its longest common prefix with the history
(``metadata["context_rewritten"]`` is ``True``), and the env's **full current context**
is in ``metadata["context"]`` on every step, so a step-wise trainer (the paper's form) can
build each turn's prompt from it instead of from the appended history.

Example:
    >>> import skyrl_gym  # doctest: +SKIP
    >>> from agemem_gym.adapters.skyrl import register_all  # doctest: +SKIP
    >>> register_all()  # doctest: +SKIP
    >>> row = {"extra_info": {"task_id": 0, "seed": 0}}
    >>> env = skyrl_gym.make("AgeMem/MemoryProbe-v0", extras=row)  # doctest: +SKIP
    >>> messages, metadata = env.init([])  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym

from agemem_gym.error import InvalidConfig, missing_dependency

__all__ = ["AgeMemTextEnv", "register_all", "new_messages"]

try:
    from skyrl_gym.envs.base_text_env import BaseTextEnv, BaseTextEnvStepOutput
except ImportError as exc:  # the module is imported on purpose: fail with the install command
    raise missing_dependency("skyrl-gym", "skyrl") from exc

# the numeric end-of-episode info fields reported as metrics
_METRICS = ("task_score", "success", "memory_quality", "invalid_calls", "turns", "ltm_size", "context_tokens")


def _messages(observation: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    return [{"role": str(m["role"]), "content": str(m["content"])} for m in observation]


def new_messages(
    history: Sequence[Mapping[str, str]], context: Sequence[Mapping[str, str]]
) -> tuple[list[dict[str, str]], bool]:
    """The messages of ``context`` after its longest common prefix with ``history``.

    Args:
        history: What the trainer has seen: the previous context plus the assistant turn.
        context: The env's new context.

    Returns:
        ``(messages, rewritten)``; ``rewritten`` is ``True`` when ``context`` does not
        extend ``history`` (a reset, summary, filter or packing changed earlier messages).
    """
    common = 0
    for old, new in zip(history, context):
        if old["role"] != new["role"] or old["content"] != new["content"]:
            break
        common += 1
    return _messages(context[common:]), common < len(history)


def _number(value: Any) -> float | None:
    if isinstance(value, Mapping):  # e.g. the tool-call histogram: its total
        return float(sum(v for v in value.values() if isinstance(v, (int, float))))
    if isinstance(value, (bool, int, float)):
        return float(value)
    return None


class AgeMemTextEnv(BaseTextEnv):
    """One AgeMem env as a skyrl-gym ``BaseTextEnv`` (see the module docstring).

    Args:
        env_config: ``gym.make`` keyword arguments (a mapping; SkyRL passes its
            ``environment.skyrl_gym`` config here), or ``None``.
        extras: The dataset row: ``extra_info`` (``task_id``, ``seed``), ``max_turns``.
        env_id: The AgeMem id (set by :func:`register_all`).
        **env_kwargs: More ``gym.make`` arguments (win over ``env_config``).
    """

    def __init__(
        self,
        env_config: Mapping[str, Any] | None = None,
        extras: Mapping[str, Any] | None = None,
        *,
        env_id: str = "AgeMem/HotpotQA-v0",
        **env_kwargs: Any,
    ) -> None:
        super().__init__()
        extras = dict(extras or {})
        info = dict(extras.get("extra_info") or {})
        self.task_id = info.get("task_id")
        self.seed = info.get("seed")
        self.max_turns = int(extras.get("max_turns") or 10_000)
        if self.max_turns < 1:
            raise InvalidConfig(f"extras['max_turns'] must be >= 1, got {self.max_turns}")
        kwargs = {**dict(env_config or {}), **env_kwargs}
        self.env_id = env_id
        self.env = gym.make(env_id, **kwargs)
        self.context: list[dict[str, str]] = []
        self.episode_return = 0.0
        self.last_info: dict[str, Any] = {}

    def init(self, prompt: Any = None) -> tuple[list[dict[str, str]], dict[str, Any]]:
        """Reset to the row's task and seed; the prompt is ignored (the env owns the conversation).

        Returns:
            ``(first context, metadata)``; metadata holds ``context``, ``task_id``, ``info``.
        """
        options = {"task_id": self.task_id} if self.task_id is not None else None
        seed = None if self.seed is None else int(self.seed)
        obs, info = self.env.reset(seed=seed, options=options)
        self.turns, self.episode_return = 0, 0.0
        self.context, self.last_info = _messages(obs), dict(info)
        return list(self.context), {"context": list(self.context), "task_id": info.get("task_id"), "info": dict(info)}

    def step(self, action: str) -> BaseTextEnvStepOutput:
        """Play one assistant turn; observations are only the context's new messages."""
        if not self.context:
            raise InvalidConfig("call init() before step()")
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.turns += 1
        self.episode_return += float(reward)
        history = [*self.context, {"role": "assistant", "content": str(action)}]
        self.context, self.last_info = _messages(obs), dict(info)
        observations, rewritten = new_messages(history, self.context)
        done = bool(terminated or truncated) or self.turns >= self.max_turns
        metadata = {"context": list(self.context), "context_rewritten": rewritten, "info": dict(info)}
        return BaseTextEnvStepOutput(
            observations=observations, reward=float(reward), done=done, metadata=metadata, postprocessed_action=None
        )

    def get_metrics(self) -> dict[str, Any]:
        """The episode's numeric end-of-episode ``info`` fields plus ``episode_return`` and ``tool_calls``."""
        metrics: dict[str, Any] = {"episode_return": self.episode_return, "turns": float(self.turns)}
        for key in (*_METRICS, "tool_calls"):
            value = _number(self.last_info.get(key))
            if value is not None:
                metrics[key] = value
        return metrics

    def close(self) -> None:
        """Close the wrapped Gymnasium env."""
        self.env.close()


def register_all(prefix: str = "AgeMem/") -> list[str]:
    """Register every Gymnasium id starting with ``prefix`` with ``skyrl_gym.register``.

    Already registered ids are left as they are, so calling it twice is harmless.

    Returns:
        The ids registered by this call.
    """
    import skyrl_gym

    import agemem_gym  # noqa: F401 - registers the Gymnasium ids

    added = []
    for env_id in sorted(i for i in gym.registry if i.startswith(prefix)):
        if env_id in skyrl_gym.registry:
            continue
        skyrl_gym.register(env_id, entry_point="agemem_gym.adapters.skyrl:AgeMemTextEnv", kwargs={"env_id": env_id})
        added.append(env_id)
    return added
