"""The reward audit: play the scripted exploits against the honest policies and read the two rules.

* Rule A: no exploit, added to honest memory work with the right answer, earns more than the
  honest policy (``margin_a = R(exploit, right) − R(honest, right) <= 0``). In a world the
  context-clearing exploits (:data:`~agemem_gym.policies.exploits.CLEARS_CONTEXT`) may gain
  compression and nothing else: the scripted expert they play with needs no context.
* Rule B: no exploit alone with a wrong answer reaches a right answer with no memory work
  (``margin_b = R(exploit, wrong) − R(answer-only, right) < 0``).

>>> from agemem_gym.config import RewardConfig
>>> panel = exploit_panel(["AgeMem/Probe-Recall-v0"], [0], names=["honest", "answer-only", "dump"])
>>> rows = audit_margins(panel_means(panel), RewardConfig())
>>> [(r["policy"], r["margin_a"] <= 0, r["margin_b"] < 0) for r in rows]
[('dump', True, True)]
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Sequence
from typing import Any

from agemem_gym.config import RewardConfig
from agemem_gym.policies.exploits import ANSWERS, CLEARS_CONTEXT, EXPLOITS, HONEST, ExploitPolicy, make_exploit

__all__ = ["PANEL_IDS", "TERMS", "audit_margins", "exploit_panel", "panel_means"]

PANEL_IDS = (
    "AgeMem/HotpotQA-v0",
    "AgeMem/FactUpdate-v0",
    "AgeMem/LongRecall-v0",
    "AgeMem/Probe-Recall-v0",
    "AgeMem/MemoryProbe-v0",
    "AgeMem/PDDL-v0",  # one interactive world
)
"""The ids every reward change is audited on: QA with static and changing facts, the probes, a world."""

TERMS = ("task", "compression", "preventive", "preservation", "storage", "maintenance", "relevance")
"""The reward terms a panel row reports (``None`` terms count as 0 in the means)."""

Means = dict[tuple[str, str, str], dict[str, float]]


def _play(env: Any, policy: ExploitPolicy, task: int, seed: int) -> dict[str, Any]:
    obs, info = env.reset(seed=seed, options={"task_id": task})
    policy.reset()
    done = False
    while not done:
        obs, _, terminated, truncated, info = env.step(policy.act(obs, info))
        done = terminated or truncated
    return dict(info)


def exploit_panel(
    env_ids: Sequence[str],
    tasks: Sequence[int],
    *,
    reward: Any = None,
    names: Sequence[str] | None = None,
    make_env: Callable[..., Any] | None = None,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Play every policy (honest references and exploits, right and wrong) on every id and task.

    Args:
        env_ids: Registered ids.
        tasks: Task indices, the same for every id.
        reward: The env's ``reward`` argument (a preset name, a dict or a ``RewardConfig``).
        names: Policies to play (default: all of ``HONEST`` and ``EXPLOITS``).
        make_env: Builds an env from an id and keyword arguments (default ``gymnasium.make``).
        seed: Reset seed of every episode.

    Returns:
        One row per (id, policy, answer, task): ``env_id``, ``policy``, ``answer``, ``task``,
        ``world`` (an interactive Stage 3), ``reward``, ``task_score`` and the reward components.
    """
    import gymnasium as gym

    build = make_env or gym.make
    rows = []
    for env_id in env_ids:
        env = build(env_id, privileged_info=True, reward=reward)
        for name in names or [*HONEST, *EXPLOITS]:
            for answer in ANSWERS:
                policy = make_exploit(name, answer)
                for task in tasks:
                    info = _play(env, policy, task, seed)
                    rows.append(
                        {
                            "env_id": env_id,
                            "policy": name,
                            "answer": answer,
                            "task": task,
                            "world": "world_steps" in info,
                            "reward": float(info["episode_reward"]),
                            "task_score": info.get("task_score"),
                            **info["reward_components"],
                        }
                    )
        env.close()
    return rows


def panel_means(rows: Sequence[dict[str, Any]]) -> Means:
    """``(env_id, policy, answer) ->`` the mean reward, terms and ``world`` flag over the tasks."""
    grouped = collections.defaultdict(list)
    for row in rows:
        grouped[row["env_id"], row["policy"], row["answer"]].append(row)
    return {
        key: {f: sum(float(r[f] or 0.0) for r in group) / len(group) for f in ("reward", "world", *TERMS)}
        for key, group in grouped.items()
    }


def _compression_weight(config: RewardConfig) -> float:
    """How much one unit of R_compression moves the total."""
    return config.w_context * config.context_weights[0] / sum(config.context_weights)


def audit_margins(means: Means, config: RewardConfig) -> list[dict[str, Any]]:
    """Both rules' margins for every exploit on every id of the panel (see the module docstring).

    Args:
        means: :func:`panel_means` of a panel that played ``honest``, ``answer-only`` and the exploits.
        config: The reward the panel was played with (for the world compression allowance).

    Returns:
        One dict per (id, exploit): ``env_id``, ``policy``, ``margin_a`` (after the allowance),
        ``raw_margin_a``, ``margin_b``.
    """
    out = []
    for env_id in dict.fromkeys(k[0] for k in means):
        honest, bare = means[env_id, "honest", "right"], means[env_id, "answer-only", "right"]
        for name in (n for n in EXPLOITS if (env_id, n, "right") in means):
            right, wrong = means[env_id, name, "right"], means[env_id, name, "wrong"]
            raw = right["reward"] - honest["reward"]
            allowance = 0.0
            if right["world"] and name in CLEARS_CONTEXT:
                allowance = _compression_weight(config) * max(0.0, right["compression"] - honest["compression"])
            out.append(
                {
                    "env_id": env_id,
                    "policy": name,
                    "margin_a": raw - allowance,
                    "raw_margin_a": raw,
                    "margin_b": wrong["reward"] - bare["reward"],
                }
            )
    return out
